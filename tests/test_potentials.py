"""Potentials against independent references: the Cambridge Cluster Database
global minima, ASE's LennardJones, asap3's RGL, jax-md's gupta_gold55,
matscipy's Stillinger-Weber and finite differences."""

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.lj import LennardJones as AseLennardJones
from ase.cluster import Icosahedron
from ase.io import read
from lennard_jones_reference import hessian_from_forces

import ase_learn2hop
from ase_learn2hop import neighbours, potentials, stillinger_weber
from ase_learn2hop.geometry import (
    FREE,
    periodic_cell,
    periodic_cube,
    smallest_cell_height,
)

DATA = Path(__file__).parent / "data"


def tabulated_lennard_jones_minima():
    text = (
        Path(ase_learn2hop.__file__).parent / "data" / "lj_global_minima.tsv"
    ).read_text()
    rows = [line.split() for line in text.splitlines()[1:] if line.strip()]
    return {int(size): float(energy) for size, energy in rows}


def random_cluster(n_atoms, seed, box=None, minimum_distance=0.75):
    """Uniform random cluster with no pair closer than ``minimum_distance``."""
    rng = np.random.default_rng(seed)
    box = box or 1.1 * n_atoms ** (1 / 3)
    positions = np.empty((0, 3))
    while len(positions) < n_atoms:
        trial = rng.uniform(0.0, box, 3)
        if (
            len(positions) == 0
            or np.min(np.linalg.norm(positions - trial, axis=1)) > minimum_distance
        ):
            positions = np.vstack([positions, trial])
    return positions


def asap3_rgl_parameters(parameter_set):
    """``{element: [p, q, A, xi, r0], (el1, el2): [...]}`` as asap3's RGL takes."""
    table = parameter_set.parameters
    elements = parameter_set.elements
    result = {}
    for i in range(len(elements)):
        for j in range(i, len(elements)):
            key = elements[i] if i == j else (elements[i], elements[j])
            result[key] = [
                float(table.p[i, j]),
                float(table.q[i, j]),
                float(table.A[i, j]),
                float(table.xi[i, j]),
                float(table.r0[i, j]),
            ]
    return result


def asap3_rgl(parameter_set):
    asap3 = pytest.importorskip("asap3")
    # cutoff is in nearest-neighbour distances (~2.9 Å): 10 puts the smoothing
    # window near 30 Å, beyond every pair of these clusters, i.e. no cutoff.
    return asap3.RGL(asap3_rgl_parameters(parameter_set), cutoff=10.0)


def free_cluster_for_asap3(atoms):
    # asap3 needs a non-degenerate cell even for free clusters.
    atoms = atoms.copy()
    atoms.center(vacuum=20.0)
    atoms.pbc = False
    return atoms


def matscipy_stillinger_weber():
    manybody = pytest.importorskip("matscipy.calculators.manybody")
    forms = pytest.importorskip("matscipy.calculators.manybody.explicit_forms")
    from matscipy.calculators.manybody.explicit_forms.stillinger_weber import (
        Stillinger_Weber_PRB_31_5262_Si,
    )

    parameters = dict(Stillinger_Weber_PRB_31_5262_Si)
    # matscipy rounds eps to 2.1683 eV; the SPEC (and the -277.537 eV reference)
    # uses 2.16826 eV.
    parameters["epsilon"] = 2.16826
    parameters["costheta0"] = 1.0 / 3.0
    return manybody.Manybody(**forms.StillingerWeber(parameters))


def bind(energy_fn, parameters=None):
    """``positions -> energy_fn(positions, parameters)``."""
    return lambda positions: energy_fn(positions, parameters)


def energy_and_forces(energy_fn, positions, *args):
    energy, gradient = jax.jit(jax.value_and_grad(energy_fn))(
        jnp.asarray(positions), *args
    )
    return float(energy), -np.asarray(gradient)


def finite_difference_forces(energy_fn, positions, step=1e-5):
    positions = np.asarray(positions, dtype=np.float64)
    energy = jax.jit(energy_fn)
    forces = np.zeros_like(positions)
    for index in np.ndindex(positions.shape):
        plus, minus = positions.copy(), positions.copy()
        plus[index] += step
        minus[index] -= step
        forces[index] = -(float(energy(plus)) - float(energy(minus))) / (2 * step)
    return forces


# Lennard-Jones ------------------------------------------------------------------


@pytest.mark.parametrize("n_atoms", [13, 38])
def test_lennard_jones_global_minima_equal_cambridge_cluster_database(n_atoms):
    atoms = read(DATA / f"lj{n_atoms}_global_minimum.xyz")
    energy = float(potentials.lennard_jones()(jnp.asarray(atoms.positions), None))
    assert energy == pytest.approx(tabulated_lennard_jones_minima()[n_atoms], abs=1e-6)


# 147 atoms: squared distances through the Gram matrix, the others through
# displacements (potentials.LENNARD_JONES_GRAM_MIN_ATOMS).
@pytest.mark.parametrize("n_atoms, seed", [(2, 0), (13, 1), (38, 2), (147, 3)])
def test_lennard_jones_matches_ase(n_atoms, seed):
    from ase import Atoms

    atoms = Atoms(f"X{n_atoms}", positions=random_cluster(n_atoms, seed))
    # sigma = 2^(-1/6) puts the minimum (-eps) at r = 1; a huge rc with
    # smooth=False shifts by u(rc) ~ 1e-36: no cutoff, as ours.
    atoms.calc = AseLennardJones(sigma=2 ** (-1 / 6), epsilon=1.0, rc=1e6, smooth=False)
    energy, forces = energy_and_forces(
        potentials.lennard_jones(), atoms.positions, None
    )
    assert energy == pytest.approx(atoms.get_potential_energy(), abs=1e-9)
    np.testing.assert_allclose(forces, atoms.get_forces(), atol=1e-8)


def test_lennard_jones_hessian_matches_differences_of_ase_forces():
    # Forward over reverse mode (jax.hessian) through the squared distances'
    # custom tangent (geometry.squared_norm), against central
    # differences of ASE's forces.
    from ase import Atoms

    positions = random_cluster(13, 6)
    atoms = Atoms("X13", positions=positions)
    atoms.calc = AseLennardJones(sigma=2 ** (-1 / 6), epsilon=1.0, rc=1e6, smooth=False)
    hessian = jax.hessian(potentials.lennard_jones())(jnp.asarray(positions), None)
    # Column (atom, axis): the gradient's derivative along that coordinate.
    differences = hessian_from_forces(atoms).T.reshape(13, 3, 13, 3)
    np.testing.assert_allclose(
        np.asarray(hessian), differences, atol=1e-4 * np.abs(differences).max()
    )


def test_lennard_jones_dimer_minimum():
    positions = jnp.array([[0.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    energy, gradient = energy_and_forces(potentials.lennard_jones(), positions, None)
    assert energy == pytest.approx(-1.0)
    np.testing.assert_allclose(gradient, 0.0, atol=1e-12)


def test_lennard_jones_parameters_follow_ase_defaults():
    parameters = potentials.lennard_jones_parameters(sigma=2.0)
    assert float(parameters.epsilon) == 1.0
    assert float(parameters.cutoff) == 6.0  # rc = 3 sigma
    assert float(parameters.onset) == pytest.approx(0.66 * 6.0)  # ro = 0.66 rc
    assert not bool(parameters.smooth)
    assert float(parameters.shift) == pytest.approx(4 * (3.0**-12 - 3.0**-6))
    assert float(potentials.lennard_jones_parameters(rc=2.0, smooth=True).shift) == 0
    assert float(potentials.lennard_jones_parameters(rc=np.inf).shift) == 0
    assert potentials.lennard_jones_length_scale(None) == 1.0
    assert potentials.lennard_jones_length_scale(parameters) == pytest.approx(
        2 ** (1 / 6) * 2.0
    )
    for bad in ({"sigma": 0.0}, {"epsilon": -1.0}, {"rc": np.inf, "smooth": True}):
        with pytest.raises(ValueError):
            potentials.lennard_jones_parameters(**bad)


@pytest.mark.parametrize(
    "settings",
    [
        {"sigma": 1.3, "epsilon": 0.7},
        {"sigma": 1.3, "epsilon": 0.7, "rc": 2.5},
        {"sigma": 1.3, "epsilon": 0.7, "rc": 3.0, "smooth": True},
        {"sigma": 1.3, "epsilon": 0.7, "rc": 3.0, "ro": 2.0, "smooth": True},
    ],
    ids=["default-rc", "shifted", "smooth", "smooth-ro"],
)
@pytest.mark.parametrize("n_atoms, seed", [(2, 0), (13, 1), (38, 2)])
def test_parameterized_lennard_jones_matches_ase(settings, n_atoms, seed):
    from ase import Atoms

    scale = 2 ** (1 / 6) * settings["sigma"]
    atoms = Atoms(f"X{n_atoms}", positions=scale * random_cluster(n_atoms, seed))
    atoms.calc = AseLennardJones(**settings)
    parameters = potentials.lennard_jones_parameters(**settings)
    energy, forces = energy_and_forces(
        potentials.lennard_jones(), atoms.positions, parameters
    )
    reference_forces = atoms.get_forces()
    assert energy == pytest.approx(atoms.get_potential_energy(), rel=1e-10)
    np.testing.assert_allclose(
        forces, reference_forces, rtol=1e-10, atol=1e-10 * np.abs(forces).max()
    )


def test_parameterized_lennard_jones_in_a_periodic_cube_matches_ase():
    from ase import Atoms

    box = 9.0
    atoms = Atoms(
        "X20",
        positions=random_cluster(20, 3, box=box, minimum_distance=1.0),
        cell=[box] * 3,
        pbc=True,
    )
    # rc below half the box: minimum image is every interacting image (ASE sums
    # over all images within rc).
    settings = {"sigma": 1.0, "epsilon": 1.0, "rc": 4.0}
    atoms.calc = AseLennardJones(**settings)
    energy, forces = energy_and_forces(
        potentials.lennard_jones(periodic_cube(box)),
        atoms.positions,
        potentials.lennard_jones_parameters(**settings),
    )
    assert energy == pytest.approx(atoms.get_potential_energy(), rel=1e-10)
    np.testing.assert_allclose(forces, atoms.get_forces(), atol=1e-10)


def test_parameterized_lennard_jones_forces_are_finite_and_match_finite_differences():
    positions = 1.2 * random_cluster(7, 4)
    for settings in (
        {"sigma": 1.0, "rc": np.inf},
        {"sigma": 1.0, "rc": 1.5},
        {"sigma": 1.0, "rc": 2.5, "ro": 1.2, "smooth": True},
    ):
        parameters = potentials.lennard_jones_parameters(**settings)

        def energy_fn(x, parameters=parameters):
            return potentials.lennard_jones()(x, parameters)

        _, forces = energy_and_forces(energy_fn, positions)
        assert np.all(np.isfinite(forces))
        if settings.get("smooth"):  # continuous forces: finite differences hold
            np.testing.assert_allclose(
                forces, finite_difference_forces(energy_fn, positions), atol=1e-6
            )


def test_reduced_lennard_jones_equals_parameters_without_cutoff():
    positions = jnp.asarray(random_cluster(13, 5))
    parameters = potentials.lennard_jones_parameters(
        sigma=2 ** (-1 / 6), epsilon=1.0, rc=np.inf
    )
    reduced, reduced_forces = energy_and_forces(
        potentials.lennard_jones(), positions, None
    )
    explicit, explicit_forces = energy_and_forces(
        potentials.lennard_jones(), positions, parameters
    )
    assert explicit == pytest.approx(reduced, rel=1e-12)
    np.testing.assert_allclose(explicit_forces, reduced_forces, atol=1e-10)


# Gupta --------------------------------------------------------------------------


def test_gupta_au55_matches_asap3_rgl():
    parameter_set = potentials.GUPTA_PARAMETER_SETS["Au"]
    atoms = Icosahedron("Au", 3, latticeconstant=2.96 * np.sqrt(2))
    assert len(atoms) == 55
    atoms.rattle(0.05, seed=0)
    atoms = free_cluster_for_asap3(atoms)
    atoms.calc = asap3_rgl(parameter_set)
    energy, forces = energy_and_forces(
        potentials.gupta(),
        atoms.positions,
        potentials.GuptaInput(jnp.zeros(55, dtype=jnp.int32), parameter_set.parameters),
    )
    assert energy == pytest.approx(atoms.get_potential_energy(), abs=1e-8)
    np.testing.assert_allclose(forces, atoms.get_forces(), atol=1e-8)


@pytest.mark.parametrize("set_name", ["AgAu", "AgPt", "PdAu", "PdPt"])
def test_gupta_bimetallic_matches_asap3_rgl(set_name):
    parameter_set = potentials.GUPTA_PARAMETER_SETS[set_name]
    rng = np.random.default_rng(len(set_name) + ord(set_name[-1]))
    atoms = Icosahedron("Au", 2, latticeconstant=2.85 * np.sqrt(2))
    atoms.rattle(0.08, seed=3)
    species = rng.integers(0, 2, len(atoms))
    species[:2] = [0, 1]  # both elements present
    atoms.set_chemical_symbols([parameter_set.elements[s] for s in species])
    atoms = free_cluster_for_asap3(atoms)
    atoms.calc = asap3_rgl(parameter_set)
    energy, forces = energy_and_forces(
        potentials.gupta(),
        atoms.positions,
        potentials.gupta_input(parameter_set, species),
    )
    assert energy == pytest.approx(atoms.get_potential_energy(), abs=1e-8)
    np.testing.assert_allclose(forces, atoms.get_forces(), atol=1e-8)


def test_gupta_gold_equals_jax_md_gupta_gold55():
    energy_module = pytest.importorskip("jax_md.energy")
    space = pytest.importorskip("jax_md.space")
    displacement, _ = space.free()
    atoms = Icosahedron("Au", 3, latticeconstant=2.96 * np.sqrt(2))
    atoms.rattle(0.05, seed=0)
    positions = jnp.asarray(atoms.positions)
    # jax-md truncates at 8 Å (its default); ours has no cutoff, hence ~1e-4 eV.
    reference = float(jax.jit(energy_module.gupta_gold55(displacement))(positions))
    energy = float(
        potentials.gupta()(positions, potentials.gupta_input("Au", np.zeros(55, int)))
    )
    assert energy == pytest.approx(reference, abs=2e-4)


def test_gupta_parameter_sets_follow_spec_table():
    sets = potentials.GUPTA_PARAMETER_SETS
    assert set(sets) == {"Au", "AgAu", "AgPt", "PdAu", "PdPt"}
    for parameter_set in sets.values():
        table = parameter_set.parameters
        for field in table:
            np.testing.assert_array_equal(field, np.asarray(field).T)
        # Cleri-Rosato convention: repulsive A ~ 0.1-0.3 eV < band xi ~ 1-3 eV.
        assert np.all(np.asarray(table.A) < 0.35)
        assert np.all(np.asarray(table.xi) > 1.0)
    assert sets["Au"].parameters.xi[0, 0] == 1.727
    assert sets["Au"].parameters.A[0, 0] == pytest.approx(3.454 * 0.118428 / 2)
    assert sets["AgPt"].parameters.p[0, 0] == 10.86
    assert sets["AgAu"].parameters.p[0, 0] == 10.85
    assert sets["PdAu"].elements == ("Pd", "Au")
    assert sets["PdAu"].parameters.p[1, 1] == 10.229


def test_gupta_forces_match_finite_differences():
    parameter_set = potentials.GUPTA_PARAMETER_SETS["PdPt"]
    positions = random_cluster(6, seed=4, box=4.0, minimum_distance=2.2)
    species = np.array([0, 1, 0, 1, 1, 0])
    energy_fn = bind(potentials.gupta(), potentials.gupta_input(parameter_set, species))
    _, forces = energy_and_forces(energy_fn, positions)
    np.testing.assert_allclose(
        forces, finite_difference_forces(energy_fn, positions), atol=1e-6
    )


# Stillinger-Weber ---------------------------------------------------------------


def silicon_64(a=5.431):
    return bulk("Si", "diamond", a, cubic=True).repeat(2)


def test_stillinger_weber_diamond_energy_is_reference():
    atoms = silicon_64()
    assert atoms.cell[0, 0] == pytest.approx(potentials.SILICON_BOX_LENGTH)
    energy, forces = energy_and_forces(
        potentials.stillinger_weber(periodic_cube(atoms.cell[0, 0])),
        atoms.positions,
        None,
    )
    assert energy == pytest.approx(-277.537, abs=1e-3)
    np.testing.assert_allclose(forces, 0.0, atol=1e-10)


def test_stillinger_weber_matches_matscipy_on_rattled_cell():
    atoms = silicon_64()
    atoms.rattle(0.15, seed=7)
    atoms.calc = matscipy_stillinger_weber()
    energy, forces = energy_and_forces(
        potentials.stillinger_weber(periodic_cube(atoms.cell[0, 0])),
        atoms.positions,
        None,
    )
    assert energy == pytest.approx(atoms.get_potential_energy(), abs=1e-8)
    np.testing.assert_allclose(forces, atoms.get_forces(), atol=1e-8)


def sheared_silicon_64(seed=8):
    """Si64 in a sheared, stretched (triclinic) cell, every height > 2 cutoffs."""
    atoms = silicon_64()
    cell = np.array(atoms.cell)
    cell[1] += [2.5, 0.0, 0.0]
    cell[2] += [-1.5, 2.0, 0.4]
    atoms.set_cell(cell, scale_atoms=True)
    atoms.rattle(0.15, seed=seed)
    # Some atoms outside the cell: the minimum image must not care.
    atoms.positions[:3] += 2.0 * cell[0] - cell[2]
    return atoms


def test_stillinger_weber_matches_matscipy_in_a_sheared_cell():
    atoms = sheared_silicon_64()
    geometry = periodic_cell(atoms.cell)
    assert not geometry.is_cube
    assert smallest_cell_height(geometry) > 2 * (potentials.STILLINGER_WEBER_CUTOFF)
    atoms.calc = matscipy_stillinger_weber()
    energy, forces = energy_and_forces(
        potentials.stillinger_weber(geometry), atoms.positions, None
    )
    assert energy == pytest.approx(atoms.get_potential_energy(), abs=1e-8)
    np.testing.assert_allclose(forces, atoms.get_forces(), atol=1e-8)


def silicon_216(seed):
    """Si216 (a 16.3 Å cube: 4 cells of a cutoff a side), rattled, some atoms
    outside the cell."""
    atoms = bulk("Si", "diamond", 5.431, cubic=True).repeat(3)
    atoms.rattle(0.2, seed=seed)
    atoms.positions[:5] += atoms.cell[0, 0] * np.array([1.0, -2.0, 1.0])
    return atoms


def test_stillinger_weber_on_a_cell_list_matches_matscipy():
    atoms = silicon_216(seed=3)
    geometry = periodic_cube(atoms.cell[0, 0])
    assert len(atoms) >= stillinger_weber.LIST_MIN_ATOMS
    assert neighbours.uniform_density_spec(
        len(atoms), geometry, potentials.STILLINGER_WEBER_CUTOFF
    )
    atoms.calc = matscipy_stillinger_weber()
    energy, forces = energy_and_forces(
        potentials.stillinger_weber(geometry), atoms.positions, None
    )
    assert energy == pytest.approx(atoms.get_potential_energy(), abs=1e-8)
    np.testing.assert_allclose(forces, atoms.get_forces(), atol=1e-8)


def test_stillinger_weber_list_overflow_falls_back_to_all_pairs():
    # Twenty-seven atoms packed into one cell (1.8 Å apart, well inside the
    # cutoff): more neighbours per atom and per cell than the list holds.
    atoms = silicon_216(seed=4)
    grid = np.stack(np.meshgrid(*[np.arange(3)] * 3, indexing="ij"), -1)
    atoms.positions[:27] = 1.8 * grid.reshape(-1, 3) + 0.3
    geometry = periodic_cube(atoms.cell[0, 0])
    spec = neighbours.uniform_density_spec(
        len(atoms), geometry, potentials.STILLINGER_WEBER_CUTOFF
    )
    listed = spec.build(jnp.asarray(atoms.positions))
    assert bool(listed.did_buffer_overflow)
    atoms.calc = matscipy_stillinger_weber()
    energy, forces = energy_and_forces(
        potentials.stillinger_weber(geometry), atoms.positions, None
    )
    assert energy == pytest.approx(atoms.get_potential_energy(), rel=1e-12)
    np.testing.assert_allclose(forces, atoms.get_forces(), rtol=1e-9, atol=1e-8)


def test_stillinger_weber_on_a_cell_list_batches_and_is_periodic():
    structures = np.stack([silicon_216(seed).positions for seed in (5, 6)])
    box = bulk("Si", "diamond", 5.431, cubic=True).repeat(3).cell[0, 0]
    energy = potentials.stillinger_weber(periodic_cube(box))
    batched = jax.jit(jax.vmap(energy, (0, None)))(jnp.asarray(structures), None)
    shifted = structures[1] + box * np.array([-1.0, 0.0, 3.0])
    one = jax.jit(energy)
    np.testing.assert_allclose(
        batched,
        [float(one(jnp.asarray(s), None)) for s in (structures[0], shifted)],
        rtol=1e-12,
    )


def test_stillinger_weber_refuses_a_cell_too_small_for_the_minimum_image():
    with pytest.raises(ValueError, match=r"height 7\.00000 Å.*7\.54236 Å"):
        potentials.stillinger_weber(periodic_cube(7.0))
    flat = periodic_cell([[12.0, 0, 0], [11.0, 3.0, 0], [0, 0, 12.0]])
    with pytest.raises(ValueError, match="smaller than twice"):
        potentials.stillinger_weber(flat)


def test_stillinger_weber_forces_match_finite_differences():
    # Eight atoms of a strained, rattled diamond cell in an 8 Å box.
    atoms = bulk("Si", "diamond", 5.431, cubic=True)
    atoms.rattle(0.2, seed=1)
    box = 8.0
    energy_fn = bind(potentials.stillinger_weber(periodic_cube(box)))
    _, forces = energy_and_forces(energy_fn, atoms.positions)
    assert np.abs(forces).max() > 0.1
    np.testing.assert_allclose(
        forces, finite_difference_forces(energy_fn, atoms.positions), atol=1e-6
    )


def test_stillinger_weber_cutoff_is_exact_and_gradient_finite():
    cutoff = potentials.STILLINGER_WEBER_CUTOFF
    value_and_grad = jax.jit(
        jax.value_and_grad(potentials.stillinger_weber(periodic_cube(20.0)))
    )
    for distance in [cutoff, cutoff + 1e-12, cutoff - 1e-12, 5.0]:
        positions = jnp.array([[1.0, 1.0, 1.0], [1.0 + distance, 1.0, 1.0]])
        energy, gradient = value_and_grad(positions, None)
        assert float(energy) == 0.0
        assert np.all(np.isfinite(gradient))
        np.testing.assert_array_equal(gradient, 0.0)


def test_stillinger_weber_is_periodic():
    atoms = silicon_64()
    atoms.rattle(0.1, seed=2)
    box = atoms.cell[0, 0]
    shifted = atoms.positions + np.array([box, -2 * box, 0.0])
    energy = jax.jit(potentials.stillinger_weber(periodic_cube(box)))
    assert float(energy(jnp.asarray(shifted), None)) == pytest.approx(
        float(energy(jnp.asarray(atoms.positions), None)), abs=1e-10
    )
    sheared = sheared_silicon_64()
    geometry = periodic_cell(sheared.cell)
    cell = np.array(sheared.cell)
    energy = jax.jit(potentials.stillinger_weber(geometry))
    moved = sheared.positions + cell[0] - 3 * cell[1] + 2 * cell[2]
    assert float(energy(jnp.asarray(moved), None)) == pytest.approx(
        float(energy(jnp.asarray(sheared.positions), None)), abs=1e-10
    )


# Shared contract ----------------------------------------------------------------


def test_safe_pairwise_distances_have_finite_gradients():
    positions = jnp.array([[0.0, 0.0, 0.0], [0.0, 0.0, 0.0], [3.0, 4.0, 0.0]])
    distances = potentials.safe_pairwise_distances(positions)
    np.testing.assert_allclose(np.diag(distances), 0.0)
    assert float(distances[0, 2]) == pytest.approx(5.0)
    jacobian = jax.jacobian(potentials.safe_pairwise_distances)(positions)
    assert np.all(np.isfinite(jacobian))
    pair = jnp.array([[0.5, 0.0, 0.0], [9.5, 0.0, 0.0]])
    periodic = potentials.safe_pairwise_distances(pair, periodic_cube(10.0))
    assert float(periodic[0, 1]) == pytest.approx(1.0, abs=1e-12)
    assert float(potentials.safe_pairwise_distances(pair, FREE)[0, 1]) == 9.0
    jacobian = jax.jacobian(potentials.safe_pairwise_distances)(
        positions, periodic_cube(10.0)
    )
    assert np.all(np.isfinite(jacobian))


def test_coincident_atoms_give_inf_or_finite_never_nan():
    positions = jnp.array([[0.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    lennard_jones = jax.jit(potentials.lennard_jones())
    assert float(lennard_jones(positions, None)) == np.inf
    box = periodic_cube(potentials.SILICON_BOX_LENGTH)
    silicon = jax.jit(potentials.stillinger_weber(box))
    assert float(silicon(positions * 2.35, None)) == np.inf
    gupta = jax.jit(jax.value_and_grad(potentials.gupta()))
    energy, gradient = gupta(positions * 2.9, potentials.gupta_input("Au", [0, 0, 0]))
    assert np.isfinite(float(energy))
    assert np.all(np.isfinite(gradient))


def test_single_atom_has_zero_energy_and_finite_gradient():
    one = jnp.zeros((1, 3))
    box = periodic_cube(potentials.SILICON_BOX_LENGTH)
    for energy_fn, parameters in [
        (potentials.lennard_jones(), None),
        (potentials.gupta(), potentials.gupta_input("Au", [0])),
        (potentials.stillinger_weber(box), None),
    ]:
        energy, gradient = jax.jit(jax.value_and_grad(energy_fn))(one, parameters)
        assert float(energy) == 0.0
        assert np.all(np.isfinite(gradient))


def test_soft_sphere_matches_direct_pair_sum():
    rng = np.random.default_rng(0)
    positions = rng.uniform(0.0, 3.0, (10, 3))
    diameter, box = 1.3, 3.0
    expected = 0.0
    for i in range(10):
        for j in range(i + 1, 10):
            delta = positions[i] - positions[j]
            delta -= box * np.round(delta / box)
            r = np.linalg.norm(delta)
            if r < diameter:
                expected += 0.5 * (1.0 - r / diameter) ** 2
    energy_fn = potentials.soft_sphere(periodic_cube(box))
    energy = energy_fn(jnp.asarray(positions), diameter)
    assert float(energy) == pytest.approx(expected, rel=1e-12)


def test_energies_vmap_over_structures_species_and_parameter_sets():
    n_atoms, n_structures = 8, 3
    rng = np.random.default_rng(5)
    positions = np.stack(
        [
            random_cluster(n_atoms, seed, box=4.5, minimum_distance=2.2)
            for seed in range(3)
        ]
    )
    species = rng.integers(0, 2, (n_structures, n_atoms))
    sets = [potentials.GUPTA_PARAMETER_SETS[name] for name in ("AgAu", "PdPt", "AgPt")]
    stacked = jax.tree.map(
        lambda *leaves: jnp.stack(leaves), *[s.parameters for s in sets]
    )
    gupta = potentials.gupta()
    batched = jax.jit(jax.vmap(gupta))(
        jnp.asarray(positions),
        potentials.GuptaInput(jnp.asarray(species, dtype=jnp.int32), stacked),
    )
    for k in range(n_structures):
        single = gupta(
            jnp.asarray(positions[k]), potentials.gupta_input(sets[k], species[k])
        )
        assert float(batched[k]) == pytest.approx(float(single), rel=1e-12)

    lennard_jones = jax.jit(
        jax.vmap(jax.grad(potentials.lennard_jones()), in_axes=(0, None))
    )
    assert lennard_jones(jnp.asarray(positions / 2.5), None).shape == (3, n_atoms, 3)
    # The geometry is static: one energy function per cell, vmapped over starts.
    for box in (8.0, 9.0, 10.0):
        energy_fn = potentials.stillinger_weber(periodic_cube(box))
        silicon = jax.jit(jax.vmap(energy_fn, in_axes=(0, None)))(
            jnp.asarray(positions), None
        )
        for k in range(n_structures):
            single = energy_fn(jnp.asarray(positions[k]), None)
            assert float(silicon[k]) == pytest.approx(float(single), rel=1e-12)

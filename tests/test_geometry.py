"""Geometry (free space, periodic cube, general periodic cell) against independent
minimum images (NumPy, ASE's find_mic), and the potentials' one-function-per-cell
contract."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from ase.build import bulk
from ase.geometry import find_mic

from ase_learn2hop import potentials, systems
from ase_learn2hop.geometry import (
    FREE,
    Geometry,
    dissociated,
    periodic_cell,
    periodic_cube,
)
from ase_learn2hop.minima import DistinctMinima, distance_fingerprint

TRICLINIC = np.array([[9.0, 0.0, 0.0], [2.5, 8.5, 0.0], [-1.5, 2.0, 10.0]])


def smallest_height(cell):
    volume = abs(np.linalg.det(cell))
    return min(
        volume / np.linalg.norm(np.cross(cell[(k + 1) % 3], cell[(k + 2) % 3]))
        for k in range(3)
    )


def test_free_pair_displacements_are_plain_differences():
    positions = np.random.default_rng(0).normal(size=(6, 3))
    displacements = np.asarray(FREE.pair_displacements(jnp.asarray(positions)))
    np.testing.assert_array_equal(
        displacements, positions[:, None, :] - positions[None, :, :]
    )
    assert not FREE.periodic and FREE.box_length is None and FREE.centre is None


def test_cube_pair_displacements_are_the_numpy_minimum_image():
    box = 7.3
    rng = np.random.default_rng(1)
    # Positions well outside the cell too: images must not matter.
    positions = rng.uniform(-2 * box, 3 * box, (20, 3))
    difference = positions[:, None, :] - positions[None, :, :]
    expected = difference - box * np.round(difference / box)
    geometry = periodic_cube(box)
    displacements = np.asarray(geometry.pair_displacements(jnp.asarray(positions)))
    np.testing.assert_allclose(displacements, expected, atol=1e-12)
    assert np.all(np.abs(displacements) <= 0.5 * box + 1e-12)
    assert geometry.is_cube and geometry.box_length == box
    np.testing.assert_allclose(geometry.centre, [box / 2] * 3)


def test_triclinic_pair_displacements_match_ase_find_mic():
    geometry = periodic_cell(TRICLINIC)
    assert geometry.periodic and not geometry.is_cube
    with pytest.raises(ValueError, match="not a cube"):
        _ = geometry.box_length
    rng = np.random.default_rng(2)
    fractional = rng.uniform(-1.0, 2.0, (40, 3))
    positions = fractional @ TRICLINIC
    displacements = np.asarray(geometry.pair_displacements(jnp.asarray(positions)))
    difference = positions[:, None, :] - positions[None, :, :]
    reference, lengths = find_mic(difference.reshape(-1, 3), TRICLINIC, pbc=True)
    reference = reference.reshape(difference.shape)
    lengths = lengths.reshape(difference.shape[:2])
    # Every result is an image of the plain difference ...
    lattice = (displacements - difference) @ np.linalg.inv(TRICLINIC)
    np.testing.assert_allclose(lattice, np.round(lattice), atol=1e-9)
    # ... and the minimum image wherever the minimum image is unambiguous for a
    # short-ranged potential: shorter than half the smallest cell height.
    short = lengths < 0.5 * smallest_height(TRICLINIC)
    assert short.sum() > 100
    np.testing.assert_allclose(displacements[short], reference[short], atol=1e-9)


def test_wrap_puts_a_coordinate_a_hair_below_zero_inside_the_cell():
    box = 10.862
    wrapped = np.asarray(periodic_cube(box).wrap(jnp.array([[-1e-17, 0.0, box]])))
    assert np.all((wrapped >= 0.0) & (wrapped < box)), wrapped
    np.testing.assert_allclose(wrapped, [[0.0, 0.0, 0.0]], atol=1e-15)

    geometry = periodic_cell(TRICLINIC)
    positions = jnp.array([[-1e-17, 0.0, 0.0], [0.3, -4.0, 25.0]])
    fractional = np.asarray(geometry.wrap(positions)) @ np.linalg.inv(TRICLINIC)
    assert np.all((fractional >= 0.0) & (fractional < 1.0)), fractional
    np.testing.assert_array_equal(FREE.wrap(positions), positions)


def test_move_is_wrap_of_the_sum():
    geometry = periodic_cube(5.0)
    moved = geometry.move(jnp.array([[4.5, 0.2, 1.0]]), jnp.array([[1.0, -0.4, 0.0]]))
    np.testing.assert_allclose(moved, [[0.5, 4.8, 1.0]], atol=1e-12)


def test_equal_geometries_are_equal_hashable_and_share_energy_functions():
    assert periodic_cube(10.0) == periodic_cube(10.0)
    assert hash(periodic_cube(10.0)) == hash(periodic_cube(10))
    assert periodic_cube(10.0) == periodic_cell(10.0 * np.eye(3))
    assert periodic_cell(TRICLINIC) == periodic_cell(TRICLINIC.tolist())
    assert periodic_cube(10.0) != periodic_cube(10.5) != FREE
    assert FREE == Geometry()

    assert potentials.lennard_jones() is potentials.lennard_jones(FREE)
    assert potentials.lennard_jones() is potentials.lennard_jones(geometry=Geometry())
    assert potentials.gupta() is potentials.gupta(FREE)
    assert potentials.stillinger_weber(periodic_cube(10.0)) is (
        potentials.stillinger_weber(periodic_cell(10.0 * np.eye(3)))
    )
    assert potentials.stillinger_weber(periodic_cube(10.0)) is not (
        potentials.stillinger_weber(periodic_cube(10.5))
    )
    assert potentials.soft_sphere(periodic_cell(TRICLINIC)) is potentials.soft_sphere(
        periodic_cell(TRICLINIC)
    )
    # Two systems of the same kind share their energy function: no recompilation.
    assert systems.system_from_name("si64").energy_fn is (
        systems.silicon_system().energy_fn
    )
    assert systems.system_from_name("lj13").energy_fn is (
        systems.system_from_name("lj38").energy_fn
    )
    with pytest.raises(TypeError, match="Geometry"):
        potentials.stillinger_weber(10.862)


def test_geometry_rides_through_jit_and_vmap_as_static_data():
    system = systems.system_from_name("si64")
    context = systems.broadcast_to_batch(system.context, 3)
    assert context.geometry == system.geometry == periodic_cube(10.862)
    assert context.species.shape == (3, 64)
    assert jax.tree_util.tree_leaves(system.geometry) == []

    @jax.jit
    def closest(positions, context):
        distances = potentials.safe_pairwise_distances(positions, context.geometry)
        n = positions.shape[0]
        return jnp.min(jnp.where(jnp.eye(n, dtype=bool), jnp.inf, distances))

    starts = systems.starting_structures(jax.random.key(0), system, 3)
    batched = jax.vmap(closest)(starts, context)
    single = closest(starts[1], system.context)
    assert float(batched[1]) == pytest.approx(float(single), rel=1e-12)


def test_stillinger_weber_is_independent_of_the_cell_representation():
    # The same diamond lattice described by a cube and by a sheared basis
    # (b' = b + a): every image, hence the energy, is the same.
    atoms = bulk("Si", "diamond", 5.431, cubic=True).repeat(2)
    atoms.rattle(0.12, seed=3)
    cube = np.array(atoms.cell)
    sheared = cube.copy()
    sheared[1] += cube[0]
    assert smallest_height(sheared) > 2 * potentials.STILLINGER_WEBER_CUTOFF
    positions = jnp.asarray(atoms.positions)
    in_cube = potentials.stillinger_weber(periodic_cube(cube[0, 0]))(positions, None)
    in_sheared = potentials.stillinger_weber(periodic_cell(sheared))(positions, None)
    assert float(in_sheared) == pytest.approx(float(in_cube), abs=1e-10)


def test_distance_fingerprint_uses_the_minimum_image():
    box = 6.0
    rng = np.random.default_rng(4)
    positions = rng.uniform(0.0, box, (8, 3))
    difference = positions[:, None, :] - positions[None, :, :]
    difference -= box * np.round(difference / box)
    upper = np.triu_indices(8, k=1)
    expected = np.sort(np.linalg.norm(difference, axis=-1)[upper])
    fingerprint = distance_fingerprint(positions, periodic_cube(box))
    np.testing.assert_allclose(fingerprint, expected, atol=1e-12)
    minima = DistinctMinima(geometry=periodic_cube(box))
    assert minima.add(-1.0, positions)
    assert not minima.add(-1.0, positions + [box, -2 * box, 0.0])
    assert len(minima) == 1


def test_general_cell_first_used_inside_jit_can_be_reused():
    geometry = periodic_cell(TRICLINIC * 1.01)  # a cell no other test built
    positions = jnp.asarray(np.random.default_rng(5).uniform(0.0, 5.0, (4, 3)))
    first = jax.jit(geometry.pair_displacements)(positions)
    second = jax.jit(lambda x: 2.0 * geometry.pair_displacements(x))(positions)
    np.testing.assert_allclose(second, 2.0 * first)


@pytest.mark.parametrize("name", ["lj13", "si64"])
def test_random_frame_keeps_every_distance_and_carries_the_gradient(name):
    from ase import Atoms

    from ase_learn2hop.precision import float64

    with float64():
        system = systems.system_from_name(name)
        positions = systems.starting_structures(jax.random.key(3), system, 1)[0]
        energy_and_gradient = jax.value_and_grad(system.energy_fn)
        energy, gradient = energy_and_gradient(positions, system.potential_parameters)
        moved, moved_gradient = system.geometry.random_frame(
            jax.random.key(1), positions, gradient
        )
        energy_after, gradient_after = energy_and_gradient(
            moved, system.potential_parameters
        )
    cell = system.geometry.cell_matrix

    def distances(x):
        atoms = Atoms(positions=np.asarray(x), cell=cell, pbc=cell is not None)
        return atoms.get_all_distances(mic=cell is not None)

    # A rotation (cluster) or a translation (cell) moves the structure and
    # keeps every (minimum-image) distance, so the energy; the gradient turns
    # with the structure.
    assert float(jnp.max(jnp.abs(moved - positions))) > 0.1
    np.testing.assert_allclose(distances(moved), distances(positions), atol=1e-10)
    assert float(energy_after) == pytest.approx(float(energy), abs=1e-9)
    np.testing.assert_allclose(moved_gradient, gradient_after, atol=1e-9)


def test_dissociated_cluster_is_recognised():
    positions = np.array(
        systems.starting_structures(
            jax.random.key(0), systems.lennard_jones_system(13), 1
        )[0]
    )
    assert not dissociated(jnp.asarray(positions), 1.0)
    positions[0] = positions.mean(axis=0) + 10.0
    assert dissociated(jnp.asarray(positions), 1.0)


def test_random_frame_of_a_cluster_is_the_haar_rotation_of_its_gaussian_draw():
    # Mezzadri (2007): Q of the QR of a Gaussian matrix, with R's diagonal made
    # positive, is a uniformly random orthogonal matrix; NumPy's QR is the
    # reference for the frame the learned hop starts from.
    from ase_learn2hop.precision import float64

    rng = np.random.default_rng(8)
    positions = rng.normal(size=(7, 3))
    gradient = rng.normal(size=(7, 3))
    with float64():
        for seed in range(20):
            key = jax.random.key(seed)
            draw = np.asarray(jax.random.normal(key, (3, 3), jnp.float64))
            moved, moved_gradient = FREE.random_frame(
                key, jnp.asarray(positions), jnp.asarray(gradient)
            )
            q, r = np.linalg.qr(draw)
            rotation = q * np.sign(np.diag(r))
            centroid = positions.mean(axis=0)
            expected = (positions - centroid) @ rotation.T + centroid
            np.testing.assert_allclose(moved, expected, atol=1e-12)
            np.testing.assert_allclose(
                moved_gradient, gradient @ rotation.T, atol=1e-12
            )

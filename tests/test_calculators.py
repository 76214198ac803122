"""ASE calculators: references (ASE, asap3, matscipy), relaxation under ASE's FIRE,
the jit cache, and a clear error for every bad input."""

import logging
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from ase.calculators.lj import LennardJones as AseLennardJones
from ase.cluster import Icosahedron
from ase.io import read
from ase.optimize import FIRE

from ase_learn2hop import potentials
from ase_learn2hop.calculators import (
    CalculatorInputError,
    CoincidentAtomsError,
    Gupta,
    JaxCalculator,
    LennardJones,
    NonFinitePositionsError,
    NonFiniteResultError,
    StillingerWeber,
    UnknownParameterSetError,
    UnsupportedCellError,
    UnsupportedElementError,
    geometry_from_atoms,
)
from ase_learn2hop.geometry import FREE, periodic_cell, periodic_cube

DATA = Path(__file__).parent / "data"


def lennard_jones_13(rattle=0.0, seed=0):
    atoms = read(DATA / "lj13_global_minimum.xyz")
    if rattle:
        atoms.rattle(rattle, seed=seed)
    return atoms


def silicon_64():
    return bulk("Si", "diamond", 5.431, cubic=True).repeat(2)


def gold_13(symbols=None):
    atoms = Icosahedron("Au", 2, latticeconstant=2.9 * np.sqrt(2))
    if symbols is not None:
        atoms.set_chemical_symbols(symbols)
    atoms.rattle(0.05, seed=1)
    return atoms


# References ---------------------------------------------------------------------


def test_lennard_jones_calculator_matches_ase():
    atoms = lennard_jones_13(rattle=0.1, seed=3)
    atoms.calc = LennardJones()
    energy = atoms.get_potential_energy()
    forces = atoms.get_forces()
    reference = atoms.copy()
    reference.calc = AseLennardJones(
        sigma=2 ** (-1 / 6), epsilon=1.0, rc=1e6, smooth=False
    )
    assert energy == pytest.approx(reference.get_potential_energy(), abs=1e-9)
    np.testing.assert_allclose(forces, reference.get_forces(), atol=1e-8)
    assert atoms.get_potential_energy(force_consistent=True) == energy
    assert forces.dtype == np.float64
    assert isinstance(energy, float)


@pytest.mark.parametrize(
    "settings",
    [
        {"sigma": 3.4, "epsilon": 0.0104},
        {"sigma": 3.4, "epsilon": 0.0104, "rc": 8.0},
        {"sigma": 3.4, "epsilon": 0.0104, "rc": 9.0, "smooth": True},
    ],
    ids=["default-rc", "rc8", "smooth"],
)
def test_lennard_jones_calculator_with_ase_parameters_matches_ase(settings):
    atoms = lennard_jones_13(rattle=0.1, seed=3)
    atoms.set_chemical_symbols(["Ar"] * 13)
    atoms.positions *= 2 ** (1 / 6) * 3.4
    atoms.calc = LennardJones(**settings)
    reference = atoms.copy()
    reference.calc = AseLennardJones(**settings)
    assert atoms.get_potential_energy() == pytest.approx(
        reference.get_potential_energy(), rel=1e-10
    )
    forces = reference.get_forces()
    np.testing.assert_allclose(
        atoms.get_forces(), forces, atol=1e-10 * np.abs(forces).max()
    )
    assert atoms.calc.length_scale == pytest.approx(2 ** (1 / 6) * 3.4)
    assert atoms.calc.parameters["sigma"] == 3.4
    assert atoms.calc.parameters["rc"] == settings.get("rc", 3 * 3.4)


def test_gupta_calculator_matches_asap3():
    asap3 = pytest.importorskip("asap3")
    atoms = gold_13(["Ag", "Au"] * 6 + ["Ag"])
    atoms.calc = Gupta(system="AgAu")
    energy = atoms.get_potential_energy()
    forces = atoms.get_forces()
    table = potentials.GUPTA_PARAMETER_SETS["AgAu"].parameters

    def row(i, j):
        return [float(x[i, j]) for x in (table.p, table.q, table.A, table.xi, table.r0)]

    reference = atoms.copy()
    reference.center(vacuum=20.0)  # asap3 wants a cell, even for a free cluster
    reference.calc = asap3.RGL(
        {"Ag": row(0, 0), ("Ag", "Au"): row(0, 1), "Au": row(1, 1)}, cutoff=10.0
    )
    assert energy == pytest.approx(reference.get_potential_energy(), abs=1e-8)
    np.testing.assert_allclose(forces, reference.get_forces(), atol=1e-8)


def test_stillinger_weber_calculator_reference_energy_and_matscipy():
    atoms = silicon_64()
    atoms.calc = StillingerWeber()
    assert atoms.get_potential_energy() == pytest.approx(-277.537, abs=1e-3)
    assert atoms.calc.box_length == pytest.approx(potentials.SILICON_BOX_LENGTH)
    assert atoms.calc.geometry == periodic_cube(potentials.SILICON_BOX_LENGTH)

    manybody = pytest.importorskip("matscipy.calculators.manybody")
    from matscipy.calculators.manybody.explicit_forms import StillingerWeber as Form
    from matscipy.calculators.manybody.explicit_forms.stillinger_weber import (
        Stillinger_Weber_PRB_31_5262_Si,
    )

    parameters = dict(Stillinger_Weber_PRB_31_5262_Si, epsilon=2.16826)
    parameters["costheta0"] = 1.0 / 3.0
    atoms.rattle(0.1, seed=4)
    reference = atoms.copy()
    reference.calc = manybody.Manybody(**Form(parameters))
    assert atoms.get_potential_energy() == pytest.approx(
        reference.get_potential_energy(), abs=1e-8
    )
    np.testing.assert_allclose(atoms.get_forces(), reference.get_forces(), atol=1e-8)


# Relaxation with ASE's own optimizer ----------------------------------------------


@pytest.mark.parametrize(
    "make_atoms, calculator",
    [
        (lambda: lennard_jones_13(rattle=0.15, seed=5), LennardJones),
        (gold_13, lambda: Gupta(system="Au")),
    ],
    ids=["lj13", "au13"],
)
def test_fire_relaxes_rattled_cluster(make_atoms, calculator):
    atoms = make_atoms()
    atoms.calc = calculator()
    start = atoms.get_potential_energy()
    converged = FIRE(atoms, logfile=None).run(fmax=1e-3, steps=2000)
    assert converged
    assert atoms.get_potential_energy() < start
    assert np.abs(atoms.get_forces()).max() < 1e-3


def test_fire_relaxes_rattled_silicon():
    atoms = silicon_64()
    atoms.rattle(0.1, seed=6)
    atoms.calc = StillingerWeber()
    start = atoms.get_potential_energy()
    FIRE(atoms, logfile=None).run(fmax=1e-3, steps=1000)
    assert atoms.get_potential_energy() < start
    assert atoms.get_potential_energy() == pytest.approx(-277.537, abs=1e-3)


# Cache and public attributes --------------------------------------------------------


def test_jitted_function_is_cached_until_numbers_or_cell_change():
    atoms = gold_13()
    calculator = Gupta(system="Au")
    atoms.calc = calculator
    function = calculator.energy_and_forces_fn(atoms)
    atoms.get_potential_energy()
    atoms.positions += 0.01
    atoms.get_potential_energy()
    assert calculator.energy_and_forces_fn(atoms) is function

    energy, forces = function(jnp.asarray(atoms.positions))
    assert float(energy) == pytest.approx(atoms.get_potential_energy(), abs=1e-12)
    np.testing.assert_allclose(forces, atoms.get_forces(), atol=1e-12)

    bimetallic = Gupta(system="AgAu")
    atoms.calc = bimetallic
    first = bimetallic.energy_and_forces_fn(atoms)
    symbols = atoms.get_chemical_symbols()
    symbols[0] = "Ag"
    atoms.set_chemical_symbols(symbols)
    assert bimetallic.energy_and_forces_fn(atoms) is not first

    silicon = silicon_64()
    silicon.calc = StillingerWeber()
    before = silicon.calc.energy_and_forces_fn(silicon)
    silicon.set_cell(silicon.cell * 1.01, scale_atoms=True)
    assert silicon.calc.energy_and_forces_fn(silicon) is not before
    assert silicon.calc.box_length == pytest.approx(1.01 * 10.862)


def test_calculators_of_one_potential_share_one_compiled_program(caplog):
    # A second calculator (another LearnedHopOptimizer, another script cell)
    # compiles nothing new for the same potential and shapes, even with other
    # parameters; each gives its own parameters' energy (ASE's as reference).
    atoms = lennard_jones_13(rattle=0.1, seed=3)
    atoms.set_chemical_symbols(["Ar"] * 13)
    atoms.positions *= 2 ** (1 / 6) * 3.4
    atoms.calc = LennardJones(sigma=3.4, epsilon=0.0104)
    atoms.get_potential_energy()
    energies = []
    with jax.log_compiles(), caplog.at_level(logging.WARNING, logger="jax"):
        for settings in ({"sigma": 3.4, "epsilon": 0.0104}, {"sigma": 3.3}):
            atoms.calc = LennardJones(**settings)
            energies.append((atoms.get_potential_energy(), settings))
    messages = [record.getMessage() for record in caplog.records]
    assert [message for message in messages if "Compiling" in message] == []
    for energy, settings in energies:
        atoms.calc = AseLennardJones(**settings)
        assert energy == pytest.approx(atoms.get_potential_energy(), rel=1e-10)


def test_system_descriptions():
    lennard_jones = LennardJones()
    assert (lennard_jones.potential_name, lennard_jones.length_scale) == ("lj", 1.0)
    assert lennard_jones.box_length is None

    gupta = Gupta(system="PdAu")
    assert gupta.potential_name == "gupta"
    assert gupta.parameter_set.elements == ("Pd", "Au")
    assert gupta.box_length is None
    assert 2.7 < gupta.length_scale < 2.9
    atoms = Atoms("AuPdAu", positions=np.eye(3) * 2.8)
    np.testing.assert_array_equal(gupta.species_indices(atoms), [1, 0, 1])

    silicon = StillingerWeber()
    assert silicon.potential_name == "sw"
    assert silicon.length_scale == potentials.STILLINGER_WEBER_LENGTH_SCALE


def test_generic_jax_calculator():
    atoms = Atoms("X2", positions=[[0, 0, 0], [0, 0, 1.2]])
    energy_fn = potentials.lennard_jones()
    atoms.calc = JaxCalculator(lambda positions: energy_fn(positions, None))
    assert atoms.get_potential_energy() == pytest.approx(1.2**-12 - 2 * 1.2**-6)


# Bad inputs -------------------------------------------------------------------------


def test_gupta_rejects_element_outside_set():
    atoms = gold_13(["Ag"] * 12 + ["Cu"])
    atoms.calc = Gupta(system="AgAu")
    with pytest.raises(UnsupportedElementError, match=r"Cu.*'AgAu'.*Ag, Au"):
        atoms.get_potential_energy()


def test_gupta_rejects_unknown_system():
    with pytest.raises(
        UnknownParameterSetError, match=r"'AuCu'.*Au, AgAu, AgPt, PdAu, PdPt"
    ):
        Gupta(system="AuCu")
    assert issubclass(UnknownParameterSetError, ValueError)


def test_stillinger_weber_rejects_non_periodic_system():
    atoms = silicon_64()
    atoms.pbc = [True, True, False]
    atoms.calc = StillingerWeber()
    with pytest.raises(UnsupportedCellError, match="periodic"):
        atoms.get_potential_energy()


def test_stillinger_weber_general_cell_matches_matscipy():
    manybody = pytest.importorskip("matscipy.calculators.manybody")
    from matscipy.calculators.manybody.explicit_forms import StillingerWeber as Form
    from matscipy.calculators.manybody.explicit_forms.stillinger_weber import (
        Stillinger_Weber_PRB_31_5262_Si,
    )

    parameters = dict(Stillinger_Weber_PRB_31_5262_Si, epsilon=2.16826)
    parameters["costheta0"] = 1.0 / 3.0
    atoms = silicon_64()
    cell = np.array(atoms.cell)
    cell[2] = [2.0, -1.5, 11.5]  # stretched and sheared: triclinic
    atoms.set_cell(cell, scale_atoms=True)
    atoms.rattle(0.1, seed=9)
    atoms.calc = StillingerWeber()
    energy = atoms.get_potential_energy()
    assert atoms.calc.geometry == periodic_cell(cell)
    assert atoms.calc.box_length is None
    reference = atoms.copy()
    reference.calc = manybody.Manybody(**Form(parameters))
    assert energy == pytest.approx(reference.get_potential_energy(), abs=1e-8)
    np.testing.assert_allclose(atoms.get_forces(), reference.get_forces(), atol=1e-8)


def test_stillinger_weber_rejects_thin_sheared_cell():
    atoms = silicon_64()
    cell = np.array(atoms.cell)
    cell[1] = [9.0, 6.0, 0.0]  # 6 Å between the faces spanned by a1 and a3
    atoms.set_cell(cell, scale_atoms=True)
    atoms.calc = StillingerWeber()
    with pytest.raises(
        UnsupportedCellError, match=r"smallest cell height 6\.00000 Å.*7\.54236 Å"
    ):
        atoms.get_potential_energy()


def test_geometry_from_atoms():
    assert geometry_from_atoms(lennard_jones_13()) == FREE
    assert geometry_from_atoms(silicon_64()) == periodic_cube(10.862)
    atoms = silicon_64()
    atoms.set_cell([10.862, 10.862, 11.5])
    assert geometry_from_atoms(atoms) == periodic_cell(np.diag([10.862, 10.862, 11.5]))
    atoms.pbc = [True, True, False]
    assert geometry_from_atoms(atoms) == FREE
    flat = Atoms("Si", cell=[[1, 0, 0], [2, 0, 0], [0, 0, 1]], pbc=True)
    with pytest.raises(UnsupportedCellError, match="degenerate"):
        geometry_from_atoms(flat)


def test_stillinger_weber_rejects_small_cell():
    atoms = bulk("Si", "diamond", 5.431, cubic=True)
    atoms.calc = StillingerWeber()
    with pytest.raises(UnsupportedCellError, match=r"5\.43100 Å.*7\.54236 Å"):
        atoms.get_potential_energy()


def test_stillinger_weber_rejects_other_elements():
    atoms = silicon_64()
    atoms.symbols[0] = "Ge"
    atoms.calc = StillingerWeber()
    with pytest.raises(UnsupportedElementError, match="Ge"):
        atoms.get_potential_energy()


def test_cluster_potentials_reject_periodic_cells():
    atoms = lennard_jones_13()
    atoms.set_cell([10, 10, 10])
    atoms.pbc = True
    atoms.calc = LennardJones()
    with pytest.raises(UnsupportedCellError, match="free clusters"):
        atoms.get_potential_energy()
    atoms.calc = LennardJones(sigma=3.4, epsilon=0.0104)
    with pytest.raises(UnsupportedCellError, match="free clusters"):
        atoms.get_potential_energy()


def test_lennard_jones_rejects_bad_parameters():
    with pytest.raises(CalculatorInputError, match="sigma must be positive"):
        LennardJones(sigma=0.0)
    with pytest.raises(CalculatorInputError, match="onset ro"):
        LennardJones(rc=2.0, ro=3.0, smooth=True)


def test_coincident_atoms_raise_with_ase_parameters():
    atoms = Atoms("Ar3", positions=[[0, 0, 0], [0, 0, 3.8], [0, 0, 3.8]])
    atoms.calc = LennardJones(sigma=3.4, epsilon=0.0104)
    with pytest.raises(CoincidentAtomsError, match="atoms 1 and 2"):
        atoms.get_potential_energy()


def test_non_finite_positions_raise():
    atoms = lennard_jones_13()
    atoms.positions[4, 1] = np.nan
    atoms.calc = LennardJones()
    with pytest.raises(NonFinitePositionsError, match=r"atom\(s\) \[4\]"):
        atoms.get_potential_energy()


@pytest.mark.parametrize(
    "atoms, calculator",
    [
        (Atoms("X3", positions=[[0, 0, 0], [0, 0, 1], [0, 0, 1]]), LennardJones),
        (Atoms("Au3", positions=[[0, 0, 0], [0, 0, 2.9], [0, 0, 2.9]]), Gupta),
    ],
    ids=["lj", "gupta"],
)
def test_coincident_atoms_raise(atoms, calculator):
    atoms.calc = calculator()
    with pytest.raises(CoincidentAtomsError, match="atoms 1 and 2 coincide"):
        atoms.get_forces()


def test_coincident_periodic_images_raise():
    atoms = silicon_64()
    atoms.positions[1] = atoms.positions[0] + atoms.cell[0]
    atoms.calc = StillingerWeber()
    with pytest.raises(CoincidentAtomsError, match="atoms 0 and 1 coincide"):
        atoms.get_potential_energy()


def test_non_finite_energy_raises():
    atoms = Atoms("X2", positions=[[-1.0, 0, 0], [1.0, 0, 0]])
    atoms.calc = JaxCalculator(lambda positions: jnp.sum(jnp.log(positions[:, 0])))
    with pytest.raises(NonFiniteResultError, match="not finite"):
        atoms.get_potential_energy()
    assert issubclass(NonFiniteResultError, CalculatorInputError)

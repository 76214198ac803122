"""The drop-in never surprises: bad starts end no worse than ASE's FIRE from the
same start and clusters stay whole; constraints are honoured or refused; cell
filters are refused; general periodic cells work."""

import pathlib

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.constraints import FixAtoms, FixBondLength, FixCartesian
from ase.filters import FrechetCellFilter
from ase.io import read
from ase.optimize import FIRE

from ase_learn2hop import LearnedHopOptimizer
from ase_learn2hop.calculators import LennardJones, StillingerWeber
from ase_learn2hop.conversion import UnsupportedConstraintError
from ase_learn2hop.cycles import reinsert_dissociated

DATA = pathlib.Path(__file__).parent / "data"


def fire_relaxed_energy(atoms, fmax=0.05):
    """ASE's FIRE to ``fmax`` from a copy of ``atoms`` (the bar to clear)."""
    relaxed = atoms.copy()
    relaxed.calc = atoms.calc
    FIRE(relaxed, logfile=None).run(fmax=fmax, steps=100000)
    return relaxed.get_potential_energy()


def largest_gap(positions):
    """Largest nearest-neighbour distance: an evaporated atom shows up here."""
    distances = np.linalg.norm(positions[:, None] - positions[None], axis=-1)
    np.fill_diagonal(distances, np.inf)
    return distances.min(axis=1).max()


def test_lj13_start_with_energy_in_the_hundreds_of_thousands():
    # Uniform in a 2 x 2 x 2 box: close contacts, energy ~1e5 (was: learned -7.0
    # with atoms 63 units apart; FIRE -39.7).
    rng = np.random.default_rng(0)
    atoms = Atoms("X13", positions=rng.uniform(0.0, 2.0, (13, 3)))
    atoms.calc = LennardJones()
    assert atoms.get_potential_energy() > 1e4
    reference = fire_relaxed_energy(atoms)
    LearnedHopOptimizer(atoms, logfile=None).run(fmax=0.05, steps=1000)
    assert atoms.get_potential_energy() <= reference + 1e-6
    assert largest_gap(atoms.get_positions()) < 1.5


def test_lj38_global_minimum_with_noise_stays_whole():
    # Was: learned -163.9 with an atom gone; FIRE -173.928.
    rng = np.random.default_rng(1)
    atoms = read(DATA / "lj38_global_minimum.xyz")
    atoms.positions += rng.normal(0.0, 0.08, atoms.positions.shape)
    atoms.calc = LennardJones()
    reference = fire_relaxed_energy(atoms)
    LearnedHopOptimizer(atoms, logfile=None).run(fmax=0.05, steps=300)
    assert atoms.get_potential_energy() <= reference + 1e-6
    assert largest_gap(atoms.get_positions()) < 1.5


def test_reinsertion_puts_an_evaporated_atom_back_on_the_surface():
    atoms = read(DATA / "lj13_global_minimum.xyz")
    positions = atoms.get_positions()
    positions[0] += [30.0, 0.0, 0.0]
    moved, changed = reinsert_dissociated(positions, 1.0)
    assert changed
    assert largest_gap(moved) < 1.5
    np.testing.assert_array_equal(moved[1:], positions[1:])
    unchanged, changed = reinsert_dissociated(atoms.get_positions(), 1.0)
    assert not changed


def test_fix_atoms_and_fix_cartesian_hold_inside_the_search():
    atoms = read(DATA / "lj13_global_minimum.xyz")
    atoms.positions += np.random.default_rng(2).normal(0.0, 0.2, (13, 3))
    start = atoms.get_positions()
    atoms.set_constraint([FixAtoms(indices=[0, 1]), FixCartesian(2, mask=(1, 0, 1))])
    atoms.calc = LennardJones()
    optimizer = LearnedHopOptimizer(atoms, logfile=None)
    optimizer.run(fmax=1e-3, steps=300)
    final = atoms.get_positions()
    np.testing.assert_allclose(final[:2], start[:2], atol=1e-12)
    np.testing.assert_allclose(final[2, [0, 2]], start[2, [0, 2]], atol=1e-12)
    assert abs(final[2, 1] - start[2, 1]) > 1e-6
    # A real constrained minimum, and the energy reported is the atoms' own.
    assert np.abs(atoms.get_forces()).max() < 1e-2
    assert optimizer.best_energy == pytest.approx(atoms.get_potential_energy())
    for energy, positions in zip(
        optimizer.minima.energies, [r.positions for r in optimizer.minima.records]
    ):
        np.testing.assert_allclose(positions[:2], start[:2], atol=1e-12)


def test_other_constraints_are_refused_not_ignored():
    atoms = read(DATA / "lj13_global_minimum.xyz")
    atoms.set_constraint(FixBondLength(0, 1))
    atoms.calc = LennardJones()
    before = atoms.get_positions()
    with pytest.raises(UnsupportedConstraintError, match="FixBondLength"):
        LearnedHopOptimizer(atoms, logfile=None)
    np.testing.assert_array_equal(atoms.get_positions(), before)


def test_cell_filters_are_refused_with_a_message():
    atoms = bulk("Cu", cubic=True)
    atoms.calc = EMT()
    with pytest.raises(TypeError, match="FrechetCellFilter"):
        LearnedHopOptimizer(FrechetCellFilter(atoms), weights="lj", logfile=None)


def test_general_periodic_cell_on_the_generic_path():
    # ASE's own fixture: fcc primitive cell (not a cube) replicated 2 x 2 x 2.
    atoms = bulk("Au") * (2, 2, 2)
    atoms.rattle(0.05, seed=3)
    atoms.calc = EMT()
    start = atoms.get_potential_energy()
    optimizer = LearnedHopOptimizer(
        atoms, weights="lj", logfile=None, polish_steps=20
    )
    optimizer.run(fmax=0.05, steps=10)
    assert atoms.get_potential_energy() < start
    assert optimizer.context.geometry.periodic
    assert not optimizer.context.geometry.is_cube


def test_stillinger_weber_in_a_sheared_cell_on_the_fast_path():
    atoms = bulk("Si", "diamond", a=5.431, cubic=True) * (2, 2, 2)
    cell = atoms.cell.array.copy()
    cell[1, 0] += 1.0  # shear: the same periodic crystal in a triclinic cell
    atoms.set_cell(cell, scale_atoms=False)
    atoms.wrap()
    atoms.rattle(0.1, seed=4)
    atoms.calc = StillingerWeber()
    start = atoms.get_potential_energy()
    optimizer = LearnedHopOptimizer(atoms, logfile=None)
    assert optimizer.fast
    optimizer.run(fmax=0.05, steps=50)
    assert atoms.get_potential_energy() < start


def test_slabs_are_refused_clearly():
    atoms = bulk("Cu", cubic=True) * (2, 2, 2)
    atoms.pbc = (True, True, False)
    atoms.calc = EMT()
    with pytest.raises(ValueError, match="partly periodic"):
        LearnedHopOptimizer(atoms, weights="lj", logfile=None)

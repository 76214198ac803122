"""Lennard-Jones in ASE's conventions: argon in Å and eV (sigma 3.4 Å, epsilon
0.0104 eV) against `ase.calculators.lj.LennardJones`, the reduced-units default
unchanged, and the length scale reaching the learned optimizer."""

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from ase import Atoms
from ase.calculators.lj import LennardJones as AseLennardJones
from ase.io import read

from ase_learn2hop import LearnedHopOptimizer, conversion, potentials, systems
from ase_learn2hop.calculators import CalculatorInputError, LennardJones

DATA = Path(__file__).parent / "data"
SIGMA = 3.4  # Å
EPSILON = 0.0104  # eV
PAIR_MINIMUM = 2 ** (1 / 6) * SIGMA  # Å
LJ13_GLOBAL_MINIMUM = -44.326801  # reduced units (Cambridge Cluster Database)
RELATIVE = 1e-10


def argon_global_minimum(noise=0.0, seed=0):
    """The LJ13 global minimum scaled to argon (Å), optionally rattled."""
    atoms = read(DATA / "lj13_global_minimum.xyz")
    argon = Atoms("Ar13", positions=atoms.positions * PAIR_MINIMUM)
    if noise:
        argon.rattle(noise, seed=seed)
    return argon


def random_argon(n_atoms, seed):
    """Uniform random cluster in Å, no pair closer than 0.85 pair minima, in a
    box of 1.1 n^(1/3) pair minima (so ASE's default 3 sigma cutoff cuts some
    pairs)."""
    rng = np.random.default_rng(seed)
    side = 1.1 * n_atoms ** (1 / 3) * PAIR_MINIMUM
    positions = []
    while len(positions) < n_atoms:
        trial = rng.uniform(0.0, side, 3)
        if all(np.linalg.norm(trial - p) > 0.85 * PAIR_MINIMUM for p in positions):
            positions.append(trial)
    return Atoms(f"Ar{n_atoms}", positions=np.array(positions))


def assert_matches_ase(atoms, **parameters):
    ours = atoms.copy()
    ours.calc = LennardJones(**parameters)
    reference = atoms.copy()
    reference.calc = AseLennardJones(**parameters)
    expected_forces = reference.get_forces()
    assert ours.get_potential_energy() == pytest.approx(
        reference.get_potential_energy(), rel=RELATIVE
    )
    np.testing.assert_allclose(
        ours.get_forces(),
        expected_forces,
        rtol=RELATIVE,
        # Relative to the largest force, or to the force scale epsilon / pair
        # minimum where all forces vanish (the exact global minimum).
        atol=RELATIVE * max(np.abs(expected_forces).max(), EPSILON / PAIR_MINIMUM),
    )


ARGON_SETTINGS = [
    {"sigma": SIGMA, "epsilon": EPSILON},  # ASE's default rc = 3 sigma, shifted
    {"sigma": SIGMA, "epsilon": EPSILON, "rc": 7.5},
    {"sigma": SIGMA, "epsilon": EPSILON, "rc": 100.0},
    {"sigma": SIGMA, "epsilon": EPSILON, "rc": 9.0, "smooth": True},
    {"sigma": SIGMA, "epsilon": EPSILON, "rc": 9.0, "ro": 6.0, "smooth": True},
]
SETTING_IDS = ["default-rc", "rc7.5", "rc100", "smooth", "smooth-ro6"]


# Against ASE -------------------------------------------------------------------------


@pytest.mark.parametrize("parameters", ARGON_SETTINGS, ids=SETTING_IDS)
@pytest.mark.parametrize("n_atoms, seed", [(13, 0), (13, 1), (38, 2)])
def test_argon_matches_ase_on_random_clusters(parameters, n_atoms, seed):
    assert_matches_ase(random_argon(n_atoms, seed), **parameters)


@pytest.mark.parametrize("parameters", ARGON_SETTINGS, ids=SETTING_IDS)
@pytest.mark.parametrize("noise", [0.0, 0.05])
def test_argon_matches_ase_on_the_scaled_global_minimum(parameters, noise):
    assert_matches_ase(argon_global_minimum(noise, seed=4), **parameters)


def test_ase_defaults_for_parameters_not_given():
    for parameters in ({"sigma": SIGMA}, {"epsilon": EPSILON}, {"rc": 2.0}):
        assert_matches_ase(random_argon(13, 5), **parameters)
    calc = LennardJones(sigma=SIGMA)
    assert calc.parameters == {
        "sigma": SIGMA,
        "epsilon": 1.0,
        "rc": 3 * SIGMA,
        "ro": pytest.approx(0.66 * 3 * SIGMA),
        "smooth": False,
    }
    assert calc.length_scale == pytest.approx(PAIR_MINIMUM, rel=1e-15)


def test_without_cutoff_energy_is_epsilon_times_reduced():
    argon = argon_global_minimum()
    argon.calc = LennardJones(sigma=SIGMA, epsilon=EPSILON, rc=np.inf)
    assert argon.get_potential_energy() == pytest.approx(
        EPSILON * LJ13_GLOBAL_MINIMUM, rel=1e-7
    )
    reduced = read(DATA / "lj13_global_minimum.xyz")
    reduced.calc = LennardJones()
    assert argon.get_potential_energy() == pytest.approx(
        EPSILON * reduced.get_potential_energy(), rel=1e-12
    )
    np.testing.assert_allclose(
        argon.get_forces(), EPSILON / PAIR_MINIMUM * reduced.get_forces(), atol=1e-13
    )


def test_set_changes_the_parameters_and_the_energy():
    atoms = random_argon(13, 6)
    atoms.calc = LennardJones(sigma=SIGMA, epsilon=EPSILON, rc=9.0)
    before = atoms.get_potential_energy()
    atoms.calc.set(epsilon=2 * EPSILON)
    assert atoms.get_potential_energy() == pytest.approx(2 * before, rel=1e-12)
    reference = atoms.copy()
    reference.calc = AseLennardJones(sigma=SIGMA, epsilon=2 * EPSILON, rc=9.0)
    assert atoms.get_potential_energy() == pytest.approx(
        reference.get_potential_energy(), rel=RELATIVE
    )


@pytest.mark.parametrize(
    "parameters",
    [
        {"sigma": 0.0},
        {"sigma": -3.4},
        {"epsilon": -1.0},
        {"rc": 0.0},
        {"rc": np.inf, "smooth": True},
        {"rc": 5.0, "ro": 6.0, "smooth": True},
    ],
)
def test_bad_parameters_raise(parameters):
    with pytest.raises(CalculatorInputError):
        LennardJones(**parameters)


# The reduced default --------------------------------------------------------------


def test_reduced_default_is_unchanged():
    atoms = read(DATA / "lj13_global_minimum.xyz")
    atoms.calc = LennardJones()
    assert atoms.get_potential_energy() == pytest.approx(LJ13_GLOBAL_MINIMUM, abs=1e-6)
    assert atoms.calc.parameters == {}
    assert atoms.calc.lennard_jones_parameters is None
    assert atoms.calc.length_scale == 1.0
    system = conversion.system_from_atoms(atoms)
    reference = systems.lennard_jones_system(13)
    assert system.potential_parameters is None
    assert float(system.context.length_scale) == 1.0
    assert (system.start_box_size, system.start_diameter) == (3.0, 1.0)
    assert system.global_minimum == LJ13_GLOBAL_MINIMUM
    assert system.energy_fn is reference.energy_fn
    assert system.symbols == ("X",) * 13
    assert conversion.calculator_for(system).parameters == {}


def test_reduced_equals_ase_conventions_with_sigma_two_to_minus_one_sixth():
    atoms = argon_global_minimum(noise=0.3, seed=7)
    atoms.positions /= PAIR_MINIMUM
    reduced = atoms.copy()
    reduced.calc = LennardJones()
    explicit = atoms.copy()
    explicit.calc = LennardJones(sigma=2 ** (-1 / 6), epsilon=1.0, rc=np.inf)
    assert explicit.get_potential_energy() == pytest.approx(
        reduced.get_potential_energy(), rel=1e-12
    )
    np.testing.assert_allclose(explicit.get_forces(), reduced.get_forces(), atol=1e-10)


# The system and the learned optimizer ----------------------------------------------


def test_argon_system_carries_the_length_scale_and_parameters():
    atoms = argon_global_minimum()
    atoms.calc = LennardJones(sigma=SIGMA, epsilon=EPSILON, rc=100.0)
    system = conversion.system_from_atoms(atoms)
    assert float(system.context.length_scale) == pytest.approx(PAIR_MINIMUM, rel=1e-7)
    assert system.start_diameter == pytest.approx(PAIR_MINIMUM, rel=1e-15)
    assert system.start_box_size == pytest.approx(3 * PAIR_MINIMUM, rel=1e-15)
    assert system.symbols == ("Ar",) * 13
    parameters = system.potential_parameters
    assert isinstance(parameters, potentials.LennardJonesParameters)
    assert (float(parameters.sigma), float(parameters.epsilon)) == (SIGMA, EPSILON)
    assert float(parameters.cutoff) == 100.0
    # A 100 Å cutoff spans the cluster: the global minimum is known (with the
    # shift of its 78 pairs, ~5e-9 eV).
    assert system.global_minimum == pytest.approx(
        EPSILON * LJ13_GLOBAL_MINIMUM, rel=1e-7
    )
    energy = float(
        system.energy_fn(jnp.asarray(atoms.positions), system.potential_parameters)
    )
    assert energy == pytest.approx(atoms.get_potential_energy(), rel=1e-12)
    # Back to a calculator with the same parameters.
    assert conversion.calculator_for(system).parameters == atoms.calc.parameters


def test_global_minimum_unknown_under_a_short_cutoff():
    assert systems.lennard_jones_system(13, SIGMA, EPSILON).global_minimum is None
    no_cutoff = systems.lennard_jones_system(38, SIGMA, EPSILON, np.inf)
    assert no_cutoff.global_minimum == pytest.approx(EPSILON * -173.928427, rel=1e-9)


def test_argon_starts_are_scaled_by_the_pair_minimum():
    system = systems.lennard_jones_system(13, SIGMA, EPSILON, np.inf)
    starts = np.asarray(systems.starting_structures(jax.random.key(0), system, 4))
    reduced = np.asarray(
        systems.starting_structures(
            jax.random.key(0), systems.lennard_jones_system(13), 4
        )
    )
    np.testing.assert_allclose(starts, PAIR_MINIMUM * reduced, rtol=1e-6, atol=1e-6)


def test_energy_function_compiles_once_for_all_parameters():
    traces = []

    def energy(positions, parameters):
        traces.append(1)
        return potentials.lennard_jones()(positions, parameters)

    jitted = jax.jit(energy)
    positions = jnp.asarray(random_argon(13, 8).positions)
    for sigma, epsilon, rc in [(SIGMA, EPSILON, 9.0), (3.0, 0.02, 100.0)]:
        parameters = potentials.lennard_jones_parameters(sigma, epsilon, rc)
        reference = Atoms("Ar13", positions=np.asarray(positions))
        reference.calc = AseLennardJones(sigma=sigma, epsilon=epsilon, rc=rc)
        assert float(jitted(positions, parameters)) == pytest.approx(
            reference.get_potential_energy(), rel=RELATIVE
        )
    assert len(traces) == 1


def test_learned_optimizer_finds_the_argon_global_minimum():
    atoms = argon_global_minimum(noise=0.02, seed=0)
    atoms.calc = LennardJones(sigma=SIGMA, epsilon=EPSILON, rc=100.0)
    optimizer = LearnedHopOptimizer(atoms, logfile=None)
    assert float(optimizer.context.length_scale) == pytest.approx(
        PAIR_MINIMUM, rel=1e-12
    )
    optimizer.run(fmax=1e-5, steps=200)
    assert atoms.get_potential_energy() == pytest.approx(
        EPSILON * LJ13_GLOBAL_MINIMUM, rel=1e-6
    )

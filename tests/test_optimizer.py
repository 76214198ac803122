"""LearnedHopOptimizer: the ASE adapter (fast and generic paths, semantics, errors)."""

import io

import jax
import numpy as np
import pytest
from ase import Atoms
from ase.calculators.emt import EMT
from ase.io import read
from ase.io.trajectory import Trajectory

from ase_learn2hop import LearnedHopOptimizer, systems
from ase_learn2hop.calculators import Gupta, LennardJones
from ase_learn2hop.features import FeatureSet
from ase_learn2hop.learned_optimizer import LearnedOptimizerConfig, init_theta
from ase_learn2hop.optimizer import NoSuitableWeightsError
from ase_learn2hop.weights import LearnedWeights, save_weights

HORIZON = 40


def hand_set_weights(seed=1, scale=0.5, horizon=HORIZON, features=None, max_species=2):
    """Weights set by hand (random perturbation of the initial theta): untrained."""
    config = LearnedOptimizerConfig(features=features or FeatureSet())
    theta = init_theta(jax.random.key(0), config)
    leaves, treedef = jax.tree_util.tree_flatten(theta)
    keys = jax.random.split(jax.random.key(seed), len(leaves))
    leaves = [
        leaf + scale * jax.random.normal(k, leaf.shape) for leaf, k in zip(leaves, keys)
    ]
    theta = jax.tree_util.tree_unflatten(treedef, leaves)
    manifest = {"horizon": horizon, "name": "hand-set", "max_species": max_species}
    return LearnedWeights(theta, config, manifest)


def lj_cluster(n=7, seed=0):
    system = systems.lennard_jones_system(n)
    positions = np.asarray(
        systems.starting_structures(jax.random.key(seed), system, 1)[0]
    )
    atoms = Atoms(f"X{n}", positions=positions)
    atoms.calc = LennardJones()
    return atoms


@pytest.fixture(scope="module")
def weights():
    return hand_set_weights()


def test_run_never_ends_above_its_start_and_leaves_the_best(weights):
    atoms = lj_cluster()
    start = atoms.get_potential_energy()
    optimizer = LearnedHopOptimizer(
        atoms, weights=weights, logfile=None, observe_every=20
    )
    optimizer.run(fmax=0.01, steps=100)
    energy = atoms.get_potential_energy()
    assert energy <= start
    assert energy == pytest.approx(optimizer.best_energy, abs=1e-9)
    assert np.max(np.linalg.norm(atoms.get_forces(), axis=1)) < 0.01
    assert optimizer.nsteps == 100
    assert all(energy <= e + 1e-9 for e in optimizer.minima.energies)
    best_energy, best_atoms = optimizer.get_minimum()
    assert best_energy == pytest.approx(energy)
    np.testing.assert_allclose(best_atoms.get_positions(), atoms.get_positions())


def test_a_start_at_the_global_minimum_stays_there(weights):
    atoms = read(__file__.replace("test_optimizer.py", "data/lj13_global_minimum.xyz"))
    atoms.calc = LennardJones()
    LearnedHopOptimizer(atoms, weights=weights, logfile=None).run(steps=HORIZON)
    assert atoms.get_potential_energy() == pytest.approx(-44.326801, abs=1e-5)


def test_fast_and_generic_paths_follow_the_same_trajectory(weights):
    # From the raw start (relax_steps=0): next to a minimum the gradients are
    # tiny and the last bits of two energy implementations decide the steps.
    fast_atoms, generic_atoms = lj_cluster(6, seed=3), lj_cluster(6, seed=3)
    fast = LearnedHopOptimizer(
        fast_atoms, weights=weights, logfile=None, observe_every=7, relax_steps=0
    )
    generic = LearnedHopOptimizer(
        generic_atoms,
        weights=weights,
        logfile=None,
        fast=False,
        length_scale=1.0,
        observe_every=7,
        relax_steps=0,
    )
    fast_positions, generic_positions = [], []
    for _ in fast.irun(steps=28):
        if fast.current_positions is not None:
            fast_positions.append(fast.current_positions[0])
    for _ in generic.irun(steps=28):
        if generic.current_positions is not None:
            generic_positions.append(generic.current_positions[0])
    # Compare after 7, 14 and 21 steps (the generic path yields every 7 too;
    # after the last chunk the search is over).
    assert len(fast_positions) == len(generic_positions) == 3
    for a, b in zip(fast_positions, generic_positions):
        np.testing.assert_allclose(a, b, atol=1e-8)
    assert fast.best_energy == pytest.approx(generic.best_energy, abs=1e-6)


def test_steps_beyond_the_horizon_run_in_cycles(weights):
    atoms = lj_cluster()
    optimizer = LearnedHopOptimizer(
        atoms, weights=weights, logfile=None, observe_every=1000, protocol="paper"
    )
    chunks = [optimizer.nsteps for _ in optimizer.irun(steps=3 * HORIZON + 5)]
    assert chunks == [0, HORIZON, 2 * HORIZON, 3 * HORIZON, 3 * HORIZON + 5]
    assert optimizer.nsteps == 3 * HORIZON + 5


def test_multi_start_keeps_the_best_of_its_starts(weights):
    atoms = lj_cluster(7)
    optimizer = LearnedHopOptimizer(
        atoms, weights=weights, logfile=None, n_starts=6, seed=2
    )
    optimizer.run(steps=HORIZON)
    assert optimizer.start_energies.shape == (6,)
    assert atoms.get_potential_energy() <= optimizer.start_energies.min() + 1e-9


def test_perturbed_multi_start(weights):
    atoms = lj_cluster(7)
    optimizer = LearnedHopOptimizer(
        atoms,
        weights=weights,
        logfile=None,
        n_starts=3,
        starts="perturb",
        perturbation=0.2,
    )
    optimizer.run(steps=HORIZON)
    assert np.isfinite(optimizer.start_energies).all()


def test_logfile_trajectory_and_observers(weights, tmp_path):
    atoms = lj_cluster()
    log = io.StringIO()
    calls = []
    optimizer = LearnedHopOptimizer(
        atoms,
        weights=weights,
        logfile=log,
        trajectory=tmp_path / "hop.traj",
        observe_every=10,
    )
    optimizer.attach(lambda: calls.append(optimizer.nsteps), interval=20)
    optimizer.run(steps=40)
    lines = log.getvalue().splitlines()
    assert "Best" in lines[0]
    assert len(lines) == 1 + 1 + 4  # header, start, 4 chunks (the last: result)
    assert [int(line.split()[1]) for line in lines[1:]] == [0, 10, 20, 30, 40]
    assert calls == [0, 20, 40]
    with Trajectory(tmp_path / "hop.traj") as trajectory:
        images = list(trajectory)
    assert len(images) == 1 + 4
    assert images[-1].get_potential_energy() == pytest.approx(optimizer.best_energy)
    assert optimizer.todict()["optimizer"] == "LearnedHopOptimizer"


def test_restart_file_continues_the_search(weights, tmp_path):
    restart = tmp_path / "restart.json"
    uninterrupted_atoms = lj_cluster()
    uninterrupted = LearnedHopOptimizer(
        uninterrupted_atoms, weights=weights, logfile=None, observe_every=10
    )
    positions = [
        uninterrupted.current_positions[0]
        for _ in uninterrupted.irun(steps=40)
        if uninterrupted.current_positions is not None
    ]  # after 10, 20 and 30 steps

    atoms = lj_cluster()
    first = LearnedHopOptimizer(
        atoms, weights=weights, logfile=None, restart=restart, observe_every=10
    )
    runner = first.irun(steps=30)
    next(runner)  # before the first step
    next(runner)
    next(runner)  # stopped after 20 steps: the restart file holds that state
    runner.close()
    resumed = LearnedHopOptimizer(
        lj_cluster(), weights=weights, logfile=None, restart=restart, observe_every=10
    )
    assert resumed.nsteps == 20
    runner = resumed.irun(steps=20)
    next(runner)  # before the first step
    next(runner)
    np.testing.assert_allclose(resumed.current_positions[0], positions[2], atol=1e-10)


def test_generic_path_with_emt():
    atoms = Atoms("Cu4", positions=[[0, 0, 0], [2.5, 0, 0], [0, 2.5, 0], [0, 0, 2.6]])
    atoms.calc = EMT()
    start = atoms.get_potential_energy()
    weights = hand_set_weights(horizon=5)
    optimizer = LearnedHopOptimizer(
        atoms, weights=weights, logfile=None, polish_steps=20
    )
    optimizer.run(fmax=0.05, steps=10)
    assert atoms.get_potential_energy() <= start


def test_bimetallic_species_reach_the_features(weights):
    atoms = Atoms(
        "Ag3Au3",
        positions=np.asarray(
            systems.starting_structures(
                jax.random.key(0), systems.bimetallic_system("Ag", 3, "Au", 3), 1
            )[0]
        ),
    )
    atoms.calc = Gupta(system="AgAu")
    optimizer = LearnedHopOptimizer(atoms, weights=weights, logfile=None)
    assert sorted(set(np.asarray(optimizer.context.species))) == [0, 1]
    optimizer.run(steps=10)
    # Weights trained for the paper's protocol hop 10 steps per atom on Gupta
    # potentials and 25 elsewhere (protocols.HOP_STEPS_PER_ATOM_BY_POTENTIAL)
    # unless their own length was measured (HOP_STEPS_PER_ATOM_BY_WEIGHTS).
    assert optimizer.hopping.hop_steps == 10 * 6
    assert (
        LearnedHopOptimizer(lj_cluster(), weights=weights).hopping.hop_steps == 25 * 7
    )


def test_errors_are_clear(weights, tmp_path):
    atoms = lj_cluster()
    bare = atoms.copy()
    with pytest.raises(ValueError, match="calculator"):
        LearnedHopOptimizer(bare, weights=weights)
    nan_atoms = lj_cluster()
    positions = nan_atoms.get_positions()
    positions[0, 0] = np.nan
    nan_atoms.positions = positions
    with pytest.raises(ValueError, match="non-finite"):
        LearnedHopOptimizer(nan_atoms, weights=weights)
    one_species = hand_set_weights(max_species=1)
    binary = Atoms("AgAu", positions=[[0, 0, 0], [2.9, 0, 0]])
    binary.calc = Gupta(system="AgAu")
    with pytest.raises(NoSuitableWeightsError, match="species"):
        LearnedHopOptimizer(binary, weights=one_species)
    emt_atoms = Atoms("Cu2", positions=[[0, 0, 0], [2.5, 0, 0]])
    emt_atoms.calc = EMT()
    with pytest.raises(NoSuitableWeightsError, match="pass weights"):
        LearnedHopOptimizer(emt_atoms)
    with pytest.raises(ValueError, match="n_starts"):
        LearnedHopOptimizer(emt_atoms, weights=weights, n_starts=4)


def test_weights_from_a_file(tmp_path):
    weights = hand_set_weights()
    path = save_weights(
        tmp_path / "w",
        weights.theta,
        weights.config,
        horizon=HORIZON,
        systems=["lj7"],
        max_species=2,
    )
    atoms = lj_cluster()
    optimizer = LearnedHopOptimizer(atoms, weights=str(path), logfile=None)
    assert optimizer.horizon == HORIZON
    optimizer.run(steps=5)


#: The shipped weights LearnedHopOptimizer picks with ``weights=None``, by
#: system and protocol: Lennard-Jones hops with the weights trained for hopping,
#: those trained for time to the minimum up to 26 atoms.
SHIPPED_WEIGHTS_BY_SYSTEM = [
    ("lj13", "hopping", "lj_hopping_time"),
    ("lj26", "hopping", "lj_hopping_time"),
    ("lj27", "hopping", "lj_hopping"),
    ("lj60", "hopping", "lj_hopping"),
    ("lj13", "paper", "lj"),
    ("lj60", "paper", "lj"),
    ("au55", "hopping", "au55"),
    ("au55", "paper", "au55"),
    ("si64", "hopping", "si64"),
    ("Ag19Au19", "hopping", "agau"),
    ("Pd19Pt19", "hopping", "bimetallic"),
]


@pytest.mark.parametrize("name, protocol, expected", SHIPPED_WEIGHTS_BY_SYSTEM)
def test_shipped_weights_are_picked_by_system(name, protocol, expected):
    from ase_learn2hop.conversion import atoms_from_system, calculator_for

    system = systems.system_from_name(name)
    start = np.asarray(systems.starting_structures(jax.random.key(0), system, 1)[0])
    atoms = atoms_from_system(system, start)
    atoms.calc = calculator_for(system)
    optimizer = LearnedHopOptimizer(atoms, logfile=None, protocol=protocol)
    assert optimizer.weights.name == expected
    if protocol == "hopping":
        # Hops as long as the weights were trained for: 10 learned steps per
        # atom for lj_hopping and lj_hopping_time; weights of the paper's
        # protocol 25 per atom, 10 on Gupta potentials (the bimetallic
        # clusters), 3 for gold with au55 (protocols.HOP_STEPS_PER_ATOM_BY_WEIGHTS).
        per_atom = {"au55": 3, "lj_hopping": 10, "lj_hopping_time": 10}.get(
            expected, 10 if system.potential == "gupta" else 25
        )
        assert optimizer.hopping.hop_steps == per_atom * system.n_atoms
    manifest = optimizer.weights.manifest
    for key in ("systems", "commit", "horizon", "training", "command"):
        assert manifest[key], key
    assert isinstance(manifest["seed"], int)


def test_shipped_lj_weights_run():
    optimizer = LearnedHopOptimizer(lj_cluster(7), logfile=None)
    optimizer.run(steps=10)
    assert np.isfinite(optimizer.get_minimum()[0])

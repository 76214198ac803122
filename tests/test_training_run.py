"""End to end: a tiny meta-training run exports weights LearnedHopOptimizer runs."""

import json

import jax
import numpy as np
import pytest
from ase import Atoms

from ase_learn2hop import LearnedHopOptimizer, systems
from ase_learn2hop.calculators import LennardJones
from ase_learn2hop.cli import main
from ase_learn2hop.weights import load_weights


def test_two_updates_on_lj13_export_weights_the_optimizer_runs(tmp_path, monkeypatch):
    monkeypatch.setenv("LEARN2HOP_CACHE", str(tmp_path / "cache"))
    config = {
        "name": "tiny",
        "systems": ["lj13"],
        "strategy": "esmc",
        "horizon": 10,
        "population": 2,
        "updates": 2,
        "validation_starts": 2,
        "validate_every": 1,
        "polish_steps": 20,
        "adam_reference_starts": 4,
    }
    config_path = tmp_path / "tiny.json"
    config_path.write_text(json.dumps(config))
    out = tmp_path / "run"
    assert main(["train", str(config_path), "--out", str(out), "--quiet"]) == 0
    rows = [
        json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()
    ]
    assert [row["update"] for row in rows if "mean_loss" in row] == [1, 2]
    assert (out / "meta_loss.png").stat().st_size > 0
    weights = load_weights(out / "tiny.json")
    assert weights.horizon == 10
    assert weights.manifest["systems"] == ["lj13"]
    assert weights.manifest["training"]["strategy"] == "esmc"
    assert len(weights.manifest["metrics"]["meta_loss_curve"]) == 2
    assert weights.manifest["commit"]

    system = systems.lennard_jones_system(13)
    positions = np.asarray(systems.starting_structures(jax.random.key(1), system, 1)[0])
    atoms = Atoms("X13", positions=positions)
    atoms.calc = LennardJones()
    start = atoms.get_potential_energy()
    LearnedHopOptimizer(atoms, weights=weights, logfile=None).run(steps=15)
    assert atoms.get_potential_energy() <= start

    # A finished run restarted with more updates resumes from its checkpoint.
    assert (
        main(
            ["train", str(config_path), "--out", str(out), "--updates", "3", "--quiet"]
        )
        == 0
    )
    rows = [
        json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()
    ]
    assert [row["update"] for row in rows if "mean_loss" in row] == [1, 2, 3]
    # export of the checkpoint writes the same kind of weight file
    assert main(["export", str(out), "--out", str(tmp_path / "exported")]) == 0
    assert load_weights(tmp_path / "exported" / "tiny.json").horizon == 10


def test_minimum_starts_are_local_minima(tmp_path):
    from ase_learn2hop.training.tasks import MetaTask, make_instance_sampler

    from ase_learn2hop.potentials import lennard_jones

    task = MetaTask(systems.lennard_jones_system(7), -16.505384)
    (starts,) = make_instance_sampler([task], minimum_start_fraction=0.5)(
        jax.random.key(0), 4
    )
    forces = np.asarray(jax.vmap(jax.grad(lennard_jones()))(starts, None))
    largest = np.linalg.norm(forces, axis=-1).max(axis=-1)
    assert np.all(largest[:2] < 1e-2)
    assert np.all(largest[2:] > 1e-2)


def test_every_shipped_config_names_real_systems_and_a_strategy():
    from ase_learn2hop.training.run import configs_directory, load_config

    configs = sorted(configs_directory().glob("*.json"))
    assert len(configs) >= 8
    for path in configs:
        config = load_config(str(path))
        assert config["strategy"] in ("es", "esmc", "ga"), path.name
        for name in config["systems"]:
            assert systems.system_from_name(name).n_atoms > 0, name
        assert config["notes"], path.name


def test_hopping_run_with_hops_per_atom_sets_the_optimizers_hop(tmp_path, monkeypatch):
    """A hopping-protocol run trains hops of ``hop_steps_per_atom`` times each
    system's atoms, and the optimizer hops the same way on any size."""
    from ase_learn2hop.training.run import hopping_config, load_config

    from ase_learn2hop import protocols

    monkeypatch.setenv("LEARN2HOP_CACHE", str(tmp_path / "cache"))
    config = {
        "name": "tiny_hopping",
        "systems": ["lj7"],
        "protocol": "hopping",
        "strategy": "ga",
        "horizon": 50,
        "hop_steps_per_atom": 3,
        "budget": 60,
        "population": 2,
        "confirm_instances": 1,
        "updates": 1,
        "validation_starts": 1,
        "validate_every": 1,
        "adam_reference_starts": 2,
    }
    config_path = tmp_path / "tiny_hopping.json"
    config_path.write_text(json.dumps(config))
    assert hopping_config(load_config(str(config_path)), 7).hop_steps == 21
    out = tmp_path / "run"
    assert main(["train", str(config_path), "--out", str(out), "--quiet"]) == 0
    weights = load_weights(out / "tiny_hopping.json")
    for n_atoms in (7, 13, 38):
        system = systems.lennard_jones_system(n_atoms)
        hopping = protocols.hopping_config(weights, system, True, None, None, n_atoms)
        assert hopping.hop_steps == 3 * n_atoms
    # Weights trained for the paper's protocol keep the default law.
    paper = load_weights("lj")
    system = systems.lennard_jones_system(13)
    hopping = protocols.hopping_config(paper, system, True, None, None, 13)
    assert hopping.hop_steps == 25 * 13


def _pentagonal_bipyramid():
    """LJ7's global minimum (Cambridge Cluster Database: -16.505384), relaxed
    from an ideal pentagonal bipyramid with scipy's L-BFGS-B."""
    import scipy.optimize
    from lennard_jones_reference import lennard_jones_energy

    edge = 2 ** (1 / 6)
    radius = edge / (2 * np.sin(np.pi / 5))
    height = np.sqrt(edge**2 - radius**2)
    angles = 2 * np.pi * np.arange(5) / 5
    ring = np.stack([radius * np.cos(angles), radius * np.sin(angles), 0 * angles], 1)
    start = np.concatenate([ring, [[0, 0, height], [0, 0, -height]]])
    result = scipy.optimize.minimize(
        lambda x: lennard_jones_energy(x.reshape(7, 3)),
        start.ravel(),
        method="L-BFGS-B",
    )
    assert abs(result.fun - -16.505384) < 1e-5
    return result.x.reshape(7, 3)


def test_time_to_minimum_objective_is_the_share_of_calls_before_the_minimum():
    """0 from LJ7's published global minimum, 1 when a budget of one call
    starts elsewhere, and the mean over an instance's runs."""
    from ase_learn2hop.training.tasks import MetaTask, make_hopping_meta_loss

    from ase_learn2hop.learned_hopping import HoppingConfig

    weights = load_weights("lj_hopping")
    task = MetaTask(systems.lennard_jones_system(7), -16.505384)
    minimum = _pentagonal_bipyramid()
    elsewhere = np.asarray(
        systems.starting_structures(jax.random.key(1), task.system, 1)[0]
    )
    hopping = [HoppingConfig(hop_steps=20, temperature=0.8)]

    def loss(instance, budget):
        loss_fn = make_hopping_meta_loss(
            [task], weights.config, hopping, budget, objective="time_to_minimum"
        )
        return float(loss_fn(weights.theta, (instance,)))

    assert loss(minimum, 50) == 0.0
    assert loss(elsewhere, 1) == 1.0
    assert loss(np.stack([minimum, elsewhere]), 1) == 0.5
    with pytest.raises(ValueError, match="objective"):
        make_hopping_meta_loss([task], weights.config, hopping, 10, objective="hits")
    unknown = MetaTask(task.system._replace(global_minimum=None), -16.505384)
    with pytest.raises(ValueError, match="global minimum"):
        make_hopping_meta_loss(
            [unknown], weights.config, hopping, 10, objective="time_to_minimum"
        )


def test_instances_of_several_runs_share_the_local_minima_evenly():
    from ase_learn2hop.training.tasks import MetaTask, make_instance_sampler

    task = MetaTask(systems.lennard_jones_system(7), -16.505384)
    sample = make_instance_sampler(
        [task], minimum_start_fraction=0.5, runs_per_instance=2
    )
    (starts,) = sample(jax.random.key(0), 3)
    assert starts.shape == (3, 2, 7, 3)
    energy_fn = task.system.energy_fn
    gradient = jax.vmap(jax.vmap(lambda x: jax.grad(energy_fn)(x, None)))
    forces = np.asarray(gradient(starts))
    largest = np.linalg.norm(forces, axis=-1).max(axis=-1)
    # Run 0 of every instance is a local minimum, run 1 a harmonic start.
    assert np.all(largest[:, 0] < 1e-2) and np.all(largest[:, 1] > 1e-2)


def test_paper_protocol_refuses_the_hopping_objectives():
    from ase_learn2hop.training.run import DEFAULTS, meta_loss_from_config

    for override in ({"objective": "time_to_minimum"}, {"runs_per_instance": 4}):
        config = {**DEFAULTS, "protocol": "paper", **override}
        with pytest.raises(SystemExit, match="hopping"):
            meta_loss_from_config(config, [], None)

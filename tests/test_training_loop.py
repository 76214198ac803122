"""Meta-training loop: sharded = unsharded, resume = uninterrupted, best-by-validation,
non-finite losses, metrics JSON lines and the Figure-3 plot. Toy losses with known
minima stand in for the unrolled learned optimizer."""

import json
import os
import pathlib
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ase_learn2hop.training import loop, strategies

REPOSITORY_ROOT = pathlib.Path(__file__).resolve().parents[1]

TIMING_KEYS = {"wall_time_s", "elapsed_s"}


def quadratic_loss(theta, target):
    """Minimum 0 at w = target, b = 0."""
    return jnp.sum((theta["w"] - target) ** 2) + theta["b"] ** 2


def sample_targets(key, n):
    return 0.05 * jax.random.normal(key, (n, 3))


THETA0 = {"w": jnp.array([1.0, -0.5, 0.8]), "b": jnp.asarray(0.6)}
VALIDATION = jnp.zeros((4, 3))


def _without_timing(history):
    return [{k: v for k, v in row.items() if k not in TIMING_KEYS} for row in history]


def _assert_trees_equal(a, b):
    leaves_a, structure_a = jax.tree.flatten(a)
    leaves_b, structure_b = jax.tree.flatten(b)
    assert structure_a == structure_b
    for leaf_a, leaf_b in zip(leaves_a, leaves_b):
        np.testing.assert_array_equal(np.asarray(leaf_a), np.asarray(leaf_b))


SHARDED_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import jax, jax.numpy as jnp, numpy as np
    jax.config.update("jax_enable_x64", True)  # a fresh process: as conftest.py
    from ase_learn2hop.training import loop, strategies, distributed

    def loss_fn(theta, target):
        return jnp.sum((theta["w"] - target) ** 2) + theta["b"] ** 2

    def sample(key, n):
        return 0.05 * jax.random.normal(key, (n, 3))

    theta0 = {"w": jnp.array([1.0, -0.5, 0.8]), "b": jnp.asarray(0.6)}
    assert len(jax.devices()) == 4, jax.devices()
    differences = {}
    # 6 pairs -> ESMC population 18, not a multiple of 4: padding is exercised.
    for strategy in (strategies.esmc(n_pairs=6),
                     strategies.genetic_algorithm(population_size=6,
                                                  n_confirm_instances=3)):
        thetas = []
        for devices in (jax.devices()[:1], jax.devices()):
            mesh = distributed.make_population_mesh(devices)
            result = loop.train(strategy, theta0, loss_fn, sample, n_updates=4,
                                key=jax.random.PRNGKey(3), progress=False,
                                mesh=mesh, validation_instances=jnp.zeros((4, 3)),
                                validate_every=2)
            thetas.append(result.theta)
        differences[strategy.name] = max(
            float(jnp.max(jnp.abs(a - b)))
            for a, b in zip(jax.tree.leaves(thetas[0]), jax.tree.leaves(thetas[1])))
        differences[strategy.name + "_moved"] = float(
            jnp.max(jnp.abs(thetas[1]["w"] - theta0["w"])))
    # The evaluator the loop uses, against the loss by hand, member by member:
    # 6 distinct candidates on 4 devices (padded), each on its own instance.
    assert distributed.make_population_mesh().devices.size == 4
    evaluate = distributed.make_population_evaluator(loss_fn)
    rng = np.random.default_rng(0)
    w, b, targets = rng.normal(size=(6, 3)), rng.normal(size=6), rng.normal(size=(6, 3))
    losses = evaluate({"w": jnp.asarray(w), "b": jnp.asarray(b)}, jnp.asarray(targets))
    assert losses.shape == (6,) and losses.dtype == jnp.float64
    np.testing.assert_allclose(
        losses, np.sum((w - targets) ** 2, axis=1) + b**2, rtol=1e-13)
    # Same compiled evaluator, another population size that needs no padding.
    losses8 = evaluate({"w": jnp.ones((8, 3)), "b": jnp.arange(8.0)}, jnp.zeros((8, 3)))
    np.testing.assert_allclose(losses8, 3.0 + np.arange(8.0) ** 2, rtol=1e-13)
    try:
        evaluate({"w": jnp.ones((6, 3)), "b": jnp.ones(6)}, jnp.zeros((5, 3)))
    except ValueError as error:
        assert "one instance per candidate" in str(error), error
    else:
        raise AssertionError("mismatched candidates and instances were accepted")
    print(json.dumps(differences))
    """
)


def test_sharded_over_four_devices_equals_single_device():
    environment = dict(os.environ)
    environment["XLA_FLAGS"] = "--xla_force_host_platform_device_count=4"
    environment["JAX_PLATFORMS"] = "cpu"
    completed = subprocess.run(
        [sys.executable, "-c", SHARDED_SCRIPT],
        check=False,
        capture_output=True,
        text=True,
        env=environment,
        cwd=REPOSITORY_ROOT,
        timeout=120,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    differences = json.loads(completed.stdout.strip().splitlines()[-1])
    assert differences["esmc"] < 1e-12
    assert differences["ga"] < 1e-12
    assert differences["esmc_moved"] > 1e-3  # theta really was updated


class Interrupted(Exception):
    pass


def crashing_at_update(update, n_instances, sample_instances):
    """sample_instances that crashes (like a killed job) when update ``update``
    draws its ``n_instances`` instances (the GA's confirmation draws fewer)."""
    n_updates_sampled = []

    def sample(key, n):
        if n == n_instances:
            if len(n_updates_sampled) == update - 1:
                raise Interrupted
            n_updates_sampled.append(n)
        return sample_instances(key, n)

    return sample


@pytest.mark.parametrize("name", ["esmc", "ga"])
def test_resume_equals_uninterrupted_run(tmp_path, name):
    strategy = (
        strategies.esmc(n_pairs=4)
        if name == "esmc"
        else strategies.genetic_algorithm(population_size=4, n_confirm_instances=2)
    )
    arguments = {
        "n_updates": 6,
        "key": jax.random.PRNGKey(7),
        "progress": False,
        "validation_instances": VALIDATION,
        "validate_every": 2,
    }
    uninterrupted = loop.train(
        strategy, THETA0, quadratic_loss, sample_targets, **arguments
    )
    checkpoint_dir = tmp_path / "checkpoint"
    metrics_path = tmp_path / "metrics.jsonl"
    files = {
        "checkpoint_dir": checkpoint_dir,
        "checkpoint_every": 2,
        "metrics_path": metrics_path,
    }
    # Killed during update 4: the last checkpoint holds update 2, the metrics file
    # has a row beyond it.
    with pytest.raises(Interrupted):
        loop.train(
            strategy,
            THETA0,
            quadratic_loss,
            crashing_at_update(4, strategy.n_instances, sample_targets),
            **arguments,
            **files,
        )
    sidecar = json.loads((checkpoint_dir / "checkpoint.json").read_text())
    assert sidecar["update_index"] == 2 and sidecar["metadata"]["strategy"] == name
    assert len(metrics_path.read_text().splitlines()) == 4

    resumed = loop.train(
        strategy, THETA0, quadratic_loss, sample_targets, **arguments, **files
    )
    _assert_trees_equal(
        resumed.state.strategy_state, uninterrupted.state.strategy_state
    )
    _assert_trees_equal(resumed.best_theta, uninterrupted.best_theta)
    np.testing.assert_array_equal(resumed.state.key, uninterrupted.state.key)
    assert resumed.best_validation_loss == uninterrupted.best_validation_loss
    assert _without_timing(resumed.history) == _without_timing(uninterrupted.history)
    rows = [json.loads(line) for line in metrics_path.read_text().splitlines()]
    assert [row["update"] for row in rows] == list(range(7))
    assert rows[6]["elapsed_s"] >= rows[2]["elapsed_s"]

    # A finished run resumed with the same n_updates does nothing more.
    again = loop.train(
        strategy, THETA0, quadratic_loss, sample_targets, **arguments, **files
    )
    _assert_trees_equal(again.theta, uninterrupted.theta)
    assert len(again.history) == 7


def test_exported_theta_is_best_on_validation_not_last():
    # Training instances pull w towards 1, the fixed validation set wants w = 0,
    # where theta starts: every update makes validation worse.
    def sample_far_targets(key, n):
        return 1.0 + 0.01 * jax.random.normal(key, (n, 3))

    theta0 = {"w": jnp.zeros(3), "b": jnp.asarray(0.0)}
    result = loop.train(
        strategies.esmc(n_pairs=4, optimizer=strategies.default_meta_optimizer(0.1)),
        theta0,
        quadratic_loss,
        sample_far_targets,
        n_updates=4,
        key=jax.random.PRNGKey(0),
        progress=False,
        validation_instances=VALIDATION,
        validate_every=2,
    )
    assert float(jnp.max(jnp.abs(result.theta["w"]))) > 0.1
    _assert_trees_equal(result.best_theta, theta0)
    assert result.best_validation_loss == 0.0
    validation_rows = [row for row in result.history if "validation_loss" in row]
    assert [row["update"] for row in validation_rows] == [0, 2, 4]


def test_collapsing_instances_do_not_poison_training():
    # A third of the instances "collapse" (loss inf or NaN) whatever theta is.
    def collapsing_loss(theta, instance):
        loss = quadratic_loss(theta, instance[:3])
        return jnp.where(
            instance[3] > 0.8, jnp.inf, jnp.where(instance[3] < 0.1, jnp.nan, loss)
        )

    def sample(key, n):
        target_key, collapse_key = jax.random.split(key)
        return jnp.concatenate(
            [sample_targets(target_key, n), jax.random.uniform(collapse_key, (n, 1))],
            axis=1,
        )

    result = loop.train(
        strategies.esmc(n_pairs=8, optimizer=strategies.default_meta_optimizer(0.1)),
        THETA0,
        collapsing_loss,
        sample,
        n_updates=30,
        key=jax.random.PRNGKey(1),
        progress=False,
    )
    assert all(np.all(np.isfinite(leaf)) for leaf in jax.tree.leaves(result.theta))
    assert float(quadratic_loss(result.theta, jnp.zeros(3))) < 0.2 * float(
        quadratic_loss(THETA0, jnp.zeros(3))
    )


def test_metrics_jsonl_and_meta_loss_plot(tmp_path):
    paths = {}
    for label, strategy in (
        ("ES", strategies.antithetic_es(n_pairs=4)),
        ("ESMC", strategies.esmc(n_pairs=4)),
        ("GA", strategies.genetic_algorithm(population_size=4, n_confirm_instances=2)),
    ):
        paths[label] = tmp_path / f"{label}.jsonl"
        loop.train(
            strategy,
            THETA0,
            quadratic_loss,
            sample_targets,
            n_updates=3,
            key=jax.random.PRNGKey(0),
            progress=True,
            metrics_path=paths[label],
            validation_instances=VALIDATION,
            validate_every=3,
        )
        rows = [json.loads(line) for line in paths[label].read_text().splitlines()]
        assert rows[0] == {"update": 0, "validation_loss": rows[0]["validation_loss"]}
        assert [row["update"] for row in rows[1:]] == [1, 2, 3]
        for row in rows[1:]:
            assert {"mean_loss", "min_loss", "theta_loss", "wall_time_s"} <= set(row)
            assert row["mean_loss"] > 0 and row["min_loss"] <= row["mean_loss"]
        assert "validation_loss" in rows[3]
        assert (rows[1]["theta_loss"] is None) == (label == "ES")

    out_png = loop.plot_meta_loss(paths, tmp_path / "figure3.png", smoothing=2)
    assert out_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert out_png.stat().st_size > 5000

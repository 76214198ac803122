"""One JAX CPU device per core (`ase_learn2hop.cpu_devices`), and a batch of
starts split over them (`ase_learn2hop.devices`), each in a fresh process:
JAX's device count and XLA's flags are fixed when its backend starts.

A batch split over two devices must give what the same batch gives on one
device: FIRE (float64 throughout) to 1e-12, the shipped learned basin hopping
(network and features in float32) to float32 rounding over its first quench
and hop. Importing the package keeps XLA's CPU reductions out of the YNNPACK
library (`cpu_devices.keep_reductions_in_xla`), whose kernels jaxlib 0.12
chose by the batch's row count. The network multiplies a device's share of
the batch at once (`driver.batch_select`), and XLA multiplies fewer than
about 50 rows with other kernels, whose sums round differently; the hops grow
that rounding, so the learned search is compared on 128 LJ13 starts (64 per
device).
"""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from ase_learn2hop import cpu_devices

TESTS = Path(__file__).parent

#: Two runs of the same batch: FIRE on LJ7 and the default search on LJ13.
SPLIT_BATCH_SCRIPT = textwrap.dedent(
    """
    import json

    import ase_learn2hop
    import jax
    import jax.numpy as jnp
    import numpy as np
    from lennard_jones_reference import lennard_jones_energy_fn, random_cluster

    jax.config.update("jax_enable_x64", True)
    from ase_learn2hop import hopping_search, systems
    from ase_learn2hop.benchmark.time_to_minimum_methods import learned_weights
    from ase_learn2hop.descent import fire_descent
    from ase_learn2hop.driver import run_batched
    from ase_learn2hop.protocols import hopping_config

    def devices_of(array):
        return len(array.sharding.device_set)

    clusters = [random_cluster(7, seed, 2.2, min_distance=0.8) for seed in range(5)]
    starts = jnp.asarray(np.stack(clusters))
    fire = fire_descent(lennard_jones_energy_fn, 0.1)
    even = run_batched(fire, starts[:4], 60)
    odd = run_batched(fire, starts, 60)

    system = systems.system_from_name("lj13")
    weights = learned_weights(system)
    hopping = hopping_config(weights, system, True, None, None, system.n_atoms)
    lj13_starts = systems.starting_structures(jax.random.key(0), system, 128)
    search = hopping_search.hopping_start(
        weights.theta, weights.config, system.energy_fn, lj13_starts,
        system.context, system.potential_parameters, hopping=hopping,
        key=jax.random.key(1),
    )
    search, _, _ = hopping_search.hopping_advance(search, 100, chunk_steps=50)
    print(json.dumps({
        "devices": len(jax.devices()),
        "even_batch_devices": devices_of(even.carry.state.positions),
        "odd_batch_devices": devices_of(odd.carry.state.positions),
        "fire_positions": np.asarray(even.carry.state.positions).tolist(),
        "fire_best": np.asarray(even.carry.best_energy).tolist(),
        "hopping_devices": devices_of(search.carry.state.positions),
        "hopping_positions": np.asarray(search.carry.state.positions).tolist(),
        "hopping_best": search.best_energy.tolist(),
        "hops": np.asarray(search.carry.state.hops).tolist(),
    }))
    """
)


def _python(code: str, **environment: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(TESTS), "JAX_PLATFORMS": "cpu"}
    for name in ("XLA_FLAGS", "JAX_NUM_CPU_DEVICES", "LEARN2HOP_CPU_DEVICES"):
        env.pop(name, None)
    env.update(environment)
    return subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def _device_count(code: str = "import ase_learn2hop", **environment: str) -> int:
    run = _python(code + "\nimport jax\nprint(len(jax.devices()))", **environment)
    assert run.returncode == 0, run.stderr
    return int(run.stdout.split()[-1])


def test_import_asks_for_the_requested_cpu_devices_only_before_jax_starts():
    assert _device_count(LEARN2HOP_CPU_DEVICES="3") == 3
    assert _device_count(LEARN2HOP_CPU_DEVICES="1") == 1
    # The user's own choice of device count wins.
    flags = "--xla_force_host_platform_device_count=2"
    assert _device_count(LEARN2HOP_CPU_DEVICES="3", XLA_FLAGS=flags) == 2
    # JAX already started (the user computed first): its one device stays.
    started_first = "import jax.numpy as jnp\njnp.zeros(1)\nimport ase_learn2hop"
    assert _device_count(started_first, LEARN2HOP_CPU_DEVICES="3") == 1


def test_a_bad_device_count_is_a_clear_error():
    run = _python("import ase_learn2hop", LEARN2HOP_CPU_DEVICES="two")
    assert run.returncode != 0
    assert "LEARN2HOP_CPU_DEVICES must be a positive integer, got 'two'" in run.stderr


#: A start's sum of squares in a batch of 128 rows and in one of 64.
ROW_SUMS_SCRIPT = textwrap.dedent(
    """
    import os

    import ase_learn2hop
    import jax
    import jax.numpy as jnp
    import numpy as np

    jax.config.update("jax_enable_x64", True)
    rows = np.random.default_rng(0).normal(size=(128, 13, 3))
    squares = jax.jit(lambda x: jnp.sum(x**2, axis=(1, 2)))
    same = np.array_equal(squares(rows)[:64], squares(rows[:64]))
    print(os.environ.get("XLA_FLAGS", ""), same, sep="|")
    """
)


def test_import_keeps_a_row_sum_the_same_in_any_batch():
    run = _python(ROW_SUMS_SCRIPT)
    assert run.returncode == 0, run.stderr
    flags, same = run.stdout.splitlines()[-1].split("|")
    assert flags == "--xla_cpu_experimental_ynn_fusion_type=individual_dot"
    # jaxlib 0.12's YNNPACK reductions summed the 128 rows in another order.
    assert same == "True"
    # The user's own choice of the flag stays as it is.
    own = "--xla_cpu_experimental_ynn_fusion_type=individual_dot,reduce"
    run = _python(ROW_SUMS_SCRIPT, XLA_FLAGS=own)
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines()[-1].split("|")[0] == own


@pytest.mark.parametrize(
    ("release", "flags", "added"),
    [
        ("0.10.1", "", True),
        ("0.12.1", "--xla_force_host_platform_device_count=2", True),
        # XLA aborts on a flag it does not know: releases outside the known
        # range are left alone.
        ("0.9.2", "", False),
        ("0.13.0", "", False),
        ("0.12.1", "--xla_cpu_experimental_ynn_fusion_type=", False),
    ],
)
def test_the_library_flag_is_added_only_where_it_is_known_and_not_chosen(
    monkeypatch, release, flags, added
):
    monkeypatch.setattr(cpu_devices.jaxlib, "__version__", release)
    monkeypatch.setenv("XLA_FLAGS", flags)
    assert cpu_devices.keep_reductions_in_xla() is added
    expected = f"{flags} {cpu_devices.LIBRARY_FUSION_FLAG}=individual_dot".strip()
    assert os.environ["XLA_FLAGS"] == (expected if added else flags)


@pytest.fixture(scope="module")
def split_and_whole():
    runs = {}
    for devices in ("2", "1"):
        run = _python(SPLIT_BATCH_SCRIPT, LEARN2HOP_CPU_DEVICES=devices)
        assert run.returncode == 0, run.stderr
        runs[devices] = json.loads(run.stdout.splitlines()[-1])
    return runs["2"], runs["1"]


def test_an_even_batch_is_split_over_two_devices_and_an_odd_one_is_not(
    split_and_whole,
):
    split, whole = split_and_whole
    assert split["devices"] == 2 and whole["devices"] == 1
    assert split["even_batch_devices"] == 2 and split["hopping_devices"] == 2
    assert split["odd_batch_devices"] == 1
    assert whole["even_batch_devices"] == whole["hopping_devices"] == 1


def test_a_split_batch_computes_what_one_device_computes(split_and_whole):
    split, whole = split_and_whole
    np.testing.assert_allclose(
        split["fire_positions"], whole["fire_positions"], rtol=0, atol=1e-12
    )
    np.testing.assert_allclose(split["fire_best"], whole["fire_best"], rtol=1e-12)
    # 100 force calls: about half the starts quench and hop.
    assert sum(hops >= 1 for hops in whole["hops"]) >= 32
    np.testing.assert_allclose(
        split["hopping_positions"], whole["hopping_positions"], rtol=0, atol=1e-6
    )
    np.testing.assert_allclose(split["hopping_best"], whole["hopping_best"], rtol=1e-7)

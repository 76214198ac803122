"""Meta-training with two processes (``jax.distributed``, CPU, gloo collectives).

Two local processes of ``learn2hop train --coordinator-address 127.0.0.1:PORT
--num-processes 2 --process-id I`` (one CPU device each) shard the population over
their two devices; a single-process run of the same config (two CPU devices, so
each device evaluates the same shard of the same shape) must give bitwise the same
run: metrics, checkpoint state and exported weights. Process 1 itself checks, at
the end of the run (`distributed.assert_same_on_all_processes`), that it holds the
same theta as process 0; process 0 alone writes the files.
"""

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from flax import serialization

#: Every process must be done within this (seconds); about 60 s on a busy
#: 2-core machine. On time-out all are killed, so the test never hangs.
TIMEOUT_S = 240

#: Per-update timings, which differ from run to run.
TIMING_KEYS = ("wall_time_s", "elapsed_s")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _environment(cache, n_devices: int) -> dict[str, str]:
    environment = {
        key: value
        for key, value in os.environ.items()
        # gRPC (the coordinator) would send 127.0.0.1 through a proxy.
        if not key.lower().endswith("_proxy")
    }
    environment.update(
        JAX_PLATFORMS="cpu",
        XLA_FLAGS=f"--xla_force_host_platform_device_count={n_devices}",
        LEARN2HOP_CACHE=str(cache),
    )
    return environment


def _train(log_path, config_path, out, environment, *distributed):
    """``learn2hop train`` (the command line's own path) in a new process."""
    command = [sys.executable, "-m", "ase_learn2hop.cli", "train", str(config_path)]
    command += ["--out", str(out), "--quiet", *distributed]
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            command, env=environment, stdout=log, stderr=subprocess.STDOUT
        )
    process.log_path = log_path
    return process


def _wait_all(processes: dict[str, subprocess.Popen]) -> dict[str, str]:
    """Waits for all, killing every one left when one fails or time runs out."""
    deadline = time.monotonic() + TIMEOUT_S
    try:
        while any(process.poll() is None for process in processes.values()):
            failed = any(process.poll() for process in processes.values())
            if failed or time.monotonic() > deadline:
                break
            time.sleep(0.2)
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.kill()
                process.wait()
    outputs = {
        name: Path(process.log_path).read_text() for name, process in processes.items()
    }
    failed = {
        name: f"exit {process.returncode}:\n{outputs[name][-3000:]}"
        for name, process in processes.items()
        if process.returncode != 0
    }
    assert not failed, failed
    return outputs


def _metrics(out) -> list[dict]:
    rows = [
        json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()
    ]
    return [{k: v for k, v in row.items() if k not in TIMING_KEYS} for row in rows]


def _checkpoint_state(out) -> list[np.ndarray]:
    payload = serialization.msgpack_restore((out / "checkpoint.msgpack").read_bytes())
    flat = []

    def walk(node, path):
        if isinstance(node, dict):
            for key in sorted(node):
                walk(node[key], f"{path}/{key}")
        else:
            flat.append((path, np.asarray(node)))

    walk(payload["state"], "")
    return flat


def test_two_processes_train_exactly_like_one(tmp_path):
    config = {
        "name": "tiny",
        "systems": ["lj7"],
        "strategy": "ga",
        "horizon": 20,
        "population": 4,
        "confirm_instances": 2,
        "updates": 3,
        # 4 validation starts and 2 x 2 confirmation searches: every evaluation
        # has the population's shape, so each process compiles it once.
        "validation_starts": 4,
        "validate_every": 1,
        "checkpoint_every": 1,
        "polish_steps": 20,
        "adam_reference_starts": 4,
    }
    config_path = tmp_path / "tiny.json"
    config_path.write_text(json.dumps(config))
    port = _free_port()
    coordinator = ["--coordinator-address", f"127.0.0.1:{port}", "--num-processes", "2"]
    # One output folder for both, as on a shared file system: process 0 writes it.
    multi = tmp_path / "multi"
    single = tmp_path / "single"
    started = time.monotonic()
    processes = {
        # Its own cache: no two processes write one cache file at once.
        "single": _train(
            tmp_path / "single.log",
            config_path,
            single,
            _environment(tmp_path / "cache_single", 2),
        ),
        **{
            f"process {index}": _train(
                tmp_path / f"process{index}.log",
                config_path,
                multi,
                _environment(tmp_path / "cache_multi", 1),
                *coordinator,
                "--process-id",
                str(index),
            )
            for index in (0, 1)
        },
    }
    outputs = _wait_all(processes)
    print(f"three runs in {time.monotonic() - started:.1f} s")

    assert "wrote" in outputs["process 0"]
    assert "process 1 of 2 done" in outputs["process 1"], outputs["process 1"]
    # Only process 0 computed the Adam reference (and wrote the cache).
    assert len(list((tmp_path / "cache_multi").glob("*.json"))) == 1

    multi_metrics, single_metrics = _metrics(multi), _metrics(single)
    assert [row["update"] for row in multi_metrics] == [0, 1, 2, 3]
    assert multi_metrics == single_metrics

    multi_state, single_state = _checkpoint_state(multi), _checkpoint_state(single)
    assert [path for path, _ in multi_state] == [path for path, _ in single_state]
    assert any("theta" in path for path, _ in multi_state)
    for (path, multi_leaf), (_, single_leaf) in zip(multi_state, single_state):
        np.testing.assert_array_equal(multi_leaf, single_leaf, err_msg=path)

    multi_weights = json.loads((multi / "tiny.json").read_text())
    single_weights = json.loads((single / "tiny.json").read_text())
    assert multi_weights["sha256"] == single_weights["sha256"]
    assert (
        multi_weights["metrics"]["meta_loss_curve"]
        == single_weights["metrics"]["meta_loss_curve"]
    )

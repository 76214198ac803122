"""Structure-steps per second of the batched default search, by batch size (issue 12).

The product's default search (learned basin hopping,
``LearnedHopOptimizer(atoms, n_starts=K)``'s engine: ``hopping_search``) on
K starts at once, shipped weights, float64 energies, all pairs. For each
system and batch size it reports the first chunk's seconds (compile and
run), then the best of ``--repeats`` further chunks as structure-steps
(force calls) per second and µs per structure-step, and the device's peak
memory where the backend reports it. Runs unchanged on CPU and GPU; issue 12
asks for 10 000 LJ38 starts on a GPU.

Run:

    python benchmarks/search_throughput.py --systems lj38 --starts 1000 10000 --steps 200
"""

from __future__ import annotations

import argparse
import importlib
import math
import os
import platform
import time

import jax
import jax.numpy as jnp
import numpy as np
from ase_learn2hop.training.run import current_commit
from potential_throughput import best_time_per_structure


def shipped_hopping_setup(name: str, batch: int, package: str = "ase_learn2hop"):
    """``(system, weights, starts [batch, n, 3] float64, hopping)``: the
    system, the shipped weights and `HoppingConfig` that
    ``LearnedHopOptimizer(atoms, n_starts=batch)`` uses, and harmonic starts
    (seed 0). ``package``: the package to build them with (another
    revision's copy, `interleaved_ab`)."""
    systems = importlib.import_module(f"{package}.systems")
    methods = importlib.import_module(f"{package}.benchmark.time_to_minimum_methods")
    hopping_config = importlib.import_module(f"{package}.protocols").hopping_config

    system = systems.system_from_name(name)
    weights = methods.learned_weights(system)
    starts = jnp.asarray(
        systems.starting_structures(jax.random.key(0), system, batch), jnp.float64
    )
    hopping = hopping_config(weights, system, True, None, None, system.n_atoms)
    return system, weights, starts, hopping


def start_shipped_hopping(
    name: str,
    batch: int,
    key: int = 1,
    target_energy: float = -math.inf,
    package: str = "ase_learn2hop",
):
    """``LearnedHopOptimizer(atoms, n_starts=batch)``'s batched search begun
    at the starts of `shipped_hopping_setup` with ``jax.random.key(key)``: a
    `hopping_search.HoppingSearch` (its driver counts the force calls to
    ``target_energy``). ``package`` as in `shipped_hopping_setup`."""
    hopping_search = importlib.import_module(f"{package}.hopping_search")

    system, weights, starts, hopping = shipped_hopping_setup(name, batch, package)
    return hopping_search.hopping_start(
        weights.theta,
        weights.config,
        system.energy_fn,
        starts,
        system.context,
        system.potential_parameters,
        hopping=hopping,
        key=jax.random.key(key),
        target_energy=target_energy,
    )


def measure(name: str, batch: int, steps: int, repeats: int) -> dict:
    """One system at one batch size: ``{"compile_and_first_s", "us_per_step",
    "steps_per_second", "peak_memory_mb", ...}``."""
    from ase_learn2hop import hopping_search

    search = start_shipped_hopping(name, batch)

    def advance(search):
        # hopping_advance returns its records as NumPy arrays: the chunk is done.
        return hopping_search.hopping_advance(search, steps, chunk_steps=steps)[0]

    started = time.perf_counter()
    search = advance(search)
    first = time.perf_counter() - started

    def run():
        nonlocal search
        search = advance(search)

    per_step = best_time_per_structure(run, steps * batch, repeats)
    stats = jax.devices()[0].memory_stats() or {}
    peak = stats.get("peak_bytes_in_use")
    return {
        "system": name,
        "starts": batch,
        "compile_and_first_s": first,
        "us_per_step": per_step * 1e6,
        "steps_per_second": 1 / per_step,
        "peak_memory_mb": None if peak is None else peak / 2**20,
        "best_energy": float(np.min(np.asarray(search.carry.best_energy))),
    }


def table(rows: list[dict]) -> str:
    lines = [
        (
            "| system | starts | compile + first chunk (s) | structure-steps per s "
            "| µs per structure-step | peak device memory (MB) | lowest energy found |"
        ),
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        memory = row["peak_memory_mb"]
        lines.append(
            f"| {row['system']} | {row['starts']} "
            f"| {row['compile_and_first_s']:.1f} "
            f"| {row['steps_per_second']:.3g} | {row['us_per_step']:.3g} "
            f"| {'-' if memory is None else f'{memory:.0f}'} "
            f"| {row['best_energy']:.6f} |"
        )
    return "\n".join(lines)


def main() -> None:
    jax.config.update("jax_enable_x64", True)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--systems", nargs="+", default=["lj38"])
    parser.add_argument("--starts", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--steps", type=int, default=200, help="steps per chunk")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    rows = []
    for name in args.systems:
        for batch in args.starts:
            row = measure(name, batch, args.steps, args.repeats)
            print(row, flush=True)
            rows.append(row)
    device = jax.devices()[0]
    print(
        f"$ python benchmarks/search_throughput.py --systems {' '.join(args.systems)} "
        f"--starts {' '.join(map(str, args.starts))} --steps {args.steps}\n"
        f"{getattr(device, 'device_kind', device.platform)} "
        f"({platform.processor() or platform.machine()}, {os.cpu_count()} cores), "
        f"jax {jax.__version__} on {jax.default_backend()}, code {current_commit()}; "
        "shipped weights, float64 energies, network and features float32, "
        f"best of {args.repeats} chunks of {args.steps} steps\n\n" + table(rows)
    )


if __name__ == "__main__":
    main()

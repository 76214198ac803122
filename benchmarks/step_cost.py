"""Cost of one learned step against the number of atoms (issue 12's table).

For Lennard-Jones (and, with ``--potentials lj au``, Gupta gold) clusters of 13
to 1000 atoms (and Stillinger-Weber Si64 with ``--potentials si --sizes 64``), one search (batch of one, the product's default) on the batched
driver, shipped weights, float64 energies. Per size:

- learned step: one step of the learned optimizer *with* its energy-and-gradient
  call, µs, best of ``--repeats`` jitted chunks (compile excluded, reported),
  the neighbour list's rebuilds included;
- energy+grad: the potential's jitted value-and-gradient alone, µs per call
  (K calls inside one jitted scan, so dispatch is excluded);
- radial: the radial symmetry features alone, µs per call (same way);
- numpy LJ: one energy-and-gradient call of the NumPy Lennard-Jones that scipy's
  baseline uses (issue 12's single-search yardstick), µs;
- memory: XLA's compiled temporary buffers of the learned-step chunk plus its
  arguments and outputs (``memory_analysis()``), MiB;
- compile: seconds to compile the chunk.

The learned step is timed twice: radial features over all pairs, and on a
neighbour list (`ase_learn2hop.neighbours`, forced on at every size here; the
product turns it on from `features.RADIAL_LIST_MIN_ATOMS` atoms). "step / numpy LJ" takes
the faster of the two. Energies stay all pairs: Lennard-Jones and Gupta have no
cutoff (SPEC), and Stillinger-Weber's energy is not on lists.

Run:

    python benchmarks/step_cost.py --sizes 13 55 147 309 561 1000
"""

from __future__ import annotations

import os

for _variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

import argparse
import platform
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from potential_throughput import best_time_per_structure

from ase_learn2hop import neighbours

DEFAULT_SIZES = (13, 55, 147, 309, 561, 1000)
#: About this many pair evaluations per timed chunk (short chunks for big N).
PAIRS_PER_CHUNK = 2e7


def _per_call_seconds(function, argument, extra, calls: int, repeats: int) -> float:
    """Seconds per call of ``function(x, extra)`` over ``calls`` calls in one
    jitted scan, best of ``repeats``. ``extra`` is a jit argument (as in the
    driver, so no constant folding), and the input is nudged each call so
    that no call is folded away."""

    def run(x, extra):
        def body(x, _):
            leaves = jax.tree_util.tree_leaves(function(x, extra))
            nudge = sum(jnp.sum(leaf) for leaf in leaves) * 1e-30
            return x + nudge.astype(x.dtype), None

        return jax.lax.scan(body, x, length=calls)[0]

    scan = jax.jit(run)
    jax.block_until_ready(scan(argument, extra))
    return best_time_per_structure(
        lambda: jax.block_until_ready(scan(argument, extra)), calls, repeats
    )


def _numpy_seconds(positions: np.ndarray, repeats: int) -> float:
    from ase_learn2hop.benchmark.time_to_minimum_methods import lennard_jones_numpy

    flat = positions.reshape(-1).astype(np.float64)
    calls = max(3, int(2e6 / len(flat) ** 2))

    def run():
        for _ in range(calls):
            lennard_jones_numpy(flat)

    return best_time_per_structure(run, calls, repeats)


def _learned_step(system, weights, positions, context, steps: int, repeats: int):
    """(seconds per learned step with its energy call, compiled memory in
    bytes, compile seconds) of one search in ``context``."""
    from ase_learn2hop import driver, search, systems

    parameters = systems.broadcast_to_batch(
        search.SearchParameters(system.potential_parameters, context), 1
    )
    optimizer = search.learned_steps(weights.config, system.energy_fn)
    carry = driver.start(optimizer, positions, parameters, weights.theta)
    target = jnp.asarray(-jnp.inf, jnp.float64)
    active = jnp.asarray(steps)
    begin = time.perf_counter()
    compiled = driver.driver_advance.lower(
        optimizer, carry, parameters, weights.theta, target, active, steps=steps
    ).compile()
    compile_seconds = time.perf_counter() - begin
    memory = compiled.memory_analysis()
    memory_bytes = (
        memory.temp_size_in_bytes
        + memory.argument_size_in_bytes
        + memory.output_size_in_bytes
    )

    def advance():
        # The timed chunks go on from where the last one ended.
        nonlocal carry
        carry, energies = compiled(carry, parameters, weights.theta, target, active)[:2]
        jax.block_until_ready(energies)
        if neighbours.overflowed(carry):
            raise RuntimeError("the neighbour list overflowed: not timed")

    advance()
    seconds = best_time_per_structure(advance, steps, repeats)
    return seconds, memory_bytes, compile_seconds


def measure(potential: str, n_atoms: int, repeats: int) -> dict:
    from ase_learn2hop import features, systems
    from ase_learn2hop.benchmark.time_to_minimum_methods import learned_weights

    name = f"{potential}{n_atoms}"
    system = systems.system_from_name(name)
    weights = learned_weights(system)
    positions = jnp.asarray(
        systems.starting_structures(jax.random.key(0), system, 1), jnp.float64
    )
    steps = max(5, int(PAIRS_PER_CHUNK / n_atoms**2))
    step_seconds, memory_bytes, compile_seconds = _learned_step(
        system, weights, positions, system.context, steps, repeats
    )
    listed = features.with_radial_list(system.context, np.asarray(positions), 0)
    listed_seconds, listed_memory, _ = _learned_step(
        system, weights, positions, listed, steps, repeats
    )
    one = positions[0]
    value_and_grad = jax.value_and_grad(system.energy_fn)
    calls = max(5, int(PAIRS_PER_CHUNK / 4 / n_atoms**2))
    energy_seconds = _per_call_seconds(
        value_and_grad, one, system.potential_parameters, calls, repeats
    )
    radial_seconds = _per_call_seconds(
        lambda x, context: features.radial_symmetry_features(
            x.astype(jnp.float32), context
        ),
        one,
        system.context,
        calls,
        repeats,
    )
    numpy_seconds = (
        _numpy_seconds(np.asarray(one), repeats) if potential == "lj" else np.nan
    )
    return {
        "system": name,
        "n_atoms": n_atoms,
        "learned_step_us": step_seconds * 1e6,
        "listed_step_us": listed_seconds * 1e6,
        "capacity": listed.neighbour_list.capacity,
        "energy_gradient_us": energy_seconds * 1e6,
        "radial_us": radial_seconds * 1e6,
        "numpy_lj_us": numpy_seconds * 1e6,
        "memory_mib": memory_bytes / 2**20,
        "listed_memory_mib": listed_memory / 2**20,
        "compile_s": compile_seconds,
        "chunk_steps": steps,
    }


def table(rows: list[dict]) -> str:
    lines = [
        (
            "| system | atoms | learned step, all pairs (µs) | learned step, "
            "neighbour list (µs) | list capacity | energy+grad (µs) | radial, "
            "all pairs (µs) | numpy LJ (µs) | step / numpy LJ | memory, all "
            "pairs / list (MiB) | compile (s) |"
        ),
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        fastest = min(row["learned_step_us"], row["listed_step_us"])
        ratio = fastest / row["numpy_lj_us"]
        numpy_cell = (
            "–" if np.isnan(row["numpy_lj_us"]) else f"{row['numpy_lj_us']:.3g}"
        )
        ratio_cell = "–" if np.isnan(ratio) else f"{ratio:.2f}"
        lines.append(
            f"| {row['system']} | {row['n_atoms']} | {row['learned_step_us']:.3g} "
            f"| {row['listed_step_us']:.3g} | {row['capacity']} "
            f"| {row['energy_gradient_us']:.3g} | {row['radial_us']:.3g} "
            f"| {numpy_cell} | {ratio_cell} | {row['memory_mib']:.3g} / "
            f"{row['listed_memory_mib']:.3g} | {row['compile_s']:.1f} |"
        )
    return "\n".join(lines)


def main() -> None:
    jax.config.update("jax_enable_x64", True)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=list(DEFAULT_SIZES))
    parser.add_argument(
        "--potentials", nargs="+", default=["lj"], choices=["lj", "au", "si"]
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None, help="write the table here")
    args = parser.parse_args()
    rows = []
    for potential in args.potentials:
        for n_atoms in args.sizes:
            row = measure(potential, n_atoms, args.repeats)
            print(row, flush=True)
            rows.append(row)
    load = os.getloadavg()[0]
    header = (
        f"$ python benchmarks/step_cost.py --sizes {' '.join(map(str, args.sizes))} "
        f"--potentials {' '.join(args.potentials)}\n"
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"jax {jax.__version__} on {jax.default_backend()}, load average {load:.1f}; "
        "one search (batch of one), shipped weights, float64 energies\n"
    )
    text = header + "\n" + table(rows) + "\n"
    print(text)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)


if __name__ == "__main__":
    main()

"""Cost of a batched search per structure-step, and where it goes (issue 12).

Many starts as one batched computation (``LearnedHopOptimizer(atoms,
n_starts=K)``, the benchmark's batches) on the batched driver, shipped weights,
float64 energies, all pairs. Per system (LJ13, LJ38, Au55 by default):

- hopping: the product's default search (learned basin hopping: learned hops,
  L-BFGS quenches, Metropolis, restarts; and again without restarts,
  without each hop's random frame and without the quench's L-BFGS
  recursion: under ``vmap`` every start computes all three at every step),
  ``hopping_search.hopping_advance``, µs per structure and force call;
- paper: the paper's protocol (H learned steps, then the 1000-step polish),
  ``cycles.cycles_advance`` over whole cycles, µs per structure and learned
  step with the polish amortised;

and the breakdown, µs per structure: the radial symmetry features inside the
search (the hopping search timed again with them replaced by zeros: the
difference; parts timed alone in a scan of their own fuse differently and
cost more than inside the search from 38 atoms on), the energy and gradient
alone and the network alone (each in a jitted scan of the same batch); and
XLA's count of floating-point operations per structure in one learned update.

The batch is split over one CPU device per core (`ase_learn2hop.devices`),
as in the product; ``LEARN2HOP_CPU_DEVICES=1`` times it on one device.

Run:

    python benchmarks/batched_step_cost.py --starts 150 --out benchmarks/results/batched_step_cost.md
"""

from __future__ import annotations

import os

for _variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

import argparse
import contextlib
import platform
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from ase_learn2hop.training.run import current_commit
from potential_throughput import best_time_per_structure
from search_throughput import shipped_hopping_setup

from ase_learn2hop.precision import floating_as

DEFAULT_SYSTEMS = ("lj13", "lj38", "au55")
#: Timed steps per chunk of the whole search.
SEARCH_STEPS = 1000
#: Rounds over the whole search's variants (`measure`).
ROUNDS = 2
#: Calls per timed scan of a part.
PART_CALLS = 200


def _as_float32(tree):
    # As the learned step casts its inputs (learned_optimizer.update).
    return floating_as(tree, jnp.float32)


def _fresh_traces():
    """Forget every compiled search, so that the next is traced with the
    functions patched in (or back) now."""
    from ase_learn2hop import learned_hopping

    jax.clear_caches()
    learned_hopping.learned_hopping.cache_clear()


@contextlib.contextmanager
def _radial_features_replaced_by_zeros():
    """Every search traced inside computes zeros for the radial features (of
    the same shape), so that their share of a step can be timed."""
    from ase_learn2hop import features

    original = features.radial_symmetry_features

    def zeros(positions, context, **_):
        return jnp.zeros(
            (positions.shape[0], 2 * len(features.RADIAL_ETAS)), positions.dtype
        )

    features.radial_symmetry_features = zeros
    _fresh_traces()
    try:
        yield
    finally:
        features.radial_symmetry_features = original
        _fresh_traces()


@contextlib.contextmanager
def _quench_recursion_removed():
    """Every search traced inside takes the quench's direction as the
    gradient itself (optax's L-BFGS state kept, its two-loop recursion not
    run), so that the recursion's share of a step can be timed: under
    ``vmap`` every start runs it at every step, hopping or quenching."""
    import optax

    from ase_learn2hop import quench

    original = quench._lbfgs

    def without_recursion(memory):
        lbfgs = original(memory)
        return optax.GradientTransformation(
            lbfgs.init, lambda gradient, state, params=None: (gradient, state)
        )

    quench._lbfgs = without_recursion
    _fresh_traces()
    try:
        yield
    finally:
        quench._lbfgs = original
        _fresh_traces()


def _part_seconds(step, carry, batch: int, repeats: int) -> float:
    """Seconds per structure of ``carry -> step(carry)`` over `PART_CALLS`
    calls in one jitted scan, best of ``repeats``, the batch split over the
    devices as the search's is."""
    from ase_learn2hop import devices

    carry = devices.distribute(carry, batch)
    scan = jax.jit(
        lambda carry: jax.lax.scan(
            lambda carry, _: (step(carry), None), carry, length=PART_CALLS
        )[0]
    )
    jax.block_until_ready(scan(carry))
    return best_time_per_structure(
        lambda: jax.block_until_ready(scan(carry)), PART_CALLS * batch, repeats
    )


def _search_seconds(begin, advance, steps: int, batch: int, repeats: int) -> float:
    """Seconds per structure-step of ``advance(search, steps)``, best of
    ``repeats`` chunks that go on from where the last one ended (compiled
    by a first chunk)."""
    search = advance(begin(), steps)

    def run():
        nonlocal search
        search = advance(search, steps)

    return best_time_per_structure(run, steps * batch, repeats)


def measure(name: str, batch: int, repeats: int) -> dict:
    from ase_learn2hop import (
        cycles,
        features,
        hopping_search,
        learned_optimizer,
    )

    system, weights, starts, hopping = shipped_hopping_setup(name, batch)
    theta, config, context = weights.theta, weights.config, system.context
    common = (theta, config, system.energy_fn, starts, context)

    def advance_hopping(search, steps):
        return hopping_search.hopping_advance(search, steps, chunk_steps=steps)[0]

    def time_hopping(hopping=hopping):
        return _search_seconds(
            lambda: hopping_search.hopping_start(
                *common,
                system.potential_parameters,
                hopping=hopping,
                key=jax.random.key(1),
            ),
            advance_hopping,
            SEARCH_STEPS,
            batch,
            repeats,
        )

    # The parts are differences from the whole search, a microsecond or two
    # where one timing moves by 10-20% on this shared machine: every variant
    # is timed in each of `ROUNDS` rounds, in turn, and keeps its fastest.
    variants = {
        "hopping": (hopping, contextlib.nullcontext),
        # Under vmap every start draws a restart's new cluster at every step,
        "no_restart": (hopping._replace(restart_after=0), contextlib.nullcontext),
        # ... and a random frame, drawn and applied, for the hop it may begin,
        "no_frame": (hopping._replace(reorient=False), contextlib.nullcontext),
        # ... and the quench's L-BFGS recursion.
        "no_recursion": (hopping, _quench_recursion_removed),
        "no_radial": (hopping, _radial_features_replaced_by_zeros),
    }
    seconds = dict.fromkeys(variants, np.inf)
    for _ in range(ROUNDS):
        for variant, (settings, replaced) in variants.items():
            with replaced():
                seconds[variant] = min(seconds[variant], time_hopping(settings))
    cycle = weights.horizon

    def advance_cycles(search, steps):
        return cycles.cycles_advance(search, steps, chunk_steps=cycle)[0]

    paper_seconds = _search_seconds(
        lambda: cycles.cycles_start(
            *common,
            system.potential_parameters,
            horizon=cycle,
            relax_steps=0,
            reinsert=False,
        ),
        advance_cycles,
        cycle,
        batch,
        repeats,
    )

    value_and_grad = jax.vmap(jax.value_and_grad(system.energy_fn), in_axes=(0, None))
    _, gradient = value_and_grad(starts, system.potential_parameters)
    energy_seconds = _part_seconds(
        lambda x: x - 1e-9 * value_and_grad(x, system.potential_parameters)[1],
        starts,
        batch,
        repeats,
    )

    def one_update(state, x, g):
        return learned_optimizer.update(theta, config, state, x, g, context)

    batched_update = jax.vmap(one_update)
    states = jax.vmap(lambda x: learned_optimizer.init(x, context))(starts)
    flops = (
        jax.jit(batched_update)
        .lower(states, starts, gradient)
        .compile()
        .cost_analysis()
        .get("flops", np.nan)
        / batch
    )
    context32 = _as_float32(context)
    blocks = jax.vmap(
        lambda x, g, state: features.feature_blocks(
            config.features,
            *_as_float32((x, g, state.first_moments, state.second_moments)),
            state.step,
            context32,
        )
    )(starts, gradient, states)
    network = jax.vmap(
        lambda b: learned_optimizer.apply_network(theta["network"], b, config)
    )
    network_seconds = _part_seconds(
        lambda b: b._replace(
            component=b.component
            + 1e-30 * jnp.sum(network(b)[..., :1], axis=-1)[..., None]
        ),
        blocks,
        batch,
        repeats,
    )
    return {
        "system": name,
        "n_atoms": system.n_atoms,
        "batch": batch,
        "hop_steps": hopping.hop_steps,
        "horizon": cycle,
        "hopping_us": seconds["hopping"] * 1e6,
        "no_restart_us": seconds["no_restart"] * 1e6,
        "no_frame_us": seconds["no_frame"] * 1e6,
        "no_recursion_us": seconds["no_recursion"] * 1e6,
        "paper_us": paper_seconds * 1e6,
        "energy_gradient_us": energy_seconds * 1e6,
        "no_radial_us": seconds["no_radial"] * 1e6,
        "network_us": network_seconds * 1e6,
        "update_kflops": flops / 1e3,
    }


def table(rows: list[dict]) -> str:
    lines = [
        (
            "| system | starts | whole search, hopping (µs) | hopping without "
            "restarts (µs) | random frames in the hopping search (µs) | "
            "L-BFGS recursion in the hopping search (µs) | whole search, paper "
            "protocol, polish amortised (µs) | radial features in the hopping "
            "search (µs) | energy+grad alone (µs) | network alone (µs) | learned "
            "update (kflop) |"
        ),
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['system']} | {row['batch']} | {row['hopping_us']:.3g} "
            f"| {row['no_restart_us']:.3g} "
            f"| {row['hopping_us'] - row['no_frame_us']:.3g} "
            f"| {row['hopping_us'] - row['no_recursion_us']:.3g} "
            f"| {row['paper_us']:.3g} "
            f"| {row['hopping_us'] - row['no_radial_us']:.3g} "
            f"| {row['energy_gradient_us']:.3g} "
            f"| {row['network_us']:.3g} | {row['update_kflops']:.0f} |"
        )
    return "\n".join(lines)


def main() -> None:
    jax.config.update("jax_enable_x64", True)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--systems", nargs="+", default=list(DEFAULT_SYSTEMS))
    parser.add_argument("--starts", type=int, default=150)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None, help="write the table here")
    args = parser.parse_args()
    rows = []
    for name in args.systems:
        started = time.perf_counter()
        row = measure(name, args.starts, args.repeats)
        print(row, f"({time.perf_counter() - started:.0f} s)", flush=True)
        rows.append(row)
    commit = current_commit()
    text = (
        f"$ python benchmarks/batched_step_cost.py --systems {' '.join(args.systems)} "
        f"--starts {args.starts}\n"
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"jax {jax.__version__} on {jax.default_backend()}, the batch split over "
        f"{len(jax.local_devices())} device(s) (ase_learn2hop.devices), load average "
        f"{os.getloadavg()[0]:.1f}, code {commit}; µs per structure and step, "
        "shipped weights, float64 energies, network and features float32\n\n"
        + table(rows)
        + "\n"
    )
    print(text)
    if args.out is not None:
        args.out.write_text(text)


if __name__ == "__main__":
    main()

"""Cost of one learned basin-hopping search per force call, by phase (issue 12).

One search (``n_starts=1``, the product's default) or a batch, shipped
weights, float64 energies: µs per structure and force call of

- the search with its defaults (hops, quenches, Metropolis, restarts);
- the same without restarts;
- hops only (a hop longer than the run: every call is a learned step);
- an L-BFGS quench alone (`quench.lbfgs_descent` on the driver, never
  converging from the harmonic starts within the run).

Each best of 3 chunks after a first that compiles. Run:

    python benchmarks/hopping_phase_cost.py --systems lj13 lj26 lj38 --starts 1
"""

from __future__ import annotations

import os

for _variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

import argparse
import platform
import time

import jax
import jax.numpy as jnp
from ase_learn2hop.training.run import current_commit

from ase_learn2hop import driver, hopping_search, quench, systems
from ase_learn2hop.benchmark.time_to_minimum_methods import learned_weights
from ase_learn2hop.protocols import hopping_config

STEPS = 2000


def microseconds(advance, state, batch: int) -> float:
    """µs per structure and call of ``state -> advance(state)`` (`STEPS`
    calls), best of 3 after a first call that compiles."""
    state = advance(state)
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        state = advance(state)
        jax.block_until_ready(jax.tree_util.tree_leaves(state))
        best = min(best, time.perf_counter() - started)
    return best / STEPS / batch * 1e6


def measure(name: str, batch: int) -> list[float]:
    system = systems.system_from_name(name)
    weights = learned_weights(system)
    default = hopping_config(weights, system, True, None, None, system.n_atoms)
    starts = jnp.asarray(
        systems.starting_structures(jax.random.key(0), system, batch), jnp.float64
    )

    def hopping(settings):
        search = hopping_search.hopping_start(
            weights.theta, weights.config, system.energy_fn, starts,
            system.context, system.potential_parameters, hopping=settings,
            key=jax.random.key(1),
        )  # fmt: skip
        return microseconds(
            lambda search: hopping_search.hopping_advance(
                search, STEPS, chunk_steps=STEPS
            )[0],
            search,
            batch,
        )

    lbfgs = quench.lbfgs_descent(system.energy_fn)
    parameters = systems.broadcast_to_batch(system.potential_parameters, batch)
    return [
        hopping(default),
        hopping(default._replace(restart_after=0)),
        hopping(default._replace(hop_steps=10**8)),
        microseconds(
            lambda carry: (
                driver.advance(
                    lbfgs, carry, STEPS, parameters, None, record_every=STEPS
                ).carry
            ),
            driver.start(lbfgs, starts, parameters, None),
            batch,
        ),
    ]


def main() -> None:
    jax.config.update("jax_enable_x64", True)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--systems", nargs="+", default=["lj13", "lj26", "lj38"])
    parser.add_argument("--starts", type=int, default=1)
    args = parser.parse_args()
    print(
        f"{platform.machine()}, {os.cpu_count()} cores, jax {jax.__version__} on "
        f"{jax.default_backend()}, load average {os.getloadavg()[0]:.1f}, code "
        f"{current_commit()}; µs per structure and force call, {args.starts} "
        "start(s)\n"
    )
    print(
        "| system | search, defaults | without restarts | hops only (learned "
        "steps) | L-BFGS quench alone |"
    )
    print("|---|---|---|---|---|")
    for name in args.systems:
        row = measure(name, args.starts)
        print(f"| {name} | " + " | ".join(f"{value:.1f}" for value in row) + " |")


if __name__ == "__main__":
    main()

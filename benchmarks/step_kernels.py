"""Kernels XLA runs per learned step of one search (issue 12: on this CPU each
kernel has a fixed cost, so their count bounds the step's time from below).

Compiles the driver's chunk of learned steps for one search of ``--system``
(shipped weights, float64 energies, as `step_cost.py` times it) and counts
the instructions of the step loop's body in the optimized HLO, by kind
(fusions, matrix products, copies, ...; tuple plumbing, constants and
parameters are not kernels and are left out).

    python benchmarks/step_kernels.py --system lj13
"""

from __future__ import annotations

import argparse
import collections
import re

import jax
import jax.numpy as jnp

from ase_learn2hop import driver, search, systems
from ase_learn2hop.benchmark.time_to_minimum_methods import learned_weights

NOT_KERNELS = ("get-tuple-element", "constant", "parameter", "tuple", "bitcast")


def step_kernels(name: str, steps: int = 100) -> collections.Counter:
    """Instruction kinds of the largest while-loop body of the compiled chunk."""
    system = systems.system_from_name(name)
    weights = learned_weights(system)
    positions = jnp.asarray(
        systems.starting_structures(jax.random.key(0), system, 1), jnp.float64
    )
    parameters = systems.broadcast_to_batch(
        search.SearchParameters(system.potential_parameters, system.context), 1
    )
    optimizer = search.learned_steps(weights.config, system.energy_fn)
    carry = driver.start(optimizer, positions, parameters, weights.theta)
    text = (
        driver.driver_advance.lower(
            optimizer,
            carry,
            parameters,
            weights.theta,
            jnp.asarray(-jnp.inf, jnp.float64),
            jnp.asarray(steps),
            steps=steps,
        )
        .compile()
        .as_text()
    )
    bodies = []
    for computation in re.split(r"\n(?=\S.*\{\n)", text):
        if not computation.startswith("%wide.region"):
            continue
        kinds = collections.Counter(
            match.group(1)
            for match in re.finditer(r"=\s*\S+\s+([\w-]+)\(", computation)
        )
        bodies.append(
            collections.Counter(
                {kind: n for kind, n in kinds.items() if kind not in NOT_KERNELS}
            )
        )
    return max(bodies, key=lambda kinds: sum(kinds.values()))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--system", default="lj13")
    arguments = parser.parse_args(argv)
    jax.config.update("jax_enable_x64", True)
    kinds = step_kernels(arguments.system)
    listed = ", ".join(f"{n} {kind}" for kind, n in kinds.most_common())
    print(f"{arguments.system}: {sum(kinds.values())} kernels per step ({listed})")


if __name__ == "__main__":
    main()

"""Force calls to the global minimum of scipy's basin hopping against its
L-BFGS-B quench tolerances: the baseline's best settings.

R runs of the time-to-minimum benchmark's ``scipy_basin_hopping`` from its
relaxed starts (``--seed`` picks the set of starts; run i draws scipy's moves
from seed + i, as the benchmark does), one per ``ftol,gtol`` pair (an empty
field: scipy's default, ftol 2.2e-9 and gtol 1e-5); per setting the successes
and the median and quartiles of the force calls at the first call within 1e-3
relative of the global minimum (failed runs count as above the budget), and
each run's first hit ("-": none), in the order of the starts. Force
calls are exact, so a loaded machine changes only the wall time.

Run:

    python benchmarks/scipy_settings.py --system lj26 --runs 96 --seed 7 --tolerances , 1e-5, 1e-4,
"""

from __future__ import annotations

import os

for _variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

import argparse
import platform
import time

import jax
import numpy as np
from ase_learn2hop.training.run import current_commit
from hop_length import listed_first_hits

from ase_learn2hop import systems
from ase_learn2hop.benchmark import time_to_minimum_methods as methods
from ase_learn2hop.benchmark.censored_statistics import (
    censored_quantile,
    time_to_threshold,
)
from ase_learn2hop.benchmark.protocol import global_minimum_threshold


def first_hits(system, starts, seed, force_calls, seconds, options) -> np.ndarray:
    """``[runs]`` force calls at each run's first hit (+inf: none)."""
    target = global_minimum_threshold(system.global_minimum)
    return np.array(
        [
            time_to_threshold(
                methods.run_scipy_basin_hopping(
                    system,
                    start,
                    seconds,
                    force_calls,
                    target,
                    seed + index,
                    quench_options=options,
                ),
                target,
                seconds,
                force_calls,
            )[0]
            for index, start in enumerate(starts)
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--system", default="lj13")
    parser.add_argument("--runs", type=int, default=96)
    parser.add_argument("--seed", type=int, default=7, help="set of starts")
    parser.add_argument("--force-calls", type=int, default=1_000_000)
    parser.add_argument("--seconds", type=float, default=60.0, help="per run")
    parser.add_argument(
        "--tolerances",
        nargs="+",
        default=[","],
        help="ftol,gtol pairs (an empty field: scipy's default)",
    )
    arguments = parser.parse_args()
    system = systems.system_from_name(arguments.system)
    starts = methods.relaxed_starts(
        system, jax.random.key(arguments.seed), arguments.runs
    )
    print(
        f"{platform.machine()}, jax {jax.__version__}, code {current_commit()}; "
        f"{system.name}, {arguments.runs} runs, seed {arguments.seed}, "
        f"{arguments.force_calls} force calls or {arguments.seconds:g} s each, "
        f"success within 1e-3 relative of {system.global_minimum}\n"
    )
    print(
        "| ftol | gtol | successes | median force calls [q1, q3] | first hits "
        "| wall s |"
    )
    print("|---|---|---|---|---|---|")
    for pair in arguments.tolerances:
        ftol, gtol = (pair.split(",") + [""])[:2]
        options = {
            name: float(value)
            for name, value in (("ftol", ftol), ("gtol", gtol))
            if value
        }
        started = time.perf_counter()
        hits = first_hits(
            system,
            starts,
            arguments.seed,
            arguments.force_calls,
            arguments.seconds,
            options,
        )
        median, first, third = (
            f"{value:.0f}" if np.isfinite(value) else f"> {arguments.force_calls}"
            for value in (censored_quantile(hits, q) for q in (0.5, 0.25, 0.75))
        )
        print(
            f"| {ftol or 'default'} | {gtol or 'default'} "
            f"| {int(np.isfinite(hits).sum())}/{len(hits)} "
            f"| {median} [{first}, {third}] "
            f"| {listed_first_hits(hits)} "
            f"| {time.perf_counter() - started:.0f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()

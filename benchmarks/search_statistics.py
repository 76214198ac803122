"""Does a change of rounding move what the batched search finds? (issue 12)

A change that computes the same functions with other rounding (a matrix
product summed in another order) parts the default search's trajectories
within tens of force calls: the hops grow float32's last bit by orders of
magnitude per step. Trajectories cannot be compared then; what the search
finds can. This runs the product's default search
(``LearnedHopOptimizer(atoms, n_starts=K)``'s engine, shipped weights, the
harmonic starts of `search_throughput.shipped_hopping_setup`) from the same
starts with each of ``--keys`` (the Metropolis and frame draws) and reports
per run how many starts reached the global minimum (within
``GLOBAL_MINIMUM_TOLERANCE`` of it), the force calls at which they did
(median and quartiles), and the mean lowest energy. Runs of one code with
two keys are the noise that a change of rounding is judged against: run the
code before the change (a ``git worktree`` on ``PYTHONPATH``) and after.

Run:

    python benchmarks/search_statistics.py --systems lj13 lj38 --starts 150 --calls 5000 --keys 1 2
"""

from __future__ import annotations

import argparse
import os
import platform

import jax
import numpy as np
from ase_learn2hop.training.run import current_commit
from search_throughput import start_shipped_hopping


def run(name: str, batch: int, calls: int, key: int) -> dict:
    """The default search of ``batch`` starts for ``calls`` force calls."""
    from ase_learn2hop import hopping_search, systems
    from ase_learn2hop.benchmark.protocol import global_minimum_threshold

    target = global_minimum_threshold(systems.system_from_name(name).global_minimum)
    search = start_shipped_hopping(name, batch, key, target)
    search = hopping_search.hopping_advance(search, calls)[0]
    first_hit = np.asarray(search.carry.first_hit)
    hits = first_hit[first_hit > 0]
    quartiles = np.percentile(hits, [25, 50, 75]) if hits.size else [np.nan] * 3
    return {
        "system": name,
        "starts": batch,
        "calls": calls,
        "key": key,
        "hits": int(hits.size),
        "quartiles": quartiles,
        "mean_best": float(np.mean(np.asarray(search.carry.best_energy))),
        "lowest": float(np.min(np.asarray(search.carry.best_energy))),
    }


def table(rows: list[dict]) -> str:
    lines = [
        (
            "| system | starts | force calls | key | starts at the global minimum "
            "| force calls to it: quartiles | mean lowest energy | lowest energy |"
        ),
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        q1, median, q3 = row["quartiles"]
        lines.append(
            f"| {row['system']} | {row['starts']} | {row['calls']} | {row['key']} "
            f"| {row['hits']} | {q1:.0f} / {median:.0f} / {q3:.0f} "
            f"| {row['mean_best']:.4f} | {row['lowest']:.4f} |"
        )
    return "\n".join(lines)


def main() -> None:
    jax.config.update("jax_enable_x64", True)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--systems", nargs="+", default=["lj13", "lj38"])
    parser.add_argument("--starts", type=int, default=150)
    parser.add_argument("--calls", type=int, default=5000)
    parser.add_argument("--keys", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    rows = []
    for name in args.systems:
        for key in args.keys:
            rows.append(run(name, args.starts, args.calls, key))
            print(rows[-1], flush=True)
    print(
        f"$ python benchmarks/search_statistics.py --systems {' '.join(args.systems)} "
        f"--starts {args.starts} --calls {args.calls} "
        f"--keys {' '.join(map(str, args.keys))}\n"
        f"{platform.machine()}, {os.cpu_count()} cores, jax {jax.__version__} on "
        f"{jax.default_backend()}, code {current_commit()}\n\n" + table(rows)
    )


if __name__ == "__main__":
    main()

"""The paper's Table 2 protocol for the baselines: 150 starts per system.

Adam and FIRE (learning rates 0.01, 0.005, 0.001), the paper's basin hopping
(step sizes 0.2, 0.4, 0.6, 0.8) and, on the first ``--ase-starts`` starts, ASE's
FIRE and BasinHopping, on LJ13, LJ75, Au55 and Si64, with the paper's Table 2
beside them. Systems run one after the other and the tables, JSON and figures are
rewritten after each, so a run stopped early keeps every finished system.

The paper ran 50000 steps; on a 2-core CPU that is hours (Si64 costs about 60 ms
per step for 150 starts), so pick ``--steps`` to fit the machine:

    python benchmarks/paper_table2.py --steps 5000 --out benchmarks/results/paper_table2
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import ase_learn2hop  # noqa: F401  (float64 before any array is made)
from ase_learn2hop import benchmark, plots  # noqa: F401  (plots: loaded now)

BASELINES = ("adam", "fire", "basin_hopping", "ase_fire", "ase_basin_hopping")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--systems", nargs="+", default=list(benchmark.DEFAULT_SYSTEMS))
    parser.add_argument("--methods", nargs="+", default=list(BASELINES))
    parser.add_argument("--starts", type=int, default=benchmark.PAPER_STARTS)
    parser.add_argument("--steps", type=int, default=5000)
    parser.add_argument("--ase-starts", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="benchmarks/results/paper_table2")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)

    finished: list[benchmark.SystemResult] = []
    started = time.perf_counter()
    complete = True
    for name in args.systems:
        settings = benchmark.BenchmarkSettings(
            systems=(name,),
            methods=tuple(args.methods),
            starts=args.starts,
            steps=args.steps,
            seed=args.seed,
            ase_starts=args.ase_starts,
        )
        system_started = time.perf_counter()
        run = benchmark.run_benchmark(settings, quiet=args.quiet)
        finished.extend(run.systems)
        for result in run.systems:
            print(benchmark.terminal_table(result), flush=True)
            print(f"({time.perf_counter() - system_started:.0f} s)\n", flush=True)
        complete = run.complete
        overall = benchmark.BenchmarkRun(
            benchmark.BenchmarkSettings(
                systems=tuple(args.systems),
                methods=tuple(args.methods),
                starts=args.starts,
                steps=args.steps,
                seed=args.seed,
                ase_starts=args.ase_starts,
            ),
            finished,
            complete and name == args.systems[-1],
            time.perf_counter() - started,
        )
        benchmark.write_outputs(overall, Path(args.out))
        if not complete:
            print("interrupted: wrote what finished", file=sys.stderr)
            return 130
    print(f"total {time.perf_counter() - started:.0f} s; wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

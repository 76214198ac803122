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

import jax

from ase_learn2hop.benchmark import (
    figures,  # noqa: F401  (Matplotlib loaded now, not after the first system)
    orchestration,
    protocol,
    report,
)

BASELINES = ("adam", "fire", "basin_hopping", "ase_fire", "ase_basin_hopping")


def main(argv: list[str] | None = None) -> int:
    # Our own process: float64 everywhere (energies to 1e-6), switched explicitly.
    jax.config.update("jax_enable_x64", True)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--systems", nargs="+", default=list(protocol.DEFAULT_SYSTEMS))
    parser.add_argument("--methods", nargs="+", default=list(BASELINES))
    parser.add_argument("--starts", type=int, default=protocol.PAPER_STARTS)
    parser.add_argument("--steps", type=int, default=5000)
    parser.add_argument("--ase-starts", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="benchmarks/results/paper_table2")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)

    finished: list[protocol.SystemResult] = []
    started = time.perf_counter()
    complete = True
    for name in args.systems:
        settings = protocol.BenchmarkSettings(
            systems=(name,),
            methods=tuple(args.methods),
            starts=args.starts,
            steps=args.steps,
            seed=args.seed,
            ase_starts=args.ase_starts,
        )
        system_started = time.perf_counter()
        run = orchestration.run_benchmark(settings, quiet=args.quiet)
        finished.extend(run.systems)
        for result in run.systems:
            print(report.terminal_table(result), flush=True)
            print(f"({time.perf_counter() - system_started:.0f} s)\n", flush=True)
        complete = run.complete
        overall = protocol.BenchmarkRun(
            protocol.BenchmarkSettings(
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
        report.write_outputs(overall, Path(args.out))
        if not complete:
            print("interrupted: wrote what finished", file=sys.stderr)
            return 130
    print(f"total {time.perf_counter() - started:.0f} s; wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

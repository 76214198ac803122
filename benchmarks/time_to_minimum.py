"""Time to the global minimum: Learn2Hop beside scipy's and ASE's basin hopping.

Every method runs once from each of the same FIRE-relaxed random starts, with
the same wall-time and force-call budget per run; writes time_to_minimum.md,
.json and .png into --out. Run:

    python benchmarks/time_to_minimum.py --systems lj13 lj26 --runs 6

The NumPy baseline runs with single-threaded BLAS: threadpoolctl when installed,
and in any case OPENBLAS_NUM_THREADS / OMP_NUM_THREADS / MKL_NUM_THREADS = 1
set here before NumPy is imported (said in the output).
"""

from __future__ import annotations

import os

for _variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

import argparse
from pathlib import Path

import jax


def main() -> None:
    jax.config.update("jax_enable_x64", True)
    from ase_learn2hop.benchmark import time_to_minimum as ttm
    from ase_learn2hop.benchmark.time_to_minimum_figure import success_figure

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--systems", nargs="+", default=["lj13", "lj26"])
    parser.add_argument("--runs", type=int, default=6)
    parser.add_argument(
        "--seconds",
        type=float,
        default=None,
        help=f"wall time per run (default per system: {ttm.DEFAULT_SECONDS}, "
        f"else {ttm.FALLBACK_SECONDS:g})",
    )
    parser.add_argument("--force-calls", type=int, default=ttm.DEFAULT_FORCE_CALLS)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--methods",
        nargs="+",
        default=list(ttm.DEFAULT_METHODS),
        choices=list(ttm.METHODS),
    )
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args()
    results = ttm.run_time_to_minimum(
        args.systems,
        args.runs,
        args.seconds,
        args.force_calls,
        args.seed,
        args.methods,
    )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "time_to_minimum.md").write_text(ttm.markdown_table(results))
    (args.out / "time_to_minimum.json").write_text(ttm.to_json(results))
    success_figure(results, args.out / "time_to_minimum.png")
    print(ttm.terminal_table(results))
    print(f"wrote {args.out}/time_to_minimum.md, .json, .png")


if __name__ == "__main__":
    main()

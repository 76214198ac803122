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
    from ase_learn2hop.benchmark.time_to_minimum_command import add_arguments

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(parser)
    parser.set_defaults(out=Path("benchmarks/results"))
    args = parser.parse_args()
    args.handler(args)


if __name__ == "__main__":
    main()

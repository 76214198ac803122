"""A bimetallic composition scan with its convex hull (paper Figure 7): the
excess energy of Ag(N-m)Au(m) against m for each method, from the benchmark API.

    python examples/bimetallic_hull.py                          # AgAu38, ~15 min
    python examples/bimetallic_hull.py --pair PdPt              # PdPt38
    python examples/bimetallic_hull.py --fast                   # AgAu8, seconds

Excess energy: E(m) - (N - m)/N E(0) - m/N E(N), with the lowest minimum each
method found at each composition (the pure clusters E(0), E(N) are the lowest any
method found). The learned optimizer uses the shipped ``agau`` weights for AgAu
and ``bimetallic`` for the other pairs (PdPt is a pair they never saw); pass
--weights to use yours.
"""

import argparse
import os

import jax

from ase_learn2hop.benchmark.orchestration import run_benchmark
from ase_learn2hop.benchmark.protocol import BenchmarkSettings
from ase_learn2hop.benchmark.report import terminal_table, write_outputs


def fast_mode(args) -> bool:
    return args.fast or os.environ.get("LEARN2HOP_EXAMPLE_FAST") == "1"


def main() -> None:
    # Our own process: float64 everywhere (energies to 1e-6), switched explicitly.
    jax.config.update("jax_enable_x64", True)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pair", default="AgAu", help="AgAu, AgPt, PdAu or PdPt")
    parser.add_argument("--size", type=int, help="atoms per cluster (default 38)")
    parser.add_argument("--compositions", type=int, nargs="+")
    parser.add_argument("--starts", type=int)
    parser.add_argument("--steps", type=int)
    parser.add_argument("--weights")
    parser.add_argument("--out", default="bimetallic_hull")
    parser.add_argument("--fast", action="store_true", help="a quick check")
    args = parser.parse_args()
    fast = fast_mode(args)
    size = args.size or (8 if fast else 38)
    compositions = args.compositions or (
        [0, 4, 8] if fast else list(range(0, size + 1, 4)) + [size]
    )
    settings = BenchmarkSettings(
        systems=(f"{args.pair}{size}",),
        compositions=tuple(compositions),
        methods=("learned", "basin_hopping")
        if fast
        else ("learned", "fire", "basin_hopping"),
        starts=args.starts or (2 if fast else 16),
        steps=args.steps or (100 if fast else 3000),
        learning_rates=(0.01,) if fast else (0.01, 0.005, 0.001),
        step_sizes=(0.4,) if fast else (0.2, 0.4, 0.6, 0.8),
        weights=args.weights,
    )
    run = run_benchmark(settings, quiet=fast)
    for result in run.systems:
        print(terminal_table(result))
        print()
    written = write_outputs(run, args.out)
    for path in written["figures"]:
        print(f"wrote {path}")


if __name__ == "__main__":
    main()

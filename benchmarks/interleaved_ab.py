"""The batched search's cost per structure-step against another revision's,
both in one process, chunk by chunk (issue 12).

This shared 2-core machine's speed moves by 10-30% from one minute to the
next, so two processes timed one after the other disagree by more than most
changes gain. Here the other revision's package is imported beside this
tree's, the same batched search (``LearnedHopOptimizer(atoms, n_starts=K)``'s
learned basin hopping, shipped weights, harmonic starts of seed 0, split over
one CPU device per core) is compiled once for each, and their chunks of
``--steps`` force calls alternate for ``--rounds`` rounds, so that each pair
meets the machine in the same state. The comparison is the median of the
per-round ratios, with their quartiles.

The other revision is checked out into a temporary git worktree and its
package (with its ``training`` and ``pretrained`` folders) is copied under
the name ``ase_learn2hop_base``, its own imports rewritten to that name.
Compilation is not timed (the first chunk of each is discarded).

Run:

    python benchmarks/interleaved_ab.py --against eefb3c2 --systems lj13 lj38 au55
"""

from __future__ import annotations

import os

for _variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

import argparse
import importlib
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import jax
import numpy as np
from ase_learn2hop.training.run import current_commit
from search_throughput import start_shipped_hopping

import ase_learn2hop

BASE_PACKAGE = "ase_learn2hop_base"
ROOT = Path(__file__).resolve().parent.parent


def copy_revision(revision: str, folder: Path) -> str:
    """Copy ``revision``'s package into ``folder`` as `BASE_PACKAGE`; returns
    the full commit hash."""
    worktree = folder / "worktree"
    subprocess.run(
        ["git", "worktree", "add", "--detach", "-f", str(worktree), revision],
        cwd=ROOT, check=True, capture_output=True,
    )  # fmt: skip
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=worktree, check=True,
            capture_output=True, text=True,
        ).stdout.strip()  # fmt: skip
        package = folder / "packages" / BASE_PACKAGE
        shutil.copytree(worktree / "ase_learn2hop", package)
        for extra in ("training", "pretrained"):
            shutil.copytree(worktree / extra, package / extra)
        # Module names only: not the file formats ("ase_learn2hop-weights").
        name = re.compile(r"\base_learn2hop(?![-/\w])")
        for source in package.rglob("*.py"):
            source.write_text(name.sub(BASE_PACKAGE, source.read_text()))
    finally:
        subprocess.run(
            ["git", "worktree", "remove", "--force", str(worktree)],
            cwd=ROOT, check=True, capture_output=True,
        )  # fmt: skip
    sys.path.insert(0, str(folder / "packages"))
    return commit


def compiled_search(package: str, system_name: str, starts: int, steps: int):
    """``(run, carry)``: ``run(carry)`` advances ``package``'s batched
    hopping search (`search_throughput.start_shipped_hopping`) by ``steps``
    force calls (compiled and run once)."""

    def module(name):
        return importlib.import_module(f"{package}.{name}")

    search = start_shipped_hopping(system_name, starts, key=1, package=package)
    optimizer = module("learned_hopping").learned_hopping(
        search.config, search.energy_fn, search.hopping
    )
    carry, parameters = module("devices").distribute(
        (search.carry, search.parameters), starts
    )
    target = np.asarray(-np.inf)
    program = (
        module("driver")
        .driver_advance.jitted.lower(
            optimizer, carry, parameters, search.theta, target, steps, steps, False
        )
        .compile()
    )

    def run(carry):
        carry = program(carry, parameters, search.theta, target, steps)[0]
        return jax.block_until_ready(carry)

    return run, run(carry)


def interleaved(runs: dict, rounds: int) -> dict[str, list[float]]:
    """Seconds of each run's chunk, the runs alternating for ``rounds``."""
    carries = {name: carry for name, (_, carry) in runs.items()}
    seconds = {name: [] for name in runs}
    for _ in range(rounds):
        for name, (run, _) in runs.items():
            start = time.perf_counter()
            carries[name] = run(carries[name])
            seconds[name].append(time.perf_counter() - start)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--against", required=True, help="git revision")
    parser.add_argument("--systems", nargs="+", default=["lj13"])
    parser.add_argument("--starts", type=int, default=150)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=12)
    args = parser.parse_args()
    jax.config.update("jax_enable_x64", True)
    print(f"$ python benchmarks/interleaved_ab.py {' '.join(sys.argv[1:])}")
    with tempfile.TemporaryDirectory() as folder:
        base = copy_revision(args.against, Path(folder))
        print(
            f"{platform.machine()}, {os.cpu_count()} cores, jax {jax.__version__}, "
            f"{jax.device_count()} device(s); this tree {current_commit()} against "
            f"{base}; µs per structure and force call, {args.steps} calls per "
            f"chunk, {args.starts} starts, {args.rounds} rounds alternating\n"
        )
        print("| system | base: median (min) | this tree: median (min) | "
              "ratio this/base: median | quartiles |")  # fmt: skip
        print("|---|---|---|---|---|")
        for name in args.systems:
            runs = {
                "base": compiled_search(BASE_PACKAGE, name, args.starts, args.steps),
                "tree": compiled_search(
                    ase_learn2hop.__name__, name, args.starts, args.steps
                ),
            }
            seconds = interleaved(runs, args.rounds)
            micro = {
                k: 1e6 * np.asarray(v) / (args.steps * args.starts)
                for k, v in seconds.items()
            }
            ratio = micro["tree"] / micro["base"]
            quartiles = np.percentile(ratio, [25, 75])
            print(
                f"| {name} | {np.median(micro['base']):.2f} "
                f"({micro['base'].min():.2f}) | {np.median(micro['tree']):.2f} "
                f"({micro['tree'].min():.2f}) | {np.median(ratio):.3f} | "
                f"{quartiles[0]:.3f}-{quartiles[1]:.3f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()

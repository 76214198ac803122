"""Seconds to import the optimizer in a new process, and what it compiles (issue 12).

Every run of ``learn2hop`` or of a user's script pays the import once. Times,
in fresh processes, alternating, best of ``--repeats`` each:

- ``import jax`` alone (the floor);
- ``from ase_learn2hop import LearnedHopOptimizer`` as shipped (jax-md's
  submodules imported on first use, `ase_learn2hop.lazy_imports`);
- the same after ``import jax_md`` (jax-md's whole package, as every import
  of ours paid before `lazy_imports`);

and counts the XLA programs each compiles (JAX_LOG_COMPILES=1).

Run:

    python benchmarks/import_time.py --out benchmarks/results/import_time.md
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

from ase_learn2hop.training.run import current_commit

CASES = {
    "import jax": "import jax",
    "from ase_learn2hop import LearnedHopOptimizer": (
        "from ase_learn2hop import LearnedHopOptimizer; import ase_learn2hop.optimizer"
    ),
    "import jax_md, then the same": (
        "import jax_md; from ase_learn2hop import LearnedHopOptimizer; "
        "import ase_learn2hop.optimizer"
    ),
}


def one_import(statement: str) -> tuple[float, int]:
    """``(seconds, compiled programs)`` of ``python -c statement``."""
    env = {**os.environ, "JAX_LOG_COMPILES": "1"}
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", statement],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    seconds = time.perf_counter() - started
    return seconds, done.stderr.count("Compiling ")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    best = dict.fromkeys(CASES, float("inf"))
    compiled = {}
    for _ in range(args.repeats):
        for name, statement in CASES.items():
            seconds, compiled[name] = one_import(statement)
            best[name] = min(best[name], seconds)
    lines = [
        f"$ python benchmarks/import_time.py --repeats {args.repeats}",
        (
            f"{platform.machine()}, {os.cpu_count()} cores, Python "
            f"{platform.python_version()}, code {current_commit()}; a new "
            f"process each, best of {args.repeats}, the cases alternating"
        ),
        "",
        (
            "| what the process runs | seconds (process start to exit) "
            "| XLA programs compiled |"
        ),
        "|---|---|---|",
    ]
    lines += [f"| `{name}` | {best[name]:.2f} | {compiled[name]} |" for name in CASES]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()

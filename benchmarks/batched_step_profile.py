"""Where the batched search's time goes, kernel by kernel (issue 12).

Profiles 200 force calls of ``LearnedHopOptimizer(atoms, n_starts=150)``'s
search (`search_throughput.start_shipped_hopping`, compiled by a first
chunk) with ``jax.profiler`` and prints each top-level XLA kernel's share of
the devices' time, and the kernels nested in loops and conditionals under
the one that runs them. Names are XLA's (``while``: a loop, ``conditional``:
a ``lax.cond``, ``ynn_fusion``: a matrix product); map them to the source
with ``XLA_FLAGS=--xla_dump_to=DIR --xla_dump_hlo_as_text``. The profiler's
own cost inflates small kernels.

Run:

    python benchmarks/batched_step_profile.py --systems lj13 --out benchmarks/results/batched_step_profile.md
"""

from __future__ import annotations

import argparse
import collections
import glob
import tempfile
from pathlib import Path

import jax
from ase_learn2hop.training.run import current_commit
from search_throughput import start_shipped_hopping

from ase_learn2hop import hopping_search

STEPS = 200
#: Events on the kernel threads that are not kernels: the executor's and the
#: profiler's own.
NOT_KERNELS = ("Thunk", "Threadpool", "SlinkyThreadPool", "end: ")


def kernel_shares(name: str, batch: int) -> tuple[dict, dict]:
    """``(top, nested)``: fraction of the devices' kernel time per top-level
    kernel name, and per ``(parent, kernel)`` for nested ones."""
    search = start_shipped_hopping(name, batch)
    search = hopping_search.hopping_advance(search, STEPS, chunk_steps=STEPS)[0]
    jax.block_until_ready(search)
    with tempfile.TemporaryDirectory() as folder:
        jax.profiler.start_trace(folder)
        search = hopping_search.hopping_advance(search, STEPS, chunk_steps=STEPS)[0]
        jax.block_until_ready(search)
        jax.profiler.stop_trace()
        (path,) = glob.glob(f"{folder}/**/*.xplane.pb", recursive=True)
        profile = jax.profiler.ProfileData.from_file(path)
    top = collections.Counter()
    nested = collections.Counter()
    for plane in profile.planes:
        for line in plane.lines:
            if not line.name.startswith("tf_XLAEigen"):
                continue  # the threads that run the compiled kernels
            events = sorted(
                (event.start_ns, event.start_ns + event.duration_ns, event.name)
                for event in line.events
            )
            enclosing = []
            for start, end, kernel in events:
                while enclosing and enclosing[-1][1] <= start:
                    enclosing.pop()
                parents = [p for _, _, p in enclosing if not p.startswith(NOT_KERNELS)]
                if not kernel.startswith(NOT_KERNELS):
                    if parents:
                        nested[(parents[0], kernel)] += end - start
                    else:
                        top[kernel] += end - start
                enclosing.append((start, end, kernel))
    total = sum(top.values())
    return (
        {k: v / total for k, v in top.items()},
        {k: v / total for k, v in nested.items()},
    )


def main() -> None:
    jax.config.update("jax_enable_x64", True)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--systems", nargs="+", default=["lj13"])
    parser.add_argument("--starts", type=int, default=150)
    parser.add_argument("--rows", type=int, default=25)
    parser.add_argument("--out", type=Path, default=None, help="write the tables here")
    args = parser.parse_args()
    text = (
        f"$ python benchmarks/batched_step_profile.py --systems {' '.join(args.systems)}"
        f" --starts {args.starts}\njax {jax.__version__} on {jax.default_backend()}, "
        f"{len(jax.local_devices())} device(s), code {current_commit()}\n"
    )
    for name in args.systems:
        top, nested = kernel_shares(name, args.starts)
        text += f"\n{name}, {args.starts} starts, {STEPS} force calls\n\n"
        text += "| kernel | share of the devices' time | inside it |\n|---|---|---|\n"
        for kernel, share in sorted(top.items(), key=lambda item: -item[1])[
            : args.rows
        ]:
            inside = sorted(
                ((k, v) for (p, k), v in nested.items() if p == kernel),
                key=lambda item: -item[1],
            )[:3]
            inner = ", ".join(f"{k} {100 * v:.1f}%" for k, v in inside if v >= 0.001)
            text += f"| {kernel} | {100 * share:.1f}% | {inner} |\n"
    print(text)
    if args.out is not None:
        args.out.write_text(text)


if __name__ == "__main__":
    main()

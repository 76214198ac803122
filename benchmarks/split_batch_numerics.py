"""Does a batch split over devices follow the same trajectories as on one device? (issue 12)

The product's default search (learned basin hopping, shipped weights, the
starts of `search_throughput.shipped_hopping_setup`) run twice, each in a
fresh process: with the batch split over the CPU devices
(`ase_learn2hop.devices`, one per core) and with ``LEARN2HOP_CPU_DEVICES=1``.
Prints, per system, the largest difference of any coordinate between the two
runs after every 100 force calls, and how many starts differ by more than
1e-6 (length units) at the end.

Run:

    python benchmarks/split_batch_numerics.py --out benchmarks/results/split_batch_numerics.md
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

#: (system, starts, force calls): LJ13 at the batched benchmark's 150 starts.
CASES = (("lj13", 150, 1000), ("lj38", 6, 1000), ("au55", 4, 1000))
#: Force calls between two comparisons.
EVERY = 100


def run(out: Path) -> None:
    """One run of every case in this process; positions to ``out`` (npz)."""
    import jax
    import numpy as np
    from search_throughput import start_shipped_hopping

    from ase_learn2hop import hopping_search

    jax.config.update("jax_enable_x64", True)
    positions = {}
    for name, batch, calls in CASES:
        search = start_shipped_hopping(name, batch)
        for chunk in range(calls // EVERY):
            search = hopping_search.hopping_advance(search, EVERY, chunk_steps=EVERY)[0]
            positions[f"{name}/{chunk}"] = np.asarray(search.carry.state.positions)
        positions[f"{name}/devices"] = np.asarray(
            len(search.carry.state.positions.sharding.device_set)
        )
    np.savez(out, **positions)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--run", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run is not None:
        run(args.run)
        return
    import numpy as np

    files = {}
    with tempfile.TemporaryDirectory() as folder:
        for label, devices in (("split", None), ("one device", "1")):
            environment = dict(os.environ)
            environment.pop("LEARN2HOP_CPU_DEVICES", None)
            if devices is not None:
                environment["LEARN2HOP_CPU_DEVICES"] = devices
            path = Path(folder) / f"{devices or 'split'}.npz"
            subprocess.run(
                [sys.executable, __file__, "--run", str(path)],
                env=environment,
                check=True,
            )
            files[label] = dict(np.load(path))
    split, single = files["split"], files["one device"]
    lines = [
        "$ python benchmarks/split_batch_numerics.py",
        "",
        (
            "| system | starts | devices, split / one | largest coordinate "
            f"difference after every {EVERY} force calls | starts differing by "
            "more than 1e-6 at the end |"
        ),
        "|---|---|---|---|---|",
    ]
    for name, batch, calls in CASES:
        chunks = range(calls // EVERY)
        differences = [
            np.max(np.abs(split[f"{name}/{c}"] - single[f"{name}/{c}"])) for c in chunks
        ]
        last = np.abs(split[f"{name}/{chunks[-1]}"] - single[f"{name}/{chunks[-1]}"])
        differing = int(np.sum(last.max(axis=(1, 2)) > 1e-6))
        lines.append(
            f"| {name} | {batch} | {int(split[f'{name}/devices'])} / "
            f"{int(single[f'{name}/devices'])} | "
            + " ".join(f"{d:.1e}" for d in differences)
            + f" | {differing} |"
        )
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out is not None:
        args.out.write_text(text)


if __name__ == "__main__":
    main()

"""Learned basin hopping with k random-displacement moves between learned hops.

Each learned hop and its quench is followed by k moves of scipy's kind (every
coordinate of the current minimum displaced uniformly within +-step length
scales), each quenched by our L-BFGS. Needs ``random_moves.patch`` applied
(on faae403). From the repository root:

    python benchmarks/results/hopping_moves_seed7/random_moves.py lj13 96 10000 7 0,0.4, 1,0.4,

Each spec is ``k,step,hop_steps`` (hop_steps empty: the weights' own).
"""

import sys
import time

import numpy as np

sys.path.insert(0, "benchmarks")
import hop_length

from ase_learn2hop import systems

name, runs, calls, seed = sys.argv[1], *map(int, sys.argv[2:5])
system = systems.system_from_name(name)
for spec in sys.argv[5:]:
    moves, step, hop = spec.split(",")
    started = time.perf_counter()
    hits, hopping = hop_length.first_hits(
        system,
        runs,
        calls,
        int(hop) if hop else None,
        seed,
        random_moves=int(moves),
        random_step=float(step),
    )
    median, first, third = np.percentile(hits, [50, 25, 75])
    print(
        f"{name} k={moves} step={step} hop={hopping.hop_steps}: "
        f"{np.isfinite(hits).sum()}/{runs} median {median:.0f} "
        f"[{first:.0f},{third:.0f}] {time.perf_counter() - started:.0f}s",
        flush=True,
    )

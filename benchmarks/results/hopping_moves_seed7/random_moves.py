"""Learned basin hopping with k random-displacement moves (uniform, scipy's
step, quenched by our L-BFGS) between learned hops; needs random_moves.patch
applied. Run from the repository root:
    python benchmarks/results/hopping_moves_seed7/random_moves.py lj13 96 10000 7 0,0.4, 1,0.4, ...
Each spec is k,step,hop_steps (empty: the weights' own)."""
import sys, time, numpy as np
sys.path.insert(0, "benchmarks")
import hop_length
from ase_learn2hop import systems
name, runs, calls, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
system = systems.system_from_name(name)
for spec in sys.argv[5:]:
    k, step, hop = spec.split(",")
    t = time.perf_counter()
    hits, h = hop_length.first_hits(system, runs, calls, int(hop) if hop else None, seed,
                                    random_moves=int(k), random_step=float(step))
    q = np.percentile(hits, [50, 25, 75])
    print(f"{name} k={k} step={step} hop={h.hop_steps}: {np.isfinite(hits).sum()}/{runs} median {q[0]:.0f} [{q[1]:.0f},{q[2]:.0f}] {time.perf_counter()-t:.0f}s", flush=True)

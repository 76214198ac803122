"""A long learned walk with a quench of its point every K steps: force calls
(walk steps plus every quench so far) at which each walk first quenches
into the global minimum.
    python benchmarks/results/hopping_moves_seed7/long_walk_first_hit.py lj26 100 7 8000 130
"""
import sys, numpy as np, jax, jax.numpy as jnp
import pathlib
exec(open(pathlib.Path(__file__).with_name("long_walk.py")).read().split("with float64():")[0].replace("T = int(sys.argv[4]); checkpoints = [int(x) for x in sys.argv[5].split(\",\")]", "T=int(sys.argv[4]); K=int(sys.argv[5])"))
with float64():
    starts = jnp.asarray(methods.relaxed_starts(system, jax.random.key(seed), runs))
    minima, emin, it = quench_all(starts)
    keys = jax.random.split(jax.random.key(seed + 11), runs)
    xs = hop(minima, keys)
    hit_at = np.full(runs, np.inf); calls = np.zeros(runs); cost = np.full(runs, np.inf)
    for t in range(K, T + 1, K):
        _, e, it = quench_all(xs[:, t - 1])
        e = np.asarray(e); it = np.asarray(it)
        new = (e < target) & ~np.isfinite(hit_at)
        calls_before = calls.copy()
        calls += it
        cost[new] = t + calls_before[new] + it[new]
        hit_at[new] = t
    q = np.percentile(cost, [50, 25, 75])
    print(f"{name} K={K} T={T}: {np.isfinite(cost).sum()}/{runs} hit; median cost {q[0]:.0f} [{q[1]:.0f},{q[2]:.0f}]; mean quench {calls.mean()/(T//K):.1f}")

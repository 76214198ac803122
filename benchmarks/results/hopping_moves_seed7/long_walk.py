"""One long learned walk per start from its quenched relaxed start (shipped
weights, fresh state, random frame), and a quench (L-BFGS to fmax 1e-2) of
the walk's point after t steps: how many land in the global minimum.
    python benchmarks/results/hopping_moves_seed7/long_walk.py lj26 400 7 390 20,40,65,100,130,195,260,325,390
"""
import sys, numpy as np, jax, jax.numpy as jnp
from ase_learn2hop import systems, learned_optimizer, quench
from ase_learn2hop.benchmark import time_to_minimum_methods as methods
from ase_learn2hop.precision import float64
name, runs, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
T = int(sys.argv[4]); checkpoints = [int(x) for x in sys.argv[5].split(",")]
system = systems.system_from_name(name)
weights = methods.learned_weights(system)
theta, config, ctx, pp = weights.theta, weights.config, system.context, system.potential_parameters
vg = jax.value_and_grad(system.energy_fn)
target = system.global_minimum * (1 - 1e-3)

def quench_all(x, steps=600):
    def one(x):
        e, g = vg(x, pp)
        q = quench.quench_begin(x, e, g)
        def body(q, _):
            done = quench.quench_converged(q, 1e-2)
            t = quench.quench_trial(q, quench.MAX_STEP)
            e, g = vg(t, pp)
            q2 = quench.quench_observe(q, t, e, g)
            q = jax.tree_util.tree_map(lambda a, b: jnp.where(done, a, b), q, q2)
            return q, None
        q, _ = jax.lax.scan(body, q, None, length=steps)
        return q.positions, q.energy, q.iterations
    return jax.jit(jax.vmap(one))(x)

def hop(x, key):
    def one(x, key):
        e, g = vg(x, pp)
        from ase_learn2hop.geometry import FREE
        x, g = ctx.geometry.random_frame(key, x, g)
        st = learned_optimizer.init(x, ctx)
        def body(c, _):
            x, g, st = c
            d, st = learned_optimizer.update(theta, config, st, x, g, ctx)
            x = ctx.geometry.move(x, d)
            e, g = vg(x, pp)
            return (x, g, st), x
        _, xs = jax.lax.scan(body, (x, g, st), None, length=T)
        return xs
    return jax.jit(jax.vmap(one))(x, key)

with float64():
    starts = jnp.asarray(methods.relaxed_starts(system, jax.random.key(seed), runs))
    minima, emin, it = quench_all(starts)
    print("start minima: median E", float(jnp.median(emin)), "hits", int((emin < target).sum()), "quench iters", float(jnp.mean(it)))
    keys = jax.random.split(jax.random.key(seed + 11), runs)
    xs = hop(minima, keys)   # [runs, T, n, 3]
    for t in checkpoints:
        _, e, it = quench_all(xs[:, t - 1])
        print(f"t={t}: hits {int((e < target).sum())}/{runs}  mean quench calls {float(jnp.mean(it)):.1f}  median E {float(jnp.median(e)):.3f}", flush=True)

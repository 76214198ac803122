"""The objective of two weight files on 1024 LJ13 searches of 600 calls, two
start sets (README.md). Run from the repository root:
PYTHONPATH=. python benchmarks/results/training_time_to_minimum_lj13/weights_objective.py lj13 1024 600 130 pretrained/lj_hopping.json pretrained/lj.json"""

import sys
import time

import jax
import numpy as np

jax.config.update("jax_enable_x64", True)
from ase_learn2hop import systems
from ase_learn2hop.benchmark.protocol import global_minimum_threshold
from ase_learn2hop.learned_hopping import HoppingConfig, hopping_best_so_far
from ase_learn2hop.weights import load_weights
from training.tasks import local_minima_starts

name, K, B, hop = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
system = systems.system_from_name(name)
thr = global_minimum_threshold(system.global_minimum)
for wname in sys.argv[5:]:
    w = load_weights(wname)
    hopping = HoppingConfig(hop_steps=hop, temperature=0.8)

    def one(theta, pos, key, w=w, hopping=hopping):
        return hopping_best_so_far(
            theta,
            w.config,
            system.energy_fn,
            hopping,
            pos,
            system.context,
            system.potential_parameters,
            key,
            budget=B,
        )

    f = jax.jit(jax.vmap(one, in_axes=(None, 0, 0)))
    for seed in (1, 2):
        starts = systems.starting_structures(jax.random.key(seed), system, K)
        starts = local_minima_starts(system, starts)
        keys = jax.random.split(jax.random.key(seed + 100), K)
        t = time.time()
        best = np.asarray(f(w.theta, starts, keys))
        dt = time.time() - t
        notyet = best > thr
        loss = notyet.mean()
        hit = (~notyet[:, -1]).mean()
        print(
            wname,
            seed,
            f"loss {loss:.4f} hit {hit:.3f} {dt:.1f}s {dt / K / B * 1e6:.1f}us/step",
            flush=True,
        )

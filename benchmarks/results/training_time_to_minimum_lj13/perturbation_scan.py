"""The objective on the shipped weights and on random perturbations of them
(the sigma scan of README.md). Run from the repository root:
PYTHONPATH=. python benchmarks/results/training_time_to_minimum_lj13/perturbation_scan.py"""

import time

import jax
import jax.numpy as jnp
import numpy as np

jax.config.update("jax_enable_x64", True)
from jax.flatten_util import ravel_pytree

from ase_learn2hop.weights import load_weights
from training.run import (
    load_config,
    meta_loss_from_config,
    network_config,
    tasks_from_config,
)
from training.tasks import make_instance_sampler

c = load_config("lj13_hopping_time_cpu")
tasks = tasks_from_config(c)
net = network_config(c)
loss = jax.jit(jax.vmap(meta_loss_from_config(c, tasks, net), in_axes=(0, None)))
inst = make_instance_sampler(tasks, 1.0, 256)(jax.random.key(5), 1)
inst = tuple(x[0] for x in inst)
w = load_weights("pretrained/lj_hopping.json")
flat, unravel = ravel_pytree(w.theta)
print("params", flat.size, "rms", float(jnp.sqrt(jnp.mean(flat**2))))
for sigma in (0.0, 0.003, 0.01, 0.03):
    eps = sigma * jax.random.normal(jax.random.key(3), (8, flat.size))
    cands = jax.vmap(unravel)(flat[None] + eps)
    t = time.time()
    l = np.asarray(loss(cands, inst))
    print(sigma, np.round(l, 3), f"{time.time() - t:.1f}s", flush=True)

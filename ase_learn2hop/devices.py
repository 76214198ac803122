"""A batch of starts split over the devices, each device running its share.

JAX's CPU backend starts with one device, and a batched search on it keeps
two cores only partly busy (150 LJ13 starts: 1.7 s of CPU time per second).
With one CPU device per core (`cpu_devices`, asked for when
``ase_learn2hop`` is imported) each device runs its share of the starts on
its own: 150 LJ13 starts took 10.5 instead of 15.8 µs per structure-step on
a 2-core machine, LJ38 26.7 instead of 32.2, Au55 58.6 instead of 75.8
(scratch timings; `benchmarks/batched_step_cost.py` for the committed ones).
One search (a batch of one) is unchanged.

`distribute` places a batch (every leaf batched on axis 0) over the largest
number of this process's devices that divides it, and `per_device` runs a
batched function on each device's share (``shard_map``: no communication
between devices, the starts are independent). The batched driver does both.
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

#: Name of the batch axis of the mesh.
BATCH_AXIS = "starts"


def batch_mesh(batch: int) -> Mesh | None:
    """A 1-D mesh over the largest number of this process's devices (of the
    default backend) that divides ``batch``; ``None`` when that is one."""
    # This process's own: in a multi-process run (training's
    # `jax.distributed`) every process runs its own searches.
    devices = jax.local_devices()
    count = max(d for d in range(1, len(devices) + 1) if batch % d == 0)
    if count == 1:
        return None
    return Mesh(np.asarray(devices[:count]), (BATCH_AXIS,))


def batch_sharding(batch: int) -> NamedSharding | None:
    """Sharding of a ``[batch, ...]`` array over `batch_mesh`; ``None`` for
    one device."""
    mesh = batch_mesh(batch)
    return None if mesh is None else NamedSharding(mesh, PartitionSpec(BATCH_AXIS))


def per_device(function, mesh: Mesh | None):
    """``function`` (its arguments and results batched on axis 0; traced
    values it closes over are shared) run by each device of ``mesh`` on its
    own part of the batch; ``function`` itself when ``mesh`` is ``None``.

    Each device runs the program of a batch of its share's size, compiled
    apart from the one-device program, so XLA's rewrites may round
    differently: Lennard-Jones searches give the same bits as on one device
    (to float64's last bit over hundreds of steps), Gupta and
    Stillinger-Weber ones can differ in float32's last bit (the features'
    division by the length scale), which chaotic hops then grow.
    """
    if mesh is None:
        return function
    split = PartitionSpec(BATCH_AXIS)
    return jax.shard_map(
        function, mesh=mesh, in_specs=split, out_specs=split, check_vma=False
    )


def over_batch(function, axis_name: str | None = None):
    """``jax.vmap(function, axis_name=axis_name)`` with the batch (axis 0 of
    every argument's leaves) split over `batch_mesh` by `per_device`."""
    batched = jax.vmap(function, axis_name=axis_name)

    def run(*arguments):
        batch = jax.tree_util.tree_leaves(arguments)[0].shape[0]
        return per_device(batched, batch_mesh(batch))(*arguments)

    return run


def on_one_cpu_device(leaf: Any) -> bool:
    """Whether ``leaf`` is a concrete array on one CPU device that NumPy can
    take as it is (not a tracer, a PRNG key or weakly typed: NumPy would drop
    what makes those so), so that host-side work on it compiles nothing."""
    return (
        isinstance(leaf, jax.Array)
        and not isinstance(leaf, jax.core.Tracer)
        and not jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key)
        and not leaf.weak_type
        and len(leaf.devices()) == 1
        and next(iter(leaf.devices())).platform == "cpu"
    )


def distribute(tree: Any, batch: int) -> Any:
    """``tree`` (every array leaf batched on axis 0, ``batch`` long) split over
    the devices of `batch_sharding`; unchanged on one device."""
    sharding = batch_sharding(batch)
    if sharding is None:
        return tree

    def place(leaf):
        if np.ndim(leaf) == 0 or np.shape(leaf)[0] != batch:
            return leaf
        if on_one_cpu_device(leaf):
            # Through NumPy (the same memory): splitting a one-device array
            # compiles a slicing program per shape in every new process.
            leaf = np.asarray(leaf)
        return jax.device_put(leaf, sharding)

    return jax.tree_util.tree_map(place, tree)

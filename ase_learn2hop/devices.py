"""Many starts on every CPU core: one JAX CPU device per core, the batch split over them.

JAX's CPU backend starts with one device by default, and a batched search on
it keeps two cores only partly busy (150 LJ13 starts: 1.7 s of CPU time per
second). Split over one device per core, each device runs its share of the
starts on its own: 150 LJ13 starts took 10.5 instead of 15.8 µs per
structure-step on this 2-core machine, LJ38 26.7 instead of 32.2, Au55 58.6
instead of 75.8 (`benchmarks/batched_step_cost.py`). One search (a batch of
one) is unchanged.

`ask_for_one_cpu_device_per_core` runs when ``ase_learn2hop`` is imported:
JAX's device count can be set only before its backend starts, and importing
jax-md already starts it. It changes nothing when JAX has started already,
when the user chose a CPU device count (``XLA_FLAGS``'s
``--xla_force_host_platform_device_count``, ``JAX_NUM_CPU_DEVICES`` or
``jax_num_cpu_devices``), or with ``LEARN2HOP_CPU_DEVICES=1``; another value
of ``LEARN2HOP_CPU_DEVICES`` asks for that many devices. Arrays the user makes
stay on the first device, as before.

`distribute` places a batch (every leaf batched on axis 0) over the largest
number of the default backend's devices that divides it; the batched driver
calls it on its carry and parameters, and ``jax.jit`` splits the search
along the batch (no communication between devices: the starts are
independent).
"""

from __future__ import annotations

import os
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

#: Environment variable: how many CPU devices to ask JAX for (1: JAX's default).
SWITCH = "LEARN2HOP_CPU_DEVICES"
#: Name of the batch axis of the mesh.
BATCH_AXIS = "starts"


def usable_cores() -> int:
    """Cores this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def requested_cpu_devices() -> int:
    """``LEARN2HOP_CPU_DEVICES`` as a positive count, `usable_cores` when unset.

    Raises:
        ValueError: the variable is set to something else than a positive
            integer.
    """
    value = os.environ.get(SWITCH, "").strip()
    if not value:
        return usable_cores()
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"{SWITCH} must be a positive integer, got {value!r}")
    return int(value)


def _user_chose_cpu_devices() -> bool:
    return (
        "xla_force_host_platform_device_count" in os.environ.get("XLA_FLAGS", "")
        or "JAX_NUM_CPU_DEVICES" in os.environ
        or jax.config.jax_num_cpu_devices >= 0
    )


def ask_for_one_cpu_device_per_core() -> bool:
    """Ask JAX for `requested_cpu_devices` CPU devices if it has not started.

    Returns:
        whether the setting was made.
    """
    count = requested_cpu_devices()
    if count <= 1 or _user_chose_cpu_devices():
        return False
    try:
        jax.config.update("jax_num_cpu_devices", count)
    except RuntimeError:
        # JAX's backend has started (the user computed something, or imported
        # jax-md, before ase_learn2hop): its device count stays.
        return False
    return True


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

    Each device runs the program a batch of its part's size runs on one
    device, so the results are the same bits (with ``jax.jit``'s automatic
    partitioning of the whole batch they drift from float32's last bit on).
    """
    if mesh is None:
        return function
    split = PartitionSpec(BATCH_AXIS)
    return jax.shard_map(
        function, mesh=mesh, in_specs=split, out_specs=split, check_vma=False
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
        return jax.device_put(leaf, sharding)

    return jax.tree_util.tree_map(place, tree)

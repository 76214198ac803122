"""One JAX CPU device per core, asked for when ``ase_learn2hop`` is imported.

The batched driver splits a batch of starts over the devices (`devices`);
JAX's CPU backend has one device unless asked for more before it starts, and
importing jax-md already starts it, so the package's ``__init__`` calls
`ask_for_one_cpu_device_per_core` before anything else.

It changes nothing when JAX has started already, when the user chose a CPU
device count (``XLA_FLAGS``'s ``--xla_force_host_platform_device_count``,
``JAX_NUM_CPU_DEVICES`` or ``jax_num_cpu_devices``), or with
``LEARN2HOP_CPU_DEVICES=1``; another value of ``LEARN2HOP_CPU_DEVICES`` asks
for that many devices. Arrays the user makes stay on the first device, as
before, and JAX's precision is not touched (`precision`).
"""

from __future__ import annotations

import os

import jax

#: Environment variable: how many CPU devices to ask JAX for (1: JAX's default).
SWITCH = "LEARN2HOP_CPU_DEVICES"


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

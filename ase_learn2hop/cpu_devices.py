"""One JAX CPU device per core, and batch-invariant reductions, asked for when
``ase_learn2hop`` is imported.

The batched driver splits a batch of starts over the devices (`devices`);
JAX's CPU backend has one device unless asked for more before it starts, and
importing jax-md already starts it, so the package's ``__init__`` calls
`ask_for_one_cpu_device_per_core` and `keep_reductions_in_xla` before
anything else.

It changes nothing when JAX has started already, when the user chose a CPU
device count (``XLA_FLAGS``'s ``--xla_force_host_platform_device_count``,
``JAX_NUM_CPU_DEVICES`` or ``jax_num_cpu_devices``), or with
``LEARN2HOP_CPU_DEVICES=1``; another value of ``LEARN2HOP_CPU_DEVICES`` asks
for that many devices. Arrays the user makes stay on the first device, as
before, and JAX's precision is not touched (`precision`).

`keep_reductions_in_xla` keeps XLA's CPU reductions in XLA's own loops
(jaxlib 0.12 hands large ones to the YNNPACK library, whose kernels sum in an
order that depends on how many rows the batch has), so that a start computes
the same bits in any batch and on any number of devices.
"""

from __future__ import annotations

import os
import re

import jax
import jaxlib

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


#: XLA's CPU flag naming the operations it hands to the YNNPACK library.
LIBRARY_FUSION_FLAG = "--xla_cpu_experimental_ynn_fusion_type"
#: Matrix products only: jaxlib 0.10's default. jaxlib 0.12's default adds
#: reductions above a size, which made a start's sums (the quench step's norm,
#: the L-BFGS dot products) round differently in a batch of 128 starts than in
#: 64 (a batch split over two devices); 100 force calls of learned hopping
#: grew that to 0.4 Å (`tests/test_devices.py`,
#: `benchmarks/results/split_batch_numerics.md`). With products only, the
#: batched search also ran faster there (LJ13 1.2x, Au55 2x;
#: `benchmarks/results/batched_step_cost.md`).
LIBRARY_FUSION = "individual_dot"
#: jaxlib releases known to have the flag: XLA aborts the process on a flag
#: it does not know, so a release outside these is left as it is.
FLAG_KNOWN_FROM, FLAG_KNOWN_BEFORE = (0, 10), (0, 13)


def _jaxlib_release() -> tuple[int, int]:
    numbers = re.findall(r"\d+", jaxlib.__version__)
    return int(numbers[0]), int(numbers[1])


def keep_reductions_in_xla() -> bool:
    """Add ``--xla_cpu_experimental_ynn_fusion_type=individual_dot`` to
    ``XLA_FLAGS`` unless the user set that flag or jaxlib may not know it.

    XLA reads its flags when JAX's backend starts, so this takes effect only
    when ``ase_learn2hop`` is imported before JAX has started (as
    `ask_for_one_cpu_device_per_core`).

    Returns:
        whether the flag was added.
    """
    flags = os.environ.get("XLA_FLAGS", "")
    if LIBRARY_FUSION_FLAG.lstrip("-") in flags:
        return False
    if not FLAG_KNOWN_FROM <= _jaxlib_release() < FLAG_KNOWN_BEFORE:
        return False
    os.environ["XLA_FLAGS"] = f"{flags} {LIBRARY_FUSION_FLAG}={LIBRARY_FUSION}".strip()
    return True

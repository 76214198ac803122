"""JAX's persistent compilation cache, so a second run compiles almost nothing.

Jitting the learned search costs seconds per process (more than the search
itself on small clusters). `enable` points JAX's persistent compilation cache at
a folder in the user's cache directory, so that the next process that runs the
same shapes loads the compiled programs from disk instead of compiling them.

`LearnedHopOptimizer` and the ``learn2hop`` command call `enable` (never an
import), and it never overrides a cache directory the user chose: if
``jax_compilation_cache_dir`` is already set, it is left alone. Move the cache
with ``LEARN2HOP_CACHE`` (the folder ``jax`` inside it is used).

Off by default, on with ``LEARN2HOP_COMPILATION_CACHE=1``. Decision: with jax
0.10.1 on CPU, every program loaded from the cache logs an ERROR line claiming
the compile machine's features ("+prefer-no-scatter", a tuning flag, not an
instruction set) differ from the host's and that this "could lead to SIGILL";
measured on this machine, an LJ13 search then takes 1.1 s instead of 5.5 s in
the next process (benchmarks/compilation_cache.py), but a default that prints alarming errors on every run
surprises users. Turn it on by default once JAX stops logging that.
"""

from __future__ import annotations

import os
from pathlib import Path

import jax

#: Environment variable that turns the cache on (1, true, yes) or off.
SWITCH = "LEARN2HOP_COMPILATION_CACHE"
#: Whether the cache is on when the environment says nothing (see above).
DEFAULT_ON = False


def cache_directory() -> Path:
    """``$LEARN2HOP_CACHE/jax``, by default ``~/.cache/ase_learn2hop/jax``."""
    root = os.environ.get("LEARN2HOP_CACHE", Path.home() / ".cache" / "ase_learn2hop")
    return Path(root) / "jax"


def enabled_by_environment() -> bool:
    """``LEARN2HOP_COMPILATION_CACHE`` as a switch (1/true/yes or 0/false/no),
    `DEFAULT_ON` when it is unset."""
    value = os.environ.get(SWITCH, "").strip().lower()
    if not value:
        return DEFAULT_ON
    return value not in ("0", "false", "no")


def enable() -> Path | None:
    """Turn JAX's persistent compilation cache on in our cache directory.

    Returns:
        the folder in use, or ``None`` when switched off or when the user had
        set their own cache directory (theirs is kept).
    """
    if not enabled_by_environment() or jax.config.jax_compilation_cache_dir:
        return None
    directory = cache_directory()
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    jax.config.update("jax_compilation_cache_dir", str(directory))
    # Our searches compile many programs of well under a second each.
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    return directory

"""Float64 where we compute, without touching the caller's global JAX config.

Users compare our energies with their own codes to 1e-6 (and the LJ13 global
minimum to 1e-6 of -44.326801), which float32 cannot give. Importing
``ase_learn2hop`` therefore leaves JAX's precision alone (it sets only the
CPU device count, and only before JAX starts: `ase_learn2hop.cpu_devices`):
library code that builds arrays or traces functions runs inside `float64` (a thread-local
``jax.enable_x64(True)``), and the process entry points we own (the ``learn2hop``
command, ``python -m ase_learn2hop.training``, the scripts in ``examples/`` and
``benchmarks/``) switch the global flag explicitly at the start of ``main``.

A jitted function traced inside the context is specialised to float64; call it
inside the context too (``in_float64`` does both for a method).

Example:
    >>> import jax.numpy as jnp
    >>> from ase_learn2hop.precision import float64, in_float64
    >>> with float64():
    ...     jnp.zeros(3).dtype
    dtype('float64')
    >>> @in_float64
    ... def ones():
    ...     return jnp.ones(2)
    >>> ones().dtype
    dtype('float64')
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator
from typing import Any, ParamSpec, TypeVar

import jax
import jax.numpy as jnp

__all__ = ["float64", "floating_as", "in_float64"]

_P = ParamSpec("_P")
_R = TypeVar("_R")


@contextlib.contextmanager
def float64() -> Iterator[None]:
    """Context in which JAX makes float64 arrays (``jax.enable_x64(True)``).

    Thread-local and restored on exit, whatever the global setting was.
    """
    with jax.enable_x64(True):
        yield


def in_float64(fn: Callable[_P, _R]) -> Callable[_P, _R]:
    """Decorator: runs ``fn`` (a function or method) inside `float64`."""

    @functools.wraps(fn)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        with float64():
            return fn(*args, **kwargs)

    return wrapper


def floating_as(tree: Any, dtype: Any) -> Any:
    """``tree`` with every floating-point leaf cast to ``dtype`` (integer and
    boolean leaves, e.g. species or neighbour indices, unchanged)."""
    return jax.tree_util.tree_map(
        lambda leaf: (
            leaf.astype(dtype) if jnp.issubdtype(leaf.dtype, jnp.floating) else leaf
        ),
        tree,
    )

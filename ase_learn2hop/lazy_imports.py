"""jax-md's package, its submodules imported on first use.

We use two of jax-md's modules (`jax_md.space`, `jax_md.partition`), but
``import jax_md.space`` runs jax-md's package ``__init__``, which imports
every submodule: ``jax_md.rigid_body`` compiles 123 small XLA programs at
import and ``jax_md.nn`` pulls in flax, e3nn, sympy and scipy.signal.
Importing the optimizer took 8.8 s that way in every new process, more than
compiling an LJ13 search, and takes 2.5 s without it (``import jax`` alone
1.5 s; `benchmarks/import_time.py`, `benchmarks/results/import_time.md`).

`make_jax_md_lazy` registers jax-md's package without running its
``__init__`` (which does nothing but import the submodules) and gives it a
module ``__getattr__`` (PEP 562) that imports a submodule when it is first
named, so ``import jax_md; jax_md.energy`` still works for the user, as does
``from jax_md import rigid_body``. Where jax-md was imported before us, it is
left as it is.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys

PACKAGE = "jax_md"


def make_jax_md_lazy() -> bool:
    """Register jax-md's package with lazily imported submodules.

    Returns:
        whether it was registered here (False when jax-md is already
        imported or not installed: the import error then comes where the
        module is used, as without this).
    """
    if PACKAGE in sys.modules:
        return False
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or spec.submodule_search_locations is None:
        return False
    package = importlib.util.module_from_spec(spec)

    def __getattr__(name: str):
        if name.startswith("__"):
            raise AttributeError(f"module {PACKAGE!r} has no attribute {name!r}")
        try:
            return importlib.import_module(f"{PACKAGE}.{name}")
        except ModuleNotFoundError as error:
            if error.name != f"{PACKAGE}.{name}":
                raise
            raise AttributeError(
                f"module {PACKAGE!r} has no attribute {name!r}"
            ) from error

    package.__getattr__ = __getattr__
    sys.modules[PACKAGE] = package
    return True

"""ase_learn2hop: learned optimizers that hop between basins, as an ASE plugin.

Implements "Learn2Hop: Learned Optimization on Rough Landscapes" (Merchant, Metz,
Schoenholz, Cubuk, ICML 2021).
"""

# Importing the package changes two JAX settings, and only before JAX's
# backend has started: one CPU device per core, so that many starts run on
# every core (LEARN2HOP_CPU_DEVICES=1 keeps JAX's one device), and XLA's CPU
# reductions kept out of the YNNPACK library, so that a start computes the
# same bits in any batch (`ase_learn2hop.cpu_devices`). It runs first, before
# any submodule imports jax-md (whose import starts JAX).
# Precision is not touched: the calculators and the optimizer compute in
# float64 inside `ase_learn2hop.precision.float64()` (users compare energies
# with their own codes to 1e-6), and only our own entry points (the
# ``learn2hop`` command, training, examples, benchmarks) switch the global flag.
# jax-md's submodules are imported on first use (`ase_learn2hop.lazy_imports`):
# its package's own import compiled 123 programs in every process, and
# started JAX.

from ase_learn2hop.cpu_devices import (
    ask_for_one_cpu_device_per_core,
    keep_reductions_in_xla,
)
from ase_learn2hop.lazy_imports import make_jax_md_lazy

ask_for_one_cpu_device_per_core()
keep_reductions_in_xla()
make_jax_md_lazy()

__version__ = "0.1.0"

__all__ = ["LearnedHopOptimizer", "__version__"]


def __getattr__(name):
    # Imported on first use so that `import ase_learn2hop.potentials` stays light.
    if name == "LearnedHopOptimizer":
        from ase_learn2hop.optimizer import LearnedHopOptimizer

        return LearnedHopOptimizer
    raise AttributeError(f"module 'ase_learn2hop' has no attribute {name!r}")

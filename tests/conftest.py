"""Test-session setup.

Importing ``ase_learn2hop`` leaves JAX's precision alone (see
`ase_learn2hop.precision`; it sets only the CPU device count,
`ase_learn2hop.cpu_devices`), but these tests compare with ASE, NumPy references
and published minima to 1e-9..1e-12, which needs float64 for every array, also
the ones a test builds itself. So the test session, a process we own, switches
the global flag explicitly here, before any test module makes an array.
`test_precision.py` checks, in a fresh process, that the library alone still
computes in float64 without this switch.
"""

import os

import jax

jax.config.update("jax_enable_x64", True)

# Tests never write JAX's compilation cache into the user's cache folder
# (test_compilation_cache.py switches it on in its own subprocesses).
os.environ["LEARN2HOP_COMPILATION_CACHE"] = "0"

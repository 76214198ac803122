"""Cost of element-wise transcendentals by array layout on XLA's CPU backend.

The same 1404 float32 numbers (LJ26's per-component features: 26 atoms x 3
axes x 18 features) as [26, 3, 18], [78, 18] and [26, 54], and 5408 (LJ26's
radial kernels: 26 x 26 pairs x 8 widths) as [26, 26, 8] and [676, 8]: µs per
jitted `exp` and `log` of the whole array, each in a loop of 2000 calls, best
of 5. The reason `features` lays its per-component features out as [3n, f]
rows and its radial kernels as [pair, eta]. Run:

    python benchmarks/array_layout_cost.py
"""

from __future__ import annotations

import os
import platform
import time

import jax
import jax.numpy as jnp
from ase_learn2hop.training.run import current_commit

CALLS = 2000
SHAPES = ((26, 3, 18), (78, 18), (26, 54), (26, 26, 8), (676, 8))


def microseconds(function, x: jax.Array) -> float:
    """µs per call of ``x -> x + 1e-9 function(x)`` in a jitted loop."""
    loop = jax.jit(
        lambda x: jax.lax.fori_loop(0, CALLS, lambda _, x: x + 1e-9 * function(x), x)
    )
    jax.block_until_ready(loop(x))
    best = float("inf")
    for _ in range(5):
        started = time.perf_counter()
        jax.block_until_ready(loop(x))
        best = min(best, time.perf_counter() - started)
    return best / CALLS * 1e6


def main() -> None:
    print(
        f"{platform.machine()}, {os.cpu_count()} cores, jax {jax.__version__} on "
        f"{jax.default_backend()}, load average {os.getloadavg()[0]:.1f}, code "
        f"{current_commit()}; float32, µs per call\n"
    )
    print("| shape | elements | exp (µs) | log (µs) |")
    print("|---|---|---|---|")
    for shape in SHAPES:
        x = jax.random.uniform(jax.random.key(0), shape, jnp.float32, 0.5, 2.0)
        print(
            f"| {list(shape)} | {x.size} | {microseconds(jnp.exp, x):.2f} "
            f"| {microseconds(jnp.log, x):.2f} |"
        )


if __name__ == "__main__":
    main()

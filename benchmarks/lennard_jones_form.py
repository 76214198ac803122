"""Two ways to get a free Lennard-Jones cluster's squared distances, timed.

`potentials.lennard_jones` takes them from the displacements ``x_i - x_j``
below `potentials.LENNARD_JONES_GRAM_MIN_ATOMS` atoms and from the Gram
matrix ``|x_i|^2 + |x_j|^2 - 2 x_i.x_j`` from there up. This script times one
energy-and-gradient call both ways (the threshold set to force each) for one
structure (inside a jitted scan, as the single search runs it) and per
structure of a ``vmap`` over ``--batch`` structures (the batched driver), and
prints a markdown table. Run it alone on the machine, or pinned to one core
(``taskset -c 1``).

    python benchmarks/lennard_jones_form.py --sizes 13 26 38 55 75 90 110 130
"""

from __future__ import annotations

import argparse
import platform

import jax
import jax.numpy as jnp
from step_cost import _per_call_seconds

from ase_learn2hop import potentials, systems

FORMS = {"displacements": 10**9, "Gram matrix": 0}


def measure(n_atoms: int, batch: int, repeats: int) -> dict:
    system = systems.lennard_jones_system(n_atoms)
    starts = systems.starting_structures(jax.random.key(0), system, batch)
    starts = jnp.asarray(starts, jnp.float64)
    energy_fn = potentials.lennard_jones()
    value_and_grad = jax.value_and_grad(energy_fn)
    batched = jax.vmap(value_and_grad, in_axes=(0, None))
    default = potentials.LENNARD_JONES_GRAM_MIN_ATOMS
    row = {"atoms": n_atoms}
    try:
        for form, threshold in FORMS.items():
            # Read when the energy is traced: each timing below traces anew.
            potentials.LENNARD_JONES_GRAM_MIN_ATOMS = threshold
            single = _per_call_seconds(value_and_grad, starts[0], None, 2000, repeats)
            many = _per_call_seconds(batched, starts, None, 200, repeats) / batch
            row[form] = (single * 1e6, many * 1e6)
    finally:
        potentials.LENNARD_JONES_GRAM_MIN_ATOMS = default
    return row


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes", type=int, nargs="+", default=[13, 26, 38, 55, 75, 90, 110, 130]
    )
    parser.add_argument("--batch", type=int, default=150)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    jax.config.update("jax_enable_x64", True)
    print(
        f"{platform.machine()}, jax {jax.__version__} on {jax.default_backend()}; "
        f"float64; best of {args.repeats}; threshold in the code: "
        f"{potentials.LENNARD_JONES_GRAM_MIN_ATOMS} atoms\n"
    )
    print(
        "| atoms | one structure: displacements (µs) | Gram matrix (µs) "
        f"| batch of {args.batch}, per structure: displacements (µs) | Gram matrix (µs) |"
    )
    print("|---|---|---|---|---|")
    for n_atoms in args.sizes:
        row = measure(n_atoms, args.batch, args.repeats)
        (d1, db), (g1, gb) = row["displacements"], row["Gram matrix"]
        print(f"| {n_atoms} | {d1:.2f} | {g1:.2f} | {db:.2f} | {gb:.2f} |", flush=True)


if __name__ == "__main__":
    main()

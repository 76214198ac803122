"""Cost of Stillinger-Weber silicon against the number of atoms: all pairs
against the cell list (issue 12's linear-cost item for the cutoff potentials).

For diamond silicon of 64, 216, 512, 1000 and 1728 atoms (2 to 6 cubic cells of
5.431 Å a side, rattled by 0.1 Å), per size:

- energy+grad, all pairs: the ``[n, n]`` sum, µs per value-and-gradient call
  (calls inside one jitted scan, so dispatch is excluded);
- energy+grad, product: what `stillinger_weber.stillinger_weber` runs, the
  neighbours found at every call through jax-md's cell list from
  `stillinger_weber.LIST_MIN_ATOMS` atoms in a cube of three cutoffs a side;
- batched: the same two value-and-gradient calls under ``vmap`` over
  `BATCH` rattled copies, µs per structure (there a `lax.cond` computes both
  branches: the list and its overflow fallback);
- memory of each: XLA's compiled temporary buffers plus arguments and outputs
  of one call, MiB;
- (second table, ``--crossover``) random positions at diamond density in
  cubes of three to four cutoffs a side, the cell list forced on below
  `stillinger_weber.LIST_MIN_ATOMS`: where it starts to pay;
- learned step: one step of one learned search (shipped ``si64`` weights, its
  energy call included, radial features on a neighbour list from
  `features.RADIAL_LIST_MIN_ATOMS` atoms, the product's choice), µs, from a rattled
  diamond start.

Run::

    python benchmarks/stillinger_weber_cost.py --out benchmarks/results/stillinger_weber_cost.md
"""

from __future__ import annotations

import os

for _variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

import argparse
import platform
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from ase.build import bulk
from ase_learn2hop.training.run import current_commit
from potential_throughput import best_time_per_structure
from step_cost import _learned_step, _per_call_seconds

from ase_learn2hop import features, neighbours, stillinger_weber

DEFAULT_CELLS = (2, 3, 4, 5, 6)
LATTICE_CONSTANT = 5.431
#: Structures of the batched (``vmap``) measurement.
BATCH = 4


def _memory_mib(function, argument) -> float:
    compiled = jax.jit(function).lower(argument).compile()
    memory = compiled.memory_analysis()
    total = (
        memory.temp_size_in_bytes
        + memory.argument_size_in_bytes
        + memory.output_size_in_bytes
    )
    return total / 2**20


def measure(cells: int, repeats: int) -> dict:
    from ase_learn2hop import systems
    from ase_learn2hop.benchmark.time_to_minimum_methods import learned_weights

    atoms = bulk("Si", "diamond", LATTICE_CONSTANT, cubic=True).repeat(cells)
    atoms.rattle(0.1, seed=0)
    n_atoms = len(atoms)
    system = systems.silicon_system(n_atoms, atoms.cell[0, 0])
    geometry = system.context.geometry
    positions = jnp.asarray(atoms.positions)

    def all_pairs(x):
        present = ~jnp.eye(n_atoms, dtype=bool)
        return stillinger_weber._stillinger_weber_energy(
            geometry.pair_displacements(x), present
        )

    def product(x):
        return system.energy_fn(x, None)

    calls = max(3, int(2e6 / n_atoms**2))
    row = {"n_atoms": n_atoms, "box": float(atoms.cell[0, 0])}
    for name, energy in (("all_pairs", all_pairs), ("product", product)):
        value_and_grad = jax.value_and_grad(energy)
        row[f"{name}_us"] = 1e6 * _per_call_seconds(
            lambda x, _, f=value_and_grad: f(x), positions, None, calls, repeats
        )
        row[f"{name}_mib"] = _memory_mib(value_and_grad, positions)
    assert np.isclose(float(all_pairs(positions)), float(product(positions)))
    rng = np.random.default_rng(1)
    batch = positions[None] + jnp.asarray(rng.normal(0.0, 0.1, (BATCH, n_atoms, 3)))
    for name, energy in (("all_pairs", all_pairs), ("product", product)):
        batched = jax.jit(jax.vmap(jax.value_and_grad(energy)))
        jax.block_until_ready(batched(batch))
        row[f"{name}_batched_us"] = 1e6 * best_time_per_structure(
            lambda f=batched: jax.block_until_ready(f(batch)), BATCH, 2 * repeats
        )
    row["on_cell_list"] = bool(
        n_atoms >= stillinger_weber.LIST_MIN_ATOMS
        and neighbours.uniform_density_spec(
            n_atoms, geometry, stillinger_weber.STILLINGER_WEBER_CUTOFF
        )
    )
    weights = learned_weights(systems.system_from_name("si64"))
    context = features.with_radial_list(system.context, np.asarray(positions)[None])
    steps = max(5, int(2e5 / n_atoms))
    seconds, memory, _ = _learned_step(
        system, weights, positions[None], context, steps, repeats
    )
    row["learned_step_us"] = seconds * 1e6
    row["learned_step_mib"] = memory / 2**20
    return row


def crossover(sizes: list[int], repeats: int) -> str:
    """All pairs against the cell list (forced on) for ``sizes`` atoms placed
    uniformly at random at diamond density: a markdown table."""
    from ase_learn2hop.geometry import periodic_cube

    density = 8 / LATTICE_CONSTANT**3
    lines = [
        "| atoms | box (Å) | all pairs (µs) | cell list (µs) | all pairs / list |",
        "|---|---|---|---|---|",
    ]
    default = stillinger_weber.LIST_MIN_ATOMS
    for n_atoms in sizes:
        side = (n_atoms / density) ** (1.0 / 3.0)
        geometry = periodic_cube(side)
        rng = np.random.default_rng(n_atoms)
        positions = jnp.asarray(rng.uniform(0.0, side, (n_atoms, 3)))

        def all_pairs(x, geometry=geometry, n_atoms=n_atoms):
            present = ~jnp.eye(n_atoms, dtype=bool)
            return stillinger_weber._stillinger_weber_energy(
                geometry.pair_displacements(x), present
            )

        energy_fn = stillinger_weber.stillinger_weber(geometry)
        times = []
        stillinger_weber.LIST_MIN_ATOMS = 1  # traced below: the list forced on
        try:
            for energy in (all_pairs, lambda x, f=energy_fn: f(x, None)):
                value_and_grad = jax.value_and_grad(energy)
                times.append(
                    1e6
                    * _per_call_seconds(
                        lambda x, _, f=value_and_grad: f(x),
                        positions,
                        None,
                        max(3, int(2e6 / n_atoms**2)),
                        repeats,
                    )
                )
        finally:
            stillinger_weber.LIST_MIN_ATOMS = default
        lines.append(
            f"| {n_atoms} | {side:.2f} | {times[0]:.3g} | {times[1]:.3g} "
            f"| {times[0] / times[1]:.2f} |"
        )
    return "\n".join(lines)


def table(rows: list[dict]) -> str:
    lines = [
        (
            "| atoms | box (Å) | energy+grad, all pairs (µs) | energy+grad, product (µs) "
            "| all pairs / product | cell list | batched, all pairs / product (µs) "
            "| memory, all pairs / product (MiB) "
            "| learned step (µs) | learned step memory (MiB) |"
        ),
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['n_atoms']} | {row['box']:.3f} | {row['all_pairs_us']:.3g} "
            f"| {row['product_us']:.3g} | {row['all_pairs_us'] / row['product_us']:.2f} "
            f"| {'yes' if row['on_cell_list'] else 'no'} "
            f"| {row['all_pairs_batched_us']:.3g} / {row['product_batched_us']:.3g} "
            f"| {row['all_pairs_mib']:.3g} / {row['product_mib']:.3g} "
            f"| {row['learned_step_us']:.3g} | {row['learned_step_mib']:.3g} |"
        )
    return "\n".join(lines)


def main() -> None:
    jax.config.update("jax_enable_x64", True)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--cells",
        type=int,
        nargs="+",
        default=list(DEFAULT_CELLS),
        help="cubic diamond cells per side (8 atoms each)",
    )
    parser.add_argument(
        "--crossover",
        type=int,
        nargs="*",
        default=[80, 100, 128, 160, 200, 250],
        help="atom counts of the all-pairs / cell-list crossover table",
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None, help="write the table here")
    args = parser.parse_args()
    rows = []
    for cells in args.cells:
        row = measure(cells, args.repeats)
        print(row, flush=True)
        rows.append(row)
    header = (
        f"$ python benchmarks/stillinger_weber_cost.py --cells "
        f"{' '.join(map(str, args.cells))}\n"
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"jax {jax.__version__} on {jax.default_backend()}, load average "
        f"{os.getloadavg()[0]:.1f}, code {current_commit()}; "
        "one structure, float64\n"
    )
    text = header + "\n" + table(rows) + "\n"
    if args.crossover:
        text += (
            "\nRandom positions at diamond density, the cell list forced on:\n\n"
            + crossover(args.crossover, args.repeats)
            + "\n"
        )
    print(text)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)


if __name__ == "__main__":
    main()

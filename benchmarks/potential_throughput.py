"""Energy-and-forces throughput of the JAX Lennard-Jones potential against ASE and
asap3.

For LJ clusters of 13, 38, 75, 147 and 309 atoms (Mackay icosahedra, the 38-atom
truncated octahedron and the 75-atom Marks decahedron, each rattled into
``--structures`` different copies, reduced units with d0 = 1) it times one
energy-and-forces evaluation per structure for:

- ``jax single``: the jitted ``positions -> (energy, forces)`` function of our
  calculator, called once per structure;
- ``jax vmap``: the same function ``vmap``-ed over all structures in one call;
- ``jax map``: ``lax.map`` over all structures in one call (one structure at a
  time inside XLA: no Python dispatch, and each structure's ``[n, n]`` arrays
  stay in cache, which on CPU beats ``vmap`` from ~75 atoms on);
- ``our calc``: our ASE calculator (``ase_learn2hop.calculators.LennardJones``);
- ``ase``: ``ase.calculators.lj.LennardJones`` (no cutoff in effect);
- ``asap3``: ``asap3.LennardJones`` (cutoff beyond every pair, unshifted).

Times are per structure, the best of ``--repeats`` passes over all structures.
Usage::

    python benchmarks/potential_throughput.py --repeats 3
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np
from ase.calculators.lj import LennardJones as AseLennardJones
from ase.cluster import Decahedron, Icosahedron, Octahedron

from ase_learn2hop.calculators import LennardJones

#: fcc lattice constant whose nearest-neighbour distance is d0 = 1.
LATTICE_CONSTANT = np.sqrt(2.0)


def cluster(n_atoms: int):
    """A compact LJ cluster of ``n_atoms`` with nearest neighbours at d0 = 1."""
    if n_atoms == 38:
        return Octahedron("Ar", 4, cutoff=1, latticeconstant=LATTICE_CONSTANT)
    if n_atoms == 75:
        return Decahedron("Ar", 2, 2, 1, latticeconstant=LATTICE_CONSTANT)
    shells = {13: 2, 55: 3, 147: 4, 309: 5}[n_atoms]
    return Icosahedron("Ar", shells, latticeconstant=LATTICE_CONSTANT)


def rattled_copies(atoms, n_structures: int, seed: int) -> np.ndarray:
    """``[n_structures, n_atoms, 3]`` copies rattled by 0.03 d0."""
    rng = np.random.default_rng(seed)
    noise = rng.normal(scale=0.03, size=(n_structures, len(atoms), 3))
    return atoms.positions[None] + noise


def best_time_per_structure(run, n_structures: int, repeats: int) -> float:
    """Best over ``repeats`` of the wall time of ``run()`` divided by structures."""
    best = np.inf
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best / n_structures


def time_ase_calculator(atoms, positions, calculator, repeats: int) -> float:
    atoms = atoms.copy()
    atoms.calc = calculator

    def run():
        for structure in positions:
            atoms.positions = structure
            atoms.get_forces()

    run()  # warm-up (neighbour lists, jit)
    return best_time_per_structure(run, len(positions), repeats)


def benchmark_size(n_atoms: int, n_structures: int, repeats: int) -> dict:
    atoms = cluster(n_atoms)
    assert len(atoms) == n_atoms, (n_atoms, len(atoms))
    positions = rattled_copies(atoms, n_structures, seed=n_atoms)
    device_positions = jnp.asarray(positions)
    ours = LennardJones()
    single = ours.energy_and_forces_fn(atoms)
    batch = jax.jit(jax.vmap(single))
    mapped = jax.jit(lambda structures: jax.lax.map(single, structures))

    def run_single():
        # numpy in, as from an ASE loop; iterating a jax array would add a
        # slicing dispatch per structure.
        for structure in positions:
            jax.block_until_ready(single(structure))

    def run_batch():
        jax.block_until_ready(batch(device_positions))

    def run_mapped():
        jax.block_until_ready(mapped(device_positions))

    run_single()
    run_batch()
    run_mapped()
    times = {
        "jax single": best_time_per_structure(run_single, n_structures, repeats),
        "jax vmap": best_time_per_structure(run_batch, n_structures, repeats),
        "jax map": best_time_per_structure(run_mapped, n_structures, repeats),
        "our calc": time_ase_calculator(atoms, positions, ours, repeats),
    }

    # The clusters are at most ~10 d0 across: rc = 1000 keeps every pair and
    # shifts each pair energy by 4 (sigma / rc)^6 ~ 2e-18.
    ase_calculator = AseLennardJones(
        sigma=2 ** (-1 / 6), epsilon=1.0, rc=1000.0, smooth=False
    )
    times["ase"] = time_ase_calculator(atoms, positions, ase_calculator, repeats)
    try:
        import asap3
    except ImportError:
        times["asap3"] = np.nan
    else:
        boxed = atoms.copy()
        boxed.center(vacuum=30.0)  # asap3 needs a cell for free clusters
        shift = boxed.positions[0] - atoms.positions[0]
        times["asap3"] = time_ase_calculator(
            boxed,
            positions + shift,
            asap3.LennardJones([18], [1.0], [2 ** (-1 / 6)], rCut=25.0, modified=False),
            repeats,
        )

    # Sanity check: all implementations agree on the first structure.
    energy, _ = single(device_positions[0])
    reference = atoms.copy()
    reference.positions = positions[0]
    reference.calc = ase_calculator
    difference = abs(float(energy) - reference.get_potential_energy())
    assert difference < 1e-8, (n_atoms, difference)
    return times


def main(argv=None) -> None:
    # Our own process: float64 everywhere (energies to 1e-6), switched explicitly.
    jax.config.update("jax_enable_x64", True)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2, help="passes per timing")
    parser.add_argument("--structures", type=int, default=150, help="batch size")
    parser.add_argument("--sizes", type=int, nargs="+", default=[13, 38, 75, 147, 309])
    arguments = parser.parse_args(argv)
    print(
        f"device: {jax.devices()[0].platform}, {arguments.structures} structures, "
        f"best of {arguments.repeats}; microseconds per energy-and-forces call"
    )
    columns = ["jax single", "jax vmap", "jax map", "our calc", "ase", "asap3"]
    ratios = {
        "ase/vmap": ("ase", "jax vmap"),
        "ase/map": ("ase", "jax map"),
        "asap3/map": ("asap3", "jax map"),
        "ase/single": ("ase", "jax single"),
        "ase/ourcalc": ("ase", "our calc"),
    }
    header = f"{'atoms':>5} " + " ".join(f"{c:>10}" for c in columns)
    print(header + " " + " ".join(f"{r:>11}" for r in ratios))
    for n_atoms in arguments.sizes:
        times = benchmark_size(n_atoms, arguments.structures, arguments.repeats)
        row = f"{n_atoms:>5} " + " ".join(f"{1e6 * times[c]:>10.1f}" for c in columns)
        row += " " + " ".join(
            f"{times[slow] / times[fast]:>11.1f}" for slow, fast in ratios.values()
        )
        print(row, flush=True)


if __name__ == "__main__":
    main()

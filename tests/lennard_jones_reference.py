"""An independent Lennard-Jones reference for the tests: written here from the
textbook formula, not imported from the package, and ASE's Hessian by
differences of its forces."""

import jax.numpy as jnp
import numpy as np

# Wales & Doye 1997 (Cambridge Cluster Database), pair well depth 1 at r = 1.
LJ13_GLOBAL_MINIMUM_ENERGY = -44.326801


def lennard_jones_energy(positions):
    """Sum over pairs of (1/r)^12 - 2 (1/r)^6, no cutoff; positions [n, 3]."""
    first, second = np.triu_indices(positions.shape[0], k=1)
    squared_distance = jnp.sum((positions[first] - positions[second]) ** 2, axis=-1)
    inverse_sixth = 1.0 / squared_distance**3
    return jnp.sum(inverse_sixth**2 - 2.0 * inverse_sixth)


def random_cluster(n_atoms, seed, side=None, min_distance=0.85):
    """Uniform positions in a cube of edge ``side`` (default 1.1 n^(1/3)), placed
    one atom at a time: a candidate closer than ``min_distance`` to an atom already
    placed is redrawn (so no start has huge forces)."""
    side = side if side is not None else 1.1 * n_atoms ** (1 / 3)
    rng = np.random.default_rng(seed)
    positions = []
    while len(positions) < n_atoms:
        candidate = rng.uniform(0.0, side, size=3)
        if all(np.linalg.norm(candidate - other) > min_distance for other in positions):
            positions.append(candidate)
    return np.array(positions)


def lennard_jones_energy_fn(positions, parameters):
    """`lennard_jones_energy` in the package's ``energy_fn(positions, parameters)``
    convention; ``parameters`` is ignored (Lennard-Jones has none)."""
    return lennard_jones_energy(positions)


def hessian_from_forces(atoms, step=1e-5):
    """``[3n, 3n]`` Hessian of the energy of ``atoms`` (an ASE calculator
    attached) by central differences of its forces: row i is the gradient's
    derivative along coordinate i (energy / length^2). The positions are
    restored."""
    start = atoms.get_positions().ravel()
    hessian = np.zeros((start.size, start.size))
    for i in range(start.size):
        for sign in (1.0, -1.0):
            moved = start.copy()
            moved[i] += sign * step
            atoms.set_positions(moved.reshape(-1, 3))
            hessian[i] -= sign * atoms.get_forces().ravel() / (2 * step)
    atoms.set_positions(start.reshape(-1, 3))
    return hessian

"""An independent Lennard-Jones reference for the descent and basin-hopping tests:
written here from the textbook formula, not imported from the package."""

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

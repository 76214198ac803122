"""Starting structures by harmonic initialization (SPEC section 3, paper D.2).

Random positions in a small cube (or in the periodic cell) are spread apart by
gradient descent on a soft-sphere repulsion, so that no two atoms start on top of
each other and the first forces of the real potential are moderate.

**Decision (units of the descent):** the paper's learning rate 1e-3 is stated for
Lennard-Jones, where the soft-sphere diameter is 1. The descent here runs on the
positions measured in diameters, ``x / s``, which is the paper's descent for
Lennard-Jones and the same relative relaxation for gold (s = 2.96 Å) or silicon
(s = 2.35 Å). In Å, a plain step of 1e-3 would relax overlaps ``s^2`` times more
slowly and leave Au55 starts far from the "soft-sphere energy ~ 0" the paper
reports after 1000 steps.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from ase_learn2hop import saved_programs
from ase_learn2hop.geometry import FREE, Geometry, periodic_cell, periodic_cube
from ase_learn2hop.potentials import soft_sphere


def harmonic_initialization(
    key: jax.Array,
    n_atoms: int,
    n_starts: int,
    *,
    box_size: float,
    diameter: float,
    geometry: Geometry = FREE,
    steps: int = 1000,
    learning_rate: float = 1e-3,
) -> jax.Array:
    """Random starting structures relaxed under a soft-sphere repulsion.

    Positions are drawn uniformly in a cube of edge ``box_size`` centred at the
    origin (free clusters) or in the periodic cell (uniform fractional
    coordinates; ``[0, L)^3`` for a cube of edge L); then ``steps`` of gradient
    descent on `potentials.soft_sphere` (in units of the diameter, see module
    docstring) spread overlapping atoms apart.

    Args:
        key: JAX random key; the same key gives the same structures.
        n_atoms: atoms per structure.
        n_starts: number of structures.
        box_size: edge of the starting cube of a free cluster (ignored when
            ``geometry`` is periodic). Same units as ``diameter``.
        diameter: soft-sphere contact distance ``s`` (the potential's
            nearest-neighbour distance: 1 for LJ, r0 for Gupta, 2.35 Å for Si).
        geometry: `geometry.FREE` for clusters, or a periodic cell.
        steps: number of gradient-descent steps.
        learning_rate: gradient-descent step on ``positions / diameter``.

    Returns:
        ``[n_starts, n_atoms, 3]`` float64 array of positions; periodic positions
        are wrapped into the cell (``geometry.wrap``).
    """
    if geometry.periodic:
        # The descent runs on positions / diameter, in the cell scaled likewise.
        # (The diameter must then be a concrete number.)
        scaled_geometry = periodic_cell(geometry.cell_matrix / float(diameter))
        if geometry.is_cube:
            scaled_geometry = periodic_cube(geometry.box_length / float(diameter))
    else:
        scaled_geometry = FREE
    return _harmonic_initialization(
        key,
        box_size,
        diameter,
        learning_rate,
        geometry=geometry,
        scaled_geometry=scaled_geometry,
        n_atoms=n_atoms,
        n_starts=n_starts,
        steps=steps,
    )


@saved_programs.saved_jit(
    static_argnames=("geometry", "scaled_geometry", "n_atoms", "n_starts", "steps"),
)
def _harmonic_initialization(
    key,
    box_size,
    diameter,
    learning_rate,
    *,
    geometry,
    scaled_geometry,
    n_atoms,
    n_starts,
    steps,
):
    shape = (n_starts, n_atoms, 3)
    if not geometry.periodic:
        positions = jax.random.uniform(
            key, shape, minval=-0.5 * box_size, maxval=0.5 * box_size
        )
    elif geometry.is_cube:
        positions = jax.random.uniform(key, shape, maxval=geometry.box_length)
    else:
        fractional = jax.random.uniform(key, shape)
        positions = fractional @ jnp.asarray(np.asarray(geometry.cell_matrix))

    soft_sphere_energy = soft_sphere(scaled_geometry)

    def energy(scaled_positions):
        return soft_sphere_energy(scaled_positions, 1.0)

    force = jax.grad(energy)

    def relax(start):
        def descend(_, scaled_positions):
            return scaled_positions - learning_rate * force(scaled_positions)

        return jax.lax.fori_loop(0, steps, descend, start / diameter) * diameter

    positions = jax.vmap(relax)(positions)
    return geometry.wrap(positions)


def compact_random_cluster(
    key: jax.Array, n_atoms: int, spacing: jax.Array | float, centre: jax.Array
) -> jax.Array:
    """``[n_atoms, 3]`` a random compact cluster about ``centre`` ``[3]``: the
    ``n_atoms`` sites of a simple cubic grid of edge ``spacing`` nearest its
    centre (a fixed ball), each moved by a Gaussian jitter of 0.2 ``spacing``
    per component.

    A new start drawn inside a jitted step (learned basin hopping's restart),
    where under ``vmap`` every start draws one at every step: it costs only
    ``3 n_atoms`` float32 normal numbers (choosing random sites with a top-k
    cost a third of a LJ13 search step). Quenched by scipy's L-BFGS-B, 12 such
    clusters ended in 12 distinct LJ38 minima (the lowest -169.6) and in 7
    distinct LJ13 minima (the icosahedron 4 times).
    """
    side = int(np.ceil((2 * n_atoms) ** (1 / 3))) + 1
    axis = np.arange(side) - (side - 1) / 2
    grid = np.stack(np.meshgrid(axis, axis, axis, indexing="ij"), -1).reshape(-1, 3)
    # Nearest the centre, ties broken by grid order (a stable sort).
    ball = grid[np.argsort(np.linalg.norm(grid, axis=1), kind="stable")[:n_atoms]]
    ball = ball - ball.mean(axis=0)
    jitter = jax.random.normal(key, (n_atoms, 3), jnp.float32).astype(centre.dtype)
    return centre + (jnp.asarray(ball, centre.dtype) + 0.2 * jitter) * spacing

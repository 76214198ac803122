"""Stillinger-Weber silicon (SPEC section 2, paper eq. 7) as a pure JAX energy
function, ``energy_fn(positions [n, 3] Å, parameters=None) -> eV`` (the calling
convention of `potentials`, which re-exports it).

The energy is a sum over pairs closer than the cutoff a sigma = 3.77118 Å and
over triplets around each atom, both computed per atom from its neighbours'
displacements (O(n x neighbours) once the neighbours are known). Small cells
take all pairs (``[n, n]``); from `LIST_MIN_ATOMS` atoms in a periodic cube of
at least three cutoffs a side, every call finds the neighbours through jax-md's
cell list (`neighbours.uniform_density_spec`), so the cost grows about linearly
with the number of atoms (`benchmarks/results/stillinger_weber_cost.md`). A call
whose list overflows (a region far denser than the cell's mean) computes all
pairs instead, one atom at a time (O(n) memory): the energy never misses a
neighbour.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from ase_learn2hop import neighbours
from ase_learn2hop.geometry import (
    Geometry,
    per_geometry,
    safe_norm,
    smallest_cell_height,
)

#: Length scale sigma of Stillinger-Weber silicon, Å.
STILLINGER_WEBER_LENGTH_SCALE = 2.0951
#: Interaction cutoff a * sigma of Stillinger-Weber silicon, Å.
STILLINGER_WEBER_CUTOFF = 3.77118

#: Stillinger-Weber silicon (Stillinger & Weber 1985; SPEC section 2, paper Table 5).
STILLINGER_WEBER_SILICON = {
    "A": 7.049556277,
    "B": 0.6022245584,
    "p": 4.0,
    "q": 0.0,
    "a": 1.8,
    "lambda": 21.0,
    "gamma": 1.2,
    "sigma": STILLINGER_WEBER_LENGTH_SCALE,  # Å
    "epsilon": 2.16826,  # eV
    "cos_theta0": -1.0 / 3.0,  # tetrahedral angle
}

#: From this many atoms (in a cube of at least three cutoffs a side) the
#: neighbours come from a cell list: at diamond density it is level with all
#: pairs at 160 atoms, 1.33x faster at 200 and 216, slower below 160
#: (`benchmarks/results/stillinger_weber_cost.md`).
LIST_MIN_ATOMS = 200


@per_geometry
def stillinger_weber(geometry: Geometry):
    """Stillinger-Weber silicon (SPEC section 2, paper eq. 7).

    ``E = sum_{i<j} phi2(r_ij) + sum_i sum_{j<k; j,k!=i} phi3(r_ij, r_ik, theta_jik)``
    with ``phi2 = A eps [B (sigma/r)^p - (sigma/r)^q] exp(sigma / (r - a sigma))``
    and ``phi3 = lambda eps (cos theta_jik + 1/3)^2 exp(gamma sigma/(r_ij - a sigma))
    exp(gamma sigma/(r_ik - a sigma))`` (Stillinger & Weber 1985; the paper's
    eq. 7 prints only one of the two radial factors), all terms zero for
    r >= a sigma = 3.77118 Å. Parameters: `STILLINGER_WEBER_SILICON`.

    Args:
        geometry: usually a periodic cell (a cube, or any parallelepiped) whose
            smallest height is at least twice the cutoff (minimum image); free
            space also works.

    Returns:
        ``energy_fn(positions [n, 3] Å, parameters=None) -> eV`` (``+inf`` if two
        atoms coincide); the same object for equal geometries.

    Raises:
        ValueError: the cell is too small for the minimum-image convention.
    """
    height = smallest_cell_height(geometry)
    if height < 2 * STILLINGER_WEBER_CUTOFF:
        raise ValueError(
            f"periodic cell height {height:.5f} Å is smaller than twice the "
            f"Stillinger-Weber cutoff ({2 * STILLINGER_WEBER_CUTOFF:.5f} Å)"
        )

    def energy_fn(positions: jax.Array, parameters: Any = None) -> jax.Array:
        n_atoms = positions.shape[0]
        spec = neighbours.uniform_density_spec(
            n_atoms, geometry, STILLINGER_WEBER_CUTOFF
        )
        if n_atoms < LIST_MIN_ATOMS or spec is None:
            return _all_pairs_energy(positions, None)
        listed = spec.build(jax.lax.stop_gradient(positions))
        return jax.lax.cond(
            listed.did_buffer_overflow != 0,
            _all_pairs_by_rows,
            _listed_energy,
            positions,
            listed.idx,
        )

    def _all_pairs_energy(positions, indices) -> jax.Array:
        n_atoms = positions.shape[0]
        return _stillinger_weber_energy(
            geometry.pair_displacements(positions), ~jnp.eye(n_atoms, dtype=bool)
        )

    @jax.checkpoint
    def _all_pairs_by_rows(positions, indices) -> jax.Array:
        # The list overflowed: every pair, one centre atom at a time, so that
        # memory stays O(n) (a call's buffers include this branch's). Each row
        # is recomputed in the backward pass (checkpoint) instead of stored,
        # and the cond's other branch gets no [n, n] residuals to fill.
        n_atoms = positions.shape[0]
        to_all = jax.vmap(geometry.displacement_fn, (None, 0))

        @jax.checkpoint
        def row(i):
            present = (jnp.arange(n_atoms) != i)[None]
            return _stillinger_weber_energy(
                to_all(positions[i], positions)[None], present
            )

        return jnp.sum(jax.lax.map(row, jnp.arange(n_atoms)))

    def _listed_energy(positions, indices) -> jax.Array:
        return _stillinger_weber_energy(
            geometry.neighbour_displacements(positions, indices),
            indices < positions.shape[0],
        )

    return energy_fn


def _exponent(power: float) -> float | int:
    """An integral power as an int: ``x ** 4`` is multiplications, ``x ** 4.0``
    an exp and a log (5x slower on CPU)."""
    return int(power) if float(power).is_integer() else power


def _stillinger_weber_energy(displacements: jax.Array, present: jax.Array) -> jax.Array:
    """SW energy from the displacements ``[n, k, 3]`` (minimum image) from each
    atom to ``k`` others: all of them (``k = n``, self pairs not ``present``) or
    a neighbour list holding every neighbour within the cutoff (padding not
    ``present``, ``[n, k]`` bool)."""
    parameters = STILLINGER_WEBER_SILICON
    sigma = parameters["sigma"]
    epsilon = parameters["epsilon"]
    cutoff = parameters["a"] * sigma
    distances = safe_norm(displacements)
    # Past (1 - 1e-6) of the cutoff exp(sigma / (r - a sigma)) underflows to an
    # exact 0; masking there, not at the cutoff itself, keeps 1/(r - a sigma)^2
    # in the gradient from overflowing to inf (0 * inf = NaN).
    inside = present & (distances < cutoff * (1.0 - 1e-6))
    r = jnp.where(inside, distances, 0.5 * cutoff)
    below_cutoff = r - cutoff
    scaled_inverse = sigma / r
    two_body = (
        parameters["A"]
        * epsilon
        * (
            parameters["B"] * scaled_inverse ** _exponent(parameters["p"])
            - scaled_inverse ** _exponent(parameters["q"])
        )
        * jnp.exp(sigma / below_cutoff)
    )
    two_body_energy = 0.5 * jnp.sum(jnp.where(inside, two_body, 0.0))

    # Three-body sum over j != k for each centre i, done in O(n^2): with
    # w_ij = exp(gamma sigma / (r_ij - a sigma)) and unit vectors u_ij,
    # sum_{j,k} w_ij w_ik (u_ij.u_ik + 1/3)^2 = |sum_j w u u^T|_F^2
    # + 2/3 |sum_j w u|^2 + 1/9 (sum_j w)^2, minus the j = k terms 16/9 w_ij^2.
    # sum_j w u u^T as its six components: fused, 1.5x faster than an einsum.
    weights = jnp.where(inside, jnp.exp(parameters["gamma"] * sigma / below_cutoff), 0)
    unit_x, unit_y, unit_z = jnp.moveaxis(displacements / r[..., None], -1, 0)
    diagonal = [jnp.sum(weights * u * u, axis=1) for u in (unit_x, unit_y, unit_z)]
    off_diagonal = [
        jnp.sum(weights * u * v, axis=1)
        for u, v in ((unit_x, unit_y), (unit_x, unit_z), (unit_y, unit_z))
    ]
    tensor_norm = sum(t**2 for t in diagonal) + 2.0 * sum(t**2 for t in off_diagonal)
    vector_norm = sum(
        jnp.sum(weights * u, axis=1) ** 2 for u in (unit_x, unit_y, unit_z)
    )
    shift = -parameters["cos_theta0"]
    scalar_norm = jnp.sum(weights, axis=1) ** 2
    all_ordered_pairs = tensor_norm + 2.0 * shift * vector_norm + shift**2 * scalar_norm
    same_neighbour = (1.0 + shift) ** 2 * jnp.sum(weights**2, axis=1)
    three_body = jnp.sum(all_ordered_pairs - same_neighbour)
    energy = two_body_energy + 0.5 * parameters["lambda"] * epsilon * three_body
    # The masks above drop coincident atoms (r = 0); their true energy is +inf.
    coincident = jnp.any(present & (distances == 0.0))
    return jnp.where(coincident, jnp.inf, energy)

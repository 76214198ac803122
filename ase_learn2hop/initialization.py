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

import functools

import jax
import jax.numpy as jnp

from ase_learn2hop.potentials import (
    LENNARD_JONES_LENGTH_SCALE,
    SILICON_BOX_LENGTH,
    SILICON_NEAREST_NEIGHBOUR_DISTANCE,
    soft_sphere_energy,
)

#: Edge of the random starting cube of Lennard-Jones clusters (reduced units).
LENNARD_JONES_START_BOX = 3.0
#: Edge of the random starting cube of Gupta clusters, Å.
GUPTA_START_BOX = 4.0


def harmonic_initialization(
    key: jax.Array,
    n_atoms: int,
    n_starts: int,
    *,
    box_size: float,
    diameter: float,
    box_length: float | jax.Array | None = None,
    steps: int = 1000,
    learning_rate: float = 1e-3,
) -> jax.Array:
    """Random starting structures relaxed under a soft-sphere repulsion.

    Positions are drawn uniformly in a cube of edge ``box_size`` centred at the
    origin (free clusters) or in the periodic box ``[0, box_length)^3``; then
    ``steps`` of gradient descent on `soft_sphere_energy` (in units of the
    diameter, see module docstring) spread overlapping atoms apart.

    Args:
        key: JAX random key; the same key gives the same structures.
        n_atoms: atoms per structure.
        n_starts: number of structures.
        box_size: edge of the starting cube of a free cluster (ignored when
            ``box_length`` is given). Same units as ``diameter``.
        diameter: soft-sphere contact distance ``s`` (the potential's
            nearest-neighbour distance: 1 for LJ, r0 for Gupta, 2.35 Å for Si).
        box_length: edge of the periodic cube, or ``None`` for free clusters.
        steps: number of gradient-descent steps.
        learning_rate: gradient-descent step on ``positions / diameter``.

    Returns:
        ``[n_starts, n_atoms, 3]`` float64 array of positions; periodic positions
        are wrapped into ``[0, box_length)``.
    """
    return _harmonic_initialization(
        key,
        box_size,
        diameter,
        box_length,
        learning_rate,
        n_atoms=n_atoms,
        n_starts=n_starts,
        steps=steps,
    )


@functools.partial(jax.jit, static_argnames=("n_atoms", "n_starts", "steps"))
def _harmonic_initialization(
    key, box_size, diameter, box_length, learning_rate, *, n_atoms, n_starts, steps
):
    shape = (n_starts, n_atoms, 3)
    if box_length is None:
        positions = jax.random.uniform(
            key, shape, minval=-0.5 * box_size, maxval=0.5 * box_size
        )
    else:
        positions = jax.random.uniform(key, shape, maxval=box_length)

    def energy(scaled_positions):
        scaled_box = None if box_length is None else box_length / diameter
        return soft_sphere_energy(scaled_positions, 1.0, scaled_box)

    force = jax.grad(energy)

    def relax(start):
        def descend(_, scaled_positions):
            return scaled_positions - learning_rate * force(scaled_positions)

        return jax.lax.fori_loop(0, steps, descend, start / diameter) * diameter

    positions = jax.vmap(relax)(positions)
    if box_length is not None:
        positions = jnp.mod(positions, box_length)
    return positions


def starting_structures(
    key: jax.Array,
    system: str,
    n_atoms: int,
    n_starts: int,
    *,
    diameter: float | None = None,
    box_size: float | None = None,
) -> jax.Array:
    """Harmonic-initialization starts with the paper's settings for each potential.

    ========  ===================================  ==================================
    system    starting region                      soft-sphere diameter
    ========  ===================================  ==================================
    ``lj``    cube of edge 3.0 (reduced units)     1.0 (d0)
    ``gupta`` cube of edge 4.0 Å                   required keyword: r0 of the set, Å
    ``sw``    periodic cube of `SILICON_BOX_LENGTH`  2.35 Å
    ========  ===================================  ==================================

    Args:
        key: JAX random key.
        system: ``"lj"``, ``"gupta"`` or ``"sw"``.
        n_atoms: atoms per structure.
        n_starts: number of structures.
        diameter: soft-sphere diameter; required for ``"gupta"``, overrides the
            default otherwise.
        box_size: edge of the starting cube of a free cluster, overriding the
            paper's 3.0 / 4.0 Å (useful for large clusters, e.g. LJ75+, for which
            the 3.0 cube is very dense).

    Returns:
        ``[n_starts, n_atoms, 3]`` positions (see `harmonic_initialization`).
    """
    if system == "lj":
        return harmonic_initialization(
            key,
            n_atoms,
            n_starts,
            box_size=LENNARD_JONES_START_BOX if box_size is None else box_size,
            diameter=LENNARD_JONES_LENGTH_SCALE if diameter is None else diameter,
        )
    if system == "gupta":
        if diameter is None:
            raise ValueError(
                "starting_structures('gupta', ...) needs diameter= the r0 of the "
                "Gupta parameter set, in Å"
            )
        return harmonic_initialization(
            key,
            n_atoms,
            n_starts,
            box_size=GUPTA_START_BOX if box_size is None else box_size,
            diameter=diameter,
        )
    if system == "sw":
        return harmonic_initialization(
            key,
            n_atoms,
            n_starts,
            box_size=SILICON_BOX_LENGTH,
            diameter=(
                SILICON_NEAREST_NEIGHBOUR_DISTANCE if diameter is None else diameter
            ),
            box_length=SILICON_BOX_LENGTH,
        )
    raise ValueError(f"unknown system {system!r}; valid systems: 'lj', 'gupta', 'sw'")

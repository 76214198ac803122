"""Empirical potentials as pure JAX energy functions (SPEC section 2, paper App. A).

Each potential is a factory over a `geometry.Geometry` (free space or a periodic
cell) that returns an energy function with one calling convention,
``energy_fn(positions [n, 3], parameters) -> scalar`` (`EnergyFn`):

- ``lennard_jones(geometry=FREE)``, parameters ``None`` or `LennardJonesParameters`;
- ``gupta(geometry=FREE)``, parameters a `GuptaInput` (species and parameter set);
- ``stillinger_weber(geometry)``, parameters ``None``;
- ``soft_sphere(geometry=FREE)``, parameters the contact diameter.

Factories are cached: equal geometries give the *same* function object, so jitted
drivers that take ``energy_fn`` as a static argument compile once per cell. Pair
displacements (minimum image when periodic) come from the geometry.

Forces are ``-jax.grad`` of the energy, never written by hand. All energy
functions are ``jit``-able and ``vmap``-able over a leading batch axis, including
the species and parameters of the Gupta potential, so that a training batch may mix
compositions and parameter sets of the same atom count.

Units: Lennard-Jones in reduced units (eps = d0 = 1, pair minimum at r = 1), or
those of its sigma and epsilon (`LennardJonesParameters`); Gupta and
Stillinger-Weber in Å and eV.

Lennard-Jones, Gupta and soft spheres sum over all pairs (``[n, n]``): the first
two have no cutoff (SPEC), and clusters of a few hundred atoms are cheaper on
all pairs than on a list. Stillinger-Weber (`stillinger_weber`, re-exported
here) finds its neighbours on a cell list from 200 atoms in a large cube.

Singularities. Self-pairs and exactly coincident atoms get distance 0 with a
finite (zero) gradient of the distance (`safe_pairwise_distances`). At coincident
distinct atoms Lennard-Jones and Stillinger-Weber give ``+inf`` energy (their
gradients are then not finite), whereas Gupta stays finite (its terms are
exponentials of r, about ``A exp(p)`` ~ 5e3 eV per pair at r = 0). Callers that
need to detect such structures (the ASE calculators do) must check the distances
or the finiteness of the results themselves.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ase_learn2hop.geometry import (
    FREE,
    Geometry,
    per_geometry,
    safe_norm,
    squared_norm,
)
from ase_learn2hop.gupta_parameters import (
    GUPTA_PARAMETER_SETS,
    GuptaParameters,
    GuptaParameterSet,
)
from ase_learn2hop.stillinger_weber import (  # noqa: F401 (re-exported)
    STILLINGER_WEBER_CUTOFF,
    STILLINGER_WEBER_LENGTH_SCALE,
    STILLINGER_WEBER_SILICON,
    stillinger_weber,
)

#: ``energy_fn(positions [n, 3], parameters) -> scalar``: the one calling
#: convention of every potential here (``parameters`` is a pytree, or ``None``).
EnergyFn = Callable[[jax.Array, Any], jax.Array]

#: Length scale of Lennard-Jones: the pair-minimum distance d0 (reduced units).
LENNARD_JONES_LENGTH_SCALE = 1.0
#: Nearest-neighbour distance of diamond silicon, Å (soft-sphere diameter, SPEC 3).
SILICON_NEAREST_NEIGHBOUR_DISTANCE = 2.35
#: Edge of the periodic Si64 cube, Å: 2 x 5.431 Å, near the SW equilibrium (SPEC).
SILICON_BOX_LENGTH = 10.862


# --------------------------------------------------------------------------------
# Geometry
# --------------------------------------------------------------------------------


def safe_pairwise_distances(
    positions: jax.Array, geometry: Geometry = FREE
) -> jax.Array:
    """All pair distances ``r_ij = |x_i - x_j|`` with a finite gradient everywhere.

    Zero distances (the diagonal, and any exactly coincident atoms) are masked
    with ``jnp.where`` before the square root (the jax-md "safe" trick): their
    value is 0 and their gradient is 0 instead of NaN.

    Args:
        positions: ``[n_atoms, 3]`` array (Å, or reduced units).
        geometry: free space or a periodic cell (minimum image).

    Returns:
        ``[n_atoms, n_atoms]`` symmetric array with zeros on the diagonal.
    """
    return safe_norm(geometry.pair_displacements(positions))


def _off_diagonal(n_atoms: int) -> jax.Array:
    return ~jnp.eye(n_atoms, dtype=bool)


# --------------------------------------------------------------------------------
# Lennard-Jones
# --------------------------------------------------------------------------------


class LennardJonesParameters(NamedTuple):
    """Lennard-Jones in ASE's conventions (`ase.calculators.lj.LennardJones`):
    float64 scalars (``smooth`` a bool), traced by ``jit`` (one compilation for
    all values). ``u(r) = 4 epsilon [(sigma/r)^12 - (sigma/r)^6]`` for ``r <=
    cutoff`` (``inf``: none), minus ``shift = u(cutoff)`` or, if ``smooth``, times
    ASE's cutoff function from ``onset`` to ``cutoff``."""

    sigma: Any
    epsilon: Any
    cutoff: Any
    onset: Any
    shift: Any
    smooth: Any


def lennard_jones_parameters(
    sigma=None, epsilon=None, rc=None, ro=None, smooth=None
) -> LennardJonesParameters:
    """`LennardJonesParameters` with ASE's defaults for what is not given: sigma =
    epsilon = 1, ``rc = 3 sigma``, ``ro = 0.66 rc``, not smooth (the pair energy
    shifted to 0 at rc). ``rc = inf`` (an extension) means no cutoff.

    Raises ``ValueError`` for sigma, epsilon or rc not positive (sigma, epsilon
    infinite), a smooth cutoff at infinity or ``ro`` outside ``(0, rc)``.
    """
    sigma = 1.0 if sigma is None else float(sigma)
    epsilon = 1.0 if epsilon is None else float(epsilon)
    rc = 3.0 * sigma if rc is None else float(rc)  # ASE's defaults
    ro = 0.66 * rc if ro is None else float(ro)
    smooth = bool(smooth)
    for name, value in (("sigma", sigma), ("epsilon", epsilon), ("rc", rc)):
        if not (value > 0.0 and (name == "rc" or np.isfinite(value))):
            raise ValueError(f"Lennard-Jones {name} must be positive, got {value}")
    if smooth and not (np.isfinite(rc) and 0.0 < ro < rc):
        raise ValueError(f"a smooth cutoff needs onset ro in (0, rc = {rc}), got {ro}")
    c6 = 0.0 if smooth else (sigma / rc) ** 6  # shift 0 if smooth or rc = inf
    onset = ro if np.isfinite(ro) else rc
    values = (sigma, epsilon, rc, onset, 4.0 * epsilon * c6 * (c6 - 1.0))
    return LennardJonesParameters(*map(np.float64, values), np.bool_(smooth))


def lennard_jones_length_scale(parameters: LennardJonesParameters | None) -> float:
    """The pair minimum: 1 in reduced units (``None``), else ``2^(1/6) sigma``."""
    if parameters is None:
        return LENNARD_JONES_LENGTH_SCALE
    return 2.0 ** (1.0 / 6.0) * float(parameters.sigma)


#: Free clusters of this many atoms or more get their Lennard-Jones squared
#: distances from the Gram matrix, smaller ones from the displacements. One
#: energy and gradient on one core (jax 0.10.1, benchmarks/results/lennard_jones_form.md):
#: displacements 2.5, 2.7, 6.6, 13.0, 21.4, 30.0 us at 13, 26, 38, 55, 75, 90
#: atoms against 3.4, 5.3, 8.7, 15.4, 25.2, 34.3 through the Gram matrix;
#: level at 110 (46.9 against 48.4), Gram ahead at 130 (70.8 against 66.5).
LENNARD_JONES_GRAM_MIN_ATOMS = 100


def _lennard_jones_pair_sum(
    squared_distances: jax.Array, off_diagonal: jax.Array
) -> jax.Array:
    inverse_r2 = 1.0 / jnp.where(off_diagonal, squared_distances, 1.0)
    inverse_r6 = inverse_r2**3
    # Written as r^-6 (r^-6 - 2) so that coincident atoms give +inf or a huge
    # positive number (r^2 then rounds to 0 or +-1e-16), never inf - inf.
    pair_energies = jnp.where(off_diagonal, inverse_r6 * (inverse_r6 - 2.0), 0.0)
    return 0.5 * jnp.sum(pair_energies)


def _lennard_jones_sum(squared_distances, n_atoms, parameters) -> jax.Array:
    off_diagonal = _off_diagonal(n_atoms)
    if parameters is None:  # reduced units, bit for bit as ever
        return _lennard_jones_pair_sum(squared_distances, off_diagonal)
    sigma, epsilon, cutoff, onset, shift, smooth = (jnp.asarray(x) for x in parameters)
    # As ASE: pairs with r <= rc interact, shifted or smoothed.
    inside = off_diagonal & (squared_distances <= cutoff**2)
    r2 = jnp.where(inside, squared_distances, 1.0)
    c6 = (sigma**2 / r2) ** 3
    pair_energies = 4.0 * epsilon * c6 * (c6 - 1.0)  # +inf, never inf - inf
    # ASE's (jax-md's) cutoff function of r^2, on safe values only (rc may be inf
    # when not smooth), so that no inf or NaN reaches the gradient.
    rc2 = jnp.where(smooth, cutoff**2, 2.0)
    ro2 = jnp.where(smooth, onset**2, 1.0)
    ramp = smooth & (r2 >= ro2) & (r2 < rc2)
    x = jnp.where(ramp, r2, ro2)
    fc = (rc2 - x) ** 2 * (rc2 + 2.0 * x - 3.0 * ro2) / (rc2 - ro2) ** 3
    fc = jnp.where(ramp, fc, jnp.where(r2 >= rc2, 0.0, 1.0))
    pair_energies = jnp.where(smooth, pair_energies * fc, pair_energies - shift)
    return 0.5 * jnp.sum(jnp.where(inside, pair_energies, 0.0))


@per_geometry
def lennard_jones(geometry: Geometry = FREE) -> EnergyFn:
    """Lennard-Jones energy (SPEC section 2), reduced or in ASE's conventions.

    ``parameters=None``: reduced units (Cambridge Cluster Database), ``E =
    sum_{i<j} (1/r_ij)^12 - 2 (1/r_ij)^6``, no cutoff: the pair minimum is -1 at
    r = 1. A `LennardJonesParameters`: ASE's energy and forces with the same
    sigma, epsilon, rc, ro, smooth. In a periodic cell each pair interacts through
    its minimum image only (without a cutoff the energy jumps where a pair
    crosses half the cell).

    Args:
        geometry: free space (clusters, the default) or a periodic cell.

    Returns:
        ``energy_fn(positions [n, 3], parameters=None) -> scalar`` (units of eps,
        ``+inf`` if two atoms coincide); the same object for equal geometries.
    """
    if geometry.periodic:

        def energy_fn(positions: jax.Array, parameters: Any = None) -> jax.Array:
            squared_distances = squared_norm(geometry.pair_displacements(positions))
            return _lennard_jones_sum(squared_distances, positions.shape[0], parameters)

        return energy_fn

    def free_energy_fn(positions: jax.Array, parameters: Any = None) -> jax.Array:
        n_atoms = positions.shape[0]
        if n_atoms < LENNARD_JONES_GRAM_MIN_ATOMS:
            # Fewer, fused kernels: one search of LJ13 to LJ75 evaluates its
            # energy and gradient 1-3.5 us faster than through the Gram matrix.
            displacements = positions[:, None, :] - positions[None, :, :]
            squared_distances = squared_norm(displacements)
            return _lennard_jones_sum(squared_distances, n_atoms, parameters)
        # LJ needs only r^2, and |x_i - x_j|^2 = |x_i|^2 + |x_j|^2 - 2 x_i.x_j
        # avoids the [n, n, 3] displacement tensor: faster on CPU from about
        # 110 atoms and memory-light when batched. Centring first bounds the
        # cancellation error (~1e-16 |x|^2, i.e. ~1e-14 for LJ309).
        centred = positions - jnp.mean(positions, axis=0)
        squared_norms = jnp.sum(centred**2, axis=-1)
        squared_distances = (
            squared_norms[:, None] + squared_norms[None, :] - 2.0 * centred @ centred.T
        )
        return _lennard_jones_sum(squared_distances, positions.shape[0], parameters)

    return free_energy_fn


# --------------------------------------------------------------------------------
# Gupta (RGL, second-moment tight binding)
# --------------------------------------------------------------------------------


class GuptaInput(NamedTuple):
    """Parameters of a Gupta energy function: ``species`` ``[n]`` int indices into
    the set's elements and the set's `GuptaParameters` (``[S, S]`` arrays).

    Both are traced: a batch may mix compositions and parameter sets of the same
    atom count (``vmap`` over a stacked `GuptaInput`)."""

    species: jax.Array
    parameters: GuptaParameters


def gupta_input(parameter_set: str | GuptaParameterSet, species) -> GuptaInput:
    """`GuptaInput` for ``species`` (``[n]`` int indices) of a parameter set.

    Args:
        parameter_set: a key of `GUPTA_PARAMETER_SETS` or a `GuptaParameterSet`.
        species: ``[n_atoms]`` int indices into the set's elements.
    """
    if isinstance(parameter_set, str):
        if parameter_set not in GUPTA_PARAMETER_SETS:
            raise ValueError(
                f"unknown Gupta parameter set {parameter_set!r}; valid names: "
                f"{', '.join(GUPTA_PARAMETER_SETS)}"
            )
        parameter_set = GUPTA_PARAMETER_SETS[parameter_set]
    return GuptaInput(jnp.asarray(species, dtype=jnp.int32), parameter_set.parameters)


@per_geometry
def gupta(geometry: Geometry = FREE) -> EnergyFn:
    """Gupta (RGL) energy (SPEC section 2, paper App. A.2).

    ``E = sum_i [ sum_{j!=i} A_ij exp(-p_ij (r_ij/r0_ij - 1))
    - sqrt( sum_{j!=i} xi_ij^2 exp(-2 q_ij (r_ij/r0_ij - 1)) ) ]``, no cutoff
    (in a periodic cell, minimum images only).

    Args:
        geometry: free space (clusters, the default) or a periodic cell.

    Returns:
        ``energy_fn(positions [n, 3] Å, parameters: GuptaInput) -> eV``, finite
        even for coincident atoms (see module docstring); the same object for
        equal geometries.
    """

    def energy_fn(positions: jax.Array, parameters: GuptaInput) -> jax.Array:
        species, table = parameters
        table = GuptaParameters(*(jnp.asarray(column) for column in table))
        n_atoms = positions.shape[0]
        distances = safe_pairwise_distances(positions, geometry)
        off_diagonal = _off_diagonal(n_atoms)
        rows, columns = species[:, None], species[None, :]
        p = table.p[rows, columns]
        q = table.q[rows, columns]
        r0 = table.r0[rows, columns]
        prefactor = table.A[rows, columns]
        xi = table.xi[rows, columns]
        relative_stretch = distances / r0 - 1.0
        repulsion = jnp.where(
            off_diagonal, prefactor * jnp.exp(-p * relative_stretch), 0.0
        )
        density = jnp.sum(
            jnp.where(off_diagonal, xi**2 * jnp.exp(-2.0 * q * relative_stretch), 0.0),
            axis=1,
        )
        # A lone atom has zero density, where sqrt has an infinite derivative.
        has_neighbours = density > 0.0
        band = jnp.where(
            has_neighbours, jnp.sqrt(jnp.where(has_neighbours, density, 1.0)), 0.0
        )
        return jnp.sum(repulsion) - jnp.sum(band)

    return energy_fn


# --------------------------------------------------------------------------------
# Soft spheres (harmonic initialization)
# --------------------------------------------------------------------------------


@per_geometry
def soft_sphere(geometry: Geometry = FREE) -> EnergyFn:
    """Soft-sphere repulsion of the harmonic initialization (SPEC 3, paper D.2).

    ``E = sum_{i<j} (1 - r_ij / s)^2 / 2`` for ``r_ij < s``, else 0.

    Args:
        geometry: free space or a periodic cell (minimum image).

    Returns:
        ``energy_fn(positions [n, 3], parameters=s) -> scalar`` where the
        parameter is the contact distance ``s`` (same units as the positions);
        dimensionless, finite for coincident atoms (each pair gives 1/2). The
        same object for equal geometries.
    """

    def energy_fn(positions: jax.Array, parameters: float | jax.Array) -> jax.Array:
        diameter = parameters
        n_atoms = positions.shape[0]
        distances = safe_pairwise_distances(positions, geometry)
        overlapping = _off_diagonal(n_atoms) & (distances < diameter)
        pair_energies = jnp.where(
            overlapping, 0.5 * (1.0 - distances / diameter) ** 2, 0.0
        )
        return 0.5 * jnp.sum(pair_energies)

    return energy_fn

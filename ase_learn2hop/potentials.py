"""Empirical potentials as pure JAX energy functions (SPEC section 2, paper App. A).

Every energy here is a function of positions (and parameters) that returns a
scalar; forces are ``-jax.grad`` of it, never written by hand. All functions are
``jit``-able and ``vmap``-able over a leading batch axis, including the species and
parameters of the Gupta potential, so that a training batch may mix compositions
and parameter sets of the same atom count.

Units: Lennard-Jones in reduced units (eps = d0 = 1, pair minimum at r = 1);
Gupta and Stillinger-Weber in Å and eV.

Geometry is dense (all pairs, ``[n, n]``): the clusters of the paper have at most a
few hundred atoms, where a neighbour list costs more than it saves and would not
``vmap`` over structures of different shapes.

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
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

#: Length scale of Lennard-Jones: the pair-minimum distance d0 (reduced units).
LENNARD_JONES_LENGTH_SCALE = 1.0
#: Length scale sigma of Stillinger-Weber silicon, Å.
STILLINGER_WEBER_LENGTH_SCALE = 2.0951
#: Interaction cutoff a * sigma of Stillinger-Weber silicon, Å.
STILLINGER_WEBER_CUTOFF = 3.77118
#: Nearest-neighbour distance of diamond silicon, Å (soft-sphere diameter, SPEC 3).
SILICON_NEAREST_NEIGHBOUR_DISTANCE = 2.35
#: Edge of the periodic Si64 cube, Å: 2 x 5.431 Å, near the SW equilibrium (SPEC).
SILICON_BOX_LENGTH = 10.862

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


# --------------------------------------------------------------------------------
# Geometry
# --------------------------------------------------------------------------------


def pairwise_displacements(
    positions: jax.Array, box_length: float | jax.Array | None = None
) -> jax.Array:
    """All pair displacement vectors ``d_ij = x_i - x_j``.

    Args:
        positions: ``[n_atoms, 3]`` array (Å, or reduced units for Lennard-Jones).
        box_length: edge of a periodic cubic box in the same units, or ``None``
            for a free cluster. With a box the minimum-image convention is used,
            which is exact only for interactions shorter than half the box.

    Returns:
        ``[n_atoms, n_atoms, 3]`` array; ``[i, j]`` is ``x_i - x_j`` (zero on the
        diagonal).
    """
    displacements = positions[:, None, :] - positions[None, :, :]
    if box_length is not None:
        displacements = displacements - box_length * jnp.round(
            displacements / box_length
        )
    return displacements


def _safe_norm(displacements: jax.Array) -> jax.Array:
    """Euclidean norm over the last axis, 0 with a zero gradient at the origin."""
    squared = jnp.sum(displacements**2, axis=-1)
    nonzero = squared > 0.0
    # sqrt has an infinite derivative at 0; feeding it 1 there keeps the
    # backward pass finite, and the outer where restores the value 0.
    return jnp.where(nonzero, jnp.sqrt(jnp.where(nonzero, squared, 1.0)), 0.0)


def safe_pairwise_distances(
    positions: jax.Array, box_length: float | jax.Array | None = None
) -> jax.Array:
    """All pair distances ``r_ij = |x_i - x_j|`` with a finite gradient everywhere.

    Zero distances (the diagonal, and any exactly coincident atoms) are masked
    with ``jnp.where`` before the square root (the jax-md "safe" trick): their
    value is 0 and their gradient is 0 instead of NaN.

    Args:
        positions: ``[n_atoms, 3]`` array (Å, or reduced units).
        box_length: periodic cubic box edge (minimum image), or ``None``.

    Returns:
        ``[n_atoms, n_atoms]`` symmetric array with zeros on the diagonal.
    """
    return _safe_norm(pairwise_displacements(positions, box_length))


def _off_diagonal(n_atoms: int) -> jax.Array:
    return ~jnp.eye(n_atoms, dtype=bool)


# --------------------------------------------------------------------------------
# Lennard-Jones
# --------------------------------------------------------------------------------


def lennard_jones_energy(positions: jax.Array) -> jax.Array:
    """Lennard-Jones cluster energy, reduced units (SPEC section 2).

    ``E = sum_{i<j} (1/r_ij)^12 - 2 (1/r_ij)^6`` with eps = d0 = 1 and no cutoff:
    the pair minimum is -1 at r = 1 (Cambridge Cluster Database convention).

    Args:
        positions: ``[n_atoms, 3]`` array, reduced units (d0 = 1).

    Returns:
        Scalar energy in units of eps. ``+inf`` if two atoms coincide.
    """
    n_atoms = positions.shape[0]
    # LJ needs only r^2, and |x_i - x_j|^2 = |x_i|^2 + |x_j|^2 - 2 x_i.x_j avoids
    # the [n, n, 3] displacement tensor: 1.5-3x faster on CPU for 75+ atoms and
    # memory-light when batched. Centring first bounds the cancellation error
    # (~1e-16 |x|^2, i.e. ~1e-14 for LJ309).
    centred = positions - jnp.mean(positions, axis=0)
    squared_norms = jnp.sum(centred**2, axis=-1)
    squared_distances = (
        squared_norms[:, None] + squared_norms[None, :] - 2.0 * centred @ centred.T
    )
    off_diagonal = _off_diagonal(n_atoms)
    inverse_r2 = 1.0 / jnp.where(off_diagonal, squared_distances, 1.0)
    inverse_r6 = inverse_r2**3
    # Written as r^-6 (r^-6 - 2) so that coincident atoms give +inf or a huge
    # positive number (r^2 then rounds to 0 or +-1e-16), never inf - inf.
    pair_energies = jnp.where(off_diagonal, inverse_r6 * (inverse_r6 - 2.0), 0.0)
    return 0.5 * jnp.sum(pair_energies)


def lennard_jones_energy_fn() -> Callable[[jax.Array], jax.Array]:
    """``energy_fn(positions [n, 3]) -> scalar`` for a Lennard-Jones cluster."""
    return lennard_jones_energy


# --------------------------------------------------------------------------------
# Gupta (RGL, second-moment tight binding)
# --------------------------------------------------------------------------------


class GuptaParameters(NamedTuple):
    """Gupta pair parameters, each a symmetric ``[n_species, n_species]`` array.

    Attributes:
        p: repulsive exponent (dimensionless).
        q: band (attractive) exponent (dimensionless).
        r0: reference pair distance, Å.
        A: repulsive prefactor, eV (the smaller number of a pair, SPEC decision).
        xi: band-energy prefactor, eV (the larger number of a pair).
    """

    p: jax.Array
    q: jax.Array
    r0: jax.Array
    A: jax.Array
    xi: jax.Array


class GuptaParameterSet(NamedTuple):
    """A named Gupta parameter set.

    Attributes:
        name: set name, e.g. ``"AgAu"``.
        elements: chemical symbols; species index ``s`` means ``elements[s]``.
        parameters: `GuptaParameters` indexed by those species.
    """

    name: str
    elements: tuple[str, ...]
    parameters: GuptaParameters


def _gupta_parameter_set(
    name: str,
    elements: tuple[str, ...],
    pairs: dict[tuple[str, str], tuple[float, float, float, float, float]],
) -> GuptaParameterSet:
    """Builds symmetric arrays from ``{(el1, el2): (p, q, r0, A, xi)}``."""
    n_species = len(elements)
    table = np.zeros((5, n_species, n_species))
    for (first, second), values in pairs.items():
        i, j = elements.index(first), elements.index(second)
        table[:, i, j] = values
        table[:, j, i] = values
    if np.any(table[2] == 0.0):
        raise ValueError(f"Gupta set {name!r} is missing a pair")
    return GuptaParameterSet(
        name=name,
        elements=elements,
        parameters=GuptaParameters(*(jnp.asarray(column) for column in table)),
    )


#: Named Gupta sets of SPEC section 2, values (p, q, r0 [Å], A [eV], xi [eV]).
#: "Au" is the Garzon/Jellinek gold set of the Au55 benchmark (jax-md's
#: ``gupta_gold55`` in RGL form); the bimetallic sets are Cleri-Rosato style.
GUPTA_PARAMETER_SETS: dict[str, GuptaParameterSet] = {
    "Au": _gupta_parameter_set(
        "Au", ("Au",), {("Au", "Au"): (10.15, 4.13, 2.96, 0.204525, 1.727)}
    ),
    "AgAu": _gupta_parameter_set(
        "AgAu",
        ("Ag", "Au"),
        {
            ("Ag", "Ag"): (10.85, 3.18, 2.8921, 0.1031, 1.1895),
            ("Ag", "Au"): (10.494, 3.607, 2.8885, 0.1488, 1.4874),
            ("Au", "Au"): (10.139, 4.033, 2.885, 0.2096, 1.8153),
        },
    ),
    "AgPt": _gupta_parameter_set(
        "AgPt",
        ("Ag", "Pt"),
        {
            ("Ag", "Ag"): (10.86, 3.18, 2.8921, 0.1031, 1.1895),
            ("Ag", "Pt"): (10.73, 3.57, 2.833, 0.175, 1.79),
            ("Pt", "Pt"): (10.612, 4.004, 2.7747, 0.2975, 2.695),
        },
    ),
    "PdAu": _gupta_parameter_set(
        "PdAu",
        ("Pd", "Au"),
        {
            ("Pd", "Pd"): (10.867, 3.742, 2.7485, 0.1746, 1.718),
            ("Pd", "Au"): (10.54, 3.89, 2.816, 0.19, 1.75),
            # The paper prints 10.299, a typo for Cleri-Rosato's 10.229 (SPEC).
            ("Au", "Au"): (10.229, 4.036, 2.884, 0.2061, 1.79),
        },
    ),
    "PdPt": _gupta_parameter_set(
        "PdPt",
        ("Pd", "Pt"),
        {
            ("Pd", "Pd"): (10.867, 3.742, 2.7485, 0.1746, 1.718),
            ("Pd", "Pt"): (10.74, 3.87, 2.76, 0.23, 2.2),
            ("Pt", "Pt"): (10.612, 4.004, 2.7747, 0.2975, 2.695),
        },
    ),
}


def gupta_energy(
    positions: jax.Array, species: jax.Array, parameters: GuptaParameters
) -> jax.Array:
    """Gupta (RGL) energy of a free cluster (SPEC section 2, paper App. A.2).

    ``E = sum_i [ sum_{j!=i} A_ij exp(-p_ij (r_ij/r0_ij - 1))
    - sqrt( sum_{j!=i} xi_ij^2 exp(-2 q_ij (r_ij/r0_ij - 1)) ) ]``, no cutoff.

    Args:
        positions: ``[n_atoms, 3]`` array, Å.
        species: ``[n_atoms]`` int array, indices into the parameter set's elements.
        parameters: `GuptaParameters` with ``[n_species, n_species]`` arrays.

    Returns:
        Scalar energy, eV. Finite even for coincident atoms (see module docstring).
    """
    n_atoms = positions.shape[0]
    distances = safe_pairwise_distances(positions)
    off_diagonal = _off_diagonal(n_atoms)
    rows, columns = species[:, None], species[None, :]
    p = parameters.p[rows, columns]
    q = parameters.q[rows, columns]
    r0 = parameters.r0[rows, columns]
    prefactor = parameters.A[rows, columns]
    xi = parameters.xi[rows, columns]
    relative_stretch = distances / r0 - 1.0
    repulsion = jnp.where(off_diagonal, prefactor * jnp.exp(-p * relative_stretch), 0.0)
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


def gupta_energy_fn(
    parameter_set: str | GuptaParameterSet, species
) -> Callable[[jax.Array], jax.Array]:
    """``energy_fn(positions [n, 3] Å) -> eV`` for one Gupta cluster composition.

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
    parameters = parameter_set.parameters
    species = jnp.asarray(species, dtype=jnp.int32)

    def energy_fn(positions: jax.Array) -> jax.Array:
        return gupta_energy(positions, species, parameters)

    return energy_fn


# --------------------------------------------------------------------------------
# Stillinger-Weber
# --------------------------------------------------------------------------------


def stillinger_weber_energy(
    positions: jax.Array, box_length: float | jax.Array
) -> jax.Array:
    """Stillinger-Weber silicon in a periodic cube (SPEC section 2, paper eq. 7).

    ``E = sum_{i<j} phi2(r_ij) + sum_i sum_{j<k; j,k!=i} phi3(r_ij, r_ik, theta_jik)``
    with ``phi2 = A eps [B (sigma/r)^p - (sigma/r)^q] exp(sigma / (r - a sigma))``
    and ``phi3 = lambda eps (cos theta_jik + 1/3)^2 exp(gamma sigma/(r_ij - a sigma))
    exp(gamma sigma/(r_ik - a sigma))`` (Stillinger & Weber 1985; the paper's
    eq. 7 prints only one of the two radial factors), all terms zero for
    r >= a sigma = 3.77118 Å. Parameters: `STILLINGER_WEBER_SILICON`.

    The box must be at least twice the cutoff (minimum image); this function
    cannot check a traced box, the calculator does.

    Args:
        positions: ``[n_atoms, 3]`` array, Å.
        box_length: edge of the periodic cube, Å (scalar, may be traced).

    Returns:
        Scalar energy, eV. ``+inf`` if two atoms coincide.
    """
    parameters = STILLINGER_WEBER_SILICON
    sigma = parameters["sigma"]
    epsilon = parameters["epsilon"]
    cutoff = parameters["a"] * sigma
    n_atoms = positions.shape[0]
    displacements = pairwise_displacements(positions, box_length)
    distances = _safe_norm(displacements)
    # Past (1 - 1e-6) of the cutoff exp(sigma / (r - a sigma)) underflows to an
    # exact 0; masking there, not at the cutoff itself, keeps 1/(r - a sigma)^2
    # in the gradient from overflowing to inf (0 * inf = NaN).
    inside = _off_diagonal(n_atoms) & (distances < cutoff * (1.0 - 1e-6))
    r = jnp.where(inside, distances, 0.5 * cutoff)
    below_cutoff = r - cutoff
    scaled_inverse = sigma / r
    two_body = (
        parameters["A"]
        * epsilon
        * (
            parameters["B"] * scaled_inverse ** parameters["p"]
            - scaled_inverse ** parameters["q"]
        )
        * jnp.exp(sigma / below_cutoff)
    )
    two_body_energy = 0.5 * jnp.sum(jnp.where(inside, two_body, 0.0))

    # Three-body sum over j != k for each centre i, done in O(n^2): with
    # w_ij = exp(gamma sigma / (r_ij - a sigma)) and unit vectors u_ij,
    # sum_{j,k} w_ij w_ik (u_ij.u_ik + 1/3)^2 = |sum_j w u u^T|_F^2
    # + 2/3 |sum_j w u|^2 + 1/9 (sum_j w)^2, minus the j = k terms 16/9 w_ij^2.
    weights = jnp.where(
        inside, jnp.exp(parameters["gamma"] * sigma / below_cutoff), 0.0
    )
    unit_vectors = displacements / r[..., None]
    weighted_units = weights[..., None] * unit_vectors
    shift = -parameters["cos_theta0"]
    tensor_sum = jnp.einsum("ija,ijb->iab", weighted_units, unit_vectors)
    vector_sum = jnp.sum(weighted_units, axis=1)
    scalar_sum = jnp.sum(weights, axis=1)
    all_ordered_pairs = (
        jnp.sum(tensor_sum**2, axis=(1, 2))
        + 2.0 * shift * jnp.sum(vector_sum**2, axis=1)
        + shift**2 * scalar_sum**2
    )
    same_neighbour = (1.0 + shift) ** 2 * jnp.sum(weights**2, axis=1)
    three_body_energy = (
        0.5
        * parameters["lambda"]
        * epsilon
        * jnp.sum(all_ordered_pairs - same_neighbour)
    )
    energy = two_body_energy + three_body_energy
    # The masks above drop coincident atoms (r = 0); their true energy is +inf.
    coincident = jnp.any(_off_diagonal(n_atoms) & (distances == 0.0))
    return jnp.where(coincident, jnp.inf, energy)


def stillinger_weber_energy_fn(
    box_length: float = SILICON_BOX_LENGTH,
) -> Callable[[jax.Array], jax.Array]:
    """``energy_fn(positions [n, 3] Å) -> eV`` for SW silicon in a periodic cube."""

    def energy_fn(positions: jax.Array) -> jax.Array:
        return stillinger_weber_energy(positions, box_length)

    return energy_fn


# --------------------------------------------------------------------------------
# Soft spheres (harmonic initialization)
# --------------------------------------------------------------------------------


def soft_sphere_energy(
    positions: jax.Array,
    diameter: float | jax.Array,
    box_length: float | jax.Array | None = None,
) -> jax.Array:
    """Soft-sphere repulsion of the harmonic initialization (SPEC 3, paper D.2).

    ``E = sum_{i<j} (1 - r_ij / s)^2 / 2`` for ``r_ij < s``, else 0.

    Args:
        positions: ``[n_atoms, 3]`` array, same units as ``diameter``.
        diameter: contact distance ``s``.
        box_length: periodic cubic box edge (minimum image), or ``None``.

    Returns:
        Scalar, dimensionless. Finite for coincident atoms (each pair gives 1/2).
    """
    n_atoms = positions.shape[0]
    distances = safe_pairwise_distances(positions, box_length)
    overlapping = _off_diagonal(n_atoms) & (distances < diameter)
    pair_energies = jnp.where(overlapping, 0.5 * (1.0 - distances / diameter) ** 2, 0.0)
    return 0.5 * jnp.sum(pair_energies)

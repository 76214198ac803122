"""Input features of the learned optimizer (paper section 3.1, Table 1; SPEC section 4).

Every feature is a number per coordinate component (atom i, axis k). Per-atom
features (radial symmetry functions, species, particle count) are shared by the
three components of an atom; per-step features (sine of the step) by every
component. Each feature then goes through the log-magnitude / sign encoding
(paper section 3.1, Andrychowicz et al. 2016) before it reaches the network.

Shapes: ``n`` atoms, ``3`` axes; a feature array is ``[n, 3, n_features]``.
"""

from __future__ import annotations

import dataclasses
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ase_learn2hop import neighbours
from ase_learn2hop.systems import N_SPECIES_DESCRIPTORS, StructureContext

#: Behler-Parrinello radial widths, in units of the potential's length scale squared.
RADIAL_ETAS = (0.0009, 0.01, 0.02, 0.035, 0.06, 0.1, 0.2, 0.4)
#: Cosine cutoff of the radial features, in units of the potential's length scale.
RADIAL_CUTOFF = 2.5
#: From this many atoms a single search computes the radial features on a
#: neighbour list (`benchmarks/results/step_cost_35da9ed.md`: all pairs
#: are faster up to 561 atoms, 9% there, the list 1.2x faster at 1000).
RADIAL_LIST_MIN_ATOMS = 800
#: Verlet skin of the radial features' list, in length scales: the list is
#: rebuilt once an atom has moved half of it.
RADIAL_LIST_SKIN = 0.5
#: The list's capacities over the starts' largest neighbour count and fullest
#: cell.
RADIAL_LIST_CAPACITY_MARGIN = 1.25
#: A periodic list rebuilds from a cell list only when that gives each atom at
#: most this fraction of the atoms as candidates: Si1000 (0.78) took 8.9 ms per
#: learned step on the cell list against 7.7 without, Si1728 (0.38) 14.9
#: against 18.8 (`benchmarks/results/stillinger_weber_cost*.md`).
CELL_LIST_CANDIDATES = 0.5
#: Time scales of the step sine features, in steps.
STEP_TIMESCALES = (1, 3, 10, 30, 100, 300, 1000, 3000, 10000)
#: Decay rates of the moving averages of g and g^2 (MLPOpt, Metz et al. 2019a).
DECAY_RATES = (0.5, 0.9, 0.99, 0.999)
#: Radial features are computed for two neighbour kinds: same species, other species.
N_RADIAL_KINDS = 2
_ADAM_EPSILON = 1e-8


@dataclasses.dataclass(frozen=True)
class FeatureSet:
    """Which feature groups the network sees (paper Table 3 ablation).

    Every group is on by default. The configuration is hashable, so it is a
    static argument of jitted functions, and it is stored with the weights.
    """

    gradients: bool = True
    positions: bool = True
    decays: bool = True
    adam_like: bool = True
    particle_count: bool = True
    species: bool = True
    step: bool = True
    radial: bool = True
    encoding_scale: float = 10.0

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> FeatureSet:
        unknown = set(values) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"unknown feature groups {sorted(unknown)}")
        return cls(**values)

    @property
    def n_raw_features(self) -> int:
        """Number of features per component before the encoding doubles them."""
        n_decays = len(DECAY_RATES)
        return (
            self.gradients
            + self.positions
            + self.decays * 2 * n_decays
            + self.adam_like * 2 * n_decays
            + self.particle_count
            + self.species * N_SPECIES_DESCRIPTORS
            + self.step * len(STEP_TIMESCALES)
            + self.radial * N_RADIAL_KINDS * len(RADIAL_ETAS)
        )

    @property
    def n_inputs(self) -> int:
        """Width of the network's input: two encoded numbers per raw feature."""
        return 2 * self.n_raw_features


def log_sign_encoding(x: jax.Array, p: float = 10.0) -> jax.Array:
    """Log-magnitude / sign encoding of paper section 3.1.

    (log|x| / p, sign x) if |x| > exp(-p), else (-1, x exp(p)).

    Args:
        x: ``[...]`` array of raw features.
        p: the encoding scale (10 in the paper).

    Returns:
        ``[..., 2]`` array.
    """
    magnitude = jnp.abs(x)
    large = magnitude > jnp.exp(-p)
    # The logarithm is taken on a clamped value so that the unused branch of the
    # where never produces -inf (and no NaN in gradients).
    safe_magnitude = jnp.where(large, magnitude, 1.0)
    first = jnp.where(large, jnp.log(safe_magnitude) / p, -1.0)
    second = jnp.where(large, jnp.sign(x), x * jnp.exp(p))
    return jnp.stack([first, second], axis=-1)


#: Taylor coefficients of sin(x) / x in powers of x^2, to x^10: on |x| <= pi/2
#: the truncation error of sin is below 6e-8, under float32's own rounding.
_SINE_SERIES = tuple((-1.0) ** k / math.factorial(2 * k + 1) for k in range(6))


def _polynomial(x: jax.Array, coefficients) -> jax.Array:
    """sum_k c_k x^(m-k) by Horner's rule, ``coefficients`` highest power
    first."""
    value = coefficients[0]
    for coefficient in coefficients[1:]:
        value = value * x + coefficient
    return value


def cosine_cutoff(r: jax.Array, cutoff: float) -> jax.Array:
    """Behler-Parrinello cutoff 0.5 (cos(pi r / c) + 1) for r < c, else 0.

    Below float64 it is evaluated as 0.5 (1 - sin(pi (r / c - 1/2))) with the
    sine's Taylor polynomial (within 1.3e-7 of the exact cutoff, as close as
    XLA's float32 cosine): XLA on CPU calls a scalar cosine, which also keeps
    the radial kernels fused with it from vectorising (batched radial
    features 1.7-2x slower, `benchmarks/batched_step_cost.py`).
    """
    if jnp.result_type(r) == jnp.float64:
        return jnp.where(r < cutoff, 0.5 * (jnp.cos(jnp.pi * r / cutoff) + 1.0), 0.0)
    x = jnp.pi * (jnp.minimum(r / cutoff, 1.0) - 0.5)
    x_squared = x * x
    series = _polynomial(x_squared, _SINE_SERIES[::-1])
    return jnp.where(r < cutoff, 0.5 * (1.0 - x * series), 0.0)


def _float32_constant(bits: int) -> np.float32:
    return np.frombuffer(np.uint32(bits).tobytes(), np.float32)[0]


#: Cody-Waite split of ln 2 (high part exact in float32) and the minimax
#: polynomial of (e^r - 1 - r) / r^2 on |r| <= ln(2)/2, highest power first:
#: the Cephes single-precision exponential, as XLA emits it on CPU.
_LN2_HIGH = _float32_constant(0x3F318000)
_LN2_LOW = _float32_constant(0xB95E8083)
_LOG2_E = _float32_constant(0x3FB8AA3B)
_EXP_SERIES = tuple(
    _float32_constant(bits)
    for bits in (0x39506967, 0x3AB743CE, 0x3C088908, 0x3D2AA9C1, 0x3E2AAAAA)
) + (np.float32(0.5),)


def exponential(x: jax.Array) -> jax.Array:
    """e^x, elementwise; in float32 through plain arithmetic.

    Float32 follows XLA's own CPU exponential step for step (range clamp,
    n = floor(x log2 e + 1/2), r = x - n ln 2 in two parts, a degree-7
    polynomial, times 2^n): 30 million arguments in [-100, 0] gave the same
    bits as ``jnp.exp`` (jax 0.10.1). Within 1 ulp of e^x from -87.3 to
    88.3 (4 ulp to 88.7); as XLA's, zero below float32's smallest normal
    number, infinity above its largest, NaN for NaN. XLA computes its own
    exponential one element at a time where a fusion's innermost dimension
    is short (the radial kernels' 8 widths), and this one 8 at a time:
    LJ13's batched search 1.14-1.26x faster in three comparisons
    (`benchmarks/results/batched_step_cost.md`). Other dtypes: ``jnp.exp``.
    """
    if jnp.result_type(x) != jnp.float32:
        return jnp.exp(x)
    # Clamps as selects that let NaN through, not jnp.clip: XLA's
    # NaN-propagating maximum is a scalar call on CPU.
    x = jnp.where(x < np.float32(-87.8), np.float32(-87.8), x)
    x = jnp.where(x > np.float32(88.8), np.float32(88.8), x)
    n = jnp.floor(x * _LOG2_E + np.float32(0.5))
    n = jnp.where(n < np.float32(-127.0), np.float32(-127.0), n)
    n = jnp.where(n > np.float32(127.0), np.float32(127.0), n)
    r = (x - n * _LN2_HIGH) - n * _LN2_LOW
    series = _polynomial(r, _EXP_SERIES)
    mantissa = np.float32(1.0) + (r + series * (r * r))
    power_of_two = jax.lax.bitcast_convert_type(
        (n.astype(jnp.int32) + 127) << 23, jnp.float32
    )
    return mantissa * power_of_two


def radial_symmetry_features(
    positions: jax.Array,
    context: StructureContext,
    etas: tuple[float, ...] = RADIAL_ETAS,
    cutoff: float = RADIAL_CUTOFF,
    neighbour_indices: jax.Array | None = None,
) -> jax.Array:
    """Behler-Parrinello radial symmetry functions per atom and neighbour kind.

    phi_i^(kind, eta) = sum_{j != i, j of kind} exp(-eta r_ij^2) Gamma(r_ij), with
    r measured in units of ``context.length_scale`` (SPEC decision on radial units),
    kind 0 = neighbours of the same species as i, kind 1 = of another species.

    Args:
        positions: ``[n, 3]`` positions (Å, or reduced units for LJ).
        context: the system's `systems.StructureContext` (minimum image through
            ``context.geometry`` when periodic).
        neighbour_indices: ``[n, k]`` jax-md dense neighbour list holding every
            neighbour closer than the cutoff (`neighbours`; padding ``>= n``),
            or ``None`` to sum over all pairs. Both give the same features to
            rounding.

    Returns:
        ``[n, 2 * len(etas)]`` features (same-kind block first).
    """
    n_atoms = positions.shape[0]
    species = context.species
    if neighbour_indices is None:
        displacements = context.geometry.pair_displacements(positions)
        present = ~jnp.eye(n_atoms, dtype=bool)
        neighbour_species = species[None, :]
    else:
        displacements = context.geometry.neighbour_displacements(
            positions, neighbour_indices
        )
        present = neighbour_indices < n_atoms
        neighbour_species = species[jnp.where(present, neighbour_indices, 0)]
    squared = jnp.sum(displacements**2, axis=-1)
    # Self pairs and padding get a distance past the cutoff: exactly zero.
    squared = jnp.where(present, squared, (2.0 * cutoff * context.length_scale) ** 2)
    r = jnp.sqrt(squared) / context.length_scale
    weights = cosine_cutoff(r, cutoff)
    # Kernels laid out [pair, eta] (eta fastest, rank 2), through
    # `exponential`, which XLA on CPU vectorises over the 8 widths; the
    # cutoff joins the species masks.
    pairs = r.size
    kernels = exponential(
        -jnp.asarray(etas, dtype=r.dtype) * (r**2).reshape(pairs, 1)
    ).reshape(r.shape + (len(etas),))
    same_species = (species[:, None] == neighbour_species).astype(kernels.dtype)
    # Sums over j as batched matrix products: on CPU ~2x faster than masked
    # sums (equal to float32 rounding).
    same = jnp.einsum("ij,ijk->ik", same_species * weights, kernels)
    if context.composition.one_species:
        # The sum below is exactly 0 here: the same bits, without its cost
        # (LJ38's batched search 3% cheaper).
        other = jnp.zeros_like(same)
    else:
        other = jnp.einsum("ij,ijk->ik", (1.0 - same_species) * weights, kernels)
    return jnp.concatenate([same, other], axis=-1)


def radial_list_spec(
    positions: np.ndarray, geometry, length_scale: float
) -> neighbours.NeighbourListSpec:
    """The radial features' Verlet list for ``[batch, n, 3]`` starts: cutoff
    `RADIAL_CUTOFF` and skin `RADIAL_LIST_SKIN` length scales, capacity
    `RADIAL_LIST_CAPACITY_MARGIN` times the starts' largest neighbour count;
    in a periodic cube, a cell list of that margin times the starts' fullest
    cell when that leaves at most `CELL_LIST_CANDIDATES` of the atoms as
    candidates."""
    cutoff = RADIAL_CUTOFF * float(length_scale)
    skin = RADIAL_LIST_SKIN * float(length_scale)
    margin = RADIAL_LIST_CAPACITY_MARGIN
    n_atoms = np.shape(positions)[-2]
    count = neighbours.neighbour_count(positions, geometry, cutoff + skin)
    capacity = min(n_atoms - 1, max(1, math.ceil(margin * count)))
    cell_capacity = None
    if neighbours.cells_per_side(geometry, cutoff + skin) >= 3:
        occupancy = neighbours.cell_occupancy(positions, geometry, cutoff + skin)
        cell_capacity = max(
            math.ceil(margin * occupancy) + 1, neighbours.min_cell_capacity(capacity)
        )
        if 27 * cell_capacity > CELL_LIST_CANDIDATES * n_atoms:
            # Too few cells: the 27 around an atom hold most of the box.
            cell_capacity = None
    return neighbours.NeighbourListSpec(cutoff, skin, capacity, geometry, cell_capacity)


def with_radial_list(
    context: StructureContext, positions: np.ndarray, min_atoms: int | None = None
) -> StructureContext:
    """``context`` with the radial features' neighbour list when one search of
    at least ``min_atoms`` atoms runs (``positions`` ``[1, n, 3]``), else
    unchanged (all pairs); ``min_atoms`` defaults to `RADIAL_LIST_MIN_ATOMS`.
    Only one search: under ``vmap`` a list would rebuild at every step."""
    batch, n_atoms = np.shape(positions)[:2]
    limit = RADIAL_LIST_MIN_ATOMS if min_atoms is None else min_atoms
    if batch != 1 or n_atoms < limit:
        return context
    spec = radial_list_spec(positions, context.geometry, float(context.length_scale))
    return context._replace(neighbour_list=spec)


def step_sine_features(step: jax.Array, timescales=STEP_TIMESCALES) -> jax.Array:
    """sin(t / tau) for each time scale tau: ``[len(timescales)]``."""
    return jnp.sin(step / jnp.asarray(timescales, dtype=jnp.float64))


def centered_positions(positions: jax.Array, context: StructureContext) -> jax.Array:
    """Positions in units of the length scale, centred on the centroid.

    For periodic systems the origin is the cell centre (a centroid means nothing
    under periodic boundaries).
    """
    if context.geometry.periodic:
        origin = jnp.asarray(context.geometry.centre, dtype=positions.dtype)
    else:
        origin = jnp.mean(positions, axis=0)
    return (positions - origin) / context.length_scale


class FeatureBlocks(NamedTuple):
    """Encoded features split by what they vary over (the network's first layer is
    linear, so per-atom and shared features are multiplied once per atom / once per
    structure instead of once per component).

    Attributes:
        component: ``[n, 3, 2 * n_component]`` per coordinate component.
        atom: ``[n, 2 * n_atom]`` per atom (species, radial).
        shared: ``[2 * n_shared]`` per structure (particle count, step sines).
    """

    component: jax.Array
    atom: jax.Array
    shared: jax.Array


def feature_blocks(
    feature_set: FeatureSet,
    positions: jax.Array,
    gradient: jax.Array,
    first_moments: jax.Array,
    second_moments: jax.Array,
    step: jax.Array,
    context: StructureContext,
    neighbour_indices: jax.Array | None = None,
) -> FeatureBlocks:
    """All enabled features, encoded, in three blocks (see `FeatureBlocks`).

    Args:
        feature_set: which groups to include.
        positions: ``[n, 3]``.
        gradient: ``[n, 3]`` dE/dx (eV/Å, or reduced units).
        first_moments, second_moments: ``[n_decays, n, 3]`` moving averages of g
            and g^2 *after* including this step's gradient.
        step: scalar int, the step index t (0 at the first update).
        context: the system's `StructureContext`.
        neighbour_indices: ``[n, k]`` neighbour list of the radial features, or
            ``None`` for all pairs (`radial_symmetry_features`).
    """
    n_atoms = positions.shape[0]
    dtype = positions.dtype
    # Per-component features are laid out [3n, f] (components as rows): XLA
    # on CPU vectorises the encoding's logarithms over rank-2 arrays several
    # times faster than over [n, 3, f].
    components = 3 * n_atoms
    per_component = [jnp.zeros((components, 0), dtype)]
    per_atom = [jnp.zeros((n_atoms, 0), dtype)]
    shared = [jnp.zeros((0,), dtype)]

    def rows(per_decay):
        # [n_decays, n, 3] -> [3n, n_decays]
        return per_decay.reshape(per_decay.shape[0], components).T

    if feature_set.gradients:
        per_component.append(gradient.reshape(components, 1))
    if feature_set.positions:
        per_component.append(
            centered_positions(positions, context).reshape(components, 1)
        )
    decays = jnp.asarray(DECAY_RATES, dtype=dtype)[:, None, None]
    # The exponent in the features' dtype, whether the step count is weakly
    # typed or not (an int64 one would make the moments float64).
    bias_correction = 1.0 - decays ** jnp.asarray(step + 1, dtype=dtype)
    if feature_set.decays:
        per_component.append(rows(first_moments))
        per_component.append(rows(second_moments))
    if feature_set.adam_like:
        # One reciprocal, multiplied in: what XLA makes of the division in a
        # batch on one device (the same bits as before), written out so that
        # a batch split over devices (`devices`), compiled apart, computes the
        # same bits instead of dividing.
        inverse_correction = 1.0 / bias_correction
        corrected_first = first_moments * inverse_correction
        corrected_second = second_moments * inverse_correction
        inverse_norm = jax.lax.rsqrt(corrected_second + _ADAM_EPSILON)
        per_component.append(rows(corrected_first * inverse_norm))
        per_component.append(rows(inverse_norm))
    if feature_set.particle_count:
        shared.append(jnp.asarray([n_atoms], dtype=dtype))
    if feature_set.species:
        per_atom.append(context.species_descriptors)
    if feature_set.step:
        shared.append(step_sine_features(step).astype(dtype))
    if feature_set.radial:
        per_atom.append(
            radial_symmetry_features(
                positions, context, neighbour_indices=neighbour_indices
            )
        )

    def encode(blocks):
        raw = jnp.concatenate(blocks, axis=-1)
        # Encoded flat: XLA on CPU vectorises an elementwise loop over the
        # innermost axis, which is a block's few features here (18 for a
        # component), so the flat layout runs the logarithms several times
        # faster (same bits).
        encoded = log_sign_encoding(raw.reshape(-1), feature_set.encoding_scale)
        return encoded.reshape(raw.shape[:-1] + (2 * raw.shape[-1],))

    component = encode(per_component)
    return FeatureBlocks(
        component.reshape(n_atoms, 3, component.shape[-1]),
        encode(per_atom),
        encode(shared),
    )

"""Optimization problems: a potential, its parameters and what the optimizer sees.

A `System` bundles everything a search, a baseline, the benchmark or training
needs about one kind of structure: the energy function (signature
``energy_fn(positions, potential_parameters)``), its parameters, the
`StructureContext` of the learned optimizer's features, how starting structures
are drawn (harmonic initialization, SPEC section 3) and, where known, the
global-minimum energy.

Names understood by `system_from_name`:

- ``lj13``, ``lj38``, ... any Lennard-Jones cluster ``ljN`` (reduced units);
- ``au55`` (any ``auN``), Gupta gold with the Garzon parameters;
- ``si64``, Stillinger-Weber silicon in the periodic 10.862 Å cube;
- bimetallic Gupta clusters by formula, ``Ag35Au3``, ``Pd19Pt19``, ... using the
  parameter set of the two elements (AgAu, AgPt, PdAu, PdPt).
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.resources
import re
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ase_learn2hop import devices, potentials
from ase_learn2hop.geometry import FREE, Geometry, periodic_cube, smallest_cell_height
from ase_learn2hop.initialization import harmonic_initialization
from ase_learn2hop.potentials import GuptaInput

#: Number of physical species descriptors per atom (see `StructureContext`).
N_SPECIES_DESCRIPTORS = 5

#: Au55 global minimum with the Garzon parameters (SPEC decision on gold), eV.
AU55_GLOBAL_MINIMUM = -181.89
#: Diamond silicon in the 10.862 Å box under Stillinger-Weber, eV (SPEC).
SI64_REFERENCE_ENERGY = -277.537


@jax.tree_util.register_static
@dataclasses.dataclass(frozen=True)
class Composition:
    """What is known before any computation about a structure's species: a
    static value (no array leaves), so that the features can leave out work
    that a one-species structure does not need, at compile time.

    Attributes:
        one_species: every atom is of the same species, so its
            other-species radial features are exactly 0
            (`features.radial_symmetry_features` then does not sum them).
            False when unknown: the features are then computed in full,
            which is right for any structure.
    """

    one_species: bool = False

    @classmethod
    def of(cls, species) -> Composition:
        """The composition of host-side ``[n]`` species labels (any kind:
        indices, atomic numbers, symbols)."""
        return cls(one_species=len(set(np.asarray(species).tolist())) == 1)


#: A structure of one species (set by the constructors that know it).
ONE_SPECIES = Composition(one_species=True)
#: Nothing known: right for any structure (`StructureContext`'s default).
ANY_COMPOSITION = Composition()


class StructureContext(NamedTuple):
    """What the optimizer knows about the system besides positions and gradients.

    Attributes:
        species: ``[n]`` int, species index of each atom (0 for one-element systems).
        species_descriptors: ``[n, 5]`` float, physical description of each atom's
            own kind (for Gupta: r0 / length_scale, p / 10, q / 10, A, xi in eV of
            the pair with itself; zeros for Lennard-Jones and silicon), so that
            weights transfer to elements never seen in training (SPEC decision).
        length_scale: scalar, the potential's length scale l (the pair minimum
            for LJ: d0 = 1 in reduced units, 2^(1/6) sigma otherwise; r0
            for Gupta in Å, sigma = 2.0951 Å for Stillinger-Weber). Radial features
            and the learned step are in units of l.
        geometry: the `geometry.Geometry` (free space or periodic cell). Static:
            it has no array leaves, so it passes through ``jit``, ``vmap`` and
            `broadcast_to_batch` unchanged.
        free: ``[n, 3]`` 1.0 for each coordinate the optimizer may move, 0.0 for
            a fixed one (ASE's ``FixAtoms`` / ``FixCartesian``), or ``None`` when
            every coordinate is free.
        neighbour_list: static `neighbours.NeighbourListSpec` of the radial
            features, or ``None`` for all pairs (`features.with_radial_list`).
        composition: static `Composition` (``ONE_SPECIES`` from
            `one_element_context`, `Composition.of` the species labels in
            the other constructors; the default, unknown, is right for any
            structure).
    """

    species: jax.Array
    species_descriptors: jax.Array
    length_scale: jax.Array
    geometry: Geometry = FREE
    free: jax.Array | None = None
    neighbour_list: Any = None
    composition: Composition = ANY_COMPOSITION


def one_element_context(
    n_atoms: int, length_scale: float, geometry: Geometry = FREE
) -> StructureContext:
    """The `StructureContext` of a one-element system: species 0, zero
    descriptors. Built on the host (``jax.device_put``, as ``jnp.asarray``
    gives it, weak typing included): an eager ``jnp.zeros`` compiles a
    program per shape in every new process."""
    descriptors = (n_atoms, N_SPECIES_DESCRIPTORS)
    return StructureContext(
        species=jax.device_put(np.zeros(n_atoms, dtype=np.int32)),
        species_descriptors=jax.device_put(
            np.zeros(descriptors, jax.dtypes.canonicalize_dtype(np.float64))
        ),
        length_scale=jax.device_put(length_scale),
        geometry=geometry,
        composition=ONE_SPECIES,
    )


class System(NamedTuple):
    """One optimization problem (see module docstring).

    Attributes:
        name: e.g. ``"lj13"``, ``"au55"``, ``"Ag35Au3"``, ``"si64"``.
        potential: ``"lj"``, ``"gupta"`` or ``"sw"``.
        n_atoms: number of atoms.
        energy_fn: ``energy_fn(positions [n, 3], potential_parameters) -> scalar``,
            from the factories of `potentials` for the system's geometry (one
            function object per geometry).
        potential_parameters: pytree passed to ``energy_fn`` (``None`` for
            reduced-unit Lennard-Jones and Stillinger-Weber, a
            `potentials.LennardJonesParameters` for Lennard-Jones in ASE's
            conventions, a `potentials.GuptaInput`).
        context: `StructureContext` for the learned optimizer's features; its
            ``geometry`` is the system's boundary conditions (`System.geometry`).
        start_box_size: cube edge of the random starting positions (clusters).
        start_diameter: soft-sphere diameter of the harmonic initialization.
        global_minimum: known global-minimum (or reference) energy, or ``None``.
        symbols: chemical symbols of the atoms (``"X"`` for Lennard-Jones).
        family: the kind of system weights are chosen by: ``"lj"``, ``"sw"`` or
            ``"gupta:SET"`` with the Gupta parameter set (``"gupta:AgAu"``).
    """

    name: str
    potential: str
    n_atoms: int
    energy_fn: Callable
    potential_parameters: Any
    context: StructureContext
    start_box_size: float
    start_diameter: float
    global_minimum: float | None
    symbols: tuple[str, ...]
    family: str

    @property
    def geometry(self) -> Geometry:
        """The system's `geometry.Geometry` (``context.geometry``)."""
        return self.context.geometry


@functools.cache
def lennard_jones_global_minima() -> dict[int, float]:
    """Putative global minima of LJ clusters N = 2..150 (Cambridge Cluster Database,
    Wales & Doye 1997), reduced units."""
    text = importlib.resources.files("ase_learn2hop").joinpath(
        "data/lj_global_minima.tsv"
    )
    table = {}
    for line in text.read_text().splitlines()[1:]:
        if line.strip():
            size, energy = line.split()
            table[int(size)] = float(energy)
    return table


#: A cutoff (or smooth onset) at least this many pair-minimum distances times
#: ``n_atoms^(1/3)`` spans every compact cluster of ``n_atoms`` (LJ13's diameter is
#: 0.81 of it, LJ150's about 0.55), so its tabulated global minimum still holds.
LENNARD_JONES_SPANNING_CUTOFF = 2.0


def lennard_jones_system(
    n_atoms: int,
    sigma: float | None = None,
    epsilon: float | None = None,
    cutoff: float | None = None,
    *,
    onset: float | None = None,
    smooth: bool | None = None,
) -> System:
    """A free Lennard-Jones cluster of ``n_atoms``.

    Two conventions (as `calculators.LennardJones`):

    - no arguments: **reduced units**, the Cambridge Cluster Database convention
      (eps = 1, pair minimum at r = d0 = 1, no cutoff); potential parameters
      ``None``; length scale 1;
    - any of ``sigma``, ``epsilon``, ``cutoff``, ``onset``, ``smooth`` given:
      **ASE's conventions** (`ase.calculators.lj.LennardJones` with ``rc =
      cutoff``, ``ro = onset``), ASE's defaults for the rest (sigma = epsilon = 1,
      ``cutoff = 3 sigma`` with the energy shifted to 0 there, ``onset = 0.66
      cutoff``, not smooth); ``cutoff = inf`` means no cutoff. Potential
      parameters are a `potentials.LennardJonesParameters`; the length scale (of
      the features, the learned step and the starts) is the pair minimum
      ``2^(1/6) sigma``.

    The global minimum is the tabulated reduced one times epsilon when the
    pair energy is unchanged across the cluster: no cutoff; or a shifted cutoff
    of at least `LENNARD_JONES_SPANNING_CUTOFF` ``n^(1/3)`` pair-minimum
    distances (then every pair of the minimum is shifted: ``- n (n - 1) / 2
    u(rc)``); or a smooth onset that far. Otherwise it is ``None`` (unknown).
    """
    if n_atoms < 2:
        raise ValueError(
            f"a Lennard-Jones cluster needs at least 2 atoms, got {n_atoms}"
        )
    reduced_minimum = lennard_jones_global_minima().get(n_atoms)
    if all(value is None for value in (sigma, epsilon, cutoff, onset, smooth)):
        parameters = None
        global_minimum = reduced_minimum
    else:
        parameters = potentials.lennard_jones_parameters(
            sigma, epsilon, cutoff, onset, smooth
        )
        global_minimum = _scaled_lennard_jones_minimum(
            reduced_minimum, n_atoms, parameters
        )
    length_scale = potentials.lennard_jones_length_scale(parameters)
    context = one_element_context(n_atoms, length_scale)
    return System(
        name=f"lj{n_atoms}",
        potential="lj",
        n_atoms=n_atoms,
        energy_fn=potentials.lennard_jones(FREE),
        potential_parameters=parameters,
        context=context,
        start_box_size=3.0 * length_scale,
        start_diameter=length_scale,
        global_minimum=global_minimum,
        symbols=("X",) * n_atoms,
        family="lj",
    )


def _scaled_lennard_jones_minimum(
    reduced_minimum: float | None,
    n_atoms: int,
    parameters: potentials.LennardJonesParameters,
) -> float | None:
    """The global minimum under ``parameters`` (see `lennard_jones_system`)."""
    if reduced_minimum is None:
        return None
    epsilon = float(parameters.epsilon)
    spanning = (
        LENNARD_JONES_SPANNING_CUTOFF
        * potentials.lennard_jones_length_scale(parameters)
        * n_atoms ** (1.0 / 3.0)
    )
    if bool(parameters.smooth):
        return (
            epsilon * reduced_minimum if float(parameters.onset) >= spanning else None
        )
    if float(parameters.cutoff) < spanning:
        return None
    n_pairs = n_atoms * (n_atoms - 1) // 2
    return epsilon * reduced_minimum - n_pairs * float(parameters.shift)


def gupta_length_scale(parameter_set) -> float:
    """Length scale l of a Gupta set: the mean of its pair distances r0 (Å)."""
    r0 = np.asarray(parameter_set.parameters.r0)
    return float(np.mean(r0))


def gupta_species_descriptors(parameter_set, species: np.ndarray) -> jax.Array:
    """``[n, 5]`` physical descriptors of each atom's own kind: r0_ii / l, p_ii / 10,
    q_ii / 10, A_ii, xi_ii (eV). See `StructureContext`."""
    p = parameter_set.parameters
    diagonal = np.stack(
        [
            np.diag(np.asarray(p.r0)) / gupta_length_scale(parameter_set),
            np.diag(np.asarray(p.p)) / 10.0,
            np.diag(np.asarray(p.q)) / 10.0,
            np.diag(np.asarray(p.A)),
            np.diag(np.asarray(p.xi)),
        ],
        axis=-1,
    )
    return jnp.asarray(diagonal[np.asarray(species)])


def gupta_system(
    set_name: str, symbols: list[str] | tuple[str, ...], name: str = ""
) -> System:
    """A free Gupta cluster with the given chemical symbols, one per atom.

    Args:
        set_name: ``"Au"``, ``"AgAu"``, ``"AgPt"``, ``"PdAu"`` or ``"PdPt"``.
        symbols: ``n`` chemical symbols, each an element of the set.
    """
    if set_name not in potentials.GUPTA_PARAMETER_SETS:
        raise ValueError(
            f"unknown Gupta parameter set {set_name!r}; "
            f"choose from {sorted(potentials.GUPTA_PARAMETER_SETS)}"
        )
    parameter_set = potentials.GUPTA_PARAMETER_SETS[set_name]
    elements = tuple(parameter_set.elements)
    unknown = sorted(set(symbols) - set(elements))
    if unknown:
        raise ValueError(
            f"element(s) {unknown} not covered by the Gupta set {set_name!r} "
            f"(elements {list(elements)})"
        )
    species = np.array([elements.index(s) for s in symbols], dtype=np.int32)
    length_scale = gupta_length_scale(parameter_set)
    n_atoms = len(symbols)
    context = StructureContext(
        species=jnp.asarray(species),
        species_descriptors=gupta_species_descriptors(parameter_set, species),
        length_scale=jnp.asarray(length_scale),
        composition=Composition.of(species),
    )
    global_minimum = (
        AU55_GLOBAL_MINIMUM if (set_name == "Au" and n_atoms == 55) else None
    )
    return System(
        name=name or formula(symbols),
        potential="gupta",
        n_atoms=n_atoms,
        energy_fn=potentials.gupta(FREE),
        potential_parameters=GuptaInput(jnp.asarray(species), parameter_set.parameters),
        context=context,
        start_box_size=4.0,
        start_diameter=length_scale,
        global_minimum=global_minimum,
        symbols=tuple(symbols),
        family=f"gupta:{set_name}",
    )


def silicon_system(
    n_atoms: int = 64,
    box_length: float = potentials.SILICON_BOX_LENGTH,
    *,
    geometry: Geometry | None = None,
) -> System:
    """Stillinger-Weber silicon in a periodic cell.

    Args:
        n_atoms: number of atoms.
        box_length: edge of the periodic cube, Å (used when ``geometry`` is None).
        geometry: any periodic `geometry.Geometry` (e.g. a sheared cell from
            ``periodic_cell``) instead of the cube of edge ``box_length``.

    Raises:
        ValueError: the cell is not periodic, or a cell height is smaller than
            twice the cutoff (minimum image).
    """
    if geometry is None:
        if box_length < 2 * potentials.STILLINGER_WEBER_CUTOFF:
            raise ValueError(
                f"periodic box {box_length} Å is smaller than twice the "
                f"Stillinger-Weber cutoff "
                f"({2 * potentials.STILLINGER_WEBER_CUTOFF:.5f} Å)"
            )
        geometry = periodic_cube(box_length)
    elif not geometry.periodic:
        raise ValueError("silicon_system needs a periodic geometry")
    # Raises for a cell too small for the minimum image.
    energy_fn = potentials.stillinger_weber(geometry)
    context = one_element_context(
        n_atoms, potentials.STILLINGER_WEBER_LENGTH_SCALE, geometry
    )
    reference = (
        SI64_REFERENCE_ENERGY
        if (n_atoms == 64 and geometry == periodic_cube(10.862))
        else None
    )
    # Periodic starts fill the cell; start_box_size only matters for clusters.
    start_box_size = (
        geometry.box_length if geometry.is_cube else smallest_cell_height(geometry)
    )
    return System(
        name=f"si{n_atoms}",
        potential="sw",
        n_atoms=n_atoms,
        energy_fn=energy_fn,
        potential_parameters=None,
        context=context,
        start_box_size=start_box_size,
        start_diameter=potentials.SILICON_NEAREST_NEIGHBOUR_DISTANCE,
        global_minimum=reference,
        symbols=("Si",) * n_atoms,
        family="sw",
    )


def formula(symbols) -> str:
    """``Ag35Au3``-style formula, elements in alphabetical order."""
    counts: dict[str, int] = {}
    for s in symbols:
        counts[s] = counts.get(s, 0) + 1
    return "".join(f"{e}{counts[e]}" for e in sorted(counts))


def bimetallic_system(
    first: str, first_count: int, second: str, second_count: int
) -> System:
    """A bimetallic Gupta cluster, e.g. ``bimetallic_system("Ag", 35, "Au", 3)``."""
    for set_name, parameter_set in potentials.GUPTA_PARAMETER_SETS.items():
        if len(parameter_set.elements) == 2 and set(parameter_set.elements) == {
            first,
            second,
        }:
            symbols = [first] * first_count + [second] * second_count
            return gupta_system(set_name, symbols)
    raise ValueError(
        f"no bimetallic Gupta set covers {first} and {second}; sets: "
        f"{sorted(potentials.GUPTA_PARAMETER_SETS)}"
    )


def system_from_name(name: str) -> System:
    """Parse ``lj13``, ``au55``, ``si64`` or a bimetallic formula like ``Ag35Au3``."""
    lowered = name.lower()
    if match := re.fullmatch(r"lj(\d+)", lowered):
        return lennard_jones_system(int(match.group(1)))
    if match := re.fullmatch(r"au(\d+)", lowered):
        return gupta_system("Au", ["Au"] * int(match.group(1)), name=lowered)
    if match := re.fullmatch(r"si(\d+)", lowered):
        n_atoms = int(match.group(1))
        if n_atoms != 64:
            raise ValueError(
                "silicon is defined for 64 atoms in the 10.862 Å cube (si64)"
            )
        return silicon_system(n_atoms)
    if match := re.fullmatch(r"([A-Z][a-z]?)(\d+)([A-Z][a-z]?)(\d+)", name):
        first, first_count, second, second_count = match.groups()
        return bimetallic_system(first, int(first_count), second, int(second_count))
    raise ValueError(
        f"unknown system {name!r}: use ljN (e.g. lj38), auN (au55), si64 or a "
        "bimetallic formula such as Ag35Au3 or Pd19Pt19"
    )


#: Step of the soft-sphere descent of the harmonic initialization, in units of the
#: diameter. Decision: the paper's 1e-3 over 1000 steps leaves pairs at 0.45-0.56
#: diameters in 38- to 75-atom clusters (the soft sphere is not minimized, contrary
#: to the paper's intent); 1e-2 brings every pair past 0.97 diameters.
START_LEARNING_RATE = 1e-2


def starting_structures(key: jax.Array, system: System, n_starts: int) -> jax.Array:
    """``[n_starts, n, 3]`` harmonic-initialization starts for ``system`` (SPEC 3):
    the same key gives the same starts, for every method."""
    return harmonic_initialization(
        key,
        system.n_atoms,
        n_starts,
        box_size=system.start_box_size,
        diameter=system.start_diameter,
        geometry=system.geometry,
        learning_rate=START_LEARNING_RATE,
    )


def broadcast_to_batch(tree: Any, batch_size: int) -> Any:
    """Give every array leaf of ``tree`` a leading axis of ``batch_size`` (static
    leaves such as a `geometry.Geometry` are kept as they are)."""

    def broadcast(leaf):
        shape = (batch_size,) + jnp.shape(leaf)
        if isinstance(leaf, np.ndarray) or devices.on_one_cpu_device(leaf):
            # On the host: an eager jnp.broadcast_to compiles a program per
            # shape in every new process.
            return jax.device_put(np.broadcast_to(np.asarray(leaf), shape))
        return jnp.broadcast_to(jnp.asarray(leaf), shape)

    return jax.tree_util.tree_map(broadcast, tree)

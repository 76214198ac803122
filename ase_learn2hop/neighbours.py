"""Neighbour lists through `jax_md.partition`: the radial features' Verlet
lists and Stillinger-Weber's per-call lists.

A `NeighbourListSpec` (cutoff, skin, capacity, geometry, and atoms per cell
when candidates come from a cell list) is the static description; the list
itself is jax-md's dense format (``idx [n, capacity]``, padded with ``n``).
Summed over a list, a cutoff interaction costs N x capacity instead of N^2.

The radial symmetry features (`features.radial_symmetry_features`) use a
Verlet list with a skin, rebuilt only when some atom has moved more than half
the skin since the last build; its spec rides as a static field of
`systems.StructureContext` (``None``, the default and always in training,
means all pairs; `features.with_radial_list` chooses), and the live list is
part of the learned optimizer's state
(`learned_optimizer.LearnedOptimizerState.neighbours`). Correctness never
depends on the capacity: jax-md sets a sticky overflow bit when a rebuild
finds more neighbours than the list holds, and the driver (`driver.advance`)
then grows the capacity that overflowed by half (`grown`) and runs the chunk
again from where it began, so no neighbour is ever silently dropped.

Stillinger-Weber (`stillinger_weber`) builds a list without skin from scratch
at every call (`uniform_density_spec`, `NeighbourListSpec.build`) and falls
back to all pairs when it overflows.

In free space a rebuild takes every atom as a candidate (jax-md without a cell
list: a free cluster has no box), so it is still N^2, but cheap next to the
features and amortised over the steps between rebuilds. In a periodic cube of
at least three list ranges (cutoff plus skin) a side a rebuild can take its
candidates from jax-md's cell list (O(N)); its capacity per cell grows after
an overflow like the list's, and each atom's neighbours are kept in ascending
order, so results do not depend on it. Under ``vmap`` a rebuild's
``lax.cond`` becomes a select that rebuilds on every step; the radial
features therefore use lists only for one search at a time.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import warnings
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax_md import partition

from ase_learn2hop.geometry import Geometry

#: Capacity growth after an overflow.
GROWTH = 1.5
#: `uniform_density_spec`'s capacities: this many times what a uniform
#: density gives, and a few more for small counts.
UNIFORM_MARGIN = 2.0
UNIFORM_SLACK = 4

_OVERFLOW = int(
    partition.PartitionErrorCode.NEIGHBOR_LIST_OVERFLOW
    | partition.PartitionErrorCode.CELL_LIST_OVERFLOW
)


@jax.tree_util.register_static
@dataclasses.dataclass(frozen=True)
class NeighbourListSpec:
    """A neighbour list's static description (hashable: jit compiles once per
    spec).

    Attributes:
        cutoff: interaction range, length units (Å, or reduced units).
        skin: Verlet skin, length units.
        capacity: neighbours held per atom (jax-md's ``max_occupancy``).
        geometry: free space or the periodic cell (minimum image).
        cell_capacity: atoms held per cell of jax-md's cell list, which then
            finds a rebuild's candidates in the 27 cells around each atom
            (O(n)); ``None``: every atom is a candidate (O(n^2), the only way
            in free space or in a cell of fewer than 3 list ranges a side).
    """

    cutoff: float
    skin: float
    capacity: int
    geometry: Geometry
    cell_capacity: int | None = None

    def __post_init__(self):
        # jax-md keeps at most the 27 cells' candidates: the list cannot be wider.
        if self.cell_capacity is not None and self.cell_capacity < min_cell_capacity(
            self.capacity
        ):
            raise ValueError(
                f"{self.cell_capacity} atoms per cell give fewer candidates "
                f"than {self.capacity} neighbours"
            )

    @property
    def functions(self) -> partition.NeighborListFns:
        return _functions(
            self.geometry, self.cutoff, self.skin, self.cell_capacity is not None
        )

    def stale(self, positions: jax.Array) -> partition.NeighborList:
        """An empty list for structures shaped like ``positions`` ``[..., n,
        3]`` (any leading batch axes), marked stale (a NaN reference): its
        first `update` rebuilds it."""
        shape = positions.shape
        return partition.NeighborList(
            jnp.full(shape[:-1] + (self.capacity,), shape[-2], jnp.int32),
            jnp.full(shape, jnp.nan, positions.dtype),
            partition.PartitionError(jnp.zeros(shape[:-2], jnp.uint8)),
            self.cell_capacity,
            self.capacity,
            partition.NeighborListFormat.Dense,
            None if self.cell_capacity is None else self.cutoff + self.skin,
            None if self.cell_capacity is None else self._cell_list_functions,
            self.functions.update,
        )

    def build(self, positions: jax.Array) -> partition.NeighborList:
        """A list built from scratch at ``positions`` ``[n, 3]`` (jittable)."""
        return self.update(self.stale(positions), positions)

    @property
    def _cell_list_functions(self) -> partition.CellListFns:
        return _cell_list_functions(self.geometry, self.cutoff + self.skin)

    def update(
        self, neighbours: partition.NeighborList, positions: jax.Array
    ) -> partition.NeighborList:
        """``neighbours`` valid at ``positions`` ``[n, 3]``: rebuilt when stale
        or when an atom has moved more than half the skin since the last build
        (jax-md's update), else unchanged."""
        if self.geometry.periodic:
            offset = 0.5 * np.asarray(self.geometry.cell)[0]
        else:
            offset = np.array([self.cutoff + self.skin, 0.0, 0.0])
        # A stale list's reference is put half a cell (or the cutoff) away
        # from every atom, so jax-md sees them all moved and rebuilds.
        stale = jnp.any(jnp.isnan(neighbours.reference_position))
        reference = jnp.where(
            stale,
            positions + jnp.asarray(offset, positions.dtype),
            neighbours.reference_position,
        )
        if self.cell_capacity is not None:
            # jax-md's cell list hashes positions in [0, L) (the list itself
            # only holds indices, and the update compares by minimum image).
            positions = self.geometry.wrap(positions)
        with warnings.catch_warnings():
            # jax-md scatters its int64 candidates (under x64) into int32.
            warnings.filterwarnings("ignore", "scatter inputs", FutureWarning)
            updated = dataclasses.replace(
                neighbours, reference_position=reference
            ).update(positions)
        if self.cell_capacity is None:
            return updated
        # A cell list orders each atom's neighbours by cell slots, which move
        # with the cell capacity; ascending indices (padding n last) make the
        # features' sums, and so the search, independent of it. Only a
        # rebuild (a new reference) reorders: other steps skip the sort.
        rebuilt = jnp.any(updated.reference_position != reference)
        idx = jax.lax.cond(
            rebuilt, lambda idx: jnp.sort(idx, axis=-1), lambda idx: idx, updated.idx
        )
        return dataclasses.replace(updated, idx=idx)


@functools.lru_cache(maxsize=64)
def _functions(geometry: Geometry, cutoff: float, skin: float, cell_list: bool):
    # One set of functions per (geometry, cutoff, skin): lists built from them
    # carry the same static update function, so jit caches hit. The cache
    # outlives the first caller's trace: its constants must be concrete.
    with jax.ensure_compile_time_eval():
        return partition.neighbor_list(
            geometry.displacement_fn,
            geometry.box_length if cell_list else 1.0,  # 1.0: unused
            cutoff,
            dr_threshold=skin,
            disable_cell_list=not cell_list,
            format=partition.NeighborListFormat.Dense,
        )


@functools.lru_cache(maxsize=64)
def _cell_list_functions(geometry: Geometry, cell_size: float):
    with jax.ensure_compile_time_eval():
        return partition.cell_list(geometry.box_length, cell_size)


def cells_per_side(geometry: Geometry, cell_size: float) -> int:
    """Cells of at least ``cell_size`` a side that jax-md's cell list cuts a
    periodic cube into; 0 when it cannot (free space, other cells)."""
    if not geometry.is_cube:
        return 0
    return math.floor(geometry.box_length / cell_size)


def cell_occupancy(positions: np.ndarray, geometry: Geometry, cell_size: float) -> int:
    """Most atoms in one cell of the cube's cell list, over ``[batch, n, 3]``
    structures."""
    side = geometry.box_length
    cells = cells_per_side(geometry, cell_size)
    wrapped = np.mod(np.asarray(positions, dtype=float), side)
    index = np.minimum((wrapped / (side / cells)).astype(int), cells - 1)
    flat = (index[..., 0] * cells + index[..., 1]) * cells + index[..., 2]
    return max(int(np.bincount(row, minlength=cells**3).max()) for row in flat)


def neighbour_count(positions: np.ndarray, geometry: Geometry, radius: float) -> int:
    """Largest number of other atoms within ``radius`` of an atom, over
    ``[batch, n, 3]`` structures."""
    largest = 0
    for structure in np.asarray(positions):
        difference = np.asarray(geometry.pair_displacements(jnp.asarray(structure)))
        within = np.sum(difference**2, axis=-1) < radius**2
        largest = max(largest, int(within.sum(axis=1).max()) - 1)
    return largest


def min_cell_capacity(capacity: int) -> int:
    """Fewest atoms per cell that can fill ``capacity`` neighbours per atom:
    jax-md keeps at most the 27 cells' candidates of an atom."""
    return math.ceil(capacity / 27)


def uniform_density_spec(
    n_atoms: int, geometry: Geometry, cutoff: float
) -> NeighbourListSpec | None:
    """A list without skin, rebuilt from scratch whenever it is used
    (`NeighbourListSpec.build`), for ``n_atoms`` anywhere in a periodic cube:
    neighbours per atom and atoms per cell each `UNIFORM_MARGIN` times what a
    uniform density gives, plus `UNIFORM_SLACK`; ``None`` when jax-md cannot
    build a cell list there (not a periodic cube, or fewer than 3 cells of at
    least ``cutoff`` a side)."""
    cells = cells_per_side(geometry, cutoff)
    if cells < 3:
        return None
    within_cutoff = n_atoms / geometry.box_length**3 * 4.0 / 3.0 * math.pi * cutoff**3
    per_cell = n_atoms / cells**3
    capacity = min(
        n_atoms - 1, math.ceil(UNIFORM_MARGIN * within_cutoff) + UNIFORM_SLACK
    )
    cell_capacity = max(
        math.ceil(UNIFORM_MARGIN * per_cell) + UNIFORM_SLACK,
        min_cell_capacity(capacity),
    )
    return NeighbourListSpec(cutoff, 0.0, capacity, geometry, cell_capacity)


def initial(context, positions: jax.Array) -> partition.NeighborList | None:
    """The list a search starts with (rebuilt at its first use), or ``None``
    when ``context`` has none."""
    spec = context.neighbour_list
    return None if spec is None else spec.stale(positions)


def _is_list(node) -> bool:
    return isinstance(node, partition.NeighborList)


def lists_in(tree) -> list[partition.NeighborList]:
    leaves = jax.tree_util.tree_leaves(tree, is_leaf=_is_list)
    return [leaf for leaf in leaves if _is_list(leaf)]


def overflowed(tree) -> bool:
    """Whether any neighbour list in ``tree`` dropped neighbours (host side)."""
    return any(
        bool(np.any(np.asarray(found.error.code) & _OVERFLOW))
        for found in lists_in(tree)
    )


def _is_spec(node) -> bool:
    return isinstance(node, NeighbourListSpec)


def list_spec(parameters: Any) -> NeighbourListSpec | None:
    """The one `NeighbourListSpec` in ``parameters``, or ``None`` (all pairs)."""
    leaves = jax.tree_util.tree_leaves(parameters, is_leaf=_is_spec)
    specs = {leaf for leaf in leaves if _is_spec(leaf)}
    if len(specs) > 1:
        raise RuntimeError(f"{len(specs)} different neighbour lists in one search")
    return specs.pop() if specs else None


def resized(
    parameters: Any, carry: Any, capacity: int, cell_capacity: int | None = None
) -> tuple[Any, Any]:
    """``parameters`` and ``carry`` with every neighbour list holding
    ``capacity`` neighbours per atom (and ``cell_capacity`` atoms per cell, when
    given); the carry's lists are marked stale, so their next update rebuilds
    them."""
    spec = list_spec(parameters)
    if cell_capacity is None:
        cell_capacity = spec.cell_capacity
    if cell_capacity is not None:
        cell_capacity = max(int(cell_capacity), min_cell_capacity(capacity))
    spec = dataclasses.replace(
        spec, capacity=int(capacity), cell_capacity=cell_capacity
    )
    parameters = jax.tree_util.tree_map(
        lambda node: spec if _is_spec(node) else node, parameters, is_leaf=_is_spec
    )
    carry = jax.tree_util.tree_map(
        lambda node: spec.stale(node.reference_position) if _is_list(node) else node,
        carry,
        is_leaf=_is_list,
    )
    return parameters, carry


def grown(parameters: Any, carry: Any, overflowed: Any = None) -> tuple[Any, Any]:
    """`resized` with `GROWTH` times the capacity that overflowed in
    ``overflowed`` (a carry whose lists say which; default ``carry``):
    neighbours per atom (at most n - 1), or atoms per cell (at most n).

    Raises:
        RuntimeError: there is nothing to grow.
    """
    spec = list_spec(parameters)
    lists = lists_in(carry)
    if spec is None or not lists:
        raise RuntimeError("a neighbour list overflowed and cannot be grown")
    n_atoms = lists[0].idx.shape[-2]
    code = 0
    for found in lists_in(carry if overflowed is None else overflowed):
        code |= int(np.bitwise_or.reduce(np.asarray(found.error.code).reshape(-1)))
    capacity, cell_capacity = spec.capacity, spec.cell_capacity
    if code & partition.PartitionErrorCode.CELL_LIST_OVERFLOW:
        # The cell list dropped candidates: the neighbour count means nothing.
        cell_capacity = min(n_atoms, math.ceil(GROWTH * cell_capacity))
    elif spec.capacity >= n_atoms - 1:
        raise RuntimeError("a neighbour list of every other atom overflowed")
    else:
        capacity = min(n_atoms - 1, math.ceil(GROWTH * spec.capacity))
    return resized(parameters, carry, capacity, cell_capacity)

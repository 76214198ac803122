"""Geometry of a structure: free space or a periodic cell, through `jax_md.space`.

A `Geometry` is the one place that knows about boundary conditions. Potentials,
features, descent, the drivers and the minima record all ask it for pair
displacements (minimum image when periodic) and for how to move atoms (wrapped
back into the cell when periodic); nothing else writes a minimum image or a
``mod``.

It is a frozen, hashable value registered as a *static* pytree: it rides inside
`systems.StructureContext` through ``jit`` and ``vmap`` without being traced, and
two geometries with the same cell compare equal, so jitted code compiles once
per cell, not once per object.

Three kinds, each backed by `jax_md.space`:

- free space (``cell=None``): `jax_md.space.free`;
- a periodic cube (``periodic_cube(L)``): `jax_md.space.periodic`'s shift, the
  minimum image as ``d - L round(d / L)``;
- any periodic parallelepiped (``periodic_cell(cell)``, rows are the cell
  vectors as in ASE): `jax_md.space.periodic_general` in real (not fractional)
  coordinates.

Positions are in the potential's length unit (Å, or reduced units for
Lennard-Jones). The minimum-image convention is exact only for interactions
shorter than half the smallest cell height.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect

import jax
import jax.numpy as jnp
import numpy as np
from jax_md import space


@jax.tree_util.register_static
@dataclasses.dataclass(frozen=True)
class Geometry:
    """Boundary conditions of a structure.

    Attributes:
        cell: ``None`` for free space, else the ``3 x 3`` cell as a tuple of row
            vectors (length units), every direction periodic.
    """

    cell: tuple[tuple[float, float, float], ...] | None = None

    @property
    def periodic(self) -> bool:
        """True for a periodic cell, False for free space."""
        return self.cell is not None

    @property
    def is_cube(self) -> bool:
        """True for a periodic cube (cell = L times the identity)."""
        if self.cell is None:
            return False
        matrix = np.asarray(self.cell)
        return bool(
            np.allclose(matrix, np.diag(np.diag(matrix)))
            and np.allclose(np.diag(matrix), matrix[0, 0])
        )

    @property
    def cell_matrix(self) -> np.ndarray | None:
        """``[3, 3]`` cell, rows are cell vectors, or ``None`` in free space."""
        return None if self.cell is None else np.asarray(self.cell, dtype=float)

    @property
    def box_length(self) -> float | None:
        """Edge of a periodic cube, ``None`` for free space.

        Raises:
            ValueError: the cell is periodic but not a cube.
        """
        if self.cell is None:
            return None
        if not self.is_cube:
            raise ValueError("this periodic cell is not a cube")
        return float(self.cell[0][0])

    @property
    def centre(self) -> np.ndarray | None:
        """Centre of the periodic cell (length units), ``None`` in free space."""
        if self.cell is None:
            return None
        return 0.5 * np.asarray(self.cell, dtype=float).sum(axis=0)

    @property
    def space(self):
        """The `jax_md.space` pair ``(displacement_fn, shift_fn)``."""
        return _jax_md_space(self)

    @property
    def displacement_fn(self):
        """``displacement_fn(Ra [3], Rb [3]) -> [3]``, minimum image when periodic."""
        return self.space[0]

    def pair_displacements(self, positions: jax.Array) -> jax.Array:
        """All pair displacements ``d_ij = x_i - x_j`` (minimum image).

        Args:
            positions: ``[n_atoms, 3]`` array.

        Returns:
            ``[n_atoms, n_atoms, 3]`` array, zero on the diagonal.
        """
        # [i, j] = displacement(x_i, x_j) (jax-md's map_product is transposed).
        rows = jax.vmap(self.displacement_fn, (None, 0))
        return jax.vmap(rows, (0, None))(positions, positions)

    def neighbour_displacements(
        self, positions: jax.Array, indices: jax.Array
    ) -> jax.Array:
        """Displacements ``d_ij = x_i - x_j`` to listed neighbours (minimum image).

        Args:
            positions: ``[n_atoms, 3]`` array.
            indices: ``[n_atoms, k]`` neighbour indices (jax-md's dense format;
                entries ``>= n_atoms`` are padding and give the displacement to
                atom 0, to be masked by the caller).

        Returns:
            ``[n_atoms, k, 3]`` array.
        """
        neighbours = positions[jnp.where(indices < len(positions), indices, 0)]
        rows = jax.vmap(self.displacement_fn, (None, 0))
        return jax.vmap(rows, (0, 0))(positions, neighbours)

    def wrap(self, positions: jax.Array) -> jax.Array:
        """Positions moved back into the cell (identity in free space).

        Args:
            positions: ``[..., 3]`` array.
        """
        if self.cell is None:
            return positions
        if self.is_cube:
            side = self.cell[0][0]
            wrapped = jnp.mod(positions, side)
            # A coordinate a hair below zero rounds to exactly ``side`` after mod.
            return jnp.where(wrapped >= side, wrapped - side, wrapped)
        matrix = jnp.asarray(self.cell, dtype=positions.dtype)
        fractional = positions @ jnp.linalg.inv(matrix)
        fractional = jnp.mod(fractional, 1.0)
        fractional = jnp.where(fractional >= 1.0, fractional - 1.0, fractional)
        return fractional @ matrix

    def move(self, positions: jax.Array, displacement: jax.Array) -> jax.Array:
        """``positions + displacement``, wrapped into the cell when periodic."""
        return self.wrap(positions + displacement)

    def random_frame(
        self, key: jax.Array, positions: jax.Array, gradient: jax.Array
    ) -> tuple[jax.Array, jax.Array]:
        """The structure ``[n, 3]`` and its gradient ``[n, 3]`` in a random
        frame of the same energy: a uniformly random rotation (or
        rotoreflection) about the centroid in free space, a uniformly random
        translation in a periodic cell.

        Learned basin hopping starts every hop from a random frame: the
        learned step sees centred positions per Cartesian component, so the
        frame changes the hop, where a deterministic hop would repeat a
        rejected move forever.
        """
        if self.periodic:
            cell = jnp.asarray(self.cell, positions.dtype)
            shift = jax.random.uniform(key, (3,), positions.dtype) @ cell
            return self.move(
                positions, jnp.broadcast_to(shift, positions.shape)
            ), gradient
        # The Q of a Gaussian matrix's QR with R's diagonal made positive: a
        # uniformly distributed orthogonal matrix (Mezzadri 2007). That Q is
        # the Gram-Schmidt orthonormalisation of the columns, written out: a
        # batched 3 x 3 QR (LAPACK under vmap) costs more than the learned
        # step's network.
        rotation = _gram_schmidt(jax.random.normal(key, (3, 3), positions.dtype))
        centroid = jnp.mean(positions, axis=0)
        rotated = (positions - centroid) @ rotation.T + centroid
        return rotated, gradient @ rotation.T


def _gram_schmidt(matrix: jax.Array) -> jax.Array:
    """``[3, 3]`` orthonormal columns from ``matrix``'s, in order (the Q of
    the QR decomposition whose R has a positive diagonal)."""
    columns = []
    for column in matrix.T:
        for previous in columns:
            column = column - jnp.dot(previous, column) * previous
        columns.append(column / jnp.linalg.norm(column))
    return jnp.stack(columns, axis=1)


#: Free space: clusters.
FREE = Geometry()

#: An atom farther than this many length scales from every other atom has left
#: a free cluster.
DISSOCIATION_DISTANCE = 2.0


def dissociated(positions: jax.Array, length_scale: jax.Array) -> jax.Array:
    """Whether some atom of a free cluster ``[n, 3]`` is farther than
    `DISSOCIATION_DISTANCE` length scales from every other atom."""
    differences = positions[:, None, :] - positions[None, :, :]
    squared = jnp.sum(differences**2, axis=-1)
    squared = jnp.where(jnp.eye(len(positions), dtype=bool), jnp.inf, squared)
    limit = (DISSOCIATION_DISTANCE * length_scale) ** 2
    return jnp.any(jnp.min(squared, axis=-1) > limit)


def periodic_cube(box_length: float) -> Geometry:
    """A periodic cube of edge ``box_length`` (length units)."""
    box_length = float(box_length)
    if not box_length > 0.0:
        raise ValueError(f"box_length must be positive, got {box_length}")
    return Geometry(
        ((box_length, 0.0, 0.0), (0.0, box_length, 0.0), (0.0, 0.0, box_length))
    )


def periodic_cell(cell) -> Geometry:
    """A periodic parallelepiped; ``cell`` is ``[3, 3]``, rows are cell vectors."""
    matrix = np.asarray(cell, dtype=float)
    if matrix.shape != (3, 3):
        raise ValueError(f"cell must be 3 x 3, got shape {matrix.shape}")
    if not abs(np.linalg.det(matrix)) > 1e-12:
        raise ValueError("cell vectors are degenerate (zero volume)")
    return Geometry(tuple(tuple(float(x) for x in row) for row in matrix))


@jax.custom_jvp
def _tangent_kept_apart(values: jax.Array) -> jax.Array:
    # The identity; its tangent is divided by an exact 1 made from the values,
    # which XLA cannot fold away (see `squared_norm`).
    return values


@_tangent_kept_apart.defjvp
def _tangent_kept_apart_jvp(primals, tangents):
    (values,), (tangent,) = primals, tangents
    return values, tangent / (values * 0.0 + 1.0)


def squared_norm(displacements: jax.Array) -> jax.Array:
    """Sum of squares over the last axis (``[..., 3]`` -> ``[...]``), whose
    tangent XLA computes in a kernel of its own.

    The tangent passes through a division by an exact 1, and XLA's fusion does
    not copy a division into a kernel that reads each element several times.
    Without it, jaxlib 0.10.1 recomputed a pair potential's whole derivative
    inside the gradient's two sums over ``[n, n, 3]``, once per component and
    sum: LJ13's batched energy and gradient took 2.3-2.8 µs per structure,
    1.1-1.6 with it; Si64 (Stillinger-Weber) 87-89 against 79-81 µs
    (`benchmarks/results/batched_step_cost.md`). The values are the same;
    the gradient's sums keep their order for LJ13, LJ38, LJ55, LJ75, Au55 and
    Si64, not for LJ26 (float64's last bits). The derivative is still JAX's
    own, in reverse and forward mode (``jax.hessian``).
    """
    return _tangent_kept_apart(jnp.sum(displacements**2, axis=-1))


def safe_norm(displacements: jax.Array) -> jax.Array:
    """Euclidean norm over the last axis, 0 with a zero gradient at the origin."""
    squared = squared_norm(displacements)
    nonzero = squared > 0.0
    # sqrt has an infinite derivative at 0; feeding it 1 there keeps the
    # backward pass finite, and the outer where restores the value 0.
    return jnp.where(nonzero, jnp.sqrt(jnp.where(nonzero, squared, 1.0)), 0.0)


def smallest_cell_height(geometry: Geometry) -> float:
    """Smallest distance between opposite faces of the periodic cell (length
    units); ``inf`` in free space. Minimum image is exact for interactions
    shorter than half of it."""
    matrix = geometry.cell_matrix
    if matrix is None:
        return float("inf")
    volume = abs(float(np.linalg.det(matrix)))
    face_areas = [
        np.linalg.norm(np.cross(matrix[(k + 1) % 3], matrix[(k + 2) % 3]))
        for k in range(3)
    ]
    return float(volume / max(face_areas))


def per_geometry(factory):
    """Caches ``factory(geometry)`` (a potential's energy function) by geometry
    value, however it is called (``f()``, ``f(FREE)`` and ``f(geometry=FREE)``
    give the same object), so that jitted code keyed on it compiles once per
    cell; refuses anything but a `Geometry`."""
    cached = functools.cache(factory)
    signature = inspect.signature(factory)

    @functools.wraps(factory)
    def wrapper(*args, **kwargs):
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        (geometry,) = bound.args
        if not isinstance(geometry, Geometry):
            raise TypeError(
                f"{factory.__name__} takes a geometry.Geometry (FREE, "
                f"periodic_cube(L), periodic_cell(cell)), got {geometry!r}"
            )
        return cached(geometry)

    wrapper.cache_clear = cached.cache_clear
    return wrapper


@functools.lru_cache(maxsize=256)
def _jax_md_space(geometry: Geometry):
    # One (displacement_fn, shift_fn) per geometry value: functions that close
    # over the same cell are the same objects, so jit caches keyed on them hit.
    if geometry.cell is None:
        return space.free()
    if geometry.is_cube:
        side = geometry.cell[0][0]
        _, shift_fn = space.periodic(side)

        def displacement_fn(first: jax.Array, second: jax.Array, **_) -> jax.Array:
            # The minimum image as a rounded multiple of the side: the same
            # image as jax-md's ``mod`` form, exact for |d| < side / 2, and
            # 4x faster on CPU in float64 (Stillinger-Weber Si64). Keywords
            # (jax-md passes some) are ignored, as jax-md's own do.
            difference = first - second
            return difference - side * jnp.round(difference / side)

        return displacement_fn, shift_fn
    # jax-md's general cell is column vectors; ASE's rows are the cell vectors.
    # NumPy float64, never a jnp array: the cache outlives the trace (and the
    # precision) of whoever calls first.
    box = np.asarray(geometry.cell, dtype=float).T
    with jax.ensure_compile_time_eval():
        return space.periodic_general(box, fractional_coordinates=False)

"""A small record of the distinct minima a search visited.

Two minima are the same when their energies agree within ``energy_tolerance`` and
their permutation-invariant fingerprints (sorted interatomic distances) agree
within ``distance_tolerance``. Distances are minimum-image for periodic cells
(`geometry.Geometry`).

With a ``template`` (an `Atoms` of the searched system) the record gives what
ASE's ``BasinHopping`` and ``MinimaHopping`` give: iterating yields
``(energy, atoms)`` lowest first, each `Atoms` a copy of the template at the
minimum with a `SinglePointCalculator` holding its energy (``atoms.info`` has
``"visits"``), and ``trajectory`` (any object with ``write(atoms)``, e.g. an open
`ase.io.Trajectory`) receives each distinct minimum when it is first found.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Iterator
from typing import Any

import jax
import numpy as np
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator

from ase_learn2hop.geometry import FREE, Geometry


@functools.lru_cache(maxsize=64)
def _pair_displacements(geometry: Geometry):
    # Jitted once per geometry (and atom count): ~20x faster than eager per call.
    # The jax-md space is built before any trace (its arrays must not be tracers).
    with jax.ensure_compile_time_eval():
        geometry.space  # noqa: B018  (cached by geometry)
    return jax.jit(geometry.pair_displacements)


def distance_fingerprint(
    positions: np.ndarray, geometry: Geometry = FREE
) -> np.ndarray:
    """Sorted interatomic distances ``[n (n - 1) / 2]``: invariant under
    permutation, translation and rotation of the structure (minimum image
    through ``geometry`` when periodic)."""
    positions = np.asarray(positions, dtype=float)
    difference = np.asarray(_pair_displacements(geometry)(positions), dtype=float)
    distances = np.linalg.norm(difference, axis=-1)
    upper = np.triu_indices(len(positions), k=1)
    return np.sort(distances[upper])


@dataclasses.dataclass
class MinimumRecord:
    """One distinct minimum: its energy, structure ``[n, 3]`` and how often seen."""

    energy: float
    positions: np.ndarray
    fingerprint: np.ndarray
    visits: int = 1


@dataclasses.dataclass
class DistinctMinima:
    """The lowest ``capacity`` distinct minima seen, lowest energy first.

    Attributes:
        template: `Atoms` whose copies carry the minima (``None``: iteration
            and `as_atoms` are unavailable).
        trajectory: object with ``write(atoms)`` that receives each new minimum
            as `Atoms` (needs ``template``), or ``None``.
    """

    energy_tolerance: float = 1e-4
    distance_tolerance: float = 1e-2
    capacity: int = 100
    geometry: Geometry = FREE
    records: list[MinimumRecord] = dataclasses.field(default_factory=list)
    template: Atoms | None = None
    trajectory: Any = None

    def add(self, energy: float, positions: np.ndarray) -> bool:
        """Record a minimum; returns True when it is new."""
        if not np.isfinite(energy):
            return False
        fingerprint = distance_fingerprint(positions, self.geometry)
        for record in self.records:
            if (
                abs(record.energy - energy) <= self.energy_tolerance
                and np.max(np.abs(record.fingerprint - fingerprint))
                <= self.distance_tolerance
            ):
                record.visits += 1
                return False
        record = MinimumRecord(float(energy), np.array(positions), fingerprint)
        self.records.append(record)
        self.records.sort(key=lambda record: record.energy)
        del self.records[self.capacity :]
        if self.trajectory is not None:
            self.trajectory.write(self.as_atoms(record))
        return True

    def as_atoms(self, record: MinimumRecord) -> Atoms:
        """The minimum as a copy of ``template`` with its energy attached."""
        if self.template is None:
            raise ValueError("this record of minima has no template Atoms")
        atoms = self.template.copy()
        atoms.set_positions(record.positions)
        atoms.calc = SinglePointCalculator(atoms, energy=record.energy)
        atoms.info["visits"] = record.visits
        return atoms

    def __iter__(self) -> Iterator[tuple[float, Atoms]]:
        """``(energy, atoms)`` of each distinct minimum, lowest energy first."""
        return iter([(record.energy, self.as_atoms(record)) for record in self.records])

    @property
    def energies(self) -> np.ndarray:
        return np.array([record.energy for record in self.records])

    def __len__(self) -> int:
        return len(self.records)

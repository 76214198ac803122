"""A small record of the distinct minima a search visited.

Two minima are the same when their energies agree within ``energy_tolerance`` and
their permutation-invariant fingerprints (sorted interatomic distances) agree
within ``distance_tolerance``. Distances are minimum-image for periodic cells
(`geometry.Geometry`).
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import numpy as np

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
    """The lowest ``capacity`` distinct minima seen, lowest energy first."""

    energy_tolerance: float = 1e-4
    distance_tolerance: float = 1e-2
    capacity: int = 100
    geometry: Geometry = FREE
    records: list[MinimumRecord] = dataclasses.field(default_factory=list)

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
        self.records.append(
            MinimumRecord(float(energy), np.array(positions), fingerprint)
        )
        self.records.sort(key=lambda record: record.energy)
        del self.records[self.capacity :]
        return True

    @property
    def energies(self) -> np.ndarray:
        return np.array([record.energy for record in self.records])

    def __len__(self) -> int:
        return len(self.records)

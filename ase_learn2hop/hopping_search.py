"""Learned basin hopping of a batch of starts, run from the host in chunks.

`hopping_start` and `hopping_advance` drive `learned_hopping.learned_hopping`
on the one batched driver (`driver.start` / `driver.advance`) chunk by chunk,
so that the optimizer's observers, trajectory and restart files see the
accepted minima and the best structures between chunks.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ase_learn2hop import driver
from ase_learn2hop.descent import EnergyFn, Optimizer
from ase_learn2hop.learned_hopping import HoppingConfig, learned_hopping
from ase_learn2hop.learned_optimizer import LearnedOptimizerConfig, Theta
from ase_learn2hop.search import SearchParameters
from ase_learn2hop.systems import StructureContext, broadcast_to_batch


class HoppingSearch(NamedTuple):
    """Learned basin hopping of a batch of starts between two chunks (host
    side; the field names match `cycles.CycleSearch` so that restart files and
    `LearnedHopOptimizer` treat both alike).

    Attributes:
        theta, config: the weights.
        energy_fn: the potential.
        parameters: `SearchParameters` batched on axis 0.
        hopping: the `HoppingConfig`.
        target_energy: energy counted as reaching the global minimum.
        carry: the driver's state (all force calls are the driver's).
        steps: steps (force calls) made in all, the first evaluation excluded.
        best_energy, best_positions: ``[batch]``, ``[batch, n, 3]`` lowest
            energy evaluated so far and where.
        force_calls: ``[batch]`` zeros (kept for the shared field names).
        first_hit: ``[batch]`` force calls at the first hit of the target.
        cycle_step: always 0 (no cycles).
    """

    theta: Theta
    config: LearnedOptimizerConfig
    energy_fn: EnergyFn
    parameters: SearchParameters
    hopping: HoppingConfig
    target_energy: float
    carry: driver.DriverState
    steps: int
    best_energy: np.ndarray
    best_positions: np.ndarray
    force_calls: np.ndarray
    first_hit: np.ndarray
    cycle_step: int = 0

    @property
    def optimizer(self) -> Optimizer:
        return learned_hopping(self.config, self.energy_fn, self.hopping)

    @property
    def total_force_calls(self) -> np.ndarray:
        """``[batch]`` force calls so far."""
        return self.force_calls + np.asarray(self.carry.force_calls)

    @property
    def current_energy(self) -> np.ndarray:
        """``[batch]`` energy of the structures evaluated last."""
        return np.asarray(self.carry.state.energy)


def _synchronised(search: HoppingSearch) -> HoppingSearch:
    energy = np.asarray(search.carry.best_energy)
    # Quench points are not wrapped (see quench.quench_trial): wrap the best.
    geometry = search.parameters.context.geometry
    return search._replace(
        best_energy=np.where(np.isfinite(energy), energy, np.inf),
        best_positions=np.asarray(geometry.wrap(search.carry.best_positions)),
        first_hit=np.asarray(search.carry.first_hit, dtype=np.int64),
    )


def hopping_start(
    theta: Theta,
    config: LearnedOptimizerConfig,
    energy_fn: EnergyFn,
    positions: jax.Array,
    context: StructureContext,
    potential_parameters: Any,
    *,
    hopping: HoppingConfig,
    key: jax.Array | None = None,
    target_energy: float = -math.inf,
    batched: bool = False,
) -> HoppingSearch:
    """Start learned basin hopping at ``[batch, n, 3]`` starts (one force call
    each; the first quench is the search's first steps).

    Args:
        context, potential_parameters: of one system shared by every start, or
            batched on axis 0 (``batched=True``).
        key: split into one key per start (the Metropolis draws).
    """
    positions = jnp.asarray(positions)
    batch = positions.shape[0]
    parameters = SearchParameters(potential_parameters, context)
    if not batched:
        parameters = broadcast_to_batch(parameters, batch)
    optimizer = learned_hopping(config, energy_fn, hopping)
    carry = driver.start(
        optimizer, positions, parameters, theta, key=key, target_energy=target_energy
    )
    search = HoppingSearch(
        theta=theta,
        config=config,
        energy_fn=energy_fn,
        parameters=parameters,
        hopping=hopping,
        target_energy=float(target_energy),
        carry=carry,
        steps=0,
        best_energy=np.full(batch, np.inf),
        best_positions=np.asarray(positions),
        force_calls=np.zeros(batch, dtype=np.int64),
        first_hit=np.full(batch, -1, dtype=np.int64),
    )
    return _synchronised(search)


def hopping_advance(
    search: HoppingSearch,
    n_steps: int,
    *,
    chunk_steps: int = driver.CHUNK_STEPS,
    record_every: int | None = None,
    on_minimum: Callable[[np.ndarray, np.ndarray], Any] | None = None,
    progress: Callable[[int], Any] | None = None,
    stop_at_target: bool = False,
) -> tuple[HoppingSearch, np.ndarray, np.ndarray]:
    """``n_steps`` more steps (force calls) of every search.

    Args:
        stop_at_target: each search stops at the force call at which it
            first reaches the target energy, and this call returns once every
            search has (`driver.advance`).
        on_minimum: called after every chunk with ``(energies [batch],
            positions [batch, n, 3])`` of the current accepted minima and
            again of the best structures so far.

    Returns:
        ``(search, record_steps [n_records], energy_records [batch, n_records])``.
    """
    if int(n_steps) != n_steps or n_steps < 0:
        raise ValueError(f"n_steps must be a non-negative integer, got {n_steps}")
    record_every = record_every or driver.record_interval(max(int(n_steps), 1))
    steps_done = search.steps

    # One chunk per driver call, so that the minima are reported per chunk.
    record_steps, records = [], []
    remaining = int(n_steps)
    while remaining > 0:
        chunk = min(remaining, chunk_steps)
        every = min(record_every, chunk)
        result = driver.advance(
            search.optimizer,
            search.carry,
            chunk,
            search.parameters,
            search.theta,
            target_energy=search.target_energy,
            record_every=every,
            chunk_steps=chunk_steps,
            progress=progress,
            first_step=steps_done,
            stop_at_target=stop_at_target,
        )
        record_steps.extend(result.record_steps)
        records.append(result.energy_records)
        steps_done += result.steps
        # Fewer steps than asked: every search reached the target.
        remaining = remaining - chunk if result.steps == chunk else 0
        search = _synchronised(search._replace(
            carry=result.carry, parameters=result.parameters, steps=steps_done))  # fmt: skip
        if on_minimum is not None:
            state = search.carry.state
            minimum = np.asarray(state.minimum_energy)
            on_minimum(
                np.where(np.isfinite(minimum), minimum, np.inf),
                np.asarray(state.minimum_positions),
            )
            on_minimum(search.best_energy, search.best_positions)
    batch = search.best_energy.shape[0]
    energy_records = (
        np.concatenate(records, axis=1) if records else np.zeros((batch, 0))
    )
    return search, np.asarray(record_steps, dtype=int), energy_records

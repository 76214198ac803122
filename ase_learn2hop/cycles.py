"""The cycle loop of the learned search, for a batch of starts, in chunks.

The one loop that the ASE optimizer (`LearnedHopOptimizer`) and the benchmark
run (training's meta-loss is one cycle: `search.learned_search`). Each cycle
makes H learned steps (the weights' training horizon) on the batched driver,
then `search.finish_cycle` polishes the last and the best-seen structure and
keeps the lower; the next cycle starts from the polished last structure with a
fresh optimizer state, and each start keeps its lowest polished minimum.

State between chunks is a `CycleSearch` (host side); `cycles_start`,
`cycles_advance` and `cycles_finish` are pure in the sense of taking one and
returning a new one.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ase_learn2hop import devices, driver, saved_programs
from ase_learn2hop.descent import (
    POLISH_LEARNING_RATE,
    POLISH_STEPS,
    Optimizer,
    fire_descent,
)
from ase_learn2hop.geometry import DISSOCIATION_DISTANCE
from ase_learn2hop.learned_optimizer import LearnedOptimizerConfig, Theta
from ase_learn2hop.search import (
    EnergyFn,
    SearchParameters,
    finish_cycle,
    learned_steps,
)
from ase_learn2hop.systems import StructureContext, broadcast_to_batch

# --------------------------------------------------------------------------------


class CycleSearch(NamedTuple):
    """The learned search of a batch of starts between two chunks (host side).

    Attributes:
        theta, config: the weights.
        energy_fn: the potential.
        parameters: `SearchParameters` batched on axis 0.
        horizon: learned steps per cycle (the weights' training horizon H).
        polish_steps, polish_learning_rate: the cycle-ending polish.
        target_energy: energy counted as reaching the global minimum.
        carry: the driver's state of the current cycle.
        cycle_step: learned steps made in the current cycle.
        steps: learned steps made in all.
        best_energy: ``[batch]`` lowest polished minimum so far (+inf before
            the first cycle ends).
        best_positions: ``[batch, n, 3]`` where.
        force_calls: ``[batch]`` force calls of finished cycles.
        first_hit: ``[batch]`` force calls when the target was first reached,
            -1 before.
        reinsert: move atoms that left a free cluster back onto its surface
            (`reinsert_dissociated`) after every chunk.
    """

    theta: Theta
    config: LearnedOptimizerConfig
    energy_fn: EnergyFn
    parameters: SearchParameters
    horizon: int
    polish_steps: int
    polish_learning_rate: float
    target_energy: float
    carry: driver.DriverState
    cycle_step: int
    steps: int
    best_energy: np.ndarray
    best_positions: np.ndarray
    force_calls: np.ndarray
    first_hit: np.ndarray
    reinsert: bool = False

    @property
    def optimizer(self) -> Optimizer:
        return learned_steps(self.config, self.energy_fn)

    @property
    def total_force_calls(self) -> np.ndarray:
        """``[batch]`` force calls so far, the current cycle included."""
        return self.force_calls + np.asarray(self.carry.force_calls)

    @property
    def current_energy(self) -> np.ndarray:
        """``[batch]`` energy of the current (unpolished) structures."""
        return np.asarray(self.carry.state.energy)


@saved_programs.saved_jit(
    static_argnames=("energy_fn", "polish_steps", "polish_learning_rate")
)
def _finish_cycles(
    energy_fn,
    last_positions,
    best_positions,
    parameters,
    polish_steps,
    polish_learning_rate,
):
    return devices.over_batch(
        lambda last, best, p: finish_cycle(
            energy_fn, last, best, p, polish_steps, polish_learning_rate
        )
    )(last_positions, best_positions, parameters)


def cycles_start(
    theta: Theta,
    config: LearnedOptimizerConfig,
    energy_fn: EnergyFn,
    positions: jax.Array,
    context: StructureContext,
    potential_parameters: Any,
    *,
    horizon: int,
    polish_steps: int = POLISH_STEPS,
    polish_learning_rate: float = POLISH_LEARNING_RATE,
    target_energy: float = -math.inf,
    batched: bool = False,
    relax_steps: int = 0,
    reinsert: bool = False,
) -> CycleSearch:
    """Start the learned search at ``[batch, n, 3]`` starts.

    Args:
        context, potential_parameters: of one system shared by every start, or
            already batched on axis 0 (``batched=True``).
        horizon: learned steps per cycle (the weights' training horizon).
        relax_steps: first relax every start with FIRE (`relax_starts`: ASE's
            conventions, until every force is below `RELAX_FMAX`, at most
            ``relax_steps`` steps); the relaxed starts are where the search
            begins and the first candidates for each start's best, so a search
            never ends above a local relaxation of its start. 0 (the paper's
            protocol) starts from the raw structures.
        reinsert: see `CycleSearch.reinsert` (free clusters only).
    """
    if horizon < 1:
        raise ValueError(f"horizon must be positive, got {horizon}")
    positions = jnp.asarray(positions)
    batch = positions.shape[0]
    parameters = SearchParameters(potential_parameters, context)
    if not batched:
        parameters = broadcast_to_batch(parameters, batch)
    best_energy = np.full(batch, np.inf)
    force_calls = np.zeros(batch, dtype=np.int64)
    if relax_steps > 0:
        positions, best_energy, force_calls = relax_starts(
            energy_fn, positions, parameters.potential, context.geometry, relax_steps
        )
    carry = driver.start(
        learned_steps(config, energy_fn),
        positions,
        parameters,
        theta,
        target_energy=target_energy,
    )
    return CycleSearch(
        theta=theta,
        config=config,
        energy_fn=energy_fn,
        parameters=parameters,
        horizon=int(horizon),
        polish_steps=int(polish_steps),
        polish_learning_rate=float(polish_learning_rate),
        target_energy=float(target_energy),
        carry=carry,
        cycle_step=0,
        steps=0,
        best_energy=best_energy,
        best_positions=np.asarray(positions),
        force_calls=force_calls,
        first_hit=np.full(batch, -1, dtype=np.int64),
        reinsert=bool(reinsert) and not context.geometry.periodic,
    )


#: The relaxation of the starts stops once every start's largest force is below
#: this (energy / length units): tighter than ASE's default ``fmax`` of 0.05.
RELAX_FMAX = 0.01
#: FIRE steps between two checks of the relaxation's forces.
RELAX_CHUNK = 100


def relax_starts(
    energy_fn: EnergyFn,
    positions: jax.Array,
    potential_parameters: Any,
    geometry,
    max_steps: int,
    fmax: float = RELAX_FMAX,
) -> tuple[jax.Array, np.ndarray, np.ndarray]:
    """FIRE (ASE's conventions and defaults) from ``[batch, n, 3]`` starts until
    every start's largest force is below ``fmax``, or ``max_steps`` steps.

    Returns:
        ``(positions, energies [batch] (+inf where not finite), force_calls
        [batch])``.
    """
    optimizer = fire_descent(energy_fn, 0.1, geometry)
    carry = driver.start(optimizer, positions, potential_parameters)
    done = 0
    while done < max_steps:
        largest = np.linalg.norm(np.asarray(carry.state.gradient), axis=-1).max(axis=-1)
        if np.all(largest < fmax):
            break
        chunk = min(RELAX_CHUNK, max_steps - done)
        carry = driver.advance(
            optimizer, carry, chunk, potential_parameters, record_every=chunk
        ).carry
        done += chunk
    energy = np.asarray(carry.state.energy)
    return (
        carry.state.positions,
        np.where(np.isfinite(energy), energy, np.inf),
        np.asarray(carry.force_calls, dtype=np.int64),
    )


def _restart(search: CycleSearch, positions: jax.Array) -> CycleSearch:
    """A fresh optimizer state at ``positions`` (the driver counts one call)."""
    carry = driver.start(
        search.optimizer,
        positions,
        search.parameters,
        search.theta,
        target_energy=search.target_energy,
    )
    return search._replace(carry=carry, cycle_step=0)


def cycles_finish(
    search: CycleSearch,
    on_minimum: Callable[[np.ndarray, np.ndarray], Any] | None = None,
) -> CycleSearch:
    """End the current cycle: polish its last and best structure, keep each
    start's lowest minimum, restart from the polished last structure.

    Args:
        on_minimum: called with ``(energies [batch], positions [batch, n, 3])``
            for the polished last and the polished best structures.
    """
    carry = search.carry
    result = _finish_cycles(
        search.energy_fn,
        carry.state.positions,
        carry.best_positions,
        search.parameters,
        search.polish_steps,
        search.polish_learning_rate,
    )
    final_energy = np.asarray(result.final_energy)
    best_energy = np.asarray(result.best_energy)
    best_positions = np.asarray(result.best_positions)
    if on_minimum is not None:
        on_minimum(final_energy, np.asarray(result.final_positions))
        on_minimum(best_energy, best_positions)
    force_calls = search.total_force_calls + 2 * (search.polish_steps + 1)
    cycle_hit = np.asarray(carry.first_hit)
    first_hit = np.where(
        search.first_hit >= 0,
        search.first_hit,
        np.where(
            cycle_hit > 0,
            search.force_calls + cycle_hit,
            np.where(best_energy <= search.target_energy, force_calls, -1),
        ),
    )
    better = best_energy < search.best_energy
    search = search._replace(
        best_energy=np.where(better, best_energy, search.best_energy),
        best_positions=np.where(
            better[:, None, None], best_positions, search.best_positions
        ),
        force_calls=force_calls,
        first_hit=first_hit,
    )
    restart = np.where(
        np.isfinite(final_energy)[:, None, None],
        np.asarray(result.final_positions),
        best_positions,
    )
    return _restart(search, jax.device_put(restart))


def _restart_where(
    search: CycleSearch, restart: np.ndarray, positions: np.ndarray
) -> CycleSearch:
    """Fresh optimizer states at ``positions`` for the starts where ``restart``
    (``[batch]`` bool); the cycle's bookkeeping is kept and the new evaluation
    charged."""
    if not restart.any():
        return search
    carry = search.carry
    fresh = driver.start(
        search.optimizer,
        jnp.asarray(positions),
        search.parameters,
        search.theta,
        target_energy=search.target_energy,
    )
    carry = carry._replace(
        state=jax.tree_util.tree_map(
            lambda new, old: jnp.where(
                jnp.reshape(restart, (-1,) + (1,) * (jnp.ndim(new) - 1)), new, old
            ),
            fresh.state,
            carry.state,
        ),
        force_calls=carry.force_calls + jnp.asarray(restart, dtype=int),
    )
    return search._replace(carry=carry)


def _restart_diverged(search: CycleSearch) -> CycleSearch:
    """Searches whose energy went non-finite restart from their cycle's best."""
    diverged = ~np.isfinite(search.current_energy)
    positions = np.where(
        diverged[:, None, None],
        np.asarray(search.carry.best_positions),
        np.asarray(search.carry.state.positions),
    )
    return _restart_where(search, diverged, positions)


def reinsert_dissociated(
    positions: np.ndarray, length_scale: float
) -> tuple[np.ndarray, bool]:
    """Atoms that left a free cluster, put back on its surface.

    Atoms are connected when closer than `DISSOCIATION_DISTANCE` length scales;
    every atom outside the largest connected group moves to one length scale
    beyond the group's outermost atom in its own direction from the group's
    centroid (GMIN's reinsertion of evaporated atoms, in spirit).

    Args:
        positions: ``[n, 3]`` one cluster (length units).
        length_scale: the potential's length scale (pair minimum).

    Returns:
        ``(positions [n, 3], moved)``.
    """
    distances = np.linalg.norm(positions[:, None] - positions[None], axis=-1)
    bonded = distances < DISSOCIATION_DISTANCE * length_scale
    group = np.full(len(positions), -1)
    for seed in range(len(positions)):
        if group[seed] >= 0:
            continue
        group[seed] = seed
        frontier = [seed]
        while frontier:
            neighbours = np.flatnonzero(bonded[frontier].any(axis=0) & (group < 0))
            group[neighbours] = seed
            frontier = list(neighbours)
    labels, sizes = np.unique(group, return_counts=True)
    main = group == labels[np.argmax(sizes)]
    if main.all():
        return positions, False
    positions = positions.copy()
    centroid = positions[main].mean(axis=0)
    for index in np.flatnonzero(~main):
        direction = positions[index] - centroid
        norm = np.linalg.norm(direction)
        direction = direction / norm if norm > 0 else np.array([1.0, 0.0, 0.0])
        outermost = positions[main][np.argmax((positions[main] - centroid) @ direction)]
        positions[index] = outermost + length_scale * direction
        main[index] = True
    return positions, True


def _reinsert(search: CycleSearch) -> CycleSearch:
    if not search.reinsert:
        return search
    positions = np.array(search.carry.state.positions)
    scales = np.asarray(search.parameters.context.length_scale)
    moved = np.zeros(len(positions), dtype=bool)
    for index in range(len(positions)):
        positions[index], moved[index] = reinsert_dissociated(
            positions[index], float(scales[index])
        )
    return _restart_where(search, moved, positions)


def cycles_advance(
    search: CycleSearch,
    n_steps: int,
    *,
    chunk_steps: int = driver.CHUNK_STEPS,
    record_every: int | None = None,
    on_minimum: Callable[[np.ndarray, np.ndarray], Any] | None = None,
    progress: Callable[[int], Any] | None = None,
) -> tuple[CycleSearch, np.ndarray, np.ndarray]:
    """``n_steps`` more learned steps on every start, ending cycles as they fill.

    A search whose energy becomes non-finite restarts (fresh optimizer state)
    from the lowest structure of its cycle.

    Returns:
        ``(search, record_steps [n_records], energy_records [batch, n_records])``.
    """
    if int(n_steps) != n_steps or n_steps < 0:
        raise ValueError(f"n_steps must be a non-negative integer, got {n_steps}")
    record_every = record_every or driver.record_interval(max(int(n_steps), 1))
    record_steps, records = [], []
    remaining = int(n_steps)
    while remaining > 0:
        chunk = min(remaining, search.horizon - search.cycle_step)
        before = search.steps
        # Every step's energy comes back; records keep the multiples of
        # record_every of the whole run, wherever the cycles end.
        result = driver.advance(
            search.optimizer,
            search.carry,
            chunk,
            search.parameters,
            search.theta,
            target_energy=search.target_energy,
            record_every=1,
            chunk_steps=chunk_steps,
            progress=progress,
        )
        steps = before + np.arange(1, chunk + 1)
        keep = steps % record_every == 0
        record_steps.extend(steps[keep])
        records.append(result.energy_records[:, keep])
        search = search._replace(
            carry=result.carry,
            parameters=result.parameters,
            cycle_step=search.cycle_step + chunk,
            steps=search.steps + chunk,
        )
        remaining -= chunk
        search = _reinsert(_restart_diverged(search))
        if search.cycle_step >= search.horizon:
            search = cycles_finish(search, on_minimum)
    batch = search.best_energy.shape[0]
    energy_records = (
        np.concatenate(records, axis=1) if records else np.zeros((batch, 0))
    )
    return search, np.asarray(record_steps, dtype=int), energy_records

"""The learned search: learned steps in cycles, each ending in the paper's polish.

Paper sections 3.1 and 3.3: the learned optimizer makes H updates (its training
horizon), then 1000 steps of plain gradient descent at learning rate 0.001 settle
the structure into its local minimum. Besides the last structure, the search
tracks the lowest-energy structure it has seen; both are polished and the lower
is kept. A longer search goes on in cycles of H steps, each starting from the
polished last structure of the one before with a fresh optimizer state, and each
start keeps its lowest polished minimum over all cycles.

One implementation of each piece, used by everything:

- `learned_steps`: the learned step as a `descent.Optimizer`, so the one batched
  driver (`driver`) runs it like any other method;
- `finish_cycle`: the polish of the last and the best structure of a cycle;
- `learned_search`: one whole cycle from one start under ``jit`` (training's
  meta-loss and the figures' per-step traces);
- the cycle loop for a batch of starts, in chunks, is `cycles` (the ASE
  optimizer and the benchmark run it).

Energy functions: ``energy_fn(positions, potential_parameters) -> scalar``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from ase_learn2hop import driver, learned_optimizer
from ase_learn2hop.descent import POLISH_LEARNING_RATE, POLISH_STEPS, Optimizer, polish
from ase_learn2hop.learned_optimizer import LearnedOptimizerConfig, Theta
from ase_learn2hop.systems import StructureContext

EnergyFn = Callable[[jax.Array, Any], jax.Array]


class SearchState(NamedTuple):
    """State of the learned search for one structure.

    Attributes:
        positions: ``[n, 3]`` current positions.
        energy: scalar energy at ``positions``.
        gradient: ``[n, 3]`` dE/dx at ``positions``.
        optimizer_state: the learned optimizer's `LearnedOptimizerState`.
        step_size: root-mean-square displacement of the last step (paper
            Figure 6), 0 before the first.
    """

    positions: jax.Array
    energy: jax.Array
    gradient: jax.Array
    optimizer_state: learned_optimizer.LearnedOptimizerState
    step_size: jax.Array


class SearchParameters(NamedTuple):
    """Per-start inputs of the learned step: the potential's parameters and the
    `StructureContext` the features need."""

    potential: Any
    context: StructureContext


class CycleResult(NamedTuple):
    """Outcome of one cycle (single start, or batched on axis 0).

    Attributes:
        final_energy: energy of the last structure after the polish (the
            paper's meta-loss).
        final_positions: ``[n, 3]`` that structure.
        best_energy: the lower of ``final_energy`` and the polished best-seen
            structure's energy (non-finite counts as +inf).
        best_positions: ``[n, 3]`` the structure with ``best_energy``.
    """

    final_energy: jax.Array
    final_positions: jax.Array
    best_energy: jax.Array
    best_positions: jax.Array


class SearchTrace(NamedTuple):
    """Per-step record: ``energy`` ``[n_steps]`` and ``step_size`` ``[n_steps]``."""

    energy: jax.Array
    step_size: jax.Array


def _finite_or_inf(energy: jax.Array) -> jax.Array:
    return jnp.where(jnp.isfinite(energy), energy, jnp.inf)


@functools.lru_cache(maxsize=256)
def learned_steps(config: LearnedOptimizerConfig, energy_fn: EnergyFn) -> Optimizer:
    """The learned optimizer as an ``Optimizer(init_fn, step_fn)`` (paper eq. 2).

    ``parameters`` is a `SearchParameters`; ``shared`` is ``theta``. The
    displacement is wrapped into the cell by the context's geometry, and fixed
    coordinates (``context.free``) do not move.
    """
    value_and_grad = jax.value_and_grad(energy_fn)

    def init_fn(positions, parameters: SearchParameters, theta=None, key=None):
        energy, gradient = value_and_grad(positions, parameters.potential)
        return SearchState(
            positions,
            energy,
            gradient,
            learned_optimizer.init(positions, parameters.context),
            jnp.zeros((), positions.dtype),
        )

    def step_fn(state: SearchState, parameters: SearchParameters, theta: Theta):
        displacement, optimizer_state = learned_optimizer.update(
            theta,
            config,
            state.optimizer_state,
            state.positions,
            state.gradient,
            parameters.context,
        )
        if parameters.context.free is not None:
            displacement = displacement * parameters.context.free
        positions = parameters.context.geometry.move(state.positions, displacement)
        energy, gradient = value_and_grad(positions, parameters.potential)
        step_size = jnp.sqrt(jnp.mean(displacement**2))
        return SearchState(positions, energy, gradient, optimizer_state, step_size)

    return Optimizer(init_fn, step_fn)


def finish_cycle(
    energy_fn: EnergyFn,
    last_positions: jax.Array,
    best_positions: jax.Array,
    parameters: SearchParameters,
    polish_steps: int = POLISH_STEPS,
    polish_learning_rate: float = POLISH_LEARNING_RATE,
) -> CycleResult:
    """Polish the last and the best-seen structure of a cycle, keep the lower.

    Costs ``2 * (polish_steps + 1)`` force calls.
    """
    geometry = parameters.context.geometry

    def polish_one(positions):
        return polish(
            energy_fn,
            positions,
            parameters.potential,
            geometry,
            polish_steps,
            polish_learning_rate,
        )

    polished, energies = jax.vmap(polish_one)(
        jnp.stack([last_positions, best_positions])
    )
    safe = _finite_or_inf(energies)
    pick_best = safe[1] < safe[0]
    return CycleResult(
        final_energy=energies[0],
        final_positions=polished[0],
        best_energy=jnp.where(pick_best, safe[1], safe[0]),
        best_positions=jnp.where(pick_best, polished[1], polished[0]),
    )


@functools.partial(
    jax.jit,
    static_argnames=("config", "energy_fn", "n_steps", "polish_steps", "polish_best"),
)
def learned_search(
    theta: Theta,
    config: LearnedOptimizerConfig,
    energy_fn: EnergyFn,
    positions: jax.Array,
    context: StructureContext,
    potential_parameters: Any = None,
    *,
    n_steps: int,
    polish_steps: int = POLISH_STEPS,
    polish_learning_rate: float = POLISH_LEARNING_RATE,
    polish_best: bool = True,
) -> tuple[CycleResult, SearchTrace]:
    """One whole cycle from one start: ``n_steps`` learned steps + the polish.

    With ``polish_best=False`` only the last structure is polished (the
    meta-loss needs no more, and training saves a third of its work); ``best_*``
    then equal ``final_*``.

    Args:
        positions: ``[n, 3]`` starting structure.
        context: species, length scale, geometry.
        potential_parameters: pytree passed to ``energy_fn``.
        n_steps: learned steps (the horizon).

    Returns:
        ``(CycleResult, SearchTrace)``; the search costs ``1 + n_steps`` force
        calls plus ``polish_steps + 1`` per polished structure.
    """
    parameters = SearchParameters(potential_parameters, context)
    optimizer = learned_steps(config, energy_fn)
    no_target = jnp.asarray(-jnp.inf, dtype=positions.dtype)

    def one_step(carry, _):
        carry = driver.step_one(optimizer, carry, parameters, theta, no_target)
        return carry, SearchTrace(carry.state.energy, carry.state.step_size)

    carry = driver.start_one(optimizer, positions, parameters, theta, None, no_target)
    carry, trace = jax.lax.scan(one_step, carry, None, length=n_steps)
    state, best_positions = carry.state, carry.best_positions
    if polish_best:
        result = finish_cycle(
            energy_fn,
            state.positions,
            best_positions,
            parameters,
            polish_steps,
            polish_learning_rate,
        )
    else:
        final, energy = polish(
            energy_fn,
            state.positions,
            potential_parameters,
            context.geometry,
            polish_steps,
            polish_learning_rate,
        )
        result = CycleResult(energy, final, energy, final)
    return result, trace

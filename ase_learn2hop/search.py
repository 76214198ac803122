"""The unrolled learned search: learned steps, then a gradient-descent polish.

Paper sections 3.1 and 3.3: the learned optimizer makes ``n_steps`` updates, then
1000 steps of plain gradient descent at learning rate 0.001 settle the structure
into its local minimum. Besides the last structure, the search tracks the
lowest-energy structure it has seen; both are polished and the result keeps the
lower (`SearchResult.best_energy`), while `SearchResult.final_energy` (the last
structure, polished) is the paper's meta-loss.

Energy functions have the signature ``energy_fn(positions, potential_parameters)``
-> scalar, where ``potential_parameters`` is any pytree (species and Gupta
parameters, or ``None``) that is batched alongside the starting structures.
Everything here is for one structure; `batched_learned_search` vmaps it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from ase_learn2hop import learned_optimizer
from ase_learn2hop.features import StructureContext
from ase_learn2hop.learned_optimizer import LearnedOptimizerConfig, Theta

EnergyFn = Callable[[jax.Array, Any], jax.Array]

POLISH_STEPS = 1000
POLISH_LEARNING_RATE = 1e-3


class SearchState(NamedTuple):
    """Carry of the learned search for one structure.

    Attributes:
        positions: ``[n, 3]`` current positions.
        optimizer_state: the learned optimizer's `LearnedOptimizerState`.
        energy: scalar energy at ``positions``.
        gradient: ``[n, 3]`` dE/dx at ``positions``.
        best_energy: lowest finite energy seen so far (unpolished).
        best_positions: ``[n, 3]`` where it was seen.
        energy_evaluations: scalar int, energy-and-gradient calls so far.
    """

    positions: jax.Array
    optimizer_state: learned_optimizer.LearnedOptimizerState
    energy: jax.Array
    gradient: jax.Array
    best_energy: jax.Array
    best_positions: jax.Array
    energy_evaluations: jax.Array


class SearchTrace(NamedTuple):
    """Per-step record: ``energy`` ``[n_steps]`` and ``step_size`` ``[n_steps]``
    (root-mean-square displacement of the step, paper Figure 6)."""

    energy: jax.Array
    step_size: jax.Array


class SearchResult(NamedTuple):
    """Outcome of one learned search.

    Attributes:
        final_energy: energy of the last structure after the polish (meta-loss).
        final_positions: ``[n, 3]`` that structure.
        best_energy: the lower of ``final_energy`` and the polished best-seen
            structure's energy.
        best_positions: ``[n, 3]`` the structure with ``best_energy``.
        energy_evaluations: energy-and-gradient calls, polish included.
    """

    final_energy: jax.Array
    final_positions: jax.Array
    best_energy: jax.Array
    best_positions: jax.Array
    energy_evaluations: jax.Array


def _finite_or_inf(energy: jax.Array) -> jax.Array:
    return jnp.where(jnp.isfinite(energy), energy, jnp.inf)


def wrap_positions(positions: jax.Array, box_length: jax.Array | None) -> jax.Array:
    """Wrap into ``[0, box_length)`` for periodic systems; identity for clusters."""
    if box_length is None:
        return positions
    return jnp.mod(positions, box_length)


def search_init(
    energy_fn: EnergyFn, positions: jax.Array, potential_parameters: Any = None
) -> SearchState:
    """Start a search at ``positions`` ``[n, 3]`` (one energy evaluation)."""
    energy, gradient = jax.value_and_grad(energy_fn)(positions, potential_parameters)
    return SearchState(
        positions=positions,
        optimizer_state=learned_optimizer.init(positions),
        energy=energy,
        gradient=gradient,
        best_energy=_finite_or_inf(energy),
        best_positions=positions,
        energy_evaluations=jnp.asarray(1),
    )


def search_steps(
    theta: Theta,
    config: LearnedOptimizerConfig,
    energy_fn: EnergyFn,
    state: SearchState,
    context: StructureContext,
    potential_parameters: Any,
    n_steps: int,
) -> tuple[SearchState, SearchTrace]:
    """Make ``n_steps`` learned steps under ``lax.scan``.

    Returns:
        the new `SearchState` and a `SearchTrace` of length ``n_steps``.
    """
    value_and_grad = jax.value_and_grad(energy_fn)

    def one_step(carry: SearchState, _):
        displacement, optimizer_state = learned_optimizer.update(
            theta,
            config,
            carry.optimizer_state,
            carry.positions,
            carry.gradient,
            context,
        )
        positions = wrap_positions(carry.positions + displacement, context.box_length)
        energy, gradient = value_and_grad(positions, potential_parameters)
        better = _finite_or_inf(energy) < carry.best_energy
        carry = SearchState(
            positions=positions,
            optimizer_state=optimizer_state,
            energy=energy,
            gradient=gradient,
            best_energy=jnp.where(better, energy, carry.best_energy),
            best_positions=jnp.where(better, positions, carry.best_positions),
            energy_evaluations=carry.energy_evaluations + 1,
        )
        step_size = jnp.sqrt(jnp.mean(displacement**2))
        return carry, SearchTrace(energy, step_size)

    return jax.lax.scan(one_step, state, None, length=n_steps)


def gradient_descent(
    energy_fn: EnergyFn,
    positions: jax.Array,
    potential_parameters: Any = None,
    steps: int = POLISH_STEPS,
    learning_rate: float = POLISH_LEARNING_RATE,
    box_length: jax.Array | None = None,
) -> tuple[jax.Array, jax.Array]:
    """Plain gradient descent, the paper's final polish (section 3.3).

    Args:
        positions: ``[n, 3]``.
        steps: number of steps (1000 in the paper).
        learning_rate: step size per unit gradient (0.001 in the paper).

    Returns:
        ``(positions [n, 3], energy)`` after the last step.
    """
    gradient_fn = jax.grad(energy_fn)

    def one_step(x, _):
        x = x - learning_rate * gradient_fn(x, potential_parameters)
        return wrap_positions(x, box_length), None

    positions, _ = jax.lax.scan(one_step, positions, None, length=steps)
    return positions, energy_fn(positions, potential_parameters)


def search_finish(
    energy_fn: EnergyFn,
    state: SearchState,
    context: StructureContext,
    potential_parameters: Any = None,
    polish_steps: int = POLISH_STEPS,
    polish_learning_rate: float = POLISH_LEARNING_RATE,
    polish_best: bool = True,
) -> SearchResult:
    """Polish the last and the best-seen structures and keep the lower.

    With ``polish_best=False`` only the last structure is polished (the meta-loss
    needs no more, and training saves a third of its work); ``best_*`` then equal
    ``final_*``.
    """

    def polish(positions):
        return gradient_descent(
            energy_fn,
            positions,
            potential_parameters,
            polish_steps,
            polish_learning_rate,
            context.box_length,
        )

    if not polish_best:
        positions, energy = polish(state.positions)
        return SearchResult(
            energy,
            positions,
            energy,
            positions,
            state.energy_evaluations + polish_steps,
        )
    both = jnp.stack([state.positions, state.best_positions])
    polished, energies = jax.vmap(polish)(both)
    safe = _finite_or_inf(energies)
    pick_best = safe[1] < safe[0]
    return SearchResult(
        final_energy=energies[0],
        final_positions=polished[0],
        best_energy=jnp.where(pick_best, energies[1], energies[0]),
        best_positions=jnp.where(pick_best, polished[1], polished[0]),
        energy_evaluations=state.energy_evaluations + 2 * polish_steps,
    )


@functools.partial(
    jax.jit,
    static_argnames=(
        "config",
        "energy_fn",
        "n_steps",
        "polish_steps",
        "record",
        "polish_best",
    ),
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
    record: bool = False,
    polish_best: bool = True,
) -> tuple[SearchResult, SearchTrace | None]:
    """A whole learned search from one start: ``n_steps`` learned steps + polish.

    Args:
        theta: meta-parameters.
        config: their architecture.
        energy_fn: ``energy_fn(positions, potential_parameters) -> scalar``.
        positions: ``[n, 3]`` starting structure.
        context: species, length scale, box.
        potential_parameters: pytree passed to ``energy_fn``.
        n_steps: learned steps (the horizon).
        record: also return the per-step `SearchTrace`.
        polish_best: also polish the best structure seen (see `search_finish`).

    Returns:
        ``(SearchResult, SearchTrace or None)``.
    """
    state = search_init(energy_fn, positions, potential_parameters)
    state, trace = search_steps(
        theta, config, energy_fn, state, context, potential_parameters, n_steps
    )
    result = search_finish(
        energy_fn,
        state,
        context,
        potential_parameters,
        polish_steps,
        polish_learning_rate,
        polish_best,
    )
    return result, (trace if record else None)


def batched_learned_search(
    theta: Theta,
    config: LearnedOptimizerConfig,
    energy_fn: EnergyFn,
    positions: jax.Array,
    context: StructureContext,
    potential_parameters: Any = None,
    **kwargs,
) -> tuple[SearchResult, SearchTrace | None]:
    """`learned_search` over a batch of starts as one vmapped computation.

    ``positions`` is ``[batch, n, 3]``; ``context`` and ``potential_parameters``
    carry the same leading batch axis on every array leaf (use
    `broadcast_to_batch` for a system shared by all starts).
    """
    run = functools.partial(
        learned_search, config=config, energy_fn=energy_fn, **kwargs
    )
    return jax.vmap(
        lambda x, c, p: run(theta, positions=x, context=c, potential_parameters=p)
    )(positions, context, potential_parameters)


def broadcast_to_batch(tree: Any, batch_size: int) -> Any:
    """Give every array leaf of ``tree`` a leading axis of ``batch_size``."""
    return jax.tree_util.tree_map(
        lambda leaf: jnp.broadcast_to(
            jnp.asarray(leaf), (batch_size,) + jnp.shape(leaf)
        ),
        tree,
    )


@functools.partial(jax.jit, static_argnames=("energy_fn",))
def batched_search_init(
    energy_fn: EnergyFn, positions: jax.Array, potential_parameters: Any = None
) -> SearchState:
    """`search_init` for ``[batch, n, 3]`` starts (parameters batched too)."""
    return jax.vmap(lambda x, p: search_init(energy_fn, x, p))(
        positions, potential_parameters
    )


@functools.partial(jax.jit, static_argnames=("config", "energy_fn", "n_steps"))
def batched_search_steps(
    theta: Theta,
    config: LearnedOptimizerConfig,
    energy_fn: EnergyFn,
    state: SearchState,
    context: StructureContext,
    potential_parameters: Any,
    n_steps: int,
) -> SearchState:
    """`search_steps` for a batch of searches, without the trace (ASE fast path)."""

    def run(s, c, p):
        return search_steps(theta, config, energy_fn, s, c, p, n_steps)[0]

    return jax.vmap(run)(state, context, potential_parameters)


@functools.partial(jax.jit, static_argnames=("energy_fn", "polish_steps"))
def batched_search_finish(
    energy_fn: EnergyFn,
    state: SearchState,
    context: StructureContext,
    potential_parameters: Any = None,
    polish_steps: int = POLISH_STEPS,
    polish_learning_rate: float = POLISH_LEARNING_RATE,
) -> SearchResult:
    """`search_finish` for a batch of searches."""

    def run(s, c, p):
        return search_finish(energy_fn, s, c, p, polish_steps, polish_learning_rate)

    return jax.vmap(run)(state, context, potential_parameters)


def learned_search_in_cycles(
    theta: Theta,
    config: LearnedOptimizerConfig,
    energy_fn: EnergyFn,
    positions: jax.Array,
    context: StructureContext,
    potential_parameters: Any,
    *,
    n_steps: int,
    horizon: int,
    polish_steps: int = POLISH_STEPS,
    polish_learning_rate: float = POLISH_LEARNING_RATE,
) -> SearchResult:
    """``n_steps`` learned steps for a batch of starts, in cycles of ``horizon``.

    The semantics of `LearnedHopOptimizer.run`: weights trained for a horizon H
    search in successive cycles of H steps; each cycle ends with the polish and
    the next starts from its polished last structure with a fresh optimizer
    state. The result keeps, per start, the best polished minimum over all cycles.
    (A Python loop over cycles, each cycle one jitted batched computation.)

    Args:
        positions: ``[batch, n, 3]`` starts; ``context`` and
            ``potential_parameters`` batched alike.
        n_steps: total learned steps per start.
        horizon: steps per cycle (the weights' training horizon).

    Returns:
        a batched `SearchResult`; ``final_*`` are those of the last cycle.
    """
    if horizon < 1:
        raise ValueError(f"horizon must be positive, got {horizon}")
    state = batched_search_init(energy_fn, positions, potential_parameters)
    best_energy = best_positions = result = None
    evaluations = jnp.zeros(positions.shape[0], dtype=jnp.int64)
    remaining = n_steps
    while True:
        cycle = min(horizon, remaining)
        state = batched_search_steps(
            theta, config, energy_fn, state, context, potential_parameters, cycle
        )
        remaining -= cycle
        result = batched_search_finish(
            energy_fn,
            state,
            context,
            potential_parameters,
            polish_steps,
            polish_learning_rate,
        )
        evaluations = evaluations + result.energy_evaluations
        if best_energy is None:
            best_energy, best_positions = result.best_energy, result.best_positions
        else:
            better = _finite_or_inf(result.best_energy) < _finite_or_inf(best_energy)
            best_energy = jnp.where(better, result.best_energy, best_energy)
            best_positions = jnp.where(
                better[:, None, None], result.best_positions, best_positions
            )
        if remaining <= 0:
            break
        restart = jnp.where(
            jnp.isfinite(result.final_energy)[:, None, None],
            result.final_positions,
            result.best_positions,
        )
        state = batched_search_init(energy_fn, restart, potential_parameters)
    return result._replace(
        best_energy=best_energy,
        best_positions=best_positions,
        energy_evaluations=evaluations,
    )

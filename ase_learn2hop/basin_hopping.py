"""Basin hopping as the paper ran it: the step-matched global-search baseline.

Paper appendix C.2 and SPEC section 6 (Wales & Doye 1997): a local descent with Adam
at learning rate 1e-2 for ``descent_steps`` (5000) steps; then every coordinate of
the current minimum is displaced by a Gaussian of standard deviation ``step_size``
(grid {0.2, 0.4, 0.6, 0.8}, ``BASIN_HOPPING_STEP_SIZES``) and Adam descends again.
The new minimum replaces the current one if it is lower (greedy, the paper's rule,
``temperature=0``) or with the Metropolis probability min(1, exp(-dE / T)) at
``temperature`` T > 0. The lowest structure seen is kept.

Step accounting, the same as the batched driver (`driver`): every energy-and-gradient
evaluation is charged, and the whole search charges exactly ``budget``
evaluations per start. One descent costs ``descent_steps + 1`` evaluations: one at
its start (the start structure, or the freshly perturbed minimum) and one after
each Adam step. The last descent is cut short where the budget runs out; its end
point is still offered to the acceptance test. A plain Adam run of ``budget - 1``
steps is therefore step-matched to a basin-hopping search of ``budget``.

Unlike ``ase.optimize.basin.BasinHopping``, which draws uniform displacements in
[-dr, dr] from NumPy's global random state and quenches with FIRE to a force
threshold, this search draws Gaussian displacements from an explicit JAX key and
quenches with a fixed number of Adam steps (the paper's protocol).

Implementation: basin hopping is itself an ``Optimizer(init_fn, step_fn)`` whose
step is one evaluation; a step either takes an Adam step (``optax.adam``) or, once
the descent has taken ``descent_steps`` steps, judges the descent's end point and
starts the next descent from a perturbed minimum. So the search runs on the one
batched driver like every other method, and the truncated last descent needs no
special case.
"""

import functools
import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from ase_learn2hop import driver
from ase_learn2hop.descent import EnergyFn, Optimizer
from ase_learn2hop.geometry import FREE, Geometry

# Paper appendix C.2: the perturbation sizes searched (length units).
BASIN_HOPPING_STEP_SIZES = (0.2, 0.4, 0.6, 0.8)
# Paper appendix C.2: Adam at learning rate 1e-2 for 5000 steps per local descent.
BASIN_HOPPING_LEARNING_RATE = 1e-2
BASIN_HOPPING_DESCENT_STEPS = 5000


class BasinHoppingState(NamedTuple):
    """State of one basin-hopping search.

    Attributes:
        positions: [n_atoms, 3] array, the current point of the current descent.
        energy: scalar, energy at ``positions``.
        gradient: [n_atoms, 3] array, dE/dx at ``positions``.
        adam: optax's Adam state of this descent.
        descent_step: int scalar, Adam steps taken in the current descent.
        minimum_positions: [n_atoms, 3] array, the current (accepted) minimum.
        minimum_energy: scalar, its energy; +inf until the first descent ends.
        key: random key for perturbations and Metropolis draws.
        accepted: int scalar, descents after the first whose end point was
            accepted.
    """

    positions: jax.Array
    energy: jax.Array
    gradient: jax.Array
    adam: Any
    descent_step: jax.Array
    minimum_positions: jax.Array
    minimum_energy: jax.Array
    key: jax.Array
    accepted: jax.Array


class BasinHoppingResult(NamedTuple):
    """What ``basin_hopping`` returns for a batch of starts.

    Attributes:
        positions: [batch, n_atoms, 3] array, the current minimum at the end of the
            search (for greedy acceptance, the lowest descent end point).
        energy: [batch] array, its energy.
        best_positions: [batch, n_atoms, 3] array, the lowest-energy structure
            evaluated anywhere in the search.
        best_energy: [batch] array, its energy.
        energy_evaluations: int, evaluations charged per start; equals the budget.
        energy_trajectory: [batch, n_records] array, energy of the current point
            every ``record_every`` steps and after the last one (steps in
            ``run.record_steps``); None unless asked.
        n_hops: int, local descents run, the first included (the last may be
            truncated).
        accepted: [batch] int array, descents after the first whose end point was
            accepted.
        run: the driver's `driver.DriverResult` (force calls at the first hit
            of the target, energy records).
    """

    positions: jax.Array
    energy: jax.Array
    best_positions: jax.Array
    best_energy: jax.Array
    energy_evaluations: int
    energy_trajectory: jax.Array | None
    n_hops: int
    accepted: jax.Array
    run: Any = None


def metropolis_accepts(new_energy, current_energy, key, temperature):
    """Greedy (temperature 0) or Metropolis acceptance of a new minimum.

    NaN energies (a descent that blew up) are never accepted; the first descent
    (current energy +inf) always is.
    """
    if temperature == 0.0:
        return new_energy < current_energy
    energy_change = new_energy - current_energy
    uniform = jax.random.uniform(key, dtype=new_energy.dtype)
    return (energy_change < 0.0) | (uniform < jnp.exp(-energy_change / temperature))


@functools.lru_cache(maxsize=256)
def basin_hopping_descent(
    energy_fn: EnergyFn,
    step_size: float,
    descent_steps: int = BASIN_HOPPING_DESCENT_STEPS,
    learning_rate: float = BASIN_HOPPING_LEARNING_RATE,
    temperature: float = 0.0,
    geometry: Geometry = FREE,
) -> Optimizer:
    """Basin hopping (paper appendix C.2) as a pure optimizer, one evaluation a step.

    Args:
        energy_fn: ``energy_fn(positions [n_atoms, 3], parameters) -> scalar``.
        step_size: standard deviation of the Gaussian displacement of every
            coordinate between descents (length units).
        descent_steps: Adam steps per local descent.
        learning_rate: Adam learning rate of the local descents.
        temperature: Metropolis temperature (energy units); 0 for greedy
            acceptance.
        geometry: boundary conditions.

    Returns:
        ``Optimizer(init_fn, step_fn)`` over ``BasinHoppingState``; run it on the
        driver (a key per start) and close with ``accept_last_descent``; or call
        ``basin_hopping``, which does both.
    """
    energy_and_gradient_fn = jax.value_and_grad(energy_fn)

    adam = optax.adam(learning_rate)

    def init_fn(positions, parameters, shared=None, key=None):
        energy, gradient = energy_and_gradient_fn(positions, parameters)
        return BasinHoppingState(
            positions=positions,
            energy=energy,
            gradient=gradient,
            adam=adam.init(positions),
            descent_step=jnp.zeros((), int),
            minimum_positions=positions,
            minimum_energy=jnp.asarray(jnp.inf, dtype=energy.dtype),
            key=key,
            accepted=jnp.zeros((), int),
        )

    def step_fn(state, parameters, shared=None):
        key, perturbation_key, acceptance_key = jax.random.split(state.key, 3)
        descent_done = state.descent_step >= descent_steps

        # Both branches are computed and one is selected: under vmap a cond would
        # do the same, and both are cheap next to the energy evaluation below.
        accept = descent_done & metropolis_accepts(
            state.energy, state.minimum_energy, acceptance_key, temperature
        )
        minimum_positions = jnp.where(accept, state.positions, state.minimum_positions)
        minimum_energy = jnp.where(accept, state.energy, state.minimum_energy)
        accepted = state.accepted + (accept & jnp.isfinite(state.minimum_energy))
        perturbed_positions = minimum_positions + step_size * jax.random.normal(
            perturbation_key, state.positions.shape, state.positions.dtype
        )

        displacement, adam_state = adam.update(state.gradient, state.adam)
        positions = geometry.wrap(
            jnp.where(descent_done, perturbed_positions, state.positions + displacement)
        )
        energy, gradient = energy_and_gradient_fn(positions, parameters)
        # A new descent starts with fresh Adam moments.
        adam_state = jax.tree_util.tree_map(
            lambda fresh, old: jnp.where(descent_done, fresh, old),
            adam.init(positions),
            adam_state,
        )
        return BasinHoppingState(
            positions=positions,
            energy=energy,
            gradient=gradient,
            adam=adam_state,
            descent_step=jnp.where(descent_done, 0, state.descent_step + 1),
            minimum_positions=minimum_positions,
            minimum_energy=minimum_energy,
            key=key,
            accepted=accepted,
        )

    return Optimizer(init_fn, step_fn)


@functools.partial(jax.jit, static_argnames=("temperature",))
def accept_last_descent(
    state: BasinHoppingState, temperature: float = 0.0
) -> BasinHoppingState:
    """Offers the end point of the last (possibly truncated) descent to the
    acceptance test, so that no evaluated descent is left unjudged.

    Args:
        state: a ``BasinHoppingState`` batched on axis 0, after the last step.
        temperature: the search's Metropolis temperature; 0 for greedy.

    Returns:
        The state with ``minimum_positions``, ``minimum_energy`` and ``accepted``
        updated.
    """

    def accept_one(state):
        key, acceptance_key = jax.random.split(state.key)
        accept = metropolis_accepts(
            state.energy, state.minimum_energy, acceptance_key, temperature
        )
        return state._replace(
            minimum_positions=jnp.where(
                accept, state.positions, state.minimum_positions
            ),
            minimum_energy=jnp.where(accept, state.energy, state.minimum_energy),
            accepted=state.accepted + (accept & jnp.isfinite(state.minimum_energy)),
            key=key,
        )

    return jax.vmap(accept_one)(state)


def basin_hopping(
    energy_fn: EnergyFn,
    positions_batch: jax.Array,
    budget: int,
    key: jax.Array,
    parameters: Any = None,
    *,
    step_size: float = 0.4,
    descent_steps: int = BASIN_HOPPING_DESCENT_STEPS,
    learning_rate: float = BASIN_HOPPING_LEARNING_RATE,
    temperature: float = 0.0,
    geometry: Geometry = FREE,
    record_every: int | None = None,
    target_energy: float = -math.inf,
    progress: Any = None,
) -> BasinHoppingResult:
    """Step-matched basin hopping from every start of a batch (paper appendix C.2).

    Args:
        energy_fn: ``energy_fn(positions [n_atoms, 3], parameters) -> scalar``.
        positions_batch: [batch, n_atoms, 3] array, starting positions (length
            units of the potential).
        budget: energy-and-gradient evaluations per start, charged exactly.
        key: JAX random key; split into one key per start.
        parameters: the potential's parameters, batched on axis 0 of every leaf.
        step_size: standard deviation of the Gaussian perturbation of every
            coordinate (length units); the paper's grid is
            ``BASIN_HOPPING_STEP_SIZES``.
        descent_steps: Adam steps per local descent (the paper's 5000).
        learning_rate: Adam learning rate of the descents (the paper's 1e-2).
        temperature: Metropolis temperature (energy units); 0 (default) for the
            paper's greedy acceptance.
        geometry: boundary conditions (positions wrapped into a periodic cell).
        record_every: if given, also return the current energy every
            ``record_every`` steps.
        target_energy: energy counted as reaching the global minimum.
        progress: called with the steps of each finished chunk (see `driver`).

    Returns:
        ``BasinHoppingResult`` with ``energy_evaluations == budget``.

    Example:
        >>> result = basin_hopping(energy_fn, starts, 50000, jax.random.key(0))
        >>> result.best_energy.min()
    """
    if int(budget) != budget or budget < 1:
        raise ValueError(f"budget must be a positive integer, got {budget}")
    if int(descent_steps) != descent_steps or descent_steps < 1:
        raise ValueError(
            f"descent_steps must be a positive integer, got {descent_steps}"
        )
    if not step_size > 0.0:
        raise ValueError(f"step_size must be positive, got {step_size}")
    if not temperature >= 0.0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    positions_batch = jnp.asarray(positions_batch)
    if positions_batch.ndim != 3:
        raise ValueError(
            "positions_batch must have shape [batch, n_atoms, 3], got "
            f"{positions_batch.shape}"
        )
    temperature = float(temperature)
    optimizer = basin_hopping_descent(
        energy_fn,
        float(step_size),
        int(descent_steps),
        float(learning_rate),
        temperature,
        geometry,
    )
    run = driver.run_batched(
        optimizer,
        positions_batch,
        int(budget) - 1,
        parameters,
        key=key,
        record_every=record_every,
        target_energy=target_energy,
        progress=progress,
    )
    state = accept_last_descent(run.carry.state, temperature)
    return BasinHoppingResult(
        positions=state.minimum_positions,
        energy=state.minimum_energy,
        best_positions=run.carry.best_positions,
        best_energy=run.carry.best_energy,
        energy_evaluations=int(budget),
        energy_trajectory=jnp.asarray(run.energy_records) if record_every else None,
        n_hops=math.ceil(int(budget) / (int(descent_steps) + 1)),
        accepted=state.accepted,
        run=run,
    )

"""A quasi-Newton quench with one force call per iteration: L-BFGS the way
GMIN and pele run it for clusters.

The L-BFGS direction is optax's (``optax.scale_by_lbfgs``: the two-loop
recursion over the last ``memory`` position and gradient differences). There
is no line search: the step along the direction is scaled down so that its
norm over the whole system is at most ``max_step`` (length units), and a step
that raises the energy by more than ``max_rise`` is rejected and retried at
half the length (after `MAX_REJECTIONS` in a row the memory is cleared and the
quench restarts along the gradient). So every iteration costs exactly one
energy-and-gradient evaluation, which is what makes it cheap on the smooth
landscape inside a basin (scipy's L-BFGS-B line search spends 1.1 to 1.3
evaluations per iteration there) and what lets the batched driver count force
calls honestly.

The quench is a set of pure functions over `QuenchState` (``quench_begin``,
``quench_trial``, ``quench_observe``, ``quench_converged``) so that it can run
inside another optimizer (`learned_hopping`), and `lbfgs_descent` wraps them
as a `descent.Optimizer` for the driver.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from ase_learn2hop.descent import EnergyFn, Optimizer, select_tree
from ase_learn2hop.geometry import FREE, Geometry

#: Past steps kept by L-BFGS (pele's default is 4; 10 costs nothing here).
MEMORY = 10
#: Largest step (norm over the whole system) in units of the length scale.
MAX_STEP = 0.4
#: Largest energy rise an accepted step may cause (energy units; pele's 1e-4).
MAX_RISE = 1e-4
#: Rejections in a row after which the memory is cleared.
MAX_REJECTIONS = 10


class QuenchState(NamedTuple):
    """L-BFGS quench state (every array of one structure).

    Attributes:
        positions: ``[n, 3]`` the last accepted point.
        energy: scalar energy there.
        gradient: ``[n, 3]`` dE/dx there.
        direction: ``[n, 3]`` the L-BFGS direction (a descent direction is
            ``-direction``).
        lbfgs: optax's ``ScaleByLBFGSState``.
        step_scale: scalar in (0, 1], the fraction of the capped step tried
            next (halved on every rejection).
        rejections: int scalar, rejections in a row.
        iterations: int scalar, evaluations since the quench began.
    """

    positions: jax.Array
    energy: jax.Array
    gradient: jax.Array
    direction: jax.Array
    lbfgs: Any
    step_scale: jax.Array
    rejections: jax.Array
    iterations: jax.Array


@functools.cache
def _lbfgs(memory: int) -> optax.GradientTransformation:
    return optax.scale_by_lbfgs(memory_size=memory)


def _descent_direction(direction: jax.Array, gradient: jax.Array) -> jax.Array:
    """``direction``, or the gradient where it would point uphill (a poor
    curvature pair can make the recursion's direction ascend)."""
    uphill = jnp.vdot(direction, gradient) <= 0.0
    return jnp.where(uphill, gradient, direction)


def quench_begin(
    positions: jax.Array,
    energy: jax.Array,
    gradient: jax.Array,
    free: jax.Array | None = None,
    memory: int = MEMORY,
) -> QuenchState:
    """A fresh quench at an evaluated point (no force call)."""
    gradient = gradient if free is None else gradient * free
    lbfgs = _lbfgs(memory)
    direction, state = lbfgs.update(gradient, lbfgs.init(positions), positions)
    return QuenchState(
        positions,
        energy,
        gradient,
        _descent_direction(direction, gradient),
        state,
        jnp.ones((), positions.dtype),
        jnp.zeros((), jnp.int32),
        jnp.zeros((), jnp.int32),
    )


def quench_trial(state: QuenchState, max_step: float | jax.Array) -> jax.Array:
    """``[n, 3]`` the next point to evaluate: along ``-direction``, its norm
    capped at ``max_step`` and scaled by ``step_scale``.

    Not wrapped into a periodic cell: the L-BFGS position differences must be
    continuous, and the energy's minimum image takes positions anywhere.
    """
    norm = jnp.sqrt(jnp.sum(state.direction**2))
    cap = jnp.where(norm > max_step, max_step / jnp.maximum(norm, 1e-300), 1.0)
    return state.positions - state.step_scale * cap * state.direction


def quench_observe(
    state: QuenchState,
    positions: jax.Array,
    energy: jax.Array,
    gradient: jax.Array,
    free: jax.Array | None = None,
    max_rise: float = MAX_RISE,
    memory: int = MEMORY,
    begins: jax.Array | bool = False,
) -> QuenchState:
    """Judge the evaluated trial point: accept it (update the memory and the
    direction) unless the energy rose by more than ``max_rise`` or is not
    finite; otherwise halve the next step. With ``begins`` (a bool scalar)
    the point instead begins a fresh quench, as `quench_begin`.

    Every outcome that needs a new direction (begin, accept, restart after
    `MAX_REJECTIONS`) takes it from one L-BFGS recursion on selected inputs,
    so that under ``vmap`` a step costs one recursion, not one per outcome.
    """
    gradient = gradient if free is None else gradient * free
    lbfgs = _lbfgs(memory)
    accept = begins | (jnp.isfinite(energy) & (energy <= state.energy + max_rise))
    rejections = jnp.where(accept, 0, state.rejections + 1)
    # Too many rejections: the curvature pairs mislead; start again along -g
    # from the last accepted point.
    reset = rejections >= MAX_REJECTIONS
    at, at_energy, at_gradient = select_tree(
        reset,
        (state.positions, state.energy, state.gradient),
        (positions, energy, gradient),
    )
    history = select_tree(begins | reset, lbfgs.init(at), state.lbfgs)
    direction, history = lbfgs.update(at_gradient, history, at)
    moved = QuenchState(
        at,
        at_energy,
        at_gradient,
        _descent_direction(direction, at_gradient),
        history,
        jnp.ones_like(state.step_scale),
        jnp.where(reset, 0, rejections),
        jnp.where(begins, 0, state.iterations + 1),
    )
    halved = state._replace(
        step_scale=0.5 * state.step_scale,
        rejections=rejections,
        iterations=state.iterations + 1,
    )
    return select_tree(accept | reset, moved, halved)


def largest_force(gradient: jax.Array) -> jax.Array:
    """Largest per-atom force norm of ``[n, 3]`` gradients (ASE's fmax)."""
    return jnp.sqrt(jnp.max(jnp.sum(gradient**2, axis=-1)))


def quench_converged(state: QuenchState, fmax: float | jax.Array) -> jax.Array:
    """Whether the accepted point's largest force is below ``fmax``."""
    return largest_force(state.gradient) < fmax


#: `lbfgs_descent` stops moving once the largest force is below this: at a
#: minimum the gradient is rounding noise, and steps along it only wander.
CONVERGED_FMAX = 1e-8


class LBFGSState(NamedTuple):
    """`lbfgs_descent`'s state: the last evaluated point and the quench."""

    positions: jax.Array
    energy: jax.Array
    gradient: jax.Array
    quench: QuenchState


@functools.lru_cache(maxsize=256)
def lbfgs_descent(
    energy_fn: EnergyFn,
    max_step: float = MAX_STEP,
    geometry: Geometry = FREE,
    max_rise: float = MAX_RISE,
    memory: int = MEMORY,
) -> Optimizer:
    """The quench as a `descent.Optimizer` (one evaluation per step).

    Args:
        energy_fn: ``energy_fn(positions [n, 3], parameters) -> scalar``.
        max_step: largest step, norm over the whole system (length units).
        geometry: boundary conditions (the converged structure is wrapped
            into the cell).
        max_rise: largest accepted energy rise (energy units).
        memory: L-BFGS memory.

    Returns:
        ``Optimizer(init_fn, step_fn)`` over `LBFGSState`; ``state.quench``
        holds the lowest accepted point.
    """
    value_and_grad = jax.value_and_grad(energy_fn)

    def init_fn(positions, parameters, shared=None, key=None):
        energy, gradient = value_and_grad(positions, parameters)
        quench = quench_begin(positions, energy, gradient, None, memory)
        return LBFGSState(positions, energy, gradient, quench)

    def step_fn(state, parameters, shared=None):
        converged = quench_converged(state.quench, CONVERGED_FMAX)
        positions = jnp.where(
            converged,
            geometry.wrap(state.quench.positions),
            quench_trial(state.quench, max_step),
        )
        energy, gradient = value_and_grad(positions, parameters)
        quench = quench_observe(
            state.quench, positions, energy, gradient, None, max_rise, memory
        )
        return LBFGSState(positions, energy, gradient, quench)

    return Optimizer(init_fn, step_fn)

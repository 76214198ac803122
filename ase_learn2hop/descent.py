"""Classical local optimizers as pure-JAX functions: the paper's baselines.

The paper compares its learned optimizer with gradient descent, Adam and FIRE, each
at learning rates {0.01, 0.005, 0.001} (appendix C.1, ``BASELINE_LEARNING_RATES``),
and polishes every final structure with 1000 steps of gradient descent at learning
rate 0.001 (section 3.3, ``polish``).

Every optimizer here is an ``Optimizer(init_fn, step_fn)`` pair over an immutable
NamedTuple state, in the shape of jax-md's minimizers, with the calling convention
of `ase_learn2hop.driver` (which runs any such pair over a batch of starts):
``init_fn(positions, parameters, shared, key)`` evaluates the energy and gradient
at the start structure, and each ``step_fn(state, parameters, shared)`` moves the
atoms with the cached gradient (wrapped into the cell by the `Geometry`) and
evaluates the energy and gradient at the new positions. ``parameters`` are the
potential's parameters (``energy_fn(positions, parameters)``); ``shared`` and
``key`` are unused here. The state therefore always carries ``positions``,
``energy`` and ``gradient`` that belong together. Factories are cached, so equal
arguments give the same pair and the driver compiles once.

Step accounting: one energy-and-gradient evaluation per step, plus one at the start
structure, so a run of ``steps`` steps charges ``steps + 1`` evaluations. This is
what ``ase.optimize`` charges for ``run(steps=N)`` (one force call before the first
step, one after each), so force calls compare one to one with ASE. The energy of
the returned structure is the last evaluation and costs nothing extra.

FIRE follows ``ase.optimize.FIRE`` exactly (ASE >= 3.27, ``downhill_check=False``),
and reproduces its trajectory step for step:

* unit mass for every atom; the first step only accelerates from rest
  (``v = dt F``) without testing the power ``P = F . v``;
* afterwards, if ``P > 0`` the velocity is mixed, ``v <- (1 - a) v + a |v| F/|F|``,
  and, once more than ``n_min`` consecutive steps had ``P > 0``, ``dt`` grows by
  ``f_inc`` (capped at ``dt_max``) and ``a`` shrinks by ``f_alpha``; if ``P <= 0``
  the velocity is zeroed, ``a`` is reset to ``alpha_start`` and ``dt`` shrinks by
  ``f_dec``;
* then an explicit Euler step ``v <- v + dt F``, ``dr = dt v``, and ``dr`` is scaled
  down so that its norm over the whole system is at most ``max_step`` (0.2);
* defaults dt = 0.1, max_step = 0.2, dt_max = 1.0, n_min = 5, f_inc = 1.1,
  f_dec = 0.5, alpha_start = 0.1, f_alpha = 0.99. Here ``learning_rate`` is the
  initial time step ``dt``.

How jax-md's ``jax_md.minimize.fire_descent`` differs (from its documented
signature ``fire_descent(energy_or_force, shift_fn, dt_start=0.1, dt_max=0.4,
n_min=5, f_inc=1.1, f_dec=0.5, alpha_start=0.1, f_alpha=0.99)``, its
``FireDescentState`` fields, and calling it on a harmonic well):

* no maximum step: nothing limits the displacement (a stiff well at dt = 0.1 moved
  an atom by 50 where ASE moves it by at most 0.2), so large early forces can fling
  atoms apart;
* ``dt_max`` defaults to 0.4, not ASE's 1.0;
* it carries momenta and a per-particle ``mass`` (``init_fn(R, mass=1.0)``); the
  step scales with 1 / mass;
* the integrator is velocity-Verlet-like: the first step from rest moves by
  ``dt**2 F / 2``, half of ASE's ``dt**2 F``;
* its positive-power counter ``n_pos`` counts the very first step, while ASE does
  not test the power on its first step. The ``f_inc``, ``f_dec``, ``alpha_start``,
  ``f_alpha`` and ``n_min`` defaults agree with ASE's.

So "FIRE at learning rate 0.01" in jax-md and in ASE are different trajectories;
ours is ASE's, the FIRE our users run.
"""

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from ase_learn2hop.geometry import FREE, Geometry

# Paper appendix C.1: the grid searched for every baseline optimizer.
BASELINE_LEARNING_RATES = (0.01, 0.005, 0.001)

# Paper section 3.3: the final polish of every structure.
POLISH_STEPS = 1000
POLISH_LEARNING_RATE = 1e-3

#: ``energy_fn(positions [n_atoms, 3], parameters) -> scalar``.
EnergyFn = Callable[[jax.Array, Any], jax.Array]


class Optimizer(NamedTuple):
    """A pure optimizer: ``init_fn(positions, parameters, shared, key) -> state``,
    ``step_fn(state, parameters, shared) -> state``, one energy-and-gradient
    evaluation each. Unpacks as the pair ``init_fn, step_fn``."""

    init_fn: Callable[..., Any]
    step_fn: Callable[..., Any]


def select_tree(condition: jax.Array, if_true: Any, if_false: Any) -> Any:
    """``if_true`` where the bool scalar ``condition`` holds, else
    ``if_false``, leaf by leaf (two pytrees of one structure): both are
    computed, as under ``vmap``, where ``lax.cond`` would be too."""
    return jax.tree_util.tree_map(
        lambda a, b: jnp.where(condition, a, b), if_true, if_false
    )


class GradientDescentState(NamedTuple):
    """State of plain gradient descent.

    Attributes:
        positions: [n_atoms, 3] array, current positions (length units of the
            potential).
        energy: scalar, energy at ``positions`` (energy units).
        gradient: [n_atoms, 3] array, dE/dx at ``positions`` (minus the forces).
    """

    positions: jax.Array
    energy: jax.Array
    gradient: jax.Array


class AdamState(NamedTuple):
    """State of Adam (Kingma & Ba 2015) over the atomic coordinates.

    Attributes:
        positions: [n_atoms, 3] array, current positions.
        energy: scalar, energy at ``positions``.
        gradient: [n_atoms, 3] array, dE/dx at ``positions``.
        adam: optax's Adam state (step count and moving averages of the gradient
            and of its square, each [n_atoms, 3]).
    """

    positions: jax.Array
    energy: jax.Array
    gradient: jax.Array
    adam: Any


class FireState(NamedTuple):
    """State of FIRE (Bitzek et al. 2006) with ``ase.optimize.FIRE`` conventions.

    Attributes:
        positions: [n_atoms, 3] array, current positions.
        energy: scalar, energy at ``positions``.
        gradient: [n_atoms, 3] array, dE/dx at ``positions``.
        velocity: [n_atoms, 3] array, FIRE velocity (unit masses).
        time_step: scalar, current time step dt.
        alpha: scalar, current velocity-force mixing coefficient (ASE's ``a``).
        n_positive: int scalar, consecutive steps with positive power F . v
            (ASE's ``Nsteps``).
        step: int scalar, number of steps taken (ASE skips the power test on the
            first one).
    """

    positions: jax.Array
    energy: jax.Array
    gradient: jax.Array
    velocity: jax.Array
    time_step: jax.Array
    alpha: jax.Array
    n_positive: jax.Array
    step: jax.Array


@functools.lru_cache(maxsize=256)
def gradient_descent(
    energy_fn: EnergyFn, learning_rate: float, geometry: Geometry = FREE
) -> Optimizer:
    """Plain gradient descent, ``x <- x - learning_rate * dE/dx``.

    Args:
        energy_fn: ``energy_fn(positions [n_atoms, 3], parameters) -> scalar``.
        learning_rate: step per unit gradient (length^2 / energy).
        geometry: boundary conditions (positions wrapped into a periodic cell).

    Returns:
        ``Optimizer(init_fn, step_fn)`` over ``GradientDescentState``.

    Example:
        >>> init_fn, step_fn = gradient_descent(energy_fn, 1e-3)
        >>> state = step_fn(init_fn(positions, None, None, None), None, None)
    """
    energy_and_gradient_fn = jax.value_and_grad(energy_fn)

    def init_fn(positions, parameters, shared=None, key=None):
        energy, gradient = energy_and_gradient_fn(positions, parameters)
        return GradientDescentState(positions, energy, gradient)

    def step_fn(state, parameters, shared=None):
        positions = geometry.move(state.positions, -learning_rate * state.gradient)
        energy, gradient = energy_and_gradient_fn(positions, parameters)
        return GradientDescentState(positions, energy, gradient)

    return Optimizer(init_fn, step_fn)


@functools.lru_cache(maxsize=256)
def adam_descent(
    energy_fn: EnergyFn,
    learning_rate: float,
    geometry: Geometry = FREE,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
) -> Optimizer:
    """Adam on the atomic coordinates, through ``optax.adam`` (paper baseline;
    appendix C.1).

    Args:
        energy_fn: ``energy_fn(positions [n_atoms, 3], parameters) -> scalar``.
        learning_rate: Adam step size (length units; roughly the largest move of a
            coordinate per step).
        geometry: boundary conditions.
        b1: decay of the first moment.
        b2: decay of the second moment.
        eps: added to the root of the bias-corrected second moment.

    Returns:
        ``Optimizer(init_fn, step_fn)`` over ``AdamState``.

    Example:
        >>> init_fn, step_fn = adam_descent(energy_fn, 1e-2)
    """
    energy_and_gradient_fn = jax.value_and_grad(energy_fn)
    adam = optax.adam(learning_rate, b1=b1, b2=b2, eps=eps)

    def init_fn(positions, parameters, shared=None, key=None):
        energy, gradient = energy_and_gradient_fn(positions, parameters)
        return AdamState(positions, energy, gradient, adam.init(positions))

    def step_fn(state, parameters, shared=None):
        displacement, adam_state = adam.update(state.gradient, state.adam)
        positions = geometry.move(state.positions, displacement)
        energy, gradient = energy_and_gradient_fn(positions, parameters)
        return AdamState(positions, energy, gradient, adam_state)

    return Optimizer(init_fn, step_fn)


@functools.lru_cache(maxsize=256)
def fire_descent(
    energy_fn: EnergyFn,
    learning_rate: float = 0.1,
    geometry: Geometry = FREE,
    max_step: float = 0.2,
    dt_max: float = 1.0,
    n_min: int = 5,
    f_inc: float = 1.1,
    f_dec: float = 0.5,
    alpha_start: float = 0.1,
    f_alpha: float = 0.99,
) -> Optimizer:
    """FIRE (Bitzek et al., PRL 97, 170201, 2006) exactly as ``ase.optimize.FIRE``.

    Reproduces ASE's trajectory step for step (see the module docstring for the
    rules and for how jax-md's FIRE differs). Symbols follow the FIRE paper.

    Args:
        energy_fn: ``energy_fn(positions [n_atoms, 3], parameters) -> scalar``.
        learning_rate: initial time step dt (ASE's ``dt``).
        geometry: boundary conditions.
        max_step: largest norm of one step's displacement over the whole system
            (length units; ASE's ``maxstep``).
        dt_max: largest time step (ASE's ``dtmax``).
        n_min: positive-power steps to wait before growing dt (ASE's ``Nmin``).
        f_inc: factor by which dt grows (ASE's ``finc``).
        f_dec: factor by which dt shrinks after an uphill step (ASE's ``fdec``).
        alpha_start: initial and reset mixing coefficient (ASE's ``astart`` and
            ``a``).
        f_alpha: factor by which the mixing coefficient shrinks (ASE's ``fa``).

    Returns:
        ``Optimizer(init_fn, step_fn)`` over ``FireState``.
    """
    energy_and_gradient_fn = jax.value_and_grad(energy_fn)

    def init_fn(positions, parameters, shared=None, key=None):
        energy, gradient = energy_and_gradient_fn(positions, parameters)
        return FireState(
            positions,
            energy,
            gradient,
            jnp.zeros_like(positions),
            jnp.asarray(learning_rate, dtype=positions.dtype),
            jnp.asarray(alpha_start, dtype=positions.dtype),
            jnp.zeros((), int),
            jnp.zeros((), int),
        )

    def step_fn(state, parameters, shared=None):
        force = -state.gradient
        velocity = state.velocity
        power = jnp.vdot(force, velocity)
        force_norm = jnp.sqrt(jnp.vdot(force, force))
        speed = jnp.sqrt(jnp.vdot(velocity, velocity))
        # A vanishing force has no direction to mix in; ASE would divide by zero.
        safe_force_norm = jnp.where(force_norm > 0.0, force_norm, 1.0)
        mixed_velocity = (
            1.0 - state.alpha
        ) * velocity + state.alpha * force / safe_force_norm * speed
        long_downhill = state.n_positive > n_min
        downhill_time_step = jnp.where(
            long_downhill, jnp.minimum(state.time_step * f_inc, dt_max), state.time_step
        )
        downhill_alpha = jnp.where(long_downhill, state.alpha * f_alpha, state.alpha)

        downhill = power > 0.0
        first_step = state.step == 0
        velocity = jnp.where(
            first_step,
            velocity,
            jnp.where(downhill, mixed_velocity, jnp.zeros_like(velocity)),
        )
        time_step = jnp.where(
            first_step,
            state.time_step,
            jnp.where(downhill, downhill_time_step, state.time_step * f_dec),
        )
        alpha = jnp.where(
            first_step, state.alpha, jnp.where(downhill, downhill_alpha, alpha_start)
        )
        n_positive = jnp.where(
            first_step,
            state.n_positive,
            jnp.where(downhill, state.n_positive + 1, 0),
        )

        velocity = velocity + time_step * force
        displacement = time_step * velocity
        displacement_norm = jnp.sqrt(jnp.vdot(displacement, displacement))
        scale = jnp.where(
            displacement_norm > max_step,
            max_step / jnp.where(displacement_norm > 0.0, displacement_norm, 1.0),
            1.0,
        )
        positions = geometry.move(state.positions, scale * displacement)
        energy, gradient = energy_and_gradient_fn(positions, parameters)
        return FireState(
            positions,
            energy,
            gradient,
            velocity,
            time_step,
            alpha,
            n_positive,
            state.step + 1,
        )

    return Optimizer(init_fn, step_fn)


def polish(
    energy_fn: EnergyFn,
    positions: jax.Array,
    parameters: Any = None,
    geometry: Geometry = FREE,
    steps: int = POLISH_STEPS,
    learning_rate: float = POLISH_LEARNING_RATE,
) -> tuple[jax.Array, jax.Array]:
    """The paper's polish of one structure (section 3.3): ``steps`` steps of
    gradient descent at ``learning_rate`` (1000 at 0.001), under ``lax.scan``.

    The one polish of the package: the learned search, the benchmark's runners,
    training and the ASE optimizer all call it (batched with ``vmap``). It costs
    ``steps + 1`` energy-and-gradient evaluations.

    Args:
        positions: [n_atoms, 3] array.
        parameters: the potential's parameters.

    Returns:
        ``(positions [n_atoms, 3], energy)`` after the last step.
    """
    init_fn, step_fn = gradient_descent(energy_fn, float(learning_rate), geometry)

    def one_step(state, _):
        return step_fn(state, parameters), None

    state, _ = jax.lax.scan(
        one_step, init_fn(positions, parameters), None, length=steps
    )
    return state.positions, state.energy

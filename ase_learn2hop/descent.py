"""Classical local optimizers as batched pure-JAX functions: the paper's baselines.

The paper compares its learned optimizer with gradient descent, Adam and FIRE, each
at learning rates {0.01, 0.005, 0.001} (appendix C.1, ``BASELINE_LEARNING_RATES``),
and polishes every final structure with 1000 steps of gradient descent at learning
rate 0.001 (section 3.3, ``polish``).

Every optimizer here is an ``Optimizer(init_fn, step_fn)`` pair over an immutable
NamedTuple state, in the shape of jax-md's minimizers: ``init_fn(positions)``
evaluates the energy and gradient at the start structure, and each
``step_fn(state)`` moves the atoms with the cached gradient and evaluates the energy
and gradient at the new positions. The state therefore always carries ``positions``,
``energy`` and ``gradient`` that belong together. ``run_optimizer`` drives any such
pair over a batch of starts (``vmap`` over starts, ``lax.scan`` over steps) and
keeps the lowest energy seen.

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

# Paper appendix C.1: the grid searched for every baseline optimizer.
BASELINE_LEARNING_RATES = (0.01, 0.005, 0.001)

# Paper section 3.3: the final polish of every structure.
POLISH_STEPS = 1000
POLISH_LEARNING_RATE = 1e-3


class Optimizer(NamedTuple):
    """A pure optimizer: ``init_fn(positions, *init_args) -> state``,
    ``step_fn(state) -> state``. Unpacks as the pair ``init_fn, step_fn``."""

    init_fn: Callable[..., Any]
    step_fn: Callable[[Any], Any]


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
        first_moment: [n_atoms, 3] array, moving average of the gradient.
        second_moment: [n_atoms, 3] array, moving average of the squared gradient.
        step: int scalar, number of Adam updates taken (for bias correction).
    """

    positions: jax.Array
    energy: jax.Array
    gradient: jax.Array
    first_moment: jax.Array
    second_moment: jax.Array
    step: jax.Array


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


class OptimizationResult(NamedTuple):
    """What ``run_optimizer`` returns for a batch of starts.

    Attributes:
        positions: [batch, n_atoms, 3] array, final positions.
        energy: [batch] array, energy at the final positions.
        best_positions: [batch, n_atoms, 3] array, the lowest-energy structure
            evaluated along the way (start and final structure included).
        best_energy: [batch] array, its energy.
        energy_evaluations: int, energy-and-gradient evaluations charged per start:
            ``steps + 1`` (the start structure, then one per step).
        energy_trajectory: [batch, steps // record_every] array, energy after
            ``record_every``, ``2 * record_every``, ... steps; None unless
            ``record_every`` was given.
        final_state: the optimizer state after the last step, batched on axis 0.
    """

    positions: jax.Array
    energy: jax.Array
    best_positions: jax.Array
    best_energy: jax.Array
    energy_evaluations: int
    energy_trajectory: jax.Array | None
    final_state: Any


def gradient_descent(
    energy_fn: Callable[[jax.Array], jax.Array], learning_rate: float
) -> Optimizer:
    """Plain gradient descent, ``x <- x - learning_rate * dE/dx``.

    Args:
        energy_fn: maps positions, [n_atoms, 3] array, to the scalar energy.
        learning_rate: step per unit gradient (length^2 / energy).

    Returns:
        ``Optimizer(init_fn, step_fn)`` over ``GradientDescentState``.

    Example:
        >>> init_fn, step_fn = gradient_descent(energy_fn, 1e-3)
        >>> state = step_fn(init_fn(positions))
    """
    energy_and_gradient_fn = jax.value_and_grad(energy_fn)

    def init_fn(positions):
        energy, gradient = energy_and_gradient_fn(positions)
        return GradientDescentState(positions, energy, gradient)

    def step_fn(state):
        positions = state.positions - learning_rate * state.gradient
        energy, gradient = energy_and_gradient_fn(positions)
        return GradientDescentState(positions, energy, gradient)

    return Optimizer(init_fn, step_fn)


def adam_update(
    gradient: jax.Array,
    first_moment: jax.Array,
    second_moment: jax.Array,
    step: jax.Array,
    learning_rate: float,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """One Adam update (Kingma & Ba 2015, algorithm 1; optax.adam conventions).

    Args:
        gradient: [n_atoms, 3] array, dE/dx at the current positions.
        first_moment: [n_atoms, 3] array, moving average of the gradient.
        second_moment: [n_atoms, 3] array, moving average of the squared gradient.
        step: int scalar, updates already taken (0 for the first).
        learning_rate: Adam step size (length units).
        b1: decay of the first moment.
        b2: decay of the second moment.
        eps: added to the root of the bias-corrected second moment.

    Returns:
        ``(displacement, first_moment, second_moment)``: the [n_atoms, 3]
        displacement to add to the positions and the updated moments.
    """
    first_moment = b1 * first_moment + (1.0 - b1) * gradient
    second_moment = b2 * second_moment + (1.0 - b2) * gradient**2
    count = step + 1
    corrected_first = first_moment / (1.0 - b1**count)
    corrected_second = second_moment / (1.0 - b2**count)
    displacement = -learning_rate * corrected_first / (jnp.sqrt(corrected_second) + eps)
    return displacement, first_moment, second_moment


def adam_descent(
    energy_fn: Callable[[jax.Array], jax.Array],
    learning_rate: float,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
) -> Optimizer:
    """Adam on the atomic coordinates (paper baseline; appendix C.1).

    Args:
        energy_fn: maps positions, [n_atoms, 3] array, to the scalar energy.
        learning_rate: Adam step size (length units; roughly the largest move of a
            coordinate per step).
        b1: decay of the first moment.
        b2: decay of the second moment.
        eps: added to the root of the bias-corrected second moment.

    Returns:
        ``Optimizer(init_fn, step_fn)`` over ``AdamState``; the same trajectory as
        ``optax.adam(learning_rate, b1, b2, eps)`` applied to the positions.

    Example:
        >>> init_fn, step_fn = adam_descent(energy_fn, 1e-2)
        >>> result = run_optimizer(init_fn, step_fn, starts, 1000)
    """
    energy_and_gradient_fn = jax.value_and_grad(energy_fn)

    def init_fn(positions):
        energy, gradient = energy_and_gradient_fn(positions)
        zeros = jnp.zeros_like(positions)
        return AdamState(positions, energy, gradient, zeros, zeros, jnp.array(0))

    def step_fn(state):
        displacement, first_moment, second_moment = adam_update(
            state.gradient,
            state.first_moment,
            state.second_moment,
            state.step,
            learning_rate,
            b1,
            b2,
            eps,
        )
        positions = state.positions + displacement
        energy, gradient = energy_and_gradient_fn(positions)
        return AdamState(
            positions, energy, gradient, first_moment, second_moment, state.step + 1
        )

    return Optimizer(init_fn, step_fn)


def fire_descent(
    energy_fn: Callable[[jax.Array], jax.Array],
    learning_rate: float = 0.1,
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
        energy_fn: maps positions, [n_atoms, 3] array, to the scalar energy.
        learning_rate: initial time step dt (ASE's ``dt``).
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

    Example:
        >>> init_fn, step_fn = fire_descent(energy_fn, learning_rate=0.1)
        >>> result = run_optimizer(init_fn, step_fn, starts, 500)
    """
    energy_and_gradient_fn = jax.value_and_grad(energy_fn)

    def init_fn(positions):
        energy, gradient = energy_and_gradient_fn(positions)
        return FireState(
            positions,
            energy,
            gradient,
            jnp.zeros_like(positions),
            jnp.asarray(learning_rate, dtype=positions.dtype),
            jnp.asarray(alpha_start, dtype=positions.dtype),
            jnp.array(0),
            jnp.array(0),
        )

    def step_fn(state):
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
        positions = state.positions + scale * displacement
        energy, gradient = energy_and_gradient_fn(positions)
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


def wrap_positions(positions: jax.Array, box_length: float) -> jax.Array:
    """Wraps positions into the periodic cubic cell [0, box_length)^3.

    Args:
        positions: [..., 3] array, positions (length units).
        box_length: side of the cubic cell (length units).

    Returns:
        Array of the same shape with every coordinate in [0, box_length).
    """
    wrapped = jnp.mod(positions, box_length)
    # A coordinate a hair below zero rounds to exactly box_length after mod.
    return jnp.where(wrapped >= box_length, wrapped - box_length, wrapped)


def _run_one_start(
    init_fn, step_fn, positions, init_args, steps, box_length, record_every
):
    """Runs ``steps`` steps from one start; see ``run_optimizer``."""

    def wrap(state):
        if box_length is None:
            return state
        return state._replace(positions=wrap_positions(state.positions, box_length))

    def advance(carry, _):
        state, best_energy, best_positions = carry
        state = wrap(step_fn(state))
        # NaN never compares lower, so a blown-up step cannot become the best.
        improved = state.energy < best_energy
        best_energy = jnp.where(improved, state.energy, best_energy)
        best_positions = jnp.where(improved, state.positions, best_positions)
        return (state, best_energy, best_positions), None

    def advance_and_record(carry, _):
        carry, _ = jax.lax.scan(advance, carry, length=record_every)
        return carry, carry[0].energy

    state = wrap(init_fn(positions, *init_args))
    best_energy = jnp.where(jnp.isnan(state.energy), jnp.inf, state.energy)
    carry = (state, best_energy, state.positions)
    energy_trajectory = None
    remaining_steps = steps
    if record_every is not None:
        n_records = steps // record_every
        carry, energy_trajectory = jax.lax.scan(
            advance_and_record, carry, length=n_records
        )
        remaining_steps = steps - n_records * record_every
    carry, _ = jax.lax.scan(advance, carry, length=remaining_steps)
    state, best_energy, best_positions = carry
    return state, best_energy, best_positions, energy_trajectory


@functools.partial(
    jax.jit,
    static_argnames=("init_fn", "step_fn", "steps", "box_length", "record_every"),
)
def _run_batch(
    init_fn, step_fn, positions_batch, init_args, steps, box_length, record_every
):
    run_one = functools.partial(
        _run_one_start,
        init_fn,
        step_fn,
        steps=steps,
        box_length=box_length,
        record_every=record_every,
    )
    return jax.vmap(run_one)(positions_batch, init_args)


def run_optimizer(
    init_fn: Callable[..., Any],
    step_fn: Callable[[Any], Any],
    positions_batch: jax.Array,
    steps: int,
    *,
    box_length: float | None = None,
    record_every: int | None = None,
    init_args: tuple = (),
) -> OptimizationResult:
    """Runs an optimizer for ``steps`` steps on every start of a batch.

    Jitted once per (optimizer, step count, box, record interval); the batch is
    ``vmap``-ed and the steps run in ``lax.scan``. The optimizer state must be a
    NamedTuple with ``positions``, ``energy`` and ``gradient`` fields.

    Args:
        init_fn: ``init_fn(positions, *init_args) -> state``.
        step_fn: ``step_fn(state) -> state``.
        positions_batch: [batch, n_atoms, 3] array, starting positions (length
            units of the potential).
        steps: number of optimizer steps; ``steps + 1`` evaluations are charged.
        box_length: side of the cubic periodic cell; positions are wrapped into
            [0, box_length) after every step (the energy must be periodic). None
            for free clusters.
        record_every: if given, also return the energy every ``record_every``
            steps, [batch, steps // record_every].
        init_args: extra arrays for ``init_fn``, each with the batch on axis 0
            (e.g. random keys).

    Returns:
        ``OptimizationResult``.

    Example:
        >>> result = run_optimizer(*adam_descent(energy_fn, 1e-2), starts, 1000)
        >>> result.best_energy.min()
    """
    positions_batch = jnp.asarray(positions_batch)
    if positions_batch.ndim != 3 or positions_batch.shape[-1] != 3:
        raise ValueError(
            "positions_batch must have shape [batch, n_atoms, 3], got "
            f"{positions_batch.shape}"
        )
    if int(steps) != steps or steps < 0:
        raise ValueError(f"steps must be a non-negative integer, got {steps}")
    if record_every is not None and (
        int(record_every) != record_every or record_every < 1
    ):
        raise ValueError(f"record_every must be a positive integer, got {record_every}")
    if box_length is not None:
        box_length = float(box_length)
        if not box_length > 0.0:
            raise ValueError(f"box_length must be positive, got {box_length}")
    state, best_energy, best_positions, energy_trajectory = _run_batch(
        init_fn,
        step_fn,
        positions_batch,
        tuple(init_args),
        int(steps),
        box_length,
        None if record_every is None else int(record_every),
    )
    return OptimizationResult(
        positions=state.positions,
        energy=state.energy,
        best_positions=best_positions,
        best_energy=best_energy,
        energy_evaluations=int(steps) + 1,
        energy_trajectory=energy_trajectory,
        final_state=state,
    )


# One optimizer per (energy_fn, learning_rate), so that repeated polishes of the
# same potential reuse the compiled run instead of recompiling.
_cached_gradient_descent = functools.lru_cache(maxsize=64)(gradient_descent)


def polish(
    energy_fn: Callable[[jax.Array], jax.Array],
    positions: jax.Array,
    steps: int = POLISH_STEPS,
    learning_rate: float = POLISH_LEARNING_RATE,
    box_length: float | None = None,
) -> OptimizationResult:
    """Polishes structures into their local minima with gradient descent.

    The paper's final step for every optimizer (section 3.3): 1000 steps of plain
    gradient descent at learning rate 0.001.

    Args:
        energy_fn: maps positions, [n_atoms, 3] array, to the scalar energy. Must be
            hashable (a function or ``functools.partial``) so the compiled polish
            is reused.
        positions: [batch, n_atoms, 3] array, structures to polish.
        steps: gradient-descent steps.
        learning_rate: gradient-descent step per unit gradient.
        box_length: side of the cubic periodic cell, or None for free clusters.

    Returns:
        ``OptimizationResult``; ``result.positions`` and ``result.energy`` are the
        polished structures, [batch, n_atoms, 3], and their energies, [batch].

    Example:
        >>> polished = polish(energy_fn, result.best_positions)
    """
    init_fn, step_fn = _cached_gradient_descent(energy_fn, float(learning_rate))
    return run_optimizer(init_fn, step_fn, positions, steps, box_length=box_length)

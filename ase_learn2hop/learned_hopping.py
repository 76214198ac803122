"""Learned basin hopping: learned hops between quasi-Newton quenches.

The product's default search (`LearnedHopOptimizer`'s ``protocol="hopping"``).
Basin hopping (Wales & Doye 1997; GMIN, pele, scipy's ``basinhopping``) with
the random perturbation replaced by the learned optimizer:

1. quench the start with L-BFGS (`quench`: one force call per iteration, the
   step capped, no line search) until the largest force is below
   ``quench_fmax`` or ``max_quench_steps`` evaluations: the first minimum,
   accepted whatever it is, so the search never ends above a local
   relaxation of its start;
2. hop: ``hop_steps`` learned steps from the current minimum, turned into a
   random frame of the same energy (`geometry.Geometry.random_frame`: a
   random rotation of a free cluster, a random translation in a periodic
   cell), with a fresh learned-optimizer state (the weights were trained to
   leave basins); the frame makes every hop from a minimum a new move, where
   a deterministic hop would repeat a rejected move forever;
3. quench the end of the hop; offer the quenched structure to Metropolis
   acceptance at ``temperature`` against the current minimum (greedy at 0);
   a free cluster that lost an atom (an atom farther than
   `geometry.DISSOCIATION_DISTANCE` length scales from every other) is never
   accepted;
4. after ``restart_after`` hops in a row that did not lower the lowest
   minimum this walker found since its (re)start, restart it (GMIN's
   reseeding): a new random compact cluster
   (`initialization.compact_random_cluster`), quenched and accepted whatever
   it is, like the start; free clusters only, off at 0;
5. go to 2.

It is one `descent.Optimizer` whose every step is exactly one
energy-and-gradient evaluation (a learned step or a quench iteration), so the
one batched driver runs it like any other method: the lowest energy evaluated
anywhere (best so far), the force calls at which a target was first reached
and the total force calls are the driver's, per start and honest. Each start
hops on its own (no synchronisation between starts).

The first learned step of a hop starts from the minimum's stored energy and
gradient, so a hop of h steps costs h evaluations and a quench of k iterations
k evaluations.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from ase_learn2hop import driver, learned_optimizer, quench
from ase_learn2hop.basin_hopping import metropolis_accepts
from ase_learn2hop.descent import EnergyFn, Optimizer, select_tree
from ase_learn2hop.geometry import dissociated
from ase_learn2hop.initialization import compact_random_cluster
from ase_learn2hop.learned_optimizer import LearnedOptimizerConfig, Theta
from ase_learn2hop.search import SearchParameters


class HoppingConfig(NamedTuple):
    """Settings of learned basin hopping (hashable: a static argument).

    Attributes:
        hop_steps: learned steps per hop (h).
        temperature: Metropolis temperature kT (energy units); 0 is greedy.
        quench_fmax: a quench ends when the largest force is below this
            (energy / length units). 1e-2 (eV/Å, or reduced units): the
            minimum's energy is then within about 1e-6 of the converged one,
            and each quench costs about 12 force calls fewer than at 1e-3
            (LJ26, `benchmarks/results/hopping_quench.md`); the optimizer
            polishes its best structure to the user's ``fmax`` at the end.
        max_quench_steps: a quench also ends after this many evaluations.
        max_step: largest quench step, norm over the system, in units of the
            length scale.
        max_rise: largest energy rise of an accepted quench step (energy
            units).
        reorient: start every hop from the minimum in a random frame
            (`geometry.Geometry.random_frame`); never with fixed atoms.
        restart_after: hops without a new lowest minimum (lower by more
            than 1e-6 relative) after which a free cluster without fixed
            atoms restarts from a new random structure; 0 never restarts.
    """

    hop_steps: int = 100
    temperature: float = 0.8
    quench_fmax: float = 1e-2
    max_quench_steps: int = 1000
    max_step: float = quench.MAX_STEP
    max_rise: float = quench.MAX_RISE
    reorient: bool = True
    restart_after: int = 0


class HoppingState(NamedTuple):
    """State of one learned basin-hopping search.

    Attributes:
        positions, energy, gradient: the last evaluated structure (``[n, 3]``,
            scalar, ``[n, 3]``).
        hopping: bool scalar, whether the last evaluation was part of a hop
            whose learned steps are not all made yet.
        hop_step: int scalar, learned steps made in the current hop.
        learned: the learned optimizer's state in the current hop.
        quench: the L-BFGS quench state (`quench.QuenchState`).
        quench_begins: bool scalar, the last evaluation is a quench's first.
        minimum_positions, minimum_energy, minimum_gradient: the current
            (accepted) minimum; energy +inf before the first quench ends.
        key: ``uint32`` raw data of the start's random key (plain arrays, so
            restart files hold it); fixed: the Metropolis, frame and restart
            draws at the end of the k-th quench come from it folded with k
            (``hops``).
        hops: int scalar, quenches finished (the first included).
        accepted: int scalar, quenched structures accepted after the first.
        lowest_minimum: lowest quenched energy since the (re)start.
        stale_hops: int scalar, quenches since that lowest minimum was found.
        restarts: int scalar, restarts from a new random structure.
    """

    positions: jax.Array
    energy: jax.Array
    gradient: jax.Array
    hopping: jax.Array
    hop_step: jax.Array
    learned: learned_optimizer.LearnedOptimizerState
    quench: quench.QuenchState
    quench_begins: jax.Array
    minimum_positions: jax.Array
    minimum_energy: jax.Array
    minimum_gradient: jax.Array
    key: jax.Array
    hops: jax.Array
    accepted: jax.Array
    lowest_minimum: jax.Array
    stale_hops: jax.Array
    restarts: jax.Array


class _Outcome(NamedTuple):
    """What the quench phase of a step decided (`learned_hopping`'s step)."""

    quench: quench.QuenchState
    quench_done: jax.Array
    accept: jax.Array
    minimum: tuple
    hop_from: tuple
    lowest: jax.Array
    stale: jax.Array
    restart: jax.Array
    restart_positions: jax.Array


@functools.lru_cache(maxsize=256)
def learned_hopping(
    config: LearnedOptimizerConfig, energy_fn: EnergyFn, hopping: HoppingConfig
) -> Optimizer:
    """Learned basin hopping as an ``Optimizer(init_fn, step_fn)``.

    ``parameters`` is a `search.SearchParameters` (potential parameters and
    structure context), ``shared`` is ``theta``, and ``init_fn`` needs a key
    (the Metropolis draws).

    Returns:
        ``Optimizer`` over `HoppingState`; one evaluation per step.
    """
    if hopping.hop_steps < 1:
        raise ValueError(f"hop_steps must be positive, got {hopping.hop_steps}")
    value_and_grad = jax.value_and_grad(energy_fn)

    def init_fn(positions, parameters: SearchParameters, theta=None, key=None):
        energy, gradient = value_and_grad(positions, parameters.potential)
        free = parameters.context.free
        return HoppingState(
            positions=positions,
            energy=energy,
            gradient=gradient,
            hopping=jnp.asarray(False),
            hop_step=jnp.zeros((), jnp.int32),
            learned=learned_optimizer.init(positions, parameters.context),
            quench=quench.quench_begin(positions, energy, gradient, free),
            quench_begins=jnp.asarray(True),
            minimum_positions=positions,
            minimum_energy=jnp.asarray(jnp.inf, energy.dtype),
            minimum_gradient=gradient,
            key=jax.random.key_data(jax.random.key(0) if key is None else key),
            hops=jnp.zeros((), jnp.int32),
            accepted=jnp.zeros((), jnp.int32),
            lowest_minimum=jnp.asarray(jnp.inf, energy.dtype),
            stale_hops=jnp.zeros((), jnp.int32),
            restarts=jnp.zeros((), jnp.int32),
        )

    def step_fn(state: HoppingState, parameters: SearchParameters, theta: Theta):
        context = parameters.context
        free = context.free
        can_restart = hopping.restart_after > 0 and free is None
        can_restart = can_restart and not context.geometry.periodic
        # Phases are lax.cond branches: one start (not vmapped by the driver)
        # computes only its branch; under vmap every branch runs and one is
        # selected, except the rare ones (a quench's end, a restart) that
        # `driver.batch_cond` runs only when some start of the batch takes
        # them. A hop step (most calls) passes two conditionals: on one
        # search each costs about a microsecond, so what happens only at the
        # end of a quench is nested inside the quench's branch. The learned
        # step's branch is a `driver.batch_select`, so that the batch's rows
        # meet the network's weights in one product.
        first = ~jnp.isfinite(state.minimum_energy)
        unchanged = _Outcome(
            quench=state.quench,
            quench_done=jnp.asarray(False),
            accept=jnp.asarray(False),
            minimum=(
                state.minimum_positions,
                state.minimum_energy,
                state.minimum_gradient,
            ),
            hop_from=(state.positions, state.gradient, state.learned),
            lowest=state.lowest_minimum,
            stale=state.stale_hops,
            restart=jnp.asarray(False),
            restart_positions=state.positions,
        )

        def quench_phase():
            # The last evaluation either begins a quench (end of a hop, or the
            # start) or is the trial point of the running one.
            current = quench.quench_observe(
                state.quench,
                state.positions,
                state.energy,
                state.gradient,
                free,
                hopping.max_rise,
                begins=state.quench_begins,
            )
            quench_done = (
                quench.quench_converged(current, hopping.quench_fmax)
                | (current.iterations >= hopping.max_quench_steps)
                | ~jnp.isfinite(current.energy)
            )
            going_on = unchanged._replace(quench=current)
            # Under vmap only at the steps where some start ends a quench.
            return driver.batch_cond(
                quench_done, lambda: quench_end(current), lambda: going_on
            )

        def quench_end(current):
            # Drawn here, from the key folded with the quench's count: a key
            # split at every step cost every start threefry hashes at each
            # force call for draws needed once a quench.
            acceptance_key, frame_key = jax.random.split(
                jax.random.fold_in(jax.random.wrap_key_data(state.key), state.hops)
            )
            # Metropolis on the quenched structure against the current minimum;
            # a free cluster that lost an atom is never accepted (but a first
            # minimum always is).
            whole = True
            if not context.geometry.periodic:
                whole = ~dissociated(current.positions, context.length_scale)
            accept = jnp.isfinite(current.energy) & (first | (whole & metropolis_accepts(
                current.energy, state.minimum_energy, acceptance_key, hopping.temperature
            )))  # fmt: skip
            minimum_positions, minimum_energy, minimum_gradient = select_tree(
                accept,
                (current.positions, current.energy, current.gradient),
                unchanged.minimum,
            )
            # The hop's first learned step starts from the minimum with a
            # fresh learned state (the frame is drawn only then).
            start, start_gradient = minimum_positions, minimum_gradient
            if hopping.reorient and free is None:
                start, start_gradient = context.geometry.random_frame(
                    frame_key, start, start_gradient
                )
            improved = current.energy < state.lowest_minimum - 1e-6 * jnp.abs(
                current.energy
            )
            # A quench that ended on a non-finite energy found nothing.
            lowest = jnp.where(
                jnp.isfinite(current.energy),
                jnp.minimum(state.lowest_minimum, current.energy),
                state.lowest_minimum,
            )
            stale = jnp.where(improved, 0, state.stale_hops + 1)
            restart = jnp.asarray(False)
            restart_positions = state.positions
            if can_restart:
                # Stuck in one funnel: a new random structure, quenched next
                # and accepted like the start (the best so far is the
                # driver's).
                restart = stale >= hopping.restart_after
                restart_positions = driver.batch_cond(
                    restart,
                    lambda: compact_random_cluster(
                        frame_key,
                        state.positions.shape[0],
                        context.length_scale,
                        jnp.mean(minimum_positions, axis=0),
                    ).astype(state.positions.dtype),
                    lambda: state.positions,
                )
                minimum_energy = jnp.where(restart, jnp.inf, minimum_energy)
                lowest = jnp.where(restart, jnp.inf, lowest)
                stale = jnp.where(restart, 0, stale)
            return _Outcome(
                quench=current,
                quench_done=jnp.asarray(True),
                accept=accept,
                minimum=(minimum_positions, minimum_energy, minimum_gradient),
                hop_from=(
                    start,
                    start_gradient,
                    learned_optimizer.restart(state.learned),
                ),
                lowest=lowest,
                stale=stale,
                restart=restart,
                restart_positions=restart_positions,
            )

        outcome = jax.lax.cond(state.hopping, lambda: unchanged, quench_phase)
        quench_done = outcome.quench_done
        moving = state.hopping | quench_done
        hop_step = jnp.where(quench_done, 1, state.hop_step + state.hopping)

        def learned_step():
            hop_from, hop_gradient, learned_state = outcome.hop_from
            displacement, learned_state = learned_optimizer.update(
                theta, config, learned_state, hop_from, hop_gradient, context
            )
            if free is not None:
                displacement = displacement * free
            return context.geometry.move(hop_from, displacement), learned_state

        def quench_step():
            max_step = hopping.max_step * context.length_scale
            return quench.quench_trial(outcome.quench, max_step), state.learned

        positions, learned_state = driver.batch_select(
            moving, learned_step, quench_step
        )
        restart = outcome.restart
        if can_restart:
            positions = jnp.where(restart, outcome.restart_positions, positions)
        still_hopping = moving & ~restart & (hop_step < hopping.hop_steps)
        energy, gradient = value_and_grad(positions, parameters.potential)
        minimum_positions, minimum_energy, minimum_gradient = outcome.minimum
        return HoppingState(
            positions=positions,
            energy=energy,
            gradient=gradient,
            hopping=still_hopping,
            hop_step=hop_step,
            learned=learned_state,
            quench=outcome.quench,
            quench_begins=moving & ~still_hopping,
            minimum_positions=minimum_positions,
            minimum_energy=minimum_energy,
            minimum_gradient=minimum_gradient,
            key=state.key,
            hops=state.hops + quench_done,
            accepted=state.accepted + (outcome.accept & ~first),
            lowest_minimum=outcome.lowest,
            stale_hops=outcome.stale,
            restarts=state.restarts + restart,
        )

    return Optimizer(init_fn, step_fn)


@functools.partial(
    jax.jit, static_argnames=("config", "energy_fn", "hopping", "budget")
)
def hopping_best_so_far(
    theta: Theta,
    config: LearnedOptimizerConfig,
    energy_fn: EnergyFn,
    hopping: HoppingConfig,
    positions: jax.Array,
    context,
    potential_parameters: Any,
    key: jax.Array,
    *,
    budget: int,
) -> jax.Array:
    """One search of ``budget`` force calls from ``positions`` ``[n, 3]``;
    ``[budget]`` the best energy found after each call (training's
    meta-loss; the batched product path is the driver's)."""
    optimizer = learned_hopping(config, energy_fn, hopping)
    parameters = SearchParameters(potential_parameters, context)
    no_target = jnp.asarray(-jnp.inf, dtype=positions.dtype)

    def one_call(carry, _):
        carry = driver.step_one(optimizer, carry, parameters, theta, no_target)
        return carry, carry.best_energy

    carry = driver.start_one(optimizer, positions, parameters, theta, key, no_target)
    _, best = jax.lax.scan(one_call, carry, None, length=budget - 1)
    return jnp.concatenate([carry.best_energy[None], best])

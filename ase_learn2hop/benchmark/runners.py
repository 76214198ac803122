"""The benchmark's method runners: Adam, FIRE, the paper's basin hopping and the
learned optimizer, each over the batch of starts on the core's batched driver
(`ase_learn2hop.driver`) or cycle loop (`ase_learn2hop.search`), then the
paper's polish of the last and the lowest structure.

- `run_local_descent` (Adam, FIRE), `run_paper_basin_hopping`, `run_learned`,
  each returning a `protocol.VariantResult`;
- `polish_lowest`, `update_magnitude_at_minimum` (Figure 6), and the choice of
  weights (`resolve_weights`, `learned_strategy`).
"""

from __future__ import annotations

import functools
import math
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ase_learn2hop import cycles, descent, driver, learned_optimizer, search, systems
from ase_learn2hop import weights as weight_files
from ase_learn2hop.basin_hopping import (
    BASIN_HOPPING_DESCENT_STEPS,
    BASIN_HOPPING_LEARNING_RATE,
    basin_hopping,
)
from ase_learn2hop.benchmark.protocol import (
    BASIN_HOPPING_DESCENTS_PER_SEARCH,
    VariantResult,
    global_minimum_threshold,
    reaches_global_minimum,
)

#: Starts whose trajectory is traced step by step for Figure 6 (the one that
#: ends lowest is shown).
FULL_TRACE_STARTS = 8


def _batched_parameters(system: systems.System, batch: int):
    return systems.broadcast_to_batch(system.potential_parameters, batch)


def _advance_bar(progress):
    return None if progress is None else progress.update


def polish_lowest(
    system: systems.System, *candidates: jax.Array
) -> tuple[np.ndarray, np.ndarray, int]:
    """The paper's polish (1000 GD steps at 1e-3) of each candidate set; per
    start, the lower polished energy.

    Args:
        system: the system.
        *candidates: ``[batch, n, 3]`` structures (e.g. last and lowest seen).

    Returns:
        ``(energies [batch], positions [batch, n, 3], force_calls)``: non-finite
        energies count as +inf when choosing; ``force_calls`` is what the
        polishes cost per start (``descent.polish`` charges 1001 per structure).
    """
    batch = candidates[0].shape[0]
    stacked = jnp.concatenate(candidates, axis=0)
    positions, energies = driver.polish_batch(
        system.energy_fn,
        stacked,
        _batched_parameters(system, stacked.shape[0]),
        system.geometry,
        descent.POLISH_STEPS,
        descent.POLISH_LEARNING_RATE,
    )
    energies = np.asarray(energies).reshape(len(candidates), batch)
    positions = np.asarray(positions).reshape(
        (len(candidates), batch) + stacked.shape[1:]
    )
    safe = np.where(np.isfinite(energies), energies, np.inf)
    choice = np.argmin(safe, axis=0)
    chosen = np.arange(batch)
    force_calls = len(candidates) * (descent.POLISH_STEPS + 1)
    return energies[choice, chosen], positions[choice, chosen], force_calls


def _seconds_to_hit(first_hit, evaluations, wall_time_s) -> np.ndarray:
    """Batched runs: the batch's wall time shared out per start and evaluation."""
    per_evaluation = wall_time_s / max(len(evaluations), 1) / np.maximum(evaluations, 1)
    return np.where(first_hit > 0, first_hit * per_evaluation, np.nan)


def run_local_descent(
    system: systems.System,
    method: str,
    starts: jax.Array,
    steps: int,
    learning_rate: float,
    *,
    progress: Any = None,
) -> VariantResult:
    """Adam or FIRE (``method``) for ``steps`` steps from every start, then the
    polish of the last and the lowest structure.

    Returns:
        a `VariantResult`; force calls per start: ``steps + 1``, plus
        ``2 * 1001`` for the two polishes.
    """
    factory = {"adam": descent.adam_descent, "fire": descent.fire_descent}[method]
    started = time.perf_counter()
    run = driver.run_batched(
        factory(system.energy_fn, float(learning_rate), system.geometry),
        starts,
        steps,
        _batched_parameters(system, starts.shape[0]),
        target_energy=global_minimum_threshold(system.global_minimum),
        progress=_advance_bar(progress),
    )
    return _finish_batched(
        system,
        {"learning_rate": float(learning_rate)},
        run,
        (run.carry.state.positions, run.carry.best_positions),
        started,
    )


def _finish_batched(
    system, setting, run: driver.DriverResult, candidates, started, extra=None
) -> VariantResult:
    energies, positions, polish_calls = polish_lowest(system, *candidates)
    force_calls = np.asarray(run.carry.force_calls) + polish_calls
    first_hit = np.asarray(run.carry.first_hit)
    # A start that reaches the global minimum only in the polish hits at its end.
    polished_hit = (first_hit < 0) & reaches_global_minimum(
        energies, system.global_minimum
    )
    first_hit = np.where(polished_hit, force_calls, first_hit)
    wall_time = time.perf_counter() - started
    return VariantResult(
        setting=setting,
        energies=energies,
        energy_evaluations=force_calls,
        first_hit_evaluations=first_hit,
        wall_time_s=wall_time,
        seconds_to_first_hit=_seconds_to_hit(first_hit, force_calls, wall_time),
        positions=positions,
        record_steps=run.record_steps,
        energy_records=run.energy_records,
        extra=extra or {},
    )


def basin_hopping_descent_steps(steps: int) -> int:
    """Adam steps per descent: the paper's 5000, or fewer so that a search of
    ``steps`` evaluations still makes about 10 descents (as the paper's 50000)."""
    return max(
        1, min(BASIN_HOPPING_DESCENT_STEPS, steps // BASIN_HOPPING_DESCENTS_PER_SEARCH)
    )


def run_paper_basin_hopping(
    system: systems.System,
    starts: jax.Array,
    budget: int,
    key: jax.Array,
    step_size: float,
    *,
    descent_steps: int | None = None,
    progress: Any = None,
) -> VariantResult:
    """The paper's basin hopping (appendix C.2; `basin_hopping.basin_hopping`)
    with exactly ``budget`` force calls per start, then the polish of the
    current and the lowest structure.

    Args:
        key: JAX key, split into one per start.
        step_size: standard deviation of the Gaussian perturbation (length units).
        descent_steps: Adam steps per descent; None for
            `basin_hopping_descent_steps`.
    """
    if int(budget) != budget or budget < 1:
        raise ValueError(f"budget must be a positive integer, got {budget}")
    descent_steps = descent_steps or basin_hopping_descent_steps(budget)
    started = time.perf_counter()
    result = basin_hopping(
        system.energy_fn,
        starts,
        int(budget),
        key,
        _batched_parameters(system, starts.shape[0]),
        step_size=float(step_size),
        descent_steps=int(descent_steps),
        learning_rate=BASIN_HOPPING_LEARNING_RATE,
        geometry=system.geometry,
        target_energy=global_minimum_threshold(system.global_minimum),
        progress=_advance_bar(progress),
    )
    if progress is not None:
        progress.update(1)
    return _finish_batched(
        system,
        {"step_size": float(step_size), "descent_steps": int(descent_steps)},
        result.run,
        (result.positions, result.best_positions),
        started,
        extra={
            "descents": result.n_hops,
            "accepted": np.asarray(result.accepted).tolist(),
        },
    )


@functools.partial(jax.jit, static_argnames=("config", "energy_fn", "n_steps"))
def update_magnitude_at_minimum(
    theta,
    config,
    energy_fn,
    positions: jax.Array,
    context,
    potential_parameters,
    n_steps: int,
) -> jax.Array:
    """Root-mean-square update of the learned optimizer held at ``positions``.

    Paper Figure 6 (middle), after Maheswaranathan et al. (2021): the atoms stay
    at a minimum (gradient about zero) while the optimizer's state evolves, so the
    updates show how the optimizer's urge to move depends on the step alone.

    Args:
        positions: ``[n, 3]`` a (local or global) minimum.
        n_steps: learned steps (one horizon).

    Returns:
        ``[n_steps]`` root-mean-square displacement the optimizer proposes at
        each step (length units).
    """
    gradient = jax.grad(energy_fn)(positions, potential_parameters)

    def one_step(state, _):
        displacement, state = learned_optimizer.update(
            theta, config, state, positions, gradient, context
        )
        return state, jnp.sqrt(jnp.mean(displacement**2))

    _, magnitudes = jax.lax.scan(
        one_step, learned_optimizer.init(positions), None, length=n_steps
    )
    return magnitudes


def resolve_weights(
    system: systems.System, weights: Any = None
) -> tuple[weight_files.LearnedWeights | None, str]:
    """The weights for ``system`` and, when none fit, the reason.

    Args:
        weights: loaded weights, a path or shipped name, or None for the shipped
            weights that fit (`weights.default_weights_for`).

    Returns:
        ``(weights, "")`` or ``(None, reason)``.

    Raises:
        weights.WeightFileError: an explicitly named weight file cannot be read.
    """
    n_species = len(np.unique(np.asarray(system.context.species)))
    try:
        loaded = weight_files.resolve_weights(
            weights, system.family, system.potential, system.name, n_species
        )
    except weight_files.NoSuitableWeightsError as error:
        return None, str(error)
    return loaded, ""


def run_learned(
    system: systems.System,
    starts: jax.Array,
    steps: int,
    weights: weight_files.LearnedWeights,
    *,
    progress: Any = None,
) -> tuple[VariantResult, dict]:
    """``steps`` learned steps from every start on the core's cycle loop (the
    search of ``LearnedHopOptimizer.run``): cycles of the weights' horizon H,
    each ending with the polish of its last and lowest structure, the next
    starting from the polished last structure with a fresh optimizer state;
    each start keeps its lowest polished minimum.

    Returns:
        ``(variant, figure_data)``: force calls count 1 + H + 2 x 1001 per
        cycle; ``figure_data`` holds the energy and step size, step by step over
        the first cycle, of the start (of the first `FULL_TRACE_STARTS`) that
        ends lowest, and the update magnitude held at the lowest minimum found.
    """
    horizon = weights.horizon
    started = time.perf_counter()
    found = cycles.cycles_start(
        weights.theta,
        weights.config,
        system.energy_fn,
        starts,
        system.context,
        system.potential_parameters,
        horizon=horizon,
        target_energy=global_minimum_threshold(system.global_minimum),
    )
    found, record_steps, records = cycles.cycles_advance(
        found,
        steps,
        record_every=driver.record_interval(steps),
        progress=_advance_bar(progress),
    )
    if found.cycle_step > 0:
        found = cycles.cycles_finish(found)
    wall_time = time.perf_counter() - started
    best_energy = np.where(np.isinf(found.best_energy), np.nan, found.best_energy)
    best_positions = found.best_positions
    variant = VariantResult(
        setting={"weights": weights.name, "horizon": horizon},
        energies=best_energy,
        energy_evaluations=found.force_calls,
        first_hit_evaluations=found.first_hit,
        wall_time_s=wall_time,
        seconds_to_first_hit=_seconds_to_hit(
            found.first_hit, found.force_calls, wall_time
        ),
        positions=best_positions,
        record_steps=record_steps,
        energy_records=records,
        extra={"cycles": math.ceil(steps / horizon)},
    )
    ranked = np.where(np.isfinite(best_energy), best_energy, np.inf)
    shown = int(np.argmin(ranked[:FULL_TRACE_STARTS]))
    _, trace = search.learned_search(
        weights.theta,
        weights.config,
        system.energy_fn,
        jnp.asarray(starts[shown]),
        system.context,
        system.potential_parameters,
        n_steps=min(horizon, steps),
        polish_steps=1,
    )
    figure_data = {
        "single_start": shown,
        "single_energy": np.asarray(trace.energy),
        "single_step_size": np.asarray(trace.step_size),
    }
    if np.isfinite(ranked).any():
        lowest = int(np.argmin(ranked))
        magnitudes = update_magnitude_at_minimum(
            weights.theta,
            weights.config,
            system.energy_fn,
            jnp.asarray(best_positions[lowest]),
            system.context,
            system.potential_parameters,
            min(horizon, steps),
        )
        figure_data["held_update_magnitude"] = np.asarray(magnitudes)
        figure_data["held_energy"] = float(best_energy[lowest])
    return variant, figure_data


def learned_strategy(weights: weight_files.LearnedWeights) -> str:
    """Training strategy recorded in the weights' manifest (``esmc``, ``ga``...)."""
    training = weights.manifest.get("training", {})
    strategy = training.get("strategy", "") if isinstance(training, dict) else ""
    return str(strategy).lower()

"""The benchmark: the learned optimizer beside Adam, FIRE and basin hopping.

Reproduces the paper's evaluation (section 4, 6, appendix C; SPEC section 6) and
puts ASE's own ``FIRE`` and ``BasinHopping`` beside it, so that users see the tools
they already run on the same footing.

Fairness rules, the same for every method:

- **Same starts.** Every method starts from ``systems.starting_structures(key,
  system, n_starts)`` with the same key (``--seed``); ASE's tools take the first
  ``ase_starts`` of them.
- **Same budget.** Adam and FIRE make ``steps`` steps; the paper's basin hopping
  gets ``budget = steps`` energy-and-gradient evaluations; the learned optimizer
  makes ``steps`` learned steps in cycles of its training horizon H, each cycle
  ending with the paper's polish (so its count includes those polishes); ASE's
  tools get at most ``steps`` force calls.
- **Same polish.** The last and the lowest structure of every run are polished
  with ``descent.polish`` (1000 gradient-descent steps at learning rate 1e-3,
  paper 3.3) and the lower is kept: "energy" below is the lowest energy reached
  per start, after the polish. ASE's runs polish their lowest structure.
- **Every evaluation charged.** Evaluations per start are counted as run, polish
  included, and reported beside the energies.

Adam and FIRE run every learning rate of ``descent.BASELINE_LEARNING_RATES``,
basin hopping every step size of ``BASIN_HOPPING_STEP_SIZES``; the table reports
the one with the lowest mean energy and the JSON keeps them all. A start "hits"
the global minimum when its energy is within 1e-3 relative of the known global
minimum (SPEC section 6); the benchmark also reports how many evaluations (and,
for ASE, seconds) each method took to first reach it.

Numerics are pure JAX: each method is an ``Optimizer(init_fn, step_fn)`` run over
the batch of starts with ``vmap`` and ``lax.scan``, in jitted chunks so that
progress bars advance and Ctrl-C stops between chunks. A benchmark interrupted
with Ctrl-C writes the tables, JSON and figures of what it finished.

Command line: ``learn2hop benchmark`` (full tables and figures) and
``learn2hop compare`` (LJ13 in about two minutes; the README's first command).
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import math
import platform
import re
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from ase.calculators.calculator import Calculator, all_changes

from ase_learn2hop import descent, learned_optimizer, search, systems
from ase_learn2hop import weights as weight_files
from ase_learn2hop.basin_hopping import (
    BASIN_HOPPING_DESCENT_STEPS,
    BASIN_HOPPING_LEARNING_RATE,
    BASIN_HOPPING_STEP_SIZES,
    accept_last_descent,
    basin_hopping_descent,
)

#: Every method the benchmark knows, in table order.
METHODS = (
    "learned",
    "adam",
    "fire",
    "basin_hopping",
    "ase_fire",
    "ase_basin_hopping",
)
METHOD_LABELS = {
    "learned": "Learned optimizer",
    "adam": "Adam",
    "fire": "FIRE",
    "basin_hopping": "Basin hopping (paper)",
    "ase_fire": "ASE FIRE",
    "ase_basin_hopping": "ASE BasinHopping",
}
#: The paper's Table 2 systems: the default of ``learn2hop benchmark``.
DEFAULT_SYSTEMS = ("lj13", "lj75", "au55", "si64")
#: A start reaches the global minimum within this relative energy (SPEC 6).
GLOBAL_MINIMUM_TOLERANCE = 1e-3

#: Paper Table 2: mean and minimum energy over 150 starts after 50000 steps
#: (reduced units for LJ, eV otherwise), per method; "esmc" and "ga" are the
#: paper's learned optimizers. The Si64 Adam minimum is printed as -60.08 in the
#: paper (above its own mean, so a typo); it is kept as printed.
PAPER_TABLE_2 = {
    "lj13": {
        "global_minimum": -44.33,
        "min": {
            "adam": -44.33,
            "fire": -44.33,
            "basin_hopping": -44.33,
            "esmc": -44.33,
            "ga": -44.33,
        },
        "mean": {
            "adam": -40.58,
            "fire": -40.45,
            "basin_hopping": -43.49,
            "esmc": -44.26,
            "ga": -44.31,
        },
    },
    "lj75": {
        "global_minimum": -397.49,
        "min": {
            "adam": -390.34,
            "fire": -389.12,
            "basin_hopping": -392.16,
            "esmc": -396.24,
            "ga": -396.28,
        },
        "mean": {
            "adam": -380.52,
            "fire": -380.23,
            "basin_hopping": -381.49,
            "esmc": -390.33,
            "ga": -390.92,
        },
    },
    "au55": {
        "global_minimum": -181.89,
        "min": {
            "adam": -180.94,
            "fire": -181.75,
            "basin_hopping": -181.89,
            "esmc": -181.89,
            "ga": -181.89,
        },
        "mean": {
            "adam": -179.94,
            "fire": -180.94,
            "basin_hopping": -181.38,
            "esmc": -181.51,
            "ga": -181.61,
        },
    },
    "si64": {
        "global_minimum": -277.22,
        "min": {
            "adam": -60.08,
            "fire": -261.44,
            "basin_hopping": -261.64,
            "esmc": -262.95,
            "ga": -264.17,
        },
        "mean": {
            "adam": -256.83,
            "fire": -257.01,
            "basin_hopping": -259.14,
            "esmc": -260.14,
            "ga": -261.81,
        },
    },
}
PAPER_STEPS = 50000
PAPER_STARTS = 150

#: ASE BasinHopping temperature kT per potential (energy units). LJ: 0.8 epsilon
#: (SPEC 6). Gupta and Stillinger-Weber: the same fraction of the binding energy
#: per atom (LJ13 binds 3.4 epsilon per atom, Au55 3.3 eV, diamond Si 4.3 eV).
ASE_BASIN_HOPPING_TEMPERATURE = {"lj": 0.8, "gupta": 0.8, "sw": 1.0}
#: ASE BasinHopping displacement ``dr``, in units of the potential's length scale
#: (0.4 in LJ units, SPEC 6; 1.18 Å for gold).
ASE_BASIN_HOPPING_STEP = 0.4
#: Force criterion of ASE's FIRE, alone and inside BasinHopping (SPEC 6).
ASE_FMAX = 1e-3
#: Paper basin hopping runs about 10 local descents per search (50000 steps,
#: 5000 per descent); shorter budgets keep 10 descents.
BASIN_HOPPING_DESCENTS_PER_SEARCH = 10

#: Energy records per start for the energy-against-step figure.
RECORD_POINTS = 500
#: Steps of the learned optimizer's trajectory kept at full resolution (Figure 6).
FULL_TRACE_STEPS = 20000
#: Starts whose trajectory is kept at full resolution; Figure 6 shows the one
#: that ends lowest.
FULL_TRACE_STARTS = 8


# --------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------


@dataclasses.dataclass
class VariantResult:
    """One setting of one method (e.g. Adam at learning rate 0.005).

    Attributes:
        setting: the setting, e.g. ``{"learning_rate": 0.005}``.
        energies: ``[n_starts]`` lowest energy reached per start, after the polish
            (energy units of the potential).
        energy_evaluations: ``[n_starts]`` energy-and-force evaluations used per
            start, polish included.
        first_hit_evaluations: ``[n_starts]`` evaluations used when the search
            first came within tolerance of the global minimum; -1 if never (or
            unknown).
        wall_time_s: seconds for the whole batch of starts.
        seconds_to_first_hit: ``[n_starts]`` seconds to first reach the global
            minimum (ASE: measured per start; batched JAX methods: the batch's
            wall time shared out per start and evaluation); NaN if never.
        positions: ``[n_starts, n_atoms, 3]`` the structures of ``energies``.
        record_steps: ``[n_records]`` steps at which energies were recorded.
        energy_records: ``[n_starts, n_records]`` energy of the current structure
            at ``record_steps`` (Figure 6); None if not recorded.
        extra: anything else worth keeping in the JSON (JSON-serializable).
    """

    setting: dict
    energies: np.ndarray
    energy_evaluations: np.ndarray
    first_hit_evaluations: np.ndarray
    wall_time_s: float
    seconds_to_first_hit: np.ndarray
    positions: np.ndarray | None = None
    record_steps: np.ndarray | None = None
    energy_records: np.ndarray | None = None
    extra: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class MethodResult:
    """All settings of one method on one system; ``best`` is the reported one.

    Attributes:
        method: key of `METHODS`.
        status: ``"ok"``, or ``"skipped"`` with ``reason``.
        variants: one `VariantResult` per setting.
        best_index: the variant with the lowest mean energy.
        notes: how this method was run and charged.
        figure_data: arrays for Figure 6 (learned optimizer only).
    """

    method: str
    status: str = "ok"
    reason: str = ""
    variants: list[VariantResult] = dataclasses.field(default_factory=list)
    best_index: int = 0
    notes: str = ""
    figure_data: dict = dataclasses.field(default_factory=dict)

    @property
    def best(self) -> VariantResult | None:
        return self.variants[self.best_index] if self.variants else None


@dataclasses.dataclass
class SystemResult:
    """Every method's result on one system."""

    name: str
    n_atoms: int
    potential: str
    global_minimum: float | None
    n_starts: int
    steps: int
    group: str = ""
    methods: dict[str, MethodResult] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class BenchmarkSettings:
    """What to run (see ``learn2hop benchmark --help``).

    Attributes:
        systems: system names (``lj13``, ``lj10-100``, ``au55``, ``si64``,
            ``Ag35Au3``, ``AgAu38`` for a composition scan, ...).
        methods: keys of `METHODS`.
        starts: random starts per system.
        steps: step budget per start.
        seed: seed of the starting structures (and of the random searches).
        ase_starts: starts for ASE's FIRE and BasinHopping (the first ones).
        weights: weight file or shipped name; None picks the shipped weights that
            fit each system.
        learning_rates: Adam and FIRE learning rates.
        step_sizes: basin-hopping perturbation sizes.
        descent_steps: Adam steps per basin-hopping descent; None for
            ``min(5000, steps // 10)``.
        compositions: for composition scans, the values of m; None for all.
    """

    systems: tuple[str, ...] = DEFAULT_SYSTEMS
    methods: tuple[str, ...] = METHODS
    starts: int = PAPER_STARTS
    steps: int = PAPER_STEPS
    seed: int = 0
    ase_starts: int = 10
    weights: str | None = None
    learning_rates: tuple[float, ...] = descent.BASELINE_LEARNING_RATES
    step_sizes: tuple[float, ...] = BASIN_HOPPING_STEP_SIZES
    descent_steps: int | None = None
    compositions: tuple[int, ...] | None = None


def summarize(energies: np.ndarray, global_minimum: float | None) -> dict:
    """Mean, minimum and global-minimum hits of per-start energies.

    Args:
        energies: ``[n_starts]`` lowest energy per start; non-finite entries are
            failed starts, left out of the mean and counted in ``failed``.
        global_minimum: known global-minimum energy, or None.

    Returns:
        ``{"mean", "min", "median", "max", "n_starts", "failed",
        "global_minimum_hits"}`` (hits None where the global minimum is unknown).
    """
    energies = np.asarray(energies, dtype=float)
    finite = energies[np.isfinite(energies)]
    hits = None
    if global_minimum is not None:
        hits = int(np.sum(reaches_global_minimum(finite, global_minimum)))
    return {
        "mean": float(finite.mean()) if finite.size else math.nan,
        "min": float(finite.min()) if finite.size else math.nan,
        "median": float(np.median(finite)) if finite.size else math.nan,
        "max": float(finite.max()) if finite.size else math.nan,
        "n_starts": int(energies.size),
        "failed": int(energies.size - finite.size),
        "global_minimum_hits": hits,
    }


def global_minimum_threshold(global_minimum: float | None) -> float:
    """Highest energy that counts as the global minimum (-inf when unknown)."""
    if global_minimum is None:
        return -math.inf
    return global_minimum + GLOBAL_MINIMUM_TOLERANCE * abs(global_minimum)


def reaches_global_minimum(energies, global_minimum: float | None) -> np.ndarray:
    """True where an energy is within 1e-3 relative of the global minimum (all
    False when it is unknown)."""
    return np.asarray(energies) <= global_minimum_threshold(global_minimum)


# --------------------------------------------------------------------------
# Batched runs of classical optimizers, in jitted chunks
# --------------------------------------------------------------------------


class DriverCarry(NamedTuple):
    """Carry of a batched optimizer run (every leaf batched on axis 0).

    Attributes:
        state: the optimizer's state.
        best_energy: ``[batch]`` lowest energy evaluated so far.
        best_positions: ``[batch, n, 3]`` where it was evaluated.
        first_hit: ``[batch]`` evaluations used when the energy first reached the
            target (the global minimum), -1 before that.
        evaluations: ``[batch]`` energy-and-gradient evaluations so far.
    """

    state: Any
    best_energy: jax.Array
    best_positions: jax.Array
    first_hit: jax.Array
    evaluations: jax.Array


def _wrap_state(state, box_length: float | None):
    if box_length is None:
        return state
    return state._replace(positions=descent.wrap_positions(state.positions, box_length))


@functools.partial(jax.jit, static_argnames=("init_fn", "box_length"))
def driver_start(
    init_fn: Callable,
    positions_batch: jax.Array,
    init_args: tuple,
    target_energy: jax.Array,
    box_length: float | None = None,
) -> DriverCarry:
    """Initial `DriverCarry` for ``[batch, n, 3]`` starts (one evaluation each)."""

    def start_one(positions, args):
        state = _wrap_state(init_fn(positions, *args), box_length)
        energy = jnp.where(jnp.isnan(state.energy), jnp.inf, state.energy)
        first_hit = jnp.where(energy <= target_energy, 1, -1)
        return DriverCarry(state, energy, state.positions, first_hit, jnp.asarray(1))

    return jax.vmap(start_one)(positions_batch, init_args)


@functools.partial(
    jax.jit, static_argnames=("step_fn", "steps", "record_every", "box_length")
)
def driver_advance(
    step_fn: Callable,
    carry: DriverCarry,
    target_energy: jax.Array,
    steps: int,
    record_every: int,
    box_length: float | None = None,
) -> tuple[DriverCarry, jax.Array]:
    """``steps`` optimizer steps on every start (``steps`` a multiple of
    ``record_every``).

    Returns:
        the new carry and ``[batch, steps // record_every]`` energies of the
        current structures every ``record_every`` steps.
    """

    def advance(carry: DriverCarry, _):
        state = _wrap_state(step_fn(carry.state), box_length)
        evaluations = carry.evaluations + 1
        # NaN never compares lower, so a blown-up step cannot become the best.
        improved = state.energy < carry.best_energy
        newly_hit = (carry.first_hit < 0) & (state.energy <= target_energy)
        return (
            DriverCarry(
                state,
                jnp.where(improved, state.energy, carry.best_energy),
                jnp.where(improved, state.positions, carry.best_positions),
                jnp.where(newly_hit, evaluations, carry.first_hit),
                evaluations,
            ),
            None,
        )

    def record_block(carry: DriverCarry, _):
        carry, _ = jax.lax.scan(advance, carry, length=record_every)
        return carry, carry.state.energy

    def run_one(carry: DriverCarry):
        return jax.lax.scan(record_block, carry, length=steps // record_every)

    return jax.vmap(run_one)(carry)


def chunk_plan(steps: int, record_every: int, chunk_steps: int) -> list[int]:
    """Chunk lengths covering ``steps``: multiples of ``record_every`` of about
    ``chunk_steps``, then the remainder."""
    blocks_per_chunk = max(1, chunk_steps // record_every)
    full_blocks, remainder = divmod(steps, record_every)
    plan = []
    while full_blocks > 0:
        blocks = min(blocks_per_chunk, full_blocks)
        plan.append(blocks * record_every)
        full_blocks -= blocks
    if remainder:
        plan.append(remainder)
    return plan


def record_interval(steps: int, points: int = RECORD_POINTS) -> int:
    """Steps between energy records so that about ``points`` are kept."""
    return max(1, steps // max(points, 1))


def run_batched_optimizer(
    optimizer: descent.Optimizer,
    starts: jax.Array,
    steps: int,
    *,
    init_args: tuple = (),
    target_energy: float = -math.inf,
    box_length: float | None = None,
    chunk_steps: int = 1000,
    progress: Any = None,
) -> tuple[DriverCarry, np.ndarray, np.ndarray]:
    """Runs an ``Optimizer(init_fn, step_fn)`` for ``steps`` steps on every start.

    The same accounting as ``descent.run_optimizer`` (``steps + 1`` evaluations),
    in jitted chunks so that a progress bar advances and Ctrl-C stops between
    chunks.

    Args:
        optimizer: pure optimizer; ``init_fn(positions, *init_args)``.
        starts: ``[batch, n_atoms, 3]`` starting positions.
        steps: optimizer steps.
        init_args: extra arrays for ``init_fn`` batched on axis 0 (keys).
        target_energy: energy counted as reaching the global minimum.
        box_length: periodic cubic cell, or None for clusters.
        chunk_steps: about this many steps per jitted call.
        progress: a tqdm bar to advance by the steps done (optional).

    Returns:
        ``(carry, record_steps [n_records], energy_records [batch, n_records])``.
    """
    record_every = record_interval(steps)
    target = jnp.asarray(target_energy, dtype=starts.dtype)
    carry = driver_start(
        optimizer.init_fn, starts, tuple(init_args), target, box_length
    )
    records, record_steps, done = [], [], 0
    for chunk in chunk_plan(steps, record_every, chunk_steps):
        every = min(record_every, chunk)
        carry, energies = driver_advance(
            optimizer.step_fn, carry, target, chunk, every, box_length
        )
        records.append(np.asarray(energies))
        record_steps.extend(done + every * np.arange(1, chunk // every + 1))
        done += chunk
        if progress is not None:
            progress.update(chunk)
    energy_records = (
        np.concatenate(records, axis=1) if records else np.zeros((starts.shape[0], 0))
    )
    return carry, np.asarray(record_steps, dtype=int), energy_records


def polish_lowest(
    system: systems.System, *candidates: jax.Array
) -> tuple[np.ndarray, np.ndarray, int]:
    """The paper's polish (1000 GD steps at 1e-3) of each candidate set; per
    start, the lower polished energy.

    Args:
        system: the system.
        *candidates: ``[batch, n, 3]`` structures (e.g. last and lowest seen).

    Returns:
        ``(energies [batch], positions [batch, n, 3], evaluations)``: non-finite
        energies count as +inf when choosing; ``evaluations`` is what the
        polishes cost per start (``descent.polish`` charges 1001 per structure).
    """
    batch = candidates[0].shape[0]
    stacked = jnp.concatenate(candidates, axis=0)
    box = system.context.box_length
    polished = descent.polish(
        systems.bound_energy_fn(system),
        stacked,
        box_length=None if box is None else float(box),
    )
    energies = np.asarray(polished.energy).reshape(len(candidates), batch)
    positions = np.asarray(polished.positions).reshape(
        (len(candidates), batch) + stacked.shape[1:]
    )
    safe = np.where(np.isfinite(energies), energies, np.inf)
    choice = np.argmin(safe, axis=0)
    chosen = np.arange(batch)
    evaluations = len(candidates) * polished.energy_evaluations
    return energies[choice, chosen], positions[choice, chosen], evaluations


@functools.lru_cache(maxsize=64)
def _adam(energy_fn, learning_rate):
    return descent.adam_descent(energy_fn, learning_rate)


@functools.lru_cache(maxsize=64)
def _fire(energy_fn, learning_rate):
    return descent.fire_descent(energy_fn, learning_rate)


@functools.lru_cache(maxsize=64)
def _basin_hopping(energy_fn, step_size, descent_steps, learning_rate):
    return basin_hopping_descent(energy_fn, step_size, descent_steps, learning_rate)


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
        a `VariantResult`; evaluations per start: ``steps + 1``, plus
        ``2 * 1001`` for the two polishes.
    """
    energy_fn = systems.bound_energy_fn(system)
    factory = {"adam": _adam, "fire": _fire}[method]
    box = system.context.box_length
    target = global_minimum_threshold(system.global_minimum)
    started = time.perf_counter()
    carry, record_steps, records = run_batched_optimizer(
        factory(energy_fn, float(learning_rate)),
        starts,
        steps,
        target_energy=target,
        box_length=None if box is None else float(box),
        progress=progress,
    )
    return _finish_batched(
        system,
        {"learning_rate": float(learning_rate)},
        carry,
        (carry.state.positions, carry.best_positions),
        started,
        record_steps,
        records,
    )


def _finish_batched(
    system, setting, carry, candidates, started, record_steps, records, extra=None
) -> VariantResult:
    energies, positions, polish_evaluations = polish_lowest(system, *candidates)
    evaluations = np.asarray(carry.evaluations) + polish_evaluations
    first_hit = np.asarray(carry.first_hit)
    # A start that reaches the global minimum only in the polish hits at its end.
    polished_hit = (first_hit < 0) & reaches_global_minimum(
        energies, system.global_minimum
    )
    first_hit = np.where(polished_hit, evaluations, first_hit)
    wall_time = time.perf_counter() - started
    return VariantResult(
        setting=setting,
        energies=energies,
        energy_evaluations=evaluations,
        first_hit_evaluations=first_hit,
        wall_time_s=wall_time,
        seconds_to_first_hit=_seconds_to_hit(first_hit, evaluations, wall_time),
        positions=positions,
        record_steps=record_steps,
        energy_records=records,
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
    """The paper's basin hopping (appendix C.2; ``basin_hopping.basin_hopping``)
    with exactly ``budget`` evaluations per start, then the polish of the
    current and the lowest structure.

    Args:
        key: JAX key, split into one per start as ``basin_hopping`` does.
        step_size: standard deviation of the Gaussian perturbation (length units).
        descent_steps: Adam steps per descent; None for
            `basin_hopping_descent_steps`.
    """
    if int(budget) != budget or budget < 1:
        raise ValueError(f"budget must be a positive integer, got {budget}")
    descent_steps = descent_steps or basin_hopping_descent_steps(budget)
    energy_fn = systems.bound_energy_fn(system)
    optimizer = _basin_hopping(
        energy_fn, float(step_size), int(descent_steps), BASIN_HOPPING_LEARNING_RATE
    )
    box = system.context.box_length
    started = time.perf_counter()
    keys = jax.random.split(key, starts.shape[0])
    carry, record_steps, records = run_batched_optimizer(
        optimizer,
        starts,
        int(budget) - 1,
        init_args=(keys,),
        target_energy=global_minimum_threshold(system.global_minimum),
        box_length=None if box is None else float(box),
        progress=progress,
    )
    if progress is not None:
        progress.update(1)
    state = accept_last_descent(carry.state)
    return _finish_batched(
        system,
        {"step_size": float(step_size), "descent_steps": int(descent_steps)},
        carry,
        (state.minimum_positions, carry.best_positions),
        started,
        record_steps,
        records,
        extra={
            "descents": math.ceil(int(budget) / (int(descent_steps) + 1)),
            "accepted": np.asarray(state.accepted).tolist(),
        },
    )


# --------------------------------------------------------------------------
# The learned optimizer
# --------------------------------------------------------------------------


@functools.partial(jax.jit, static_argnames=("config", "energy_fn", "n_steps"))
def learned_cycle(
    theta,
    config,
    energy_fn,
    positions: jax.Array,
    context,
    potential_parameters,
    n_steps: int,
) -> tuple[search.SearchResult, search.SearchTrace]:
    """One cycle of the learned search (``n_steps`` learned steps, then the
    polish of the last and the lowest structure) on ``[batch, n, 3]`` starts,
    with its per-step trace ``[batch, n_steps]``."""
    return search.batched_learned_search(
        theta,
        config,
        energy_fn,
        positions,
        context,
        potential_parameters,
        n_steps=n_steps,
        record=True,
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


def weights_fit(system: systems.System, weights: weight_files.LearnedWeights) -> str:
    """Why ``weights`` cannot run on ``system`` ("" when they can)."""
    n_species = len(np.unique(np.asarray(system.context.species)))
    trained = int(weights.manifest.get("max_species", 1))
    if weights.config.features.species and n_species > trained:
        return (
            f"weights {weights.name!r} were trained on at most {trained} species; "
            f"{system.name} has {n_species}"
        )
    return ""


def resolve_weights(
    system: systems.System, weights: Any = None
) -> tuple[weight_files.LearnedWeights | None, str]:
    """The weights for ``system`` and, when none fit, the reason.

    Args:
        weights: loaded weights, a path or shipped name, or None for the shipped
            weights chosen by `optimizer.default_weights_for`.

    Returns:
        ``(weights, "")`` or ``(None, reason)``.

    Raises:
        weights.WeightFileError: an explicitly named weight file cannot be read.
    """
    from ase_learn2hop.optimizer import NoSuitableWeightsError, default_weights_for

    if weights is None:
        try:
            weights = default_weights_for(system)
        except NoSuitableWeightsError as error:
            return None, str(error)
    elif not isinstance(weights, weight_files.LearnedWeights):
        weights = weight_files.load_weights(weights)
    reason = weights_fit(system, weights)
    return (None, reason) if reason else (weights, "")


def run_learned(
    system: systems.System,
    starts: jax.Array,
    steps: int,
    weights: weight_files.LearnedWeights,
    *,
    progress: Any = None,
) -> tuple[VariantResult, dict]:
    """``steps`` learned steps from every start, in cycles of the weights'
    horizon H (the semantics of ``LearnedHopOptimizer.run`` and
    ``search.learned_search_in_cycles``): each cycle ends with the polish of its
    last and lowest structure, the next starts from the polished last structure
    with a fresh optimizer state, and each start keeps its lowest polished
    minimum.

    Returns:
        ``(variant, figure_data)``: evaluations count 1 + H + 2 x 1000 per cycle;
        ``figure_data`` holds the full-resolution energy and step size of one
        start (of the first `FULL_TRACE_STARTS`, the one that ends lowest) and
        the update magnitude held at the lowest minimum found.
    """
    batch = starts.shape[0]
    context, parameters = systems.batched(system, batch)
    horizon = weights.horizon
    target = global_minimum_threshold(system.global_minimum)
    record_every = record_interval(steps)
    started = time.perf_counter()
    positions = starts
    best_energy = np.full(batch, np.inf)
    best_positions = np.asarray(starts)
    evaluations = np.zeros(batch, dtype=np.int64)
    first_hit = np.full(batch, -1, dtype=np.int64)
    records, record_steps = [], []
    full_energy, full_step_size = [], []
    done = 0
    while done < steps:
        cycle = min(horizon, steps - done)
        result, trace = learned_cycle(
            weights.theta,
            weights.config,
            system.energy_fn,
            positions,
            context,
            parameters,
            cycle,
        )
        trace_energy = np.asarray(trace.energy)
        cycle_evaluations = np.asarray(result.energy_evaluations)
        cycle_best = np.asarray(result.best_energy)
        # Evaluations at a hit inside the cycle: those of earlier cycles, the
        # cycle's start structure, then one per learned step.
        hit_in_trace = trace_energy <= target
        first_step = np.argmax(hit_in_trace, axis=1)
        in_trace = hit_in_trace.any(axis=1)
        at_hit = np.where(
            in_trace, evaluations + 2 + first_step, evaluations + cycle_evaluations
        )
        newly = (first_hit < 0) & (in_trace | (cycle_best <= target))
        first_hit = np.where(newly, at_hit, first_hit)
        evaluations = evaluations + cycle_evaluations
        better = np.where(np.isfinite(cycle_best), cycle_best, np.inf) < best_energy
        best_energy = np.where(better, cycle_best, best_energy)
        best_positions = np.where(
            better[:, None, None], np.asarray(result.best_positions), best_positions
        )
        steps_in_cycle = done + np.arange(1, cycle + 1)
        keep = steps_in_cycle % record_every == 0
        records.append(trace_energy[:, keep])
        record_steps.extend(steps_in_cycle[keep])
        if done < FULL_TRACE_STEPS:
            full_energy.append(trace_energy[:FULL_TRACE_STARTS])
            full_step_size.append(np.asarray(trace.step_size[:FULL_TRACE_STARTS]))
        done += cycle
        if progress is not None:
            progress.update(cycle)
        positions = jnp.where(
            jnp.isfinite(result.final_energy)[:, None, None],
            result.final_positions,
            result.best_positions,
        )
    wall_time = time.perf_counter() - started
    best_energy = np.where(np.isinf(best_energy), np.nan, best_energy)
    variant = VariantResult(
        setting={"weights": weights.name, "horizon": horizon},
        energies=best_energy,
        energy_evaluations=evaluations,
        first_hit_evaluations=first_hit,
        wall_time_s=wall_time,
        seconds_to_first_hit=_seconds_to_hit(first_hit, evaluations, wall_time),
        positions=best_positions,
        record_steps=np.asarray(record_steps, dtype=int),
        energy_records=np.concatenate(records, axis=1),
        extra={"cycles": math.ceil(steps / horizon)},
    )
    ranked = np.where(np.isfinite(best_energy), best_energy, np.inf)
    shown = int(np.argmin(ranked[:FULL_TRACE_STARTS]))
    figure_data = {
        "single_start": shown,
        "single_energy": np.concatenate(full_energy, axis=1)[shown],
        "single_step_size": np.concatenate(full_step_size, axis=1)[shown],
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


# --------------------------------------------------------------------------
# ASE's FIRE and BasinHopping through our calculators
# --------------------------------------------------------------------------


class ForceBudgetExhausted(Exception):
    """Raised by `CountingCalculator` when a run has spent its force calls."""


class CountingCalculator(Calculator):
    """Wraps an ASE calculator: counts force calls, keeps the lowest energy
    and structure evaluated, notes when the global minimum is first reached,
    and raises `ForceBudgetExhausted` once ``budget`` calls are spent.

    One call is one evaluation of energy and forces at new positions (ASE
    caches repeated requests at the same positions, which cost nothing).
    """

    implemented_properties: ClassVar[list[str]] = ["energy", "free_energy", "forces"]

    def __init__(self, calculator, budget=None, target_energy=-math.inf):
        Calculator.__init__(self)
        self.calculator = calculator
        self.budget = budget
        self.target_energy = target_energy
        self.force_calls = 0
        self.lowest_energy = math.inf
        self.lowest_positions = None
        self.first_hit_calls = -1
        self.first_hit_seconds = math.nan
        self.started = time.perf_counter()

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        if self.budget is not None and self.force_calls >= self.budget:
            raise ForceBudgetExhausted
        Calculator.calculate(self, atoms, properties, system_changes)
        self.calculator.calculate(
            self.atoms, ["energy", "forces"], system_changes=all_changes
        )
        self.results = dict(self.calculator.results)
        self.force_calls += 1
        energy = self.results["energy"]
        if energy < self.lowest_energy:
            self.lowest_energy = energy
            self.lowest_positions = self.atoms.get_positions()
        if self.first_hit_calls < 0 and energy <= self.target_energy:
            self.first_hit_calls = self.force_calls
            self.first_hit_seconds = time.perf_counter() - self.started


def ase_calculator(system: systems.System):
    """Our ASE calculator for ``system`` (LennardJones, Gupta or StillingerWeber)."""
    from ase_learn2hop.calculators import Gupta, LennardJones, StillingerWeber

    if system.potential == "lj":
        return LennardJones()
    if system.potential == "sw":
        return StillingerWeber()
    return Gupta(system=system.family.partition(":")[2])


def ase_atoms(system: systems.System, positions: np.ndarray):
    """``ase.Atoms`` of ``system`` at ``positions`` ``[n, 3]``."""
    from ase import Atoms

    box = system.context.box_length
    if box is None:
        return Atoms(system.symbols, positions=positions)
    return Atoms(system.symbols, positions=positions, cell=[float(box)] * 3, pbc=True)


def run_ase_tool(
    system: systems.System,
    starts: np.ndarray,
    budget: int,
    tool: str,
    *,
    seed: int = 0,
    temperature: float | None = None,
    progress: Any = None,
) -> VariantResult:
    """ASE's ``FIRE`` (``tool="ase_fire"``) or ``BasinHopping`` with FIRE quenches
    (``"ase_basin_hopping"``) from each start, with at most ``budget`` force calls,
    then the paper's polish of the lowest structure evaluated.

    FIRE stops at ``fmax = 1e-3`` (or the budget); BasinHopping hops until the
    budget is spent (temperature `ASE_BASIN_HOPPING_TEMPERATURE`, ``dr`` =
    0.4 length scales, FIRE quenches to ``fmax = 1e-3``). BasinHopping draws from
    NumPy's global random state; it is seeded with ``seed + start index`` and
    restored afterwards.
    """
    from ase.optimize import FIRE
    from ase.optimize.basin import BasinHopping

    target = global_minimum_threshold(system.global_minimum)
    if temperature is None:
        temperature = ASE_BASIN_HOPPING_TEMPERATURE[system.potential]
    step = ASE_BASIN_HOPPING_STEP * float(system.context.length_scale)
    calls, hit_calls, hit_seconds, lowest = [], [], [], []
    started = time.perf_counter()
    random_state = np.random.get_state()
    try:
        for index, start in enumerate(np.asarray(starts)):
            atoms = ase_atoms(system, start)
            calculator = CountingCalculator(ase_calculator(system), budget, target)
            atoms.calc = calculator
            try:
                if tool == "ase_fire":
                    with FIRE(atoms, logfile=None) as optimizer:
                        optimizer.run(fmax=ASE_FMAX, steps=budget)
                else:
                    np.random.seed(seed + index)
                    hopping = BasinHopping(
                        atoms,
                        temperature=temperature,
                        optimizer=FIRE,
                        fmax=ASE_FMAX,
                        dr=step,
                        logfile=None,
                        trajectory=None,
                        optimizer_logfile=None,
                        local_minima_trajectory=None,
                    )
                    hopping.run(budget)
            except ForceBudgetExhausted:
                pass
            calls.append(calculator.force_calls)
            hit_calls.append(calculator.first_hit_calls)
            hit_seconds.append(calculator.first_hit_seconds)
            lowest.append(calculator.lowest_positions)
            if progress is not None:
                progress.update(1)
    finally:
        np.random.set_state(random_state)
    wall_time = time.perf_counter() - started
    energies, positions, polish_evaluations = polish_lowest(
        system, jnp.asarray(np.stack(lowest))
    )
    evaluations = np.asarray(calls) + polish_evaluations
    first_hit = np.asarray(hit_calls)
    polished_hit = (first_hit < 0) & reaches_global_minimum(
        energies, system.global_minimum
    )
    first_hit = np.where(polished_hit, evaluations, first_hit)
    setting = {"fmax": ASE_FMAX, "force_call_budget": int(budget)}
    if tool == "ase_basin_hopping":
        setting.update(temperature=float(temperature), dr=step)
    return VariantResult(
        setting=setting,
        energies=energies,
        energy_evaluations=evaluations,
        first_hit_evaluations=first_hit,
        wall_time_s=wall_time,
        seconds_to_first_hit=np.asarray(hit_seconds, dtype=float),
        positions=positions,
    )


# --------------------------------------------------------------------------
# One system, many methods
# --------------------------------------------------------------------------

METHOD_NOTES = {
    "learned": (
        "learned steps in cycles of the horizon H; each cycle polishes its last and "
        "lowest structure (1 + H + 2 x 1000 evaluations per cycle, as "
        "search.learned_search charges them)"
    ),
    "adam": "`steps` steps, then the polish of the last and lowest structure",
    "fire": (
        "ASE-convention FIRE, learning rate = initial dt; `steps` steps, then the "
        "polish of the last and lowest structure"
    ),
    "basin_hopping": (
        "greedy; Gaussian perturbations; Adam lr 1e-2 descents; budget = `steps` "
        "evaluations, then the polish of the current and lowest structure"
    ),
    "ase_fire": (
        "ase.optimize.FIRE to fmax 1e-3 (stops when converged) within `steps` force "
        "calls; then the polish of the lowest structure"
    ),
    "ase_basin_hopping": (
        "ase.optimize.basin.BasinHopping, FIRE quenches to fmax 1e-3, hops until "
        "`steps` force calls are spent; then the polish of the lowest structure"
    ),
}


def _progress_bar(total, description, quiet, unit="step"):
    from tqdm import tqdm

    return tqdm(total=total, desc=description, unit=unit, leave=False, disable=quiet)


def run_method(
    system: systems.System,
    method: str,
    starts: jax.Array,
    settings: BenchmarkSettings,
    *,
    weights: Any = None,
    quiet: bool = True,
) -> MethodResult:
    """One method, every setting of it, on one system from the given starts."""
    result = MethodResult(method, notes=METHOD_NOTES[method])
    steps = settings.steps
    if method in ("adam", "fire"):
        for learning_rate in settings.learning_rates:
            with _progress_bar(steps, f"{method} lr {learning_rate}", quiet) as bar:
                result.variants.append(
                    run_local_descent(
                        system, method, starts, steps, learning_rate, progress=bar
                    )
                )
    elif method == "basin_hopping":
        key = jax.random.fold_in(jax.random.key(settings.seed), 1)
        for step_size in settings.step_sizes:
            with _progress_bar(steps, f"basin hopping {step_size}", quiet) as bar:
                result.variants.append(
                    run_paper_basin_hopping(
                        system,
                        starts,
                        steps,
                        key,
                        step_size,
                        descent_steps=settings.descent_steps,
                        progress=bar,
                    )
                )
    elif method == "learned":
        loaded, reason = resolve_weights(system, weights)
        if loaded is None:
            result.status = "skipped"
            result.reason = f"skipped, no weights fit: {reason}"
            return result
        with _progress_bar(steps, "learned", quiet) as bar:
            variant, figure_data = run_learned(
                system, starts, steps, loaded, progress=bar
            )
        variant.extra["strategy"] = learned_strategy(loaded)
        variant.extra["trained_on"] = list(loaded.manifest.get("systems", []))
        result.variants.append(variant)
        result.figure_data = figure_data
    elif method in ("ase_fire", "ase_basin_hopping"):
        count = min(settings.ase_starts, starts.shape[0])
        if count < 1:
            result.status = "skipped"
            result.reason = "no starts for ASE's tools (--ase-starts 0)"
            return result
        with _progress_bar(count, METHOD_LABELS[method], quiet, "start") as bar:
            result.variants.append(
                run_ase_tool(
                    system,
                    np.asarray(starts[:count]),
                    steps,
                    method,
                    seed=settings.seed,
                    progress=bar,
                )
            )
    else:
        raise ValueError(f"unknown method {method!r}; choose from {METHODS}")
    means = [summarize(v.energies, None)["mean"] for v in result.variants]
    result.best_index = int(np.nanargmin(np.where(np.isnan(means), np.inf, means)))
    return result


def expand_system_names(
    names: Sequence[str], compositions: Sequence[int] | None = None
) -> list[tuple[str, str, int | None]]:
    """Expands sweeps and composition scans into single systems.

    - ``ljA-B`` or ``ljA-B:STEP``: Lennard-Jones clusters of A to B atoms;
    - ``AgAu38`` (two elements, then a size): the composition scan
      ``Ag(38-m)Au(m)`` for m = 0..38 (or ``compositions``; 0 and 38 are always
      included, the excess energy needs them);
    - anything else: one system (``lj13``, ``au55``, ``si64``, ``Ag35Au3``).

    Returns:
        ``[(system name, group, m)]``: group is ``""`` for single systems, the
        sweep's or scan's name otherwise; m the count of the second element in
        a scan (None elsewhere).
    """
    expanded = []
    for name in names:
        if match := re.fullmatch(r"lj(\d+)-(\d+)(?::(\d+))?", name.lower()):
            first, last, stride = match.groups()
            for size in range(int(first), int(last) + 1, int(stride or 1)):
                expanded.append((f"lj{size}", name, None))
        elif match := re.fullmatch(r"([A-Z][a-z]?)([A-Z][a-z]?)(\d+)", name):
            first, second, total = match.groups()
            total = int(total)
            counts = set(range(total + 1) if compositions is None else compositions)
            counts = sorted(m for m in counts | {0, total} if 0 <= m <= total)
            for m in counts:
                expanded.append((f"{first}{total - m}{second}{m}", name, m))
        else:
            expanded.append((name, "", None))
    return expanded


def build_system(name: str) -> systems.System:
    """`systems.system_from_name`, keeping the requested name (``Ag38Au0``), so
    that every system of a scan has its own name."""
    system = systems.system_from_name(name)
    return system if system.name == name.lower() else system._replace(name=name)


def empty_system_result(
    system: systems.System, settings: BenchmarkSettings, group: str = ""
) -> SystemResult:
    """A `SystemResult` of ``system`` with no method run yet."""
    return SystemResult(
        name=system.name,
        n_atoms=system.n_atoms,
        potential=system.family,
        global_minimum=system.global_minimum,
        n_starts=settings.starts,
        steps=settings.steps,
        group=group,
    )


def run_system(
    system: systems.System,
    settings: BenchmarkSettings,
    *,
    weights: Any = None,
    group: str = "",
    quiet: bool = True,
    result: SystemResult | None = None,
) -> SystemResult:
    """Every requested method on one system, from the same starts.

    ``result`` (optional) is filled in place, so that the methods finished before
    a KeyboardInterrupt are kept by the caller.
    """
    from tqdm import tqdm

    starts = systems.starting_structures(
        jax.random.key(settings.seed), system, settings.starts
    )
    if result is None:
        result = empty_system_result(system, settings, group)
    for method in tqdm(
        settings.methods, desc=system.name, unit="method", leave=False, disable=quiet
    ):
        result.methods[method] = run_method(
            system, method, starts, settings, weights=weights, quiet=quiet
        )
    return result


class BenchmarkRun(NamedTuple):
    """A benchmark's results and whether it ran to the end."""

    settings: BenchmarkSettings
    systems: list[SystemResult]
    complete: bool
    wall_time_s: float


def run_benchmark(settings: BenchmarkSettings, *, quiet: bool = True) -> BenchmarkRun:
    """Every system of ``settings``; stops cleanly on Ctrl-C.

    Returns:
        a `BenchmarkRun`; after a KeyboardInterrupt ``complete`` is False and
        ``systems`` holds what finished (a system cut short keeps the methods
        it finished).
    """
    from tqdm import tqdm

    unknown = sorted(set(settings.methods) - set(METHODS))
    if unknown:
        raise ValueError(f"unknown method(s) {unknown}; choose from {METHODS}")
    weights = settings.weights
    if weights is not None:
        weights = weight_files.load_weights(weights)
    entries = expand_system_names(settings.systems, settings.compositions)
    built = [(build_system(name), group) for name, group, _ in entries]
    results: list[SystemResult] = []
    started = time.perf_counter()
    complete = True
    try:
        for system, group in tqdm(
            built, desc="benchmark", unit="system", disable=quiet
        ):
            result = empty_system_result(system, settings, group)
            results.append(result)
            run_system(
                system,
                settings,
                weights=weights,
                group=group,
                quiet=quiet,
                result=result,
            )
    except KeyboardInterrupt:
        complete = False
        results = [r for r in results if r.methods]
    return BenchmarkRun(settings, results, complete, time.perf_counter() - started)


# --------------------------------------------------------------------------
# Tables: terminal, Markdown, JSON
# --------------------------------------------------------------------------


def _number(value, digits=3) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return f"{value:.{digits}f}"


def _setting_text(setting: dict) -> str:
    names = {
        "learning_rate": "lr",
        "step_size": "step",
        "descent_steps": "descent",
        "weights": "weights",
        "horizon": "H",
        "temperature": "kT",
        "dr": "dr",
    }
    parts = []
    for key, value in setting.items():
        if key in names:
            shown = f"{value:g}" if isinstance(value, float) else str(value)
            parts.append(f"{names[key]} {shown}")
    return ", ".join(parts)


def _paper_values(system_name: str, method: str, variant: VariantResult | None):
    table = PAPER_TABLE_2.get(system_name.lower())
    if table is None:
        return None, None, ""
    key = method
    if method == "learned":
        key = (variant.extra.get("strategy") if variant else "") or "esmc"
        if key not in table["mean"]:
            key = "esmc"
    if key not in table["mean"]:
        return None, None, ""
    return table["mean"][key], table["min"][key], key


TABLE_COLUMNS = (
    "Method",
    "Setting",
    "Starts",
    "Mean",
    "Min",
    "GM hits",
    "Evals/start",
    "Evals to GM",
    "s to GM",
    "Wall s",
    "Paper mean",
    "Paper min",
)


def table_rows(result: SystemResult) -> list[list[str]]:
    """One row per method (its best setting), as strings in `TABLE_COLUMNS`."""
    rows = []
    for method, method_result in result.methods.items():
        label = METHOD_LABELS[method]
        if method_result.status != "ok":
            rows.append(
                [label, method_result.reason] + ["-"] * (len(TABLE_COLUMNS) - 2)
            )
            continue
        variant = method_result.best
        summary = summarize(variant.energies, result.global_minimum)
        hits = summary["global_minimum_hits"]
        hit_text = "-" if hits is None else f"{hits}/{summary['n_starts']}"
        if summary["failed"]:
            hit_text += f" ({summary['failed']} failed)"
        reached = variant.first_hit_evaluations > 0
        evaluations_to_hit = (
            _number(float(np.median(variant.first_hit_evaluations[reached])), 0)
            if reached.any()
            else "-"
        )
        finite_seconds = variant.seconds_to_first_hit[
            np.isfinite(variant.seconds_to_first_hit)
        ]
        seconds_to_hit = (
            f"{float(np.median(finite_seconds)):.3g}" if finite_seconds.size else "-"
        )
        paper_mean, paper_min, paper_key = _paper_values(result.name, method, variant)
        paper_mean_text = _number(paper_mean, 2)
        if method == "learned" and paper_key:
            paper_mean_text += f" ({paper_key.upper()})"
        rows.append(
            [
                label,
                _setting_text(variant.setting),
                str(summary["n_starts"]),
                _number(summary["mean"]),
                _number(summary["min"]),
                hit_text,
                _number(float(np.mean(variant.energy_evaluations)), 0),
                evaluations_to_hit,
                seconds_to_hit,
                _number(variant.wall_time_s, 1),
                paper_mean_text,
                _number(paper_min, 2),
            ]
        )
    return rows


def _system_heading(result: SystemResult) -> str:
    minimum = (
        "unknown" if result.global_minimum is None else f"{result.global_minimum:.4f}"
    )
    return (
        f"{result.name} ({result.n_atoms} atoms, {result.potential}; global minimum "
        f"{minimum}; {result.n_starts} starts, {result.steps} steps)"
    )


def terminal_table(result: SystemResult) -> str:
    """The system's table as aligned plain text."""
    rows = [list(TABLE_COLUMNS)] + table_rows(result)
    skipped = [row for row in rows[1:] if row[2] == "-" and row[3] == "-"]
    shown = [row for row in rows if row not in skipped]
    widths = [max(len(row[i]) for row in shown) for i in range(len(TABLE_COLUMNS))]
    lines = [_system_heading(result)]
    for index, row in enumerate(shown):
        lines.append("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)))
        if index == 0:
            lines.append("  ".join("-" * width for width in widths))
    for row in skipped:
        lines.append(f"{row[0]}: {row[1]}")
    return "\n".join(lines)


NOTES = (
    "Energies: lowest energy reached per start after the polish (1000 gradient-"
    "descent steps at lr 1e-3); reduced units for LJ, eV otherwise. GM hits: "
    "within 1e-3 relative of the known global minimum. Evals/start: energy-and-"
    "force evaluations per start, polish included. Evals to GM / s to GM: median "
    "over the starts that reached it (seconds for batched JAX methods are the "
    "batch's wall time shared out per start; for ASE they are measured per "
    "start). Setting: the best by mean energy (all settings are in the JSON). "
    f"Paper: Table 2 ({PAPER_STARTS} starts, {PAPER_STEPS} steps)."
)


def markdown_report(run: BenchmarkRun) -> str:
    """The whole benchmark as Markdown: settings, one table per system, notes."""
    settings = run.settings
    lines = [
        "# learn2hop benchmark",
        "",
        f"- systems: {', '.join(settings.systems)}",
        f"- methods: {', '.join(settings.methods)}",
        (
            f"- starts: {settings.starts} (ASE tools: first {settings.ase_starts}); "
            f"steps: {settings.steps}; seed: {settings.seed}"
        ),
        f"- wall time: {run.wall_time_s:.1f} s"
        + ("" if run.complete else " (INTERRUPTED: only finished work is shown)"),
        f"- machine: {platform.platform()}, {jax.default_backend()} backend",
        "",
    ]
    for result in run.systems:
        lines += [f"## {_system_heading(result)}", ""]
        rows = table_rows(result)
        lines.append("| " + " | ".join(TABLE_COLUMNS) + " |")
        lines.append("|" + "---|" * len(TABLE_COLUMNS))
        for row in rows:
            lines.append(
                "| " + " | ".join(cell.replace("|", "/") for cell in row) + " |"
            )
        lines.append("")
    lines += ["## Notes", "", NOTES, ""]
    for method in settings.methods:
        lines.append(f"- {METHOD_LABELS[method]}: {METHOD_NOTES[method]}.")
    lines.append("")
    return "\n".join(lines)


def _json_number(value):
    value = float(value)
    return value if math.isfinite(value) else None


def _json_list(values) -> list:
    return [_json_number(v) for v in np.asarray(values, dtype=float).ravel()]


def variant_to_json(variant: VariantResult, global_minimum) -> dict:
    return {
        "setting": variant.setting,
        "summary": {
            key: (_json_number(value) if isinstance(value, float) else value)
            for key, value in summarize(variant.energies, global_minimum).items()
        },
        "energies": _json_list(variant.energies),
        "energy_evaluations": np.asarray(variant.energy_evaluations).tolist(),
        "first_hit_evaluations": np.asarray(variant.first_hit_evaluations).tolist(),
        "seconds_to_first_hit": _json_list(variant.seconds_to_first_hit),
        "wall_time_s": variant.wall_time_s,
        **({"extra": variant.extra} if variant.extra else {}),
    }


def benchmark_json(run: BenchmarkRun) -> dict:
    """Everything measured, JSON-serializable (NaN written as null)."""
    from ase_learn2hop import __version__

    systems_json = {}
    for result in run.systems:
        methods = {}
        for method, method_result in result.methods.items():
            entry = {
                "label": METHOD_LABELS[method],
                "status": method_result.status,
                "notes": method_result.notes,
            }
            if method_result.status != "ok":
                entry["reason"] = method_result.reason
            else:
                entry["best"] = variant_to_json(
                    method_result.best, result.global_minimum
                )
                entry["variants"] = [
                    variant_to_json(v, result.global_minimum)
                    for v in method_result.variants
                ]
            methods[method] = entry
        systems_json[result.name] = {
            "n_atoms": result.n_atoms,
            "potential": result.potential,
            "group": result.group,
            "global_minimum": result.global_minimum,
            "n_starts": result.n_starts,
            "steps": result.steps,
            "paper_table_2": PAPER_TABLE_2.get(result.name.lower()),
            "methods": methods,
        }
    return {
        "format": "ase_learn2hop-benchmark",
        "format_version": 1,
        "complete": run.complete,
        "wall_time_s": run.wall_time_s,
        "settings": dataclasses.asdict(run.settings),
        "package_version": __version__,
        "jax_version": jax.__version__,
        "backend": jax.default_backend(),
        "machine": platform.platform(),
        "command": " ".join(sys.argv),
        "global_minimum_tolerance": GLOBAL_MINIMUM_TOLERANCE,
        "notes": NOTES,
        "systems": systems_json,
    }


# --------------------------------------------------------------------------
# Sweeps, composition scans and the figures
# --------------------------------------------------------------------------


def lower_convex_hull(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Indices of the points on the lower convex hull, by increasing ``x``
    (Andrew's monotone chain). Non-finite points are left out."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    order = [i for i in np.lexsort((y, x)) if np.isfinite(x[i]) and np.isfinite(y[i])]
    hull: list[int] = []
    for i in order:
        if hull and x[hull[-1]] == x[i]:
            continue
        while len(hull) >= 2:
            a, b = hull[-2], hull[-1]
            cross = (x[b] - x[a]) * (y[i] - y[a]) - (y[b] - y[a]) * (x[i] - x[a])
            if cross > 0:
                break
            hull.pop()
        hull.append(i)
    return np.asarray(hull, dtype=int)


def excess_energies(
    counts: np.ndarray, energies: np.ndarray, n_atoms: int
) -> np.ndarray:
    """Excess energy of A(N-m)B(m) clusters (paper Figure 7):
    ``E(m) - (N - m)/N E(0) - m/N E(N)``, with the pure clusters E(0), E(N).

    Args:
        counts: ``[k]`` values of m, including 0 and N.
        energies: ``[k]`` energies (eV).
        n_atoms: N.
    """
    counts = np.asarray(counts, dtype=float)
    energies = np.asarray(energies, dtype=float)
    pure_first = energies[counts == 0][0]
    pure_second = energies[counts == n_atoms][0]
    return (
        energies
        - (n_atoms - counts) / n_atoms * pure_first
        - counts / n_atoms * pure_second
    )


def write_figures(run: BenchmarkRun, out: Path) -> list[Path]:
    """Draws every figure the results allow; returns the files written.

    - Figure 5 (distribution of minima) and Figure 6 (energy against step,
      update magnitude at a minimum) for each single system;
    - Figure 4 (mean and minimum energy against size) for a Lennard-Jones sweep
      (or any two or more LJ sizes);
    - Figure 7 (excess energy against composition and its convex hull) for each
      composition scan.
    """
    from ase_learn2hop import plots

    written = []
    singles = [r for r in run.systems if not r.group]
    for result in singles:
        energies = {
            METHOD_LABELS[m]: r.best.energies
            for m, r in result.methods.items()
            if r.status == "ok"
        }
        if energies:
            path = out / f"figure5_minima_{result.name}.png"
            plots.minima_distribution_figure(
                energies, result.global_minimum, path, title=_system_heading(result)
            )
            written.append(path)
        traces = {
            METHOD_LABELS[m]: (r.best.record_steps, r.best.energy_records)
            for m, r in result.methods.items()
            if r.status == "ok" and r.best.energy_records is not None
        }
        if traces:
            learned = result.methods.get("learned")
            path = out / f"figure6_trajectories_{result.name}.png"
            plots.trajectories_figure(
                traces,
                result.global_minimum,
                path,
                learned=learned.figure_data if learned else None,
                learned_note=(
                    learned.reason if learned and learned.status != "ok" else ""
                ),
                title=_system_heading(result),
            )
            written.append(path)
    lennard_jones = [r for r in run.systems if r.potential == "lj"]
    if len({r.n_atoms for r in lennard_jones}) >= 2:
        path = out / "figure4_lj_sizes.png"
        plots.size_sweep_figure(*size_sweep_data(lennard_jones), path)
        written.append(path)
    for group in sorted(
        {r.group for r in run.systems if r.group and r.group[0].isupper()}
    ):
        members = [r for r in run.systems if r.group == group]
        data = composition_data(group, members)
        if data is not None:
            path = out / f"figure7_{group}_hull.png"
            plots.composition_hull_figure(*data, path)
            written.append(path)
    return written


def size_sweep_data(results: list[SystemResult]):
    results = sorted(results, key=lambda r: r.n_atoms)
    sizes = np.array([r.n_atoms for r in results])
    minima = systems.lennard_jones_global_minima()
    global_minima = np.array([minima.get(int(n), np.nan) for n in sizes])
    means, lowest = {}, {}
    for method in METHODS:
        label = METHOD_LABELS[method]
        for i, result in enumerate(results):
            method_result = result.methods.get(method)
            if method_result is None or method_result.status != "ok":
                continue
            summary = summarize(method_result.best.energies, None)
            means.setdefault(label, np.full(len(sizes), np.nan))[i] = summary["mean"]
            lowest.setdefault(label, np.full(len(sizes), np.nan))[i] = summary["min"]
    trained = set()
    for result in results:
        learned = result.methods.get("learned")
        if learned is not None and learned.status == "ok":
            for name in learned.best.extra.get("trained_on", []):
                if match := re.fullmatch(r"lj(\d+)", name):
                    trained.add(int(match.group(1)))
    return sizes, global_minima, means, lowest, sorted(trained)


def composition_data(group: str, results: list[SystemResult]):
    match = re.fullmatch(r"([A-Z][a-z]?)([A-Z][a-z]?)(\d+)", group)
    first, second, total = match.groups()
    total = int(total)
    counts = np.array([composition_count(result.name) for result in results])
    if not ({0, total} <= set(counts.tolist())):
        return None
    lowest = {}
    for method in METHODS:
        label = METHOD_LABELS[method]
        values = np.full(len(results), np.nan)
        for i, result in enumerate(results):
            method_result = result.methods.get(method)
            if method_result is not None and method_result.status == "ok":
                values[i] = summarize(method_result.best.energies, None)["min"]
        if np.isfinite(values).any():
            lowest[label] = values
    if not lowest:
        return None
    return (
        counts,
        excess_energies_by_method(counts, lowest, total),
        (
            first,
            second,
            total,
        ),
    )


def composition_count(name: str) -> int:
    """m of a composition-scan member ``A(N-m)B(m)`` (``Pd26Pt12`` -> 12)."""
    return int(re.fullmatch(r"\D+\d+\D+(\d+)", name).group(1))


def excess_energies_by_method(
    counts: np.ndarray, lowest: dict[str, np.ndarray], n_atoms: int
) -> dict[str, np.ndarray]:
    """`excess_energies` of each method's lowest minima ``{label: [k]}``, with one
    reference for every method: the lowest pure-cluster energy any method found."""
    reference = np.nanmin(np.vstack(list(lowest.values())), axis=0)
    pure = np.isin(counts, [0, n_atoms])
    return {
        label: excess_energies(counts, np.where(pure, reference, values), n_atoms)
        for label, values in lowest.items()
    }


def write_outputs(run: BenchmarkRun, out: Path, *, figures: bool = True) -> dict:
    """Writes ``benchmark.json``, ``benchmark.md`` and the figures into ``out``.

    Returns:
        ``{"json": path, "markdown": path, "figures": [paths]}``.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    json_path = out / "benchmark.json"
    json_path.write_text(json.dumps(benchmark_json(run), indent=1) + "\n")
    markdown_path = out / "benchmark.md"
    markdown_path.write_text(markdown_report(run))
    written = write_figures(run, out) if figures else []
    return {"json": json_path, "markdown": markdown_path, "figures": written}


# --------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------

#: ``--quick``: a first look in a minute or two.
QUICK = {"starts": 16, "steps": 2000, "ase_starts": 3}
#: ``learn2hop compare``: about two minutes on a 2-core CPU (measured: LJ13).
COMPARE_DEFAULTS = {
    "system": "lj13",
    "starts": 50,
    "steps": 5000,
    "ase_starts": 10,
    "methods": ("learned", "fire", "basin_hopping", "ase_basin_hopping"),
}


def report(run: BenchmarkRun, out: Path, figures: bool, quiet: bool) -> int:
    for result in run.systems:
        print()
        print(terminal_table(result))
    print()
    print(NOTES)
    written = write_outputs(run, out, figures=figures)
    print()
    print(f"wrote {written['markdown']} and {written['json']}")
    for path in written["figures"]:
        print(f"wrote {path}")
    if not run.complete:
        print(
            "interrupted (Ctrl-C): the tables, JSON and figures above hold only what "
            "finished",
            file=sys.stderr,
        )
        return 130
    return 0


def settings_from_args(args, systems_requested, methods) -> BenchmarkSettings:
    quick = getattr(args, "quick", False)

    def pick(name, default):
        value = getattr(args, name)
        if value is not None:
            return value
        return QUICK[name] if quick and name in QUICK else default

    return BenchmarkSettings(
        systems=tuple(systems_requested),
        methods=tuple(methods),
        starts=pick("starts", args.default_starts),
        steps=pick("steps", args.default_steps),
        seed=args.seed,
        ase_starts=pick("ase_starts", args.default_ase_starts),
        weights=args.weights,
        learning_rates=tuple(args.learning_rates),
        step_sizes=tuple(args.step_sizes),
        descent_steps=args.descent_steps,
        compositions=(None if args.compositions is None else tuple(args.compositions)),
    )


def _run_command(args, systems_requested, methods) -> int:
    settings = settings_from_args(args, systems_requested, methods)
    for name, value in (("starts", settings.starts), ("steps", settings.steps)):
        if value < 1:
            raise SystemExit(f"--{name} must be at least 1, got {value}")
    try:
        for name, _, _ in expand_system_names(settings.systems, settings.compositions):
            build_system(name)
    except ValueError as error:
        raise SystemExit(str(error))
    try:
        run = run_benchmark(settings, quiet=args.quiet)
    except weight_files.WeightFileError as error:
        raise SystemExit(str(error))
    return report(run, Path(args.out), not args.no_figures, args.quiet)


def benchmark_command(args: argparse.Namespace) -> int:
    return _run_command(args, args.systems, args.methods)


def compare_command(args: argparse.Namespace) -> int:
    return _run_command(args, [args.system], args.methods)


def _add_common_arguments(parser, starts, steps, ase_starts, methods, out):
    parser.add_argument(
        "--starts", type=int, default=None, help=f"random starts (default {starts})"
    )
    parser.add_argument(
        "--steps",
        type=int,
        default=None,
        help=f"steps (evaluation budget) per start (default {steps})",
    )
    parser.add_argument(
        "--methods",
        nargs="+",
        default=list(methods),
        choices=METHODS,
        metavar="METHOD",
        help=f"methods to run, of {', '.join(METHODS)} (default: {' '.join(methods)})",
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of the starting structures"
    )
    parser.add_argument(
        "--ase-starts",
        type=int,
        default=None,
        help=f"starts for ASE's FIRE and BasinHopping (default {ase_starts})",
    )
    parser.add_argument(
        "--weights",
        help="weight manifest or shipped name (default: shipped weights that fit "
        "each system; the learned optimizer is skipped where none fit)",
    )
    parser.add_argument(
        "--learning-rates",
        type=float,
        nargs="+",
        default=list(descent.BASELINE_LEARNING_RATES),
        help="Adam and FIRE learning rates (paper: 0.01 0.005 0.001)",
    )
    parser.add_argument(
        "--step-sizes",
        type=float,
        nargs="+",
        default=list(BASIN_HOPPING_STEP_SIZES),
        help="basin-hopping perturbation sizes (paper: 0.2 0.4 0.6 0.8)",
    )
    parser.add_argument(
        "--descent-steps",
        type=int,
        default=None,
        help="Adam steps per basin-hopping descent (default min(5000, steps/10))",
    )
    parser.add_argument(
        "--compositions",
        type=int,
        nargs="+",
        default=None,
        help="values of m for composition scans such as AgAu38 (default: all)",
    )
    parser.add_argument("--out", default=out, help=f"output folder (default {out})")
    parser.add_argument("--no-figures", action="store_true", help="tables only")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.set_defaults(
        default_starts=starts, default_steps=steps, default_ase_starts=ase_starts
    )


def register_commands(commands) -> None:
    """Add ``benchmark`` and ``compare`` to the ``learn2hop`` command line."""
    benchmark = commands.add_parser(
        "benchmark",
        help="the paper's tables and figures: learned optimizer vs Adam, FIRE, "
        "basin hopping and ASE's tools",
        description=__doc__.split("\n\n")[0]
        + " Systems: ljN (any N; ljA-B for a sweep, e.g. lj10-100:5), auN, si64, "
        "a bimetallic formula (Ag35Au3) or a composition scan (AgAu38, PdPt38).",
    )
    benchmark.add_argument(
        "--systems",
        nargs="+",
        default=list(DEFAULT_SYSTEMS),
        help="systems (default: the paper's Table 2: lj13 lj75 au55 si64)",
    )
    _add_common_arguments(
        benchmark,
        PAPER_STARTS,
        PAPER_STEPS,
        10,
        METHODS,
        "benchmark_results",
    )
    benchmark.add_argument(
        "--quick",
        action="store_true",
        help=f"a first look: {QUICK['starts']} starts, {QUICK['steps']} steps, "
        f"{QUICK['ase_starts']} ASE starts (explicit flags win)",
    )
    benchmark.set_defaults(handler=benchmark_command)

    compare = commands.add_parser(
        "compare",
        help="the learned optimizer beside FIRE and basin hopping on LJ13 "
        "(about two minutes)",
    )
    compare.add_argument(
        "--system", default=COMPARE_DEFAULTS["system"], help="system (default lj13)"
    )
    _add_common_arguments(
        compare,
        COMPARE_DEFAULTS["starts"],
        COMPARE_DEFAULTS["steps"],
        COMPARE_DEFAULTS["ase_starts"],
        COMPARE_DEFAULTS["methods"],
        "compare_results",
    )
    compare.set_defaults(handler=compare_command)

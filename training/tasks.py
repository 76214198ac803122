"""Meta-training tasks and the meta-loss (paper sections 3.2-3.3, SPEC section 5).

A task is one `System` (``lj13``, ``au55``, ``Ag35Au3``, ``si64``, ...). A problem
instance is one harmonic-initialization start of every task of the run (a tuple,
one ``[n_atoms_k, 3]`` array per task: tasks may differ in size). The meta-loss of
theta on an instance is the mean over tasks of

    E_final / |E_adam|,

E_final the energy after the learned steps and the final polish, E_adam the best
minimum Adam finds from 150 starts of that task (computed once and cached on disk):
-1 means "as good as Adam's best". A population of P candidates is evaluated on P
instances, so a meta-batch holds P starts of each task (the paper's floor(80 / m)
copies of each of m tasks, with every candidate seeing every task).

The hopping protocol (`make_hopping_meta_loss`, the product's default search)
is judged the way users judge it: learned basin hopping
(`learned_hopping.learned_hopping`) runs ``budget`` force calls from the start,
and the meta-loss is the mean over those calls of the best energy found so far,
divided by |E_adam| (E_adam from Adam runs of ``budget`` steps): finding the
lowest minimum *sooner* lowers it, as time-to-minimum rewards. The
``"time_to_minimum"`` objective judges it exactly as the benchmark does: the
share of the budget spent before the best energy is within 1e-3 relative of the
task's global minimum (the censored time to the minimum over the budget, 1 when
it is never reached). One run of a hit time is a noisy judge (hit times are
close to exponential), so an instance can hold several runs per task
(``runs_per_instance``) and the loss is their mean.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ase_learn2hop import descent, driver, systems
from ase_learn2hop.benchmark.protocol import global_minimum_threshold
from ase_learn2hop.learned_hopping import HoppingConfig, hopping_best_so_far
from ase_learn2hop.learned_optimizer import LearnedOptimizerConfig
from ase_learn2hop.search import learned_search


class MetaTask(NamedTuple):
    """A system and the magnitude of Adam's best minimum on it (the loss scale)."""

    system: systems.System
    adam_best_energy: float


def default_cache_directory() -> Path:
    """Where Adam reference energies are cached (``$LEARN2HOP_CACHE`` or
    ``~/.cache/ase_learn2hop``)."""
    return Path(
        os.environ.get("LEARN2HOP_CACHE", Path.home() / ".cache" / "ase_learn2hop")
    )


def adam_best_energy(
    system: systems.System,
    *,
    steps: int,
    n_starts: int = 150,
    learning_rates: tuple[float, ...] = descent.BASELINE_LEARNING_RATES,
    seed: int = 12345,
    cache_directory: Path | None = None,
) -> float:
    """Lowest energy Adam reaches from ``n_starts`` starts, over its learning-rate
    grid, after ``steps`` steps and the paper's polish; cached on disk.

    Returns:
        energy (eV, or reduced units for Lennard-Jones).
    """
    cache_directory = (
        default_cache_directory() if cache_directory is None else cache_directory
    )
    description = {
        "system": system.name,
        "steps": steps,
        "starts": n_starts,
        "learning_rates": list(learning_rates),
        "seed": seed,
        "version": 1,
    }
    digest = hashlib.sha256(
        json.dumps(description, sort_keys=True).encode()
    ).hexdigest()[:16]
    cache_file = Path(cache_directory) / f"adam_reference_{system.name}_{digest}.json"
    if cache_file.exists():
        return float(json.loads(cache_file.read_text())["adam_best_energy"])
    starts = systems.starting_structures(jax.random.key(seed), system, n_starts)
    best = np.inf
    for learning_rate in learning_rates:
        _, energies = adam_then_polish(system, starts, steps, learning_rate)
        energies = np.asarray(energies)
        best = min(
            best, float(np.min(np.where(np.isfinite(energies), energies, np.inf)))
        )
    cache_file.parent.mkdir(parents=True, exist_ok=True)
    cache_file.write_text(
        json.dumps({**description, "adam_best_energy": best}, indent=2)
    )
    return best


def make_tasks(
    system_names: list[str], *, adam_steps: int, **adam_options
) -> list[MetaTask]:
    """`MetaTask` for each named system (Adam references computed or read from cache)."""
    tasks = []
    for name in system_names:
        system = systems.system_from_name(name)
        tasks.append(
            MetaTask(system, adam_best_energy(system, steps=adam_steps, **adam_options))
        )
    return tasks


def make_meta_loss(
    tasks: list[MetaTask],
    config: LearnedOptimizerConfig,
    horizon: int,
    polish_steps: int = 1000,
):
    """``loss_fn(theta, instance) -> scalar`` for the training loop.

    ``instance`` is a tuple with one ``[n_atoms, 3]`` start per task.
    """
    scales = [abs(task.adam_best_energy) for task in tasks]

    def loss_fn(theta, instance):
        losses = []
        for task, scale, positions in zip(tasks, scales, instance):
            system = task.system
            result, _ = learned_search(
                theta,
                config,
                system.energy_fn,
                positions,
                system.context,
                system.potential_parameters,
                n_steps=horizon,
                polish_steps=polish_steps,
                # The meta-loss is the polished last structure (paper 3.3).
                polish_best=False,
            )
            losses.append(result.final_energy / scale)
        return jnp.mean(jnp.stack(losses))

    return loss_fn


#: Meta-losses of the hopping protocol (`make_hopping_meta_loss`).
HOPPING_OBJECTIVES = ("energy", "time_to_minimum")


def make_hopping_meta_loss(
    tasks: list[MetaTask],
    config: LearnedOptimizerConfig,
    hopping: list[HoppingConfig],
    budget: int,
    objective: str = "energy",
):
    """``loss_fn(theta, instance) -> scalar``: learned basin hopping for
    ``budget`` force calls from each task's start, averaged over tasks of

    - ``"energy"``: the mean over the calls of the best energy so far over
      |E_adam|;
    - ``"time_to_minimum"``: the share of the calls made before the best energy
      is within `global_minimum_threshold` of the task's global minimum, from 0
      (a start at the minimum) to 1 (never reached).

    ``hopping`` has one `HoppingConfig` per task (hops can scale with the
    system's size). An instance holds one ``[n_atoms, 3]`` start per task, or
    ``[runs, n_atoms, 3]`` starts (`make_instance_sampler`'s
    ``runs_per_instance``), each searched with its own Metropolis key, and the
    loss is the mean over the runs.

    The Metropolis draws use fixed keys: a candidate's loss is a function of
    theta and the instance alone (instances differ, so acceptance does too).
    """
    if objective not in HOPPING_OBJECTIVES:
        raise ValueError(
            f"objective must be one of {HOPPING_OBJECTIVES}, got {objective!r}"
        )
    if len(hopping) != len(tasks):
        raise ValueError(f"{len(hopping)} hopping configs for {len(tasks)} tasks")
    scales = [abs(task.adam_best_energy) for task in tasks]
    thresholds = [
        global_minimum_threshold(task.system.global_minimum) for task in tasks
    ]
    if objective == "time_to_minimum":
        unknown = [t.system.name for t, x in zip(tasks, thresholds) if x == -np.inf]
        if unknown:
            raise ValueError(f"no known global minimum to reach for {unknown}")

    def run_loss(theta, task, scale, threshold, task_hopping, positions, key):
        system = task.system
        best = hopping_best_so_far(
            theta,
            config,
            system.energy_fn,
            task_hopping,
            positions,
            system.context,
            system.potential_parameters,
            key,
            budget=budget,
        )
        if objective == "time_to_minimum":
            return jnp.mean(best > threshold)
        # +inf (nothing finite yet) would swamp the mean: count it as 0.
        return jnp.mean(jnp.where(jnp.isfinite(best), best, 0.0)) / scale

    def loss_fn(theta, instance):
        losses = []
        for task, scale, threshold, task_hopping, positions in zip(
            tasks, scales, thresholds, hopping, instance
        ):
            task_loss = functools.partial(
                run_loss, theta, task, scale, threshold, task_hopping
            )
            if positions.ndim == 2:
                losses.append(task_loss(positions, jax.random.key(0)))
                continue
            keys = jax.random.split(jax.random.key(0), positions.shape[0])
            losses.append(jnp.mean(jax.vmap(task_loss)(positions, keys)))
        return jnp.mean(jnp.stack(losses))

    return loss_fn


#: Adam steps (at lr 1e-2) that turn a harmonic start into a local minimum for
#: `make_instance_sampler`'s ``minimum_start_fraction``.
MINIMUM_START_ADAM_STEPS = 1000


def adam_then_polish(
    system: systems.System, starts: jax.Array, steps: int, learning_rate: float
) -> tuple[jax.Array, jax.Array]:
    """Adam for ``steps`` steps from every start, then the paper's polish of the
    last structure: ``(positions [n, n_atoms, 3], energies [n])``."""
    parameters = systems.broadcast_to_batch(
        system.potential_parameters, starts.shape[0]
    )
    run = driver.run_batched(
        descent.adam_descent(system.energy_fn, float(learning_rate), system.geometry),
        starts,
        steps,
        parameters,
    )
    return driver.polish_batch(
        system.energy_fn,
        run.carry.state.positions,
        parameters,
        system.geometry,
        descent.POLISH_STEPS,
        descent.POLISH_LEARNING_RATE,
    )


def local_minima_starts(system: systems.System, starts: jax.Array) -> jax.Array:
    """``[n, n_atoms, 3]`` local minima reached from ``starts`` by Adam (lr 1e-2,
    `MINIMUM_START_ADAM_STEPS` steps) and the paper's polish."""
    return adam_then_polish(system, starts, MINIMUM_START_ADAM_STEPS, 1e-2)[0]


def make_instance_sampler(
    tasks: list[MetaTask],
    minimum_start_fraction: float = 0.0,
    runs_per_instance: int = 1,
):
    """``sample_instances(key, n) -> tuple of [n, n_atoms_k, 3]`` fresh starts
    (``[n, runs_per_instance, n_atoms_k, 3]`` with several runs per instance).

    Args:
        tasks: the run's tasks.
        minimum_start_fraction: share of the starts (of each task) that are local
            minima (`local_minima_starts`) instead of harmonic starts. Decision for
            short horizons: `LearnedHopOptimizer` runs long searches as cycles of H
            steps, each starting from a polished minimum; with this option the
            meta-loss rewards what those cycles need, leaving a minimum for a
            lower one (hopping). 0 is the paper's protocol.
        runs_per_instance: starts per task in one instance (1: a single
            ``[n_atoms, 3]`` start); every instance gets the same share of
            local minima.
    """
    if not 0.0 <= minimum_start_fraction <= 1.0:
        raise ValueError(
            f"minimum_start_fraction must be in [0, 1], got {minimum_start_fraction}"
        )
    if runs_per_instance < 1:
        raise ValueError(f"runs_per_instance must be >= 1, got {runs_per_instance}")

    def sample_instances(key: jax.Array, n: int) -> tuple[jax.Array, ...]:
        keys = jax.random.split(key, len(tasks))
        instances = []
        for k, task in zip(keys, tasks):
            count = n * runs_per_instance
            starts = systems.starting_structures(k, task.system, count)
            n_minima = round(minimum_start_fraction * count)
            if n_minima:
                minima = local_minima_starts(task.system, starts[:n_minima])
                starts = jnp.concatenate([minima, starts[n_minima:]])
            if runs_per_instance > 1:
                # Run-major, so the minima spread over the instances evenly.
                starts = starts.reshape(runs_per_instance, n, *starts.shape[1:])
                starts = jnp.swapaxes(starts, 0, 1)
            instances.append(starts)
        return tuple(instances)

    return sample_instances

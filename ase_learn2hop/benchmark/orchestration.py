"""Running the benchmark: every method on every system, from the same starts.

- `run_method`: one method, every setting of it (learning rates, step sizes), on
  one system;
- `run_system`: every requested method on one system;
- `run_benchmark`: every system of the settings; stops cleanly on Ctrl-C and
  keeps what finished;
- `empty_system_result` and the progress bars.
"""

from __future__ import annotations

import time
from typing import Any

import jax
import numpy as np

from ase_learn2hop import systems
from ase_learn2hop import weights as weight_files
from ase_learn2hop.benchmark.ase_tools import run_ase_tool
from ase_learn2hop.benchmark.protocol import (
    METHOD_IDS,
    METHODS,
    BenchmarkRun,
    BenchmarkSettings,
    MethodResult,
    SystemResult,
    build_system,
    expand_system_names,
    summarize,
)
from ase_learn2hop.benchmark.runners import (
    learned_strategy,
    resolve_weights,
    run_learned,
    run_local_descent,
    run_paper_basin_hopping,
)


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
    result = MethodResult(method, notes=METHODS[method].note)
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
        with _progress_bar(count, METHODS[method].label, quiet, "start") as bar:
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
        raise ValueError(f"unknown method {method!r}; choose from {METHOD_IDS}")
    means = [summarize(v.energies, None)["mean"] for v in result.variants]
    result.best_index = int(np.nanargmin(np.where(np.isnan(means), np.inf, means)))
    return result


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


def run_benchmark(settings: BenchmarkSettings, *, quiet: bool = True) -> BenchmarkRun:
    """Every system of ``settings``; stops cleanly on Ctrl-C.

    Returns:
        a `BenchmarkRun`; after a KeyboardInterrupt ``complete`` is False and
        ``systems`` holds what finished (a system cut short keeps the methods
        it finished).
    """
    from tqdm import tqdm

    unknown = sorted(set(settings.methods) - set(METHOD_IDS))
    if unknown:
        raise ValueError(f"unknown method(s) {unknown}; choose from {METHOD_IDS}")
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

"""Time to the global minimum: the learned optimizer beside the basin hopping a
physicist would really run.

For each system, ``runs`` random harmonic starts (`systems.starting_structures`)
are relaxed by 1000 steps of FIRE *before* any method begins (not charged to
any method); every method then makes one run from each of the SAME relaxed
starts with the same wall-time and force-call budget per run. Methods
(`time_to_minimum_methods.METHODS`): ``learned`` (our product path, learned
basin hopping), ``learned_paper`` (the paper's cycles), ``scipy_basin_hopping``
(L-BFGS-B quenches on NumPy energies, as GMIN / pele), ``ase_basin_hopping``
(ASE's BasinHopping with FIRE quenches).

A run succeeds when its best energy reaches the global minimum: ``E <= GM +
1e-3 |GM|`` (`protocol.global_minimum_threshold`), with GM the known global
minimum or, when unknown, the lowest energy any method found here. Per method
we report the success fraction and the median and quartiles of force calls and
seconds to success; a censored run (no success within the budget) counts as
+inf in the order statistics, so a median is "> budget" when fewer than half
succeed. JIT compile time is measured apart, by a warm-up on a throwaway start
(first run minus a repeat of it), and never included in per-run seconds.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import sys
import time
from typing import Any

import jax
import numpy as np

from ase_learn2hop import systems
from ase_learn2hop.benchmark.censored_statistics import (
    median_ratio,
    quartiles,
    time_to_threshold,
)
from ase_learn2hop.benchmark.protocol import (
    GLOBAL_MINIMUM_TOLERANCE,
    global_minimum_threshold,
)
from ase_learn2hop.benchmark.time_to_minimum_methods import (
    HOPPING_CHUNK,
    LEARNED_CHUNK,
    METHODS,
    RunTrace,
    learned_weights,
    numpy_energy,
    relaxed_starts,
    scipy_quench_settings,
)
from ase_learn2hop.descent import POLISH_STEPS

#: Wall-time budget per run, seconds (the issue's numbers; others 300 s).
DEFAULT_SECONDS = {"lj13": 60.0, "lj26": 90.0, "lj38": 300.0, "au55": 300.0}
FALLBACK_SECONDS = 300.0
#: Force-call budget per run (large: the wall time binds first by default).
DEFAULT_FORCE_CALLS = 1_000_000
DEFAULT_METHODS = tuple(METHODS)
#: Force calls of a warm-up run of the baselines (enough to compile).
WARMUP_FORCE_CALLS = 300


@dataclasses.dataclass
class MethodResult:
    """One method on one system: a `RunTrace` per start and its compile time."""

    method: str
    label: str
    note: str
    runs: list[RunTrace]
    compile_seconds: float


@dataclasses.dataclass
class SystemResult:
    """All methods on one system, from the same relaxed starts."""

    system: str
    global_minimum: float | None
    reference: str  # "known" or "lowest found"
    threshold: float
    seconds: float
    force_calls: int
    methods: list[MethodResult]
    notes: list[str] = dataclasses.field(default_factory=list)
    #: Success: within this fraction of |GM| above the global minimum.
    tolerance: float = GLOBAL_MINIMUM_TOLERANCE


def method_times(result: SystemResult, method: MethodResult) -> np.ndarray:
    """``[runs, 2]`` force calls and seconds to success (+inf: censored)."""
    return np.array(
        [
            time_to_threshold(run, result.threshold, result.seconds, result.force_calls)
            for run in method.runs
        ]
    ).reshape(-1, 2)


def summary(result: SystemResult, method: MethodResult) -> dict[str, Any]:
    """Success fraction, quartiles of force calls and seconds, compile time."""
    times = method_times(result, method)
    successes = int(np.isfinite(times[:, 0]).sum())
    return {
        "method": method.method,
        "label": method.label,
        "runs": len(method.runs),
        "successes": successes,
        "success_fraction": successes / max(len(method.runs), 1),
        "force_calls": quartiles(times[:, 0]),
        "seconds": quartiles(times[:, 1]),
        "compile_seconds": method.compile_seconds,
        "best_energy": min(
            (run.improvements[-1][2] for run in method.runs if run.improvements),
            default=math.inf,
        ),
    }


def success_curves(results: list[SystemResult]) -> dict[str, dict[str, dict]]:
    """``{system: {method: {"force_calls": (x, fraction), "seconds": (x,
    fraction)}}}``: the fraction of runs that reached the global minimum within
    x, at each success (x sorted; a step function)."""
    curves: dict[str, dict[str, dict]] = {}
    for result in results:
        per_method = curves.setdefault(result.system, {})
        for method in result.methods:
            times = method_times(result, method)
            runs = max(len(method.runs), 1)
            entry = {}
            for column, name in enumerate(("force_calls", "seconds")):
                x = np.sort(times[np.isfinite(times[:, column]), column])
                entry[name] = (x, np.arange(1, x.size + 1) / runs)
            per_method[method.method] = entry
    return curves


# -- running ----------------------------------------------------------------------


def budget_seconds(name: str, seconds: float | dict | None) -> float:
    """The wall-time budget for a system: given, per system, or the default."""
    if isinstance(seconds, dict):
        seconds = seconds.get(name)
    if seconds is None:
        return DEFAULT_SECONDS.get(name.lower(), FALLBACK_SECONDS)
    return float(seconds)


def _warmup_calls(system: systems.System, method: str) -> int:
    if method == "learned":  # one jitted chunk, compiled once, and a repeat
        return 2 * HOPPING_CHUNK + 1
    if method == "learned_paper":
        # One whole cycle, its polish and one more chunk: every jitted piece.
        horizon = learned_weights(system, "paper").horizon
        return horizon + 2 * (POLISH_STEPS + 1) + 2 * LEARNED_CHUNK
    return WARMUP_FORCE_CALLS


def compile_seconds(system: systems.System, method: str, start: np.ndarray) -> float:
    """JIT compile time of ``method``: a warm-up run on a throwaway start minus
    the same run repeated (then compiled)."""
    run = METHODS[method].run
    calls = _warmup_calls(system, method)
    elapsed = []
    for _ in range(2):
        started = time.perf_counter()
        run(system, start, 3600.0, calls, -math.inf, 0)
        elapsed.append(time.perf_counter() - started)
    return max(elapsed[0] - elapsed[1], 0.0)


def blas_note() -> str:
    """How the NumPy baseline's BLAS threads are set."""
    try:
        import threadpoolctl  # noqa: F401

        return "BLAS limited to 1 thread with threadpoolctl"
    except ImportError:
        return (
            "threadpoolctl not installed; OPENBLAS_NUM_THREADS="
            f"{os.environ.get('OPENBLAS_NUM_THREADS', 'unset')}, OMP_NUM_THREADS="
            f"{os.environ.get('OMP_NUM_THREADS', 'unset')} (set before NumPy's import "
            "by benchmarks/time_to_minimum.py)"
        )


def _single_blas_thread():
    try:
        from threadpoolctl import threadpool_limits

        return threadpool_limits(1)
    except ImportError:
        import contextlib

        return contextlib.nullcontext()


def _say(progress: bool, text: str) -> None:
    if progress:
        print(text, file=sys.stderr, flush=True)


def run_system(
    name: str,
    runs: int,
    seconds: float,
    force_calls: int,
    seed: int,
    methods=DEFAULT_METHODS,
    progress: bool = True,
    tolerance: float = GLOBAL_MINIMUM_TOLERANCE,
) -> SystemResult:
    """Every method from the same ``runs`` relaxed starts of system ``name``;
    a run succeeds within ``tolerance`` |GM| of the global minimum GM."""
    system = systems.system_from_name(name)
    load = os.getloadavg()[0]
    key = jax.random.key(seed)
    started = time.perf_counter()
    starts = relaxed_starts(system, key, runs)
    throwaway = relaxed_starts(system, jax.random.fold_in(key, 1_000_003), 1)[0]
    _say(
        progress,
        f"{name}: {runs} starts relaxed in {time.perf_counter() - started:.1f} s",
    )
    target = global_minimum_threshold(system.global_minimum, tolerance)
    results = []
    for method in methods:
        spec = METHODS[method]
        with _single_blas_thread():
            compile_s = compile_seconds(system, method, throwaway)
            traces = []
            for index, start in enumerate(starts):
                trace = spec.run(
                    system, start, seconds, force_calls, target, seed + index
                )
                traces.append(trace)
                best = trace.improvements[-1][2] if trace.improvements else math.nan
                _say(
                    progress,
                    f"{name} {method} run {index + 1}/{runs}: best {best:.6f} after "
                    f"{trace.force_calls} calls, {trace.seconds:.1f} s",
                )
        results.append(MethodResult(method, spec.label, spec.note, traces, compile_s))
    reference = "known"
    global_minimum = system.global_minimum
    if global_minimum is None:
        reference = "lowest found"
        global_minimum = min(
            run.improvements[-1][2]
            for method in results
            for run in method.runs
            if run.improvements
        )
    notes = [
        blas_note(),
        (
            f"scipy energy and gradient: {numpy_energy(system)[1]}; scipy's "
            f"L-BFGS-B quenches: {scipy_quench_settings(system.potential)}"
        ),
        (
            f"load average {load:.1f} at start, {os.getloadavg()[0]:.1f} at end on "
            f"{os.cpu_count()} cores (shared machine)"
        ),
        (
            f"starts: {runs} harmonic starts (seed {seed}), each relaxed by 1000 "
            "FIRE steps before any method, not charged to any method"
        ),
    ]
    return SystemResult(
        system=name,
        global_minimum=float(global_minimum),
        reference=reference,
        threshold=global_minimum_threshold(global_minimum, tolerance),
        seconds=float(seconds),
        force_calls=int(force_calls),
        methods=results,
        notes=notes,
        tolerance=float(tolerance),
    )


def run_time_to_minimum(
    system_names,
    runs: int = 6,
    seconds: float | dict | None = None,
    force_calls: int = DEFAULT_FORCE_CALLS,
    seed: int = 0,
    methods=DEFAULT_METHODS,
    progress: bool = True,
    tolerance: float = GLOBAL_MINIMUM_TOLERANCE,
) -> list[SystemResult]:
    """The benchmark on each system (``seconds``: per-run wall time, one number,
    ``{system: seconds}``, or None for `DEFAULT_SECONDS`; ``tolerance``: the
    success band above the global minimum, relative)."""
    unknown = [method for method in methods if method not in METHODS]
    if unknown:
        raise ValueError(f"unknown methods {unknown}; choose from {list(METHODS)}")
    if not 0.0 <= tolerance < 1.0:
        raise ValueError(f"tolerance must be in [0, 1), got {tolerance}")
    return [
        run_system(
            name,
            runs,
            budget_seconds(name, seconds),
            force_calls,
            seed,
            tuple(methods),
            progress,
            tolerance,
        )
        for name in system_names
    ]


# -- reporting ----------------------------------------------------------------------

COLUMNS = (
    "system (budget)",
    "method",
    "success",
    "median calls [q1, q3]",
    "median seconds [q1, q3]",
    "compile s",
)


def _number(value: float, budget: float, seconds: bool) -> str:
    if not math.isfinite(value):
        return f"> {budget:g} s" if seconds else f"> {budget:.3g}"
    return f"{value:.3g}" if seconds else f"{value:.0f}"


def _triple(values, budget: float, seconds: bool) -> str:
    median, first, third = (_number(value, budget, seconds) for value in values)
    return f"{median} [{first}, {third}]"


def table_rows(results: list[SystemResult]) -> list[list[str]]:
    rows = []
    for result in results:
        head = f"{result.system} ({result.seconds:g} s, {result.force_calls:.3g} calls)"
        for method in result.methods:
            row = summary(result, method)
            rows.append(
                [
                    head,
                    row["label"],
                    f"{row['successes']}/{row['runs']}",
                    _triple(row["force_calls"], result.force_calls, False),
                    _triple(row["seconds"], result.seconds, True),
                    f"{row['compile_seconds']:.1f}",
                ]
            )
    return rows


def ratio_lines(result: SystemResult) -> list[str]:
    """The first method's medians over each other method's, force calls and
    seconds, with 95% bootstrap intervals (`median_ratio`): below 1 the first
    method is faster; an interval that contains 1 is within the noise of
    these runs."""
    if len(result.methods) < 2:
        return []
    first = method_times(result, result.methods[0])
    lines = []
    for other in result.methods[1:]:
        times = method_times(result, other)
        parts = []
        for column, unit in enumerate(("force calls", "seconds")):
            ratio, low, high = median_ratio(first[:, column], times[:, column])
            parts.append(f"{unit} {ratio:.2f} [{low:.2f}, {high:.2f}]")
        lines.append(
            f"{result.system}: median of {result.methods[0].label} over "
            f"{other.label} (95% bootstrap interval): " + ", ".join(parts)
        )
    return lines


def _footer(results: list[SystemResult]) -> list[str]:
    lines = []
    for result in results:
        lines.append(
            f"{result.system}: GM {result.global_minimum:.6f} ({result.reference}), "
            f"success at E <= {result.threshold:.6f} "
            f"(GM + {result.tolerance:g} |GM|); " + "; ".join(result.notes)
        )
        lines += ratio_lines(result)
    return lines


def markdown_table(results: list[SystemResult]) -> str:
    """The results as a Markdown table, with the thresholds and notes below."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(row) + " |" for row in table_rows(results)]
    return "\n".join(lines + [""] + [f"- {line}" for line in _footer(results)]) + "\n"


def terminal_table(results: list[SystemResult]) -> str:
    """The results as aligned plain text."""
    rows = [list(COLUMNS)] + table_rows(results)
    widths = [max(len(row[column]) for row in rows) for column in range(len(COLUMNS))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths)) for row in rows
    ]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines + [""] + _footer(results)) + "\n"


def _finite_or_none(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def to_json(results: list[SystemResult]) -> str:
    """Everything, summaries and per-run traces (censored values as null)."""
    document = []
    for result in results:
        entry = dataclasses.asdict(result)
        entry["methods"] = []
        for method in result.methods:
            row = summary(result, method)
            times = method_times(result, method)
            entry["methods"].append(
                {
                    **{
                        k: v
                        for k, v in row.items()
                        if k not in ("force_calls", "seconds")
                    },
                    "note": method.note,
                    "median_q1_q3_force_calls": [
                        _finite_or_none(v) for v in row["force_calls"]
                    ],
                    "median_q1_q3_seconds": [
                        _finite_or_none(v) for v in row["seconds"]
                    ],
                    "best_energy": _finite_or_none(row["best_energy"]),
                    "runs": [
                        {
                            "force_calls_to_success": _finite_or_none(calls),
                            "seconds_to_success": _finite_or_none(elapsed),
                            "force_calls": run.force_calls,
                            "seconds": run.seconds,
                            "improvements": [list(point) for point in run.improvements],
                        }
                        for run, (calls, elapsed) in zip(method.runs, times)
                    ],
                }
            )
        document.append(entry)
    return json.dumps(document, indent=1)

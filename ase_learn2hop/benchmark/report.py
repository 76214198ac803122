"""The benchmark's outputs: tables (terminal, Markdown), JSON and the files.

- `terminal_table`, `table_rows`, `markdown_report`: one row per method (its
  best setting) beside the paper's Table 2;
- `benchmark_json`: everything measured (NaN written as null);
- `write_outputs`: ``benchmark.json``, ``benchmark.md`` and the figures;
- `report`: prints the tables and writes the outputs (the commands' ending).
"""

from __future__ import annotations

import dataclasses
import json
import math
import platform
import sys
from pathlib import Path

import jax
import numpy as np

from ase_learn2hop.benchmark.protocol import (
    GLOBAL_MINIMUM_TOLERANCE,
    METHODS,
    PAPER_STARTS,
    PAPER_STEPS,
    PAPER_TABLE_2,
    BenchmarkRun,
    SystemResult,
    VariantResult,
    summarize,
    system_heading,
)


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
        label = METHODS[method].label
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


def terminal_table(result: SystemResult) -> str:
    """The system's table as aligned plain text."""
    rows = [list(TABLE_COLUMNS)] + table_rows(result)
    skipped = [row for row in rows[1:] if row[2] == "-" and row[3] == "-"]
    shown = [row for row in rows if row not in skipped]
    widths = [max(len(row[i]) for row in shown) for i in range(len(TABLE_COLUMNS))]
    lines = [system_heading(result)]
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
        lines += [f"## {system_heading(result)}", ""]
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
        lines.append(f"- {METHODS[method].label}: {METHODS[method].note}.")
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
                "label": METHODS[method].label,
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
    written = []
    if figures:
        from ase_learn2hop.benchmark.figures import write_figures

        written = write_figures(run, out)
    return {"json": json_path, "markdown": markdown_path, "figures": written}


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

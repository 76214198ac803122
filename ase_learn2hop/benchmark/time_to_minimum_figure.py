"""The time-to-minimum figure: for each system, the fraction of runs that
reached the global minimum against force calls (left) and against seconds
(right), one step curve per method, log x (compile time excluded)."""

from __future__ import annotations

from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ase_learn2hop.benchmark.time_to_minimum import SystemResult, success_curves

COLOURS = {
    "learned": "tab:red",
    "learned_paper": "tab:orange",
    "scipy_basin_hopping": "tab:blue",
    "ase_basin_hopping": "tab:green",
}


def success_figure(results: list[SystemResult], path: str | Path) -> Path:
    """Write the success curves of ``results`` as a PNG at ``path``."""
    curves = success_curves(results)
    figure = Figure(figsize=(10, 3.6 * max(len(results), 1)))
    FigureCanvasAgg(figure)
    axes = figure.subplots(max(len(results), 1), 2, squeeze=False)
    for row, result in zip(axes, results):
        for method in result.methods:
            curve = curves[result.system][method.method]
            for axis, name, budget in (
                (row[0], "force_calls", result.force_calls),
                (row[1], "seconds", result.seconds),
            ):
                x, fraction = curve[name]
                # Step from 0 at the first success to the last, held to the budget.
                xs = [x[0] if x.size else budget, *x, budget]
                ys = [0.0, *fraction, fraction[-1] if fraction.size else 0.0]
                axis.step(
                    xs,
                    ys,
                    where="post",
                    label=method.label,
                    color=COLOURS.get(method.method),
                )
        for axis, label in ((row[0], "force calls"), (row[1], "seconds (no compile)")):
            axis.set_xscale("log")
            axis.set_ylim(-0.03, 1.03)
            axis.set_xlabel(label)
            axis.set_ylabel("fraction at global minimum")
            axis.set_title(
                f"{result.system}: {len(result.methods[0].runs) if result.methods else 0} runs"
            )
            axis.grid(alpha=0.3)
        row[1].legend(fontsize=8, loc="lower right")
    figure.tight_layout()
    path = Path(path)
    figure.savefig(path, dpi=120)
    return path

"""The benchmark's figures, each the counterpart of one in the paper.

- `minima_distribution_figure`: distribution of the minima found per method
  (paper Figure 5);
- `trajectories_figure`: energy against step for many starts, the learned
  optimizer's update magnitude when held at a minimum, and one trajectory in
  detail (paper Figure 6);
- `size_sweep_figure`: mean and minimum energy against Lennard-Jones cluster size
  per method (paper Figure 4);
- `composition_hull_figure`: excess energy of a bimetallic cluster against its
  composition, with the convex hull per method (paper Figure 7).

- `write_figures`: every figure a `protocol.BenchmarkRun` allows.

Matplotlib's object API on the Agg canvas only: no pyplot, so no global figure
state and no display is needed. Every ``*_figure`` function takes plain arrays and
a path and writes one PNG. The numbers come from `analysis` (which never imports
Matplotlib).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from ase_learn2hop.benchmark.analysis import (
    composition_data,
    lower_convex_hull,
    size_sweep_data,
)
from ase_learn2hop.benchmark.protocol import METHODS, BenchmarkRun, system_heading

# One colour per method, the same in every figure (from `protocol.METHODS`);
# the figures are handed labels, so the colours are looked up by label.
METHOD_COLOURS = {method.label: method.colour for method in METHODS.values()}


def _colour(label: str, index: int) -> str:
    return METHOD_COLOURS.get(label, f"C{index % 10}")


def _save(figure: Figure, path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(figure)
    figure.savefig(path, dpi=120)
    return path


def minima_distribution_figure(
    energies_by_method: dict[str, np.ndarray],
    global_minimum: float | None,
    path,
    *,
    title: str = "",
) -> Path:
    """Histogram of the minima found, one row per method (paper Figure 5).

    Args:
        energies_by_method: method label -> ``[n_starts]`` lowest energy per start.
        global_minimum: known global minimum (a dashed line), or None.
        path: PNG to write.
    """
    labels = list(energies_by_method)
    finite = np.concatenate(
        [np.asarray(e)[np.isfinite(e)] for e in energies_by_method.values()]
        + [np.array([global_minimum])] * (global_minimum is not None)
    )
    # High outliers (exploded starts) would squash the interesting low end.
    low = float(finite.min()) if finite.size else 0.0
    high = float(np.percentile(finite, 98)) if finite.size else 1.0
    if high <= low:
        high = low + 1.0
    bins = np.linspace(low - 0.01 * abs(low), high, 60)
    figure = Figure(figsize=(7.0, 1.6 + 1.3 * len(labels)))
    axes = figure.subplots(len(labels), 1, sharex=True, squeeze=False)[:, 0]
    for index, (axis, label) in enumerate(zip(axes, labels)):
        energies = np.asarray(energies_by_method[label], dtype=float)
        energies = energies[np.isfinite(energies)]
        axis.hist(
            np.clip(energies, bins[0], bins[-1]),
            bins=bins,
            color=_colour(label, index),
            alpha=0.85,
        )
        if global_minimum is not None:
            axis.axvline(global_minimum, color="black", linestyle="--", linewidth=1)
            hits = int(np.sum(energies <= global_minimum + 1e-3 * abs(global_minimum)))
            text = f"{label}: {hits}/{energies.size} at the global minimum"
        else:
            text = f"{label}: {energies.size} starts"
        axis.set_title(text, fontsize=9, loc="left")
        axis.set_ylabel("starts")
        axis.yaxis.set_major_locator(MaxNLocator(integer=True))
    axes[-1].set_xlabel("energy of the minimum found")
    figure.suptitle(title or "Distribution of the minima found", fontsize=10)
    figure.tight_layout()
    return _save(figure, path)


def trajectories_figure(
    traces: dict[str, tuple[np.ndarray, np.ndarray]],
    global_minimum: float | None,
    path,
    *,
    learned: dict | None = None,
    learned_note: str = "",
    title: str = "",
) -> Path:
    """Energy against step for many starts, per method, and the learned
    optimizer's hops (paper Figure 6).

    Args:
        traces: method label -> ``(steps [T], energies [n_starts, T])``, the
            energy of the current structure along each search.
        global_minimum: dashed line, or None.
        path: PNG to write.
        learned: the learned optimizer's ``figure_data`` from the benchmark:
            ``held_update_magnitude`` ``[H]`` (root-mean-square update when held
            at the lowest minimum found), ``single_energy`` and
            ``single_step_size`` ``[T]`` (one start at full resolution).
        learned_note: shown instead when the learned optimizer did not run.
    """
    labels = list(traces)
    all_energies = np.concatenate(
        [np.asarray(e, dtype=float).ravel() for _, e in traces.values()]
    )
    all_energies = all_energies[np.isfinite(all_energies)]
    low = float(all_energies.min()) if all_energies.size else 0.0
    if global_minimum is not None:
        low = min(low, global_minimum)
    high = float(np.percentile(all_energies, 90)) if all_energies.size else 1.0
    margin = 0.05 * max(high - low, 1e-9)
    # Rows: energies; then, for the learned optimizer, its held update magnitude
    # and one search in detail (or a line saying why it did not run).
    learned_rows = 2 if learned else (1 if learned_note else 0)
    heights = [3.0] + ([3.0, 3.0] if learned else [0.6] * (learned_rows == 1))
    figure = Figure(figsize=(4.0 * max(len(labels), 2), 1.0 + sum(heights)))
    grid = figure.add_gridspec(1 + learned_rows, len(labels), height_ratios=heights)
    for index, label in enumerate(labels):
        steps, energies = traces[label]
        axis = figure.add_subplot(grid[0, index])
        energies = np.asarray(energies, dtype=float)
        # Dark where many starts overlap, as the paper's opacity-0.02 lines.
        alpha = float(np.clip(3.0 / max(energies.shape[0], 1), 0.03, 0.5))
        if energies.size:
            axis.plot(
                steps, energies.T, color=_colour(label, index), alpha=alpha, lw=0.8
            )
        if global_minimum is not None:
            axis.axhline(global_minimum, color="black", linestyle="--", linewidth=1)
        axis.set_ylim(low - margin, high + margin)
        axis.set_title(f"{label} ({energies.shape[0]} starts)", fontsize=9)
        axis.set_xlabel("step")
        if index == 0:
            axis.set_ylabel("energy")
    if learned:
        held_axis = figure.add_subplot(grid[1, :])
        single_axis = figure.add_subplot(grid[2, :])
        if "held_update_magnitude" in learned:
            magnitudes = np.asarray(learned["held_update_magnitude"])
            held_axis.plot(
                np.arange(1, magnitudes.size + 1), magnitudes, color="tab:red"
            )
            held_axis.set_yscale("log")
            held_axis.set_title(
                "Learned optimizer held at the lowest minimum found "
                f"(E = {learned['held_energy']:.4f}): spikes are hops",
                fontsize=9,
            )
        held_axis.set_xlabel("step")
        held_axis.set_ylabel("update magnitude (rms)")
        energy = np.asarray(learned["single_energy"])
        step_size = np.asarray(learned["single_step_size"])
        steps = np.arange(1, energy.size + 1)
        single_axis.plot(steps, energy, color="tab:red", lw=0.8, label="energy")
        if global_minimum is not None:
            single_axis.axhline(global_minimum, color="black", linestyle="--", lw=1)
        finite = energy[np.isfinite(energy)]
        if finite.size:
            top = float(np.percentile(finite, 95))
            bottom = float(finite.min())
            if global_minimum is not None:
                bottom = min(bottom, global_minimum)
            single_axis.set_ylim(bottom - 0.05 * (top - bottom + 1e-9), top)
        single_axis.set_xlabel("step")
        single_axis.set_ylabel("energy")
        size_axis = single_axis.twinx()
        size_axis.plot(steps, step_size, color="tab:gray", lw=0.6, alpha=0.7)
        size_axis.set_yscale("log")
        size_axis.set_ylabel("step size (rms)", color="tab:gray")
        single_axis.set_title(
            f"One learned search in detail (start {learned.get('single_start', 0)}): "
            "hops are large steps followed by descent; grey: step size",
            fontsize=9,
        )
    elif learned_note:
        note_axis = figure.add_subplot(grid[1, :])
        note_axis.set_axis_off()
        note_axis.text(
            0.5,
            0.5,
            f"Learned optimizer: {learned_note}",
            ha="center",
            va="center",
            wrap=True,
            fontsize=9,
            transform=note_axis.transAxes,
        )
    figure.suptitle(title or "Energy against step", fontsize=10)
    figure.tight_layout()
    return _save(figure, path)


def size_sweep_figure(
    sizes: np.ndarray,
    global_minima: np.ndarray,
    means: dict[str, np.ndarray],
    lowest: dict[str, np.ndarray],
    trained_sizes: list[int],
    path,
) -> Path:
    """Mean and minimum energy against Lennard-Jones cluster size (paper Figure 4),
    drawn as the gap to the tabulated global minimum.

    Args:
        sizes: ``[k]`` cluster sizes.
        global_minima: ``[k]`` tabulated global minima (Cambridge Cluster
            Database).
        means, lowest: method label -> ``[k]`` mean and minimum energy.
        trained_sizes: sizes the learned optimizer was trained on (dashed lines).
        path: PNG to write.
    """
    figure = Figure(figsize=(8.0, 7.0))
    top, bottom = figure.subplots(2, 1, sharex=True)
    for axis, values, name in ((top, means, "mean"), (bottom, lowest, "minimum")):
        for index, (label, energies) in enumerate(values.items()):
            axis.plot(
                sizes,
                np.asarray(energies) - global_minima,
                marker="o",
                markersize=3,
                color=_colour(label, index),
                label=label,
            )
        for size in trained_sizes:
            axis.axvline(size, color="gray", linestyle="--", linewidth=0.8)
        axis.set_ylabel(f"{name} energy - global minimum")
        axis.set_yscale("symlog", linthresh=0.1)
    top.legend(fontsize=8)
    top.set_title(
        "Lennard-Jones clusters (global minima: Cambridge Cluster Database)",
        fontsize=10,
    )
    bottom.set_xlabel("atoms")
    figure.tight_layout()
    return _save(figure, path)


def composition_hull_figure(
    counts: np.ndarray,
    excess_by_method: dict[str, np.ndarray],
    composition: tuple[str, str, int],
    path,
) -> Path:
    """Excess energy of A(N-m)B(m) against m, with each method's lower convex
    hull (paper Figure 7). Lower is better: a method that finds lower minima has
    a lower hull.

    Args:
        counts: ``[k]`` values of m (0 and N included).
        excess_by_method: method label -> ``[k]`` excess energy (eV) of the lowest
            minimum it found at each m.
        composition: ``(A, B, N)``.
        path: PNG to write.
    """
    first, second, total = composition
    figure = Figure(figsize=(8.0, 5.0))
    axis = figure.subplots()
    for index, (label, excess) in enumerate(excess_by_method.items()):
        colour = _colour(label, index)
        excess = np.asarray(excess, dtype=float)
        axis.plot(counts, excess, "o", markersize=3, color=colour, alpha=0.6)
        hull = lower_convex_hull(counts, excess)
        axis.plot(counts[hull], excess[hull], "-", color=colour, label=label)
    axis.axhline(0.0, color="black", linewidth=0.6)
    axis.set_xlabel(f"m (${first}_{{{total}-m}}{second}_m$)")
    axis.set_ylabel("excess energy (eV)")
    axis.set_title(
        f"{first}{second}{total}: excess energy and convex hull per method", fontsize=10
    )
    axis.legend(fontsize=8)
    figure.tight_layout()
    return _save(figure, path)


def write_figures(run: BenchmarkRun, out: Path) -> list[Path]:
    """Draws every figure the results allow; returns the files written.

    - Figure 5 (distribution of minima) and Figure 6 (energy against step,
      update magnitude at a minimum) for each single system;
    - Figure 4 (mean and minimum energy against size) for a Lennard-Jones sweep
      (or any two or more LJ sizes);
    - Figure 7 (excess energy against composition and its convex hull) for each
      composition scan.
    """
    written = []
    singles = [r for r in run.systems if not r.group]
    for result in singles:
        energies = {
            METHODS[m].label: r.best.energies
            for m, r in result.methods.items()
            if r.status == "ok"
        }
        if energies:
            path = out / f"figure5_minima_{result.name}.png"
            minima_distribution_figure(
                energies, result.global_minimum, path, title=system_heading(result)
            )
            written.append(path)
        traces = {
            METHODS[m].label: (r.best.record_steps, r.best.energy_records)
            for m, r in result.methods.items()
            if r.status == "ok" and r.best.energy_records is not None
        }
        if traces:
            learned = result.methods.get("learned")
            path = out / f"figure6_trajectories_{result.name}.png"
            trajectories_figure(
                traces,
                result.global_minimum,
                path,
                learned=learned.figure_data if learned else None,
                learned_note=(
                    learned.reason if learned and learned.status != "ok" else ""
                ),
                title=system_heading(result),
            )
            written.append(path)
    lennard_jones = [r for r in run.systems if r.potential == "lj"]
    if len({r.n_atoms for r in lennard_jones}) >= 2:
        path = out / "figure4_lj_sizes.png"
        size_sweep_figure(*size_sweep_data(lennard_jones), path)
        written.append(path)
    for group in sorted(
        {r.group for r in run.systems if r.group and r.group[0].isupper()}
    ):
        members = [r for r in run.systems if r.group == group]
        data = composition_data(group, members)
        if data is not None:
            path = out / f"figure7_{group}_hull.png"
            composition_hull_figure(*data, path)
            written.append(path)
    return written

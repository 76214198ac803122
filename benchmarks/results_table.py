"""One Markdown table from several `learn2hop benchmark` runs (the README's results).

Runs of the same systems with the same ``--starts`` and ``--seed`` see the same
starting structures (whatever their ``--steps``), so the learned optimizer can be
run on its own and set beside baselines measured earlier; each row says its step
budget and its energy evaluations per start. The script refuses to merge runs whose
starts or seed differ. Every number comes from the JSON files given:

    python benchmarks/results_table.py \\
        benchmarks/results/paper_table2_5000steps/benchmark.json \\
        benchmarks/results/learned_5000steps/benchmark.json --figures DIR

``--figures DIR`` also draws, from the merged runs, the distribution of the minima
per system (paper Figure 5) and, where there are several Lennard-Jones sizes, the
gap to the global minimum against size (Figure 4). A row's label carries its step
budget where one method appears with several.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ase_learn2hop.benchmark.protocol import METHOD_IDS

PAPER_KEYS = {"adam": "adam", "fire": "fire", "basin_hopping": "basin_hopping"}


def _setting_text(method: str, entry: dict) -> str:
    setting = entry["best"]["setting"]
    return ", ".join(f"{key} {value}" for key, value in setting.items()) or "-"


def _number(value, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def merged_systems(paths: list[Path]) -> dict[str, dict]:
    """``{system: {"info": ..., "methods": {method: entry}}}`` over the runs."""
    merged: dict[str, dict] = {}
    for path in paths:
        run = json.loads(path.read_text())
        seed = run["settings"]["seed"]
        for name, system in run["systems"].items():
            key = (system["n_starts"], seed)
            slot = merged.setdefault(
                name, {"info": system, "key": key, "methods": {}, "sources": []}
            )
            if slot["key"] != key:
                raise SystemExit(
                    f"{path}: {name} ran with (starts, seed) {key}, "
                    f"another file with {slot['key']}: not the same starts"
                )
            slot["sources"].append(str(path))
            for method, entry in system["methods"].items():
                if entry["status"] == "ok":
                    row = (method, system["steps"])
                    slot["methods"][row] = {**entry, "steps": system["steps"]}
    return merged


def _ordered_rows(slot: dict) -> list[tuple[str, int]]:
    return sorted(slot["methods"], key=lambda row: (METHOD_IDS.index(row[0]), row[1]))


def markdown_table(merged: dict[str, dict]) -> str:
    lines = []
    for name, slot in merged.items():
        info = slot["info"]
        starts, seed = slot["key"]
        minimum = info["global_minimum"]
        lines.append(
            f"**{name}** ({info['n_atoms']} atoms, {info['potential']}; "
            f"{starts} starts, seed {seed}"
            + (f"; global minimum {minimum:.4f}" if minimum is not None else "")
            + ")\n"
        )
        lines.append(
            "| Method | Setting | Steps | Starts | Mean | Min | GM hits "
            "| Evals/start | Wall s | Paper mean | Paper min |"
        )
        lines.append("|" + "---|" * 11)
        paper = info.get("paper_table_2") or {}
        for method, steps in _ordered_rows(slot):
            entry = slot["methods"][(method, steps)]
            best = entry["best"]
            summary = best["summary"]
            hits = summary["global_minimum_hits"]
            evaluations = best["energy_evaluations"]
            evaluations = (
                sum(evaluations) / len(evaluations)
                if isinstance(evaluations, list)
                else evaluations
            )
            paper_key = PAPER_KEYS.get(method)
            paper_mean = paper.get("mean", {}).get(paper_key) if paper_key else None
            paper_min = paper.get("min", {}).get(paper_key) if paper_key else None
            if method == "learned" and paper:
                learned = {
                    k: v
                    for k, v in paper.get("mean", {}).items()
                    if k in ("esmc", "ga")
                }
                if learned:
                    best_key = min(learned, key=learned.get)
                    paper_mean = learned[best_key]
                    paper_min = paper.get("min", {}).get(best_key)
            n_starts = summary["n_starts"]
            hits_text = "-" if hits is None else f"{hits}/{n_starts}"
            lines.append(
                f"| {entry['label']} | {_setting_text(method, entry)} | {steps} "
                f"| {summary['n_starts']} | {_number(summary['mean'])} "
                f"| {_number(summary['min'])} "
                f"| {hits_text} "
                f"| {evaluations:.0f} | {best['wall_time_s']:.1f} "
                f"| {_number(paper_mean, 2)} | {_number(paper_min, 2)} |"
            )
        lines.append("")
    return "\n".join(lines)


def _row_label(entry: dict, steps: int, all_steps: set[int]) -> str:
    return entry["label"] + (f" ({steps} steps)" if len(all_steps) > 1 else "")


def write_figures(merged: dict[str, dict], out: Path) -> list[Path]:
    """Figure 5 per system and Figure 4 over the LJ sizes, from merged runs."""
    import numpy as np

    from ase_learn2hop import systems
    from ase_learn2hop.benchmark import figures

    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, slot in merged.items():
        if slot["info"]["group"]:
            continue  # members of a composition scan: Figure 7 below
        all_steps = {steps for _, steps in slot["methods"]}
        energies = {
            _row_label(entry, steps, all_steps): np.array(
                [np.nan if e is None else e for e in entry["best"]["energies"]]
            )
            for (method, steps), entry in (
                (row, slot["methods"][row]) for row in _ordered_rows(slot)
            )
        }
        info = slot["info"]
        path = out / f"figure5_minima_{name}.png"
        title = f"{name}: {slot['key'][0]} starts"
        figures.minima_distribution_figure(
            energies, info["global_minimum"], path, title=title
        )
        written.append(path)
    sizes = sorted(
        (slot["info"]["n_atoms"], name)
        for name, slot in merged.items()
        if slot["info"]["potential"] == "lj"
    )
    if len(sizes) >= 2:
        tabulated = systems.lennard_jones_global_minima()
        n_atoms = np.array([n for n, _ in sizes])
        means: dict[str, np.ndarray] = {}
        lowest: dict[str, np.ndarray] = {}
        trained: set[int] = set()
        for index, (_, name) in enumerate(sizes):
            slot = merged[name]
            for method, steps in _ordered_rows(slot):
                entry = slot["methods"][(method, steps)]
                label = f"{entry['label']} ({steps} steps)"
                summary = entry["best"]["summary"]
                means.setdefault(label, np.full(len(sizes), np.nan))[index] = summary[
                    "mean"
                ]
                lowest.setdefault(label, np.full(len(sizes), np.nan))[index] = summary[
                    "min"
                ]
                for system in entry["best"].get("extra", {}).get("trained_on", []):
                    if system.startswith("lj") and system[2:].isdigit():
                        trained.add(int(system[2:]))
        global_minima = np.array([tabulated.get(int(n), np.nan) for n in n_atoms])
        path = out / "figure4_lj_sizes.png"
        figures.size_sweep_figure(
            n_atoms, global_minima, means, lowest, sorted(trained), path
        )
        written.append(path)
    written.extend(_composition_figures(merged, out))
    return written


def _composition_figures(merged: dict[str, dict], out: Path) -> list[Path]:
    """Figure 7 (excess energy and convex hull) for each composition scan, with
    the pure clusters at the lowest energy any merged row found."""
    import re

    import numpy as np

    from ase_learn2hop.benchmark import figures
    from ase_learn2hop.benchmark.analysis import excess_energies_by_method
    from ase_learn2hop.benchmark.protocol import composition_count

    written = []
    groups = sorted({slot["info"]["group"] for slot in merged.values()} - {""})
    for group in groups:
        match = re.fullmatch(r"([A-Z][a-z]?)([A-Z][a-z]?)(\d+)", group)
        if match is None:
            continue
        first, second, total = match.groups()
        total = int(total)
        members = [(n, s) for n, s in merged.items() if s["info"]["group"] == group]
        counts = np.array([composition_count(name) for name, _ in members])
        if not {0, total} <= set(counts.tolist()):
            continue
        lowest: dict[str, np.ndarray] = {}
        for index, (_, slot) in enumerate(members):
            for method, steps in _ordered_rows(slot):
                entry = slot["methods"][(method, steps)]
                label = f"{entry['label']} ({steps} steps)"
                values = lowest.setdefault(label, np.full(len(members), np.nan))
                values[index] = entry["best"]["summary"]["min"]
        excess = excess_energies_by_method(counts, lowest, total)
        order = np.argsort(counts)
        path = out / f"figure7_{group}_hull.png"
        figures.composition_hull_figure(
            counts[order],
            {label: values[order] for label, values in excess.items()},
            (first, second, total),
            path,
        )
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("files", nargs="+", type=Path, help="benchmark.json files")
    parser.add_argument("--figures", type=Path, help="folder for the figures")
    args = parser.parse_args(argv)
    merged = merged_systems(args.files)
    sys.stdout.write(markdown_table(merged))
    if args.figures is not None:
        for path in write_figures(merged, args.figures):
            print(f"wrote {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

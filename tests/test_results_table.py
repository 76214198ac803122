"""benchmarks/results_table.py: merging benchmark runs made on the same starts."""

import importlib.util
import json
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "results_table.py"


@pytest.fixture(scope="module")
def results_table():
    spec = importlib.util.spec_from_file_location("results_table", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def method_entry(label, energies, evaluations, setting):
    finite = [e for e in energies if e is not None]
    return {
        "label": label,
        "status": "ok",
        "notes": "",
        "best": {
            "setting": setting,
            "summary": {
                "mean": sum(finite) / len(finite),
                "min": min(finite),
                "n_starts": len(energies),
                "failed": len(energies) - len(finite),
                "global_minimum_hits": sum(e < -44.32 for e in finite),
            },
            "energies": energies,
            "energy_evaluations": [evaluations] * len(energies),
            "wall_time_s": 1.5,
            "extra": {"trained_on": ["lj13"]} if label.startswith("Learned") else {},
        },
    }


def write_run(path, name, n_starts, steps, methods, seed=0, n_atoms=13):
    system = {
        "n_atoms": n_atoms,
        "potential": "lj",
        "group": "",
        "global_minimum": -44.326801 if n_atoms == 13 else -72.659782,
        "n_starts": n_starts,
        "steps": steps,
        "paper_table_2": None,
        "methods": methods,
    }
    path.write_text(json.dumps({"settings": {"seed": seed}, "systems": {name: system}}))
    return path


def test_merges_runs_on_the_same_starts(results_table, tmp_path):
    baselines = write_run(
        tmp_path / "baselines.json",
        "lj13",
        2,
        5000,
        {"adam": method_entry("Adam", [-44.3268, -40.0], 7003, {"lr": 0.01})},
    )
    learned = write_run(
        tmp_path / "learned.json",
        "lj13",
        2,
        2000,
        {"learned": method_entry("Learned optimizer", [-44.3268] * 2, 6002, {})},
    )
    merged = results_table.merged_systems([baselines, learned])
    table = results_table.markdown_table(merged)
    rows = [
        line
        for line in table.splitlines()
        if line.startswith("| ") and "|---" not in line
    ]
    # Header, then the learned optimizer first, each row with its own step budget.
    assert rows[1].startswith("| Learned optimizer |") and "| 2000 |" in rows[1]
    assert "| 2/2 |" in rows[1] and "| 6002 |" in rows[1]
    assert rows[2].startswith("| Adam |") and "| 5000 |" in rows[2]
    assert "| -42.163 |" in rows[2] and "| 1/2 |" in rows[2]


def test_refuses_runs_on_other_starts(results_table, tmp_path):
    first = write_run(tmp_path / "a.json", "lj13", 2, 5000, {})
    other_seed = write_run(tmp_path / "b.json", "lj13", 2, 5000, {}, seed=1)
    with pytest.raises(SystemExit, match="not the same starts"):
        results_table.merged_systems([first, other_seed])
    other_count = write_run(tmp_path / "c.json", "lj13", 3, 5000, {})
    with pytest.raises(SystemExit, match="not the same starts"):
        results_table.merged_systems([first, other_count])


def test_figures_from_merged_runs(results_table, tmp_path):
    runs = []
    for n_atoms, name in ((13, "lj13"), (19, "lj19")):
        runs.append(
            write_run(
                tmp_path / f"{name}.json",
                name,
                2,
                100,
                {
                    "learned": method_entry(
                        "Learned optimizer", [-44.0, -43.0], 301, {}
                    ),
                    "fire": method_entry("FIRE", [-41.0, -40.0], 203, {}),
                },
                n_atoms=n_atoms,
            )
        )
    written = results_table.write_figures(
        results_table.merged_systems(runs), tmp_path / "figures"
    )
    assert [path.name for path in written] == [
        "figure5_minima_lj13.png",
        "figure5_minima_lj19.png",
        "figure4_lj_sizes.png",
    ]
    for path in written:
        assert path.read_bytes()[:4] == b"\x89PNG"

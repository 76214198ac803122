"""Every example in ``examples/`` runs in its fast setting and says what it found.

The examples run in this process (``runpy``), so they share the JAX compilation
caches; ``LEARN2HOP_EXAMPLE_FAST=1`` is the setting a user gets with ``--fast``.
Each test parses the learned optimizer's own result line (not the printed
reference energy), so an example whose learned optimizer is skipped, crashes
silently or misses what the example claims fails.
"""

import re
import runpy
import sys
from pathlib import Path

import pytest


EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
ENERGY = r"-\d+\.\d+"
LJ13_GLOBAL_MINIMUM = -44.326801  # Cambridge Cluster Database
AU55_GLOBAL_MINIMUM = -181.89  # Garzon parameters (paper, Table 2)
SILICON_DIAMOND_PER_ATOM = -4.33652  # Stillinger-Weber diamond, eV/atom


def learned_ran(out):
    assert "LearnedHopOptimizer skipped" not in out, out


def run_example(name, monkeypatch, tmp_path, capsys, *arguments):
    monkeypatch.setenv("LEARN2HOP_EXAMPLE_FAST", "1")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", [name, *arguments])
    runpy.run_path(str(EXAMPLES / name), run_name="__main__")
    return capsys.readouterr().out


def test_every_example_is_tested():
    tested = {
        "lj13_learned_vs_ase.py",
        "au55_gold.py",
        "silicon64.py",
        "bimetallic_hull.py",
        "load_weights.py",
    }
    assert {path.name for path in EXAMPLES.glob("*.py")} == tested


def test_lj13_learned_beside_ase(monkeypatch, tmp_path, capsys):
    out = run_example("lj13_learned_vs_ase.py", monkeypatch, tmp_path, capsys)
    learned_ran(out)
    # Table rows: tool, lowest energy, force calls, seconds.
    rows = {
        match.group(1): (float(match.group(2)), int(match.group(3)))
        for match in re.finditer(
            rf"^(LearnedHopOptimizer|ASE FIRE|ASE BasinHopping)\s+({ENERGY})\s+(\d+)\s",
            out,
            re.MULTILINE,
        )
    }
    assert set(rows) == {"LearnedHopOptimizer", "ASE FIRE", "ASE BasinHopping"}, out
    for tool in ("ASE FIRE", "ASE BasinHopping"):
        energy, calls = rows[tool]
        # The force-call budget of the fast setting (1000) is respected.
        assert LJ13_GLOBAL_MINIMUM - 1e-6 <= energy < -10 and 0 < calls <= 1000
    # The fast setting (1000 force calls, a few hops): below FIRE from the same
    # start (its first quench is a local relaxation, then it hops), never below
    # the global minimum; the budget is kept but for the closing FIRE polish.
    learned_energy, learned_calls = rows["LearnedHopOptimizer"]
    assert LJ13_GLOBAL_MINIMUM - 1e-6 <= learned_energy < rows["ASE FIRE"][0] - 0.5
    assert 1000 < learned_calls < 1100


def test_au55(monkeypatch, tmp_path, capsys):
    out = run_example("au55_gold.py", monkeypatch, tmp_path, capsys)
    learned_ran(out)
    learned = re.search(rf"^LearnedHopOptimizer: ({ENERGY}) eV after 300 force calls", out, re.M)
    hopping = re.search(rf"^ASE BasinHopping: ({ENERGY}) eV after 300 force calls", out, re.M)
    assert learned and hopping, out
    learned_energy, hopping_energy = float(learned.group(1)), float(hopping.group(1))
    # One chaotic 300-call run: never below the global minimum, and lower than
    # ASE's basin hopping with as many force calls.
    assert learned_energy >= AU55_GLOBAL_MINIMUM - 1e-3
    assert learned_energy < hopping_energy
    assert (tmp_path / "au55_best.xyz").exists()


def test_silicon64(monkeypatch, tmp_path, capsys):
    out = run_example("silicon64.py", monkeypatch, tmp_path, capsys)
    learned_ran(out)
    learned = re.search(rf"^LearnedHopOptimizer: {ENERGY} eV \(({ENERGY}) eV/atom", out, re.M)
    fire = re.search(rf"^ASE FIRE: {ENERGY} eV \(({ENERGY}) eV/atom", out, re.M)
    assert learned and fire, out
    learned_per_atom, fire_per_atom = float(learned.group(1)), float(fire.group(1))
    # Above diamond silicon, below the local minimum FIRE stops in.
    assert SILICON_DIAMOND_PER_ATOM < fire_per_atom < -3.0
    assert SILICON_DIAMOND_PER_ATOM < learned_per_atom < fire_per_atom


def test_bimetallic_hull(monkeypatch, tmp_path, capsys):
    out = run_example("bimetallic_hull.py", monkeypatch, tmp_path, capsys)
    # One table per composition; the learned row must hold numbers (a skipped or
    # failed method has none): Starts, Mean, Min.
    row = r"\s+.*?\s(\d+)\s+({energy})\s+({energy})\s".format(energy=ENERGY)
    for name in ("Ag8Au0", "Ag4Au4", "Ag0Au8"):
        table = out[out.index(f"{name} (8 atoms") :].split("\n\n")[0]
        learned = re.search(rf"^Learned optimizer{row}", table, re.M)
        hopping = re.search(rf"^Basin hopping \(paper\){row}", table, re.M)
        assert learned and hopping, table
        assert int(learned.group(1)) == 2
        # The learned optimizer's best is at least as low as basin hopping's.
        assert float(learned.group(3)) <= float(hopping.group(3)) + 1e-6, table
    figure = tmp_path / "bimetallic_hull" / "figure7_AgAu8_hull.png"
    assert figure.read_bytes()[:4] == b"\x89PNG"


def test_load_weights_from_a_file(monkeypatch, tmp_path, capsys):
    import jax

    from ase_learn2hop.learned_optimizer import LearnedOptimizerConfig, init_theta
    from ase_learn2hop.weights import save_weights

    # Weights set by hand (the initial theta, a little perturbed): untrained.
    config = LearnedOptimizerConfig()
    theta = init_theta(jax.random.key(0), config)
    theta["alpha"] = theta["alpha"] * 1.5
    manifest = save_weights(
        tmp_path / "my_weights",
        theta,
        config,
        horizon=50,
        systems=["lj13"],
        max_species=1,
        notes="hand-set for tests; untrained",
    )
    out = run_example("load_weights.py", monkeypatch, tmp_path, capsys, str(manifest))
    assert "horizon H = 50" in out
    match = re.search(rf"^lj13: best energy ({ENERGY}) after 200 learned steps", out, re.M)
    # Untrained weights need not find the global minimum, but nothing can be below
    # it, and any polished LJ13 minimum is far below a dissociated cluster (0).
    assert match and LJ13_GLOBAL_MINIMUM - 1e-6 <= float(match.group(1)) < -30.0

"""Every example in ``examples/`` runs in its fast setting and says what it found.

The examples run in this process (``runpy``), so they share the JAX compilation
caches; ``LEARN2HOP_EXAMPLE_FAST=1`` is the setting a user gets with ``--fast``.
"""

import re
import runpy
import sys
from pathlib import Path

import ase_learn2hop  # noqa: F401  (float64 before any array is made)

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
ENERGY = r"-\d+\.\d+"


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
    assert "LJ13 global minimum: -44.326801" in out
    for tool in ("ASE FIRE", "ASE BasinHopping"):
        line = next(line for line in out.splitlines() if line.startswith(tool))
        energy, calls = line.split()[-3:-1]
        # The force-call budget of the fast setting (300) is respected.
        assert float(energy) < -10 and 0 < int(calls) <= 300
    assert "LearnedHopOptimizer" in out


def test_au55(monkeypatch, tmp_path, capsys):
    out = run_example("au55_gold.py", monkeypatch, tmp_path, capsys)
    assert "-181.89" in out
    assert re.search(rf"ASE BasinHopping: {ENERGY} eV after 300 force calls", out)
    assert "LearnedHopOptimizer" in out


def test_silicon64(monkeypatch, tmp_path, capsys):
    out = run_example("silicon64.py", monkeypatch, tmp_path, capsys)
    match = re.search(rf"ASE FIRE: {ENERGY} eV \((-\d+\.\d+) eV/atom", out)
    # Above diamond silicon (-4.33652 eV/atom under Stillinger-Weber).
    assert match and -4.33652 < float(match.group(1)) < -3.0


def test_bimetallic_hull(monkeypatch, tmp_path, capsys):
    out = run_example("bimetallic_hull.py", monkeypatch, tmp_path, capsys)
    assert "Ag4Au4" in out
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
    assert re.search(rf"lj13: best energy {ENERGY} after 200 learned steps", out)

"""The ``learn2hop`` command line: input errors without tracebacks, Ctrl-C that
keeps the best structure, written structures with energy and forces, and
``compare`` writing nothing into the current directory."""

from __future__ import annotations

import re

import numpy as np
import pytest
from ase import Atoms
from ase.io import read, write

from ase_learn2hop import LearnedHopOptimizer, cli


def run_main(argv):
    """``cli.main(argv)``'s exit status, whether it returns or exits."""
    try:
        return cli.main(argv)
    except SystemExit as stop:
        return stop.code


def printed(text: str, label: str) -> float:
    return float(re.search(rf"^{label}\s+(\S+)", text, re.MULTILINE).group(1))


@pytest.fixture
def silicon_files(tmp_path):
    """Si files whose cells Stillinger-Weber cannot use."""
    positions = np.random.default_rng(0).uniform(0.0, 4.0, (8, 3))
    free = Atoms("Si8", positions=positions, pbc=False)
    small = Atoms("Si8", positions=positions, cell=[5.0] * 3, pbc=True)
    paths = {}
    for name, atoms in (("free", free), ("small", small)):
        paths[name] = tmp_path / f"{name}.xyz"
        write(paths[name], atoms)
    return paths


@pytest.mark.parametrize(
    "argv, message",
    [
        (["lj13", "--weights", "nosuch"], "nosuch"),
        (["Ag35Au3", "--potential", "gupta:XyZ"], "unknown Gupta system 'XyZ'"),
        (["lj13", "--starts", "0"], "--starts"),
        (["lj13", "--observe-every", "0"], "--observe-every"),
        (["no_such_file.xyz"], "neither a file nor a system name"),
        (["lj13", "--potential", "morse"], "unknown potential 'morse'"),
        (["{free}", "--potential", "sw"], "periodic cell"),
        (["{small}", "--potential", "sw"], "twice the cutoff"),
        (["{free}"], "--potential is required"),
    ],
)
def test_input_errors_are_one_line_without_traceback(
    argv, message, silicon_files, capsys
):
    argv = [part.format(**silicon_files) for part in argv]
    status = run_main(["optimize", *argv, "--steps", "10", "--quiet"])
    captured = capsys.readouterr()
    assert status == 2
    assert "Traceback" not in captured.err
    assert "error: " in captured.err
    assert message in captured.err


def test_a_bug_keeps_its_traceback(monkeypatch):
    """Only input errors become one line: a ValueError from inside the search
    (a bug, not an argument) still propagates."""

    def broken(self, fmax=0.05, steps=0, **kwargs):
        raise ValueError("a bug deep inside")
        yield  # pragma: no cover

    monkeypatch.setattr(LearnedHopOptimizer, "irun", broken)
    with pytest.raises(ValueError, match="a bug deep inside"):
        cli.main(["optimize", "lj7", "--steps", "10", "--quiet"])


def test_written_structure_carries_energy_and_forces(tmp_path, capsys):
    out = tmp_path / "best.xyz"
    status = run_main(
        ["optimize", "lj13", "--steps", "100", "--observe-every", "50"]
        + ["--out", str(out), "--quiet"]
    )
    text = capsys.readouterr().out
    assert status == 0
    best = printed(text, "best energy")
    assert best < printed(text, "start energy")
    atoms = read(out)
    assert len(atoms) == 13
    assert atoms.get_potential_energy() == pytest.approx(best, abs=1e-6)
    forces = atoms.get_forces()
    assert forces.shape == (13, 3) and np.all(np.isfinite(forces))
    assert np.abs(forces).max() < 0.05  # a polished minimum


def test_ctrl_c_writes_the_best_so_far_and_exits_130(tmp_path, monkeypatch, capsys):
    """Ctrl-C after the first chunk: status 130, the best minimum so far in --out."""
    original = LearnedHopOptimizer.irun

    def interrupted_after_first_chunk(self, fmax=0.05, steps=0, **kwargs):
        for converged in original(self, fmax=fmax, steps=steps, **kwargs):
            yield converged
            if self.nsteps > 0:
                raise KeyboardInterrupt

    monkeypatch.setattr(LearnedHopOptimizer, "irun", interrupted_after_first_chunk)
    out = tmp_path / "best.xyz"
    status = run_main(
        ["optimize", "lj13", "--steps", "5000", "--observe-every", "50"]
        + ["--out", str(out), "--quiet"]
    )
    captured = capsys.readouterr()
    assert status == 130
    assert "Traceback" not in captured.err
    message = [line for line in captured.err.splitlines() if "interrupted" in line]
    assert len(message) == 1 and str(out) in message[0]
    atoms = read(out)
    start_atoms, _ = cli.load_structure("lj13", None, 0)
    start_atoms.calc = cli._calculator("lj")
    assert atoms.get_potential_energy() < start_atoms.get_potential_energy()
    assert atoms.get_forces().shape == (13, 3)


def test_ctrl_c_before_anything_ran_writes_nothing(tmp_path, monkeypatch, capsys):
    def interrupted_at_once(self, fmax=0.05, steps=0, **kwargs):
        raise KeyboardInterrupt
        yield  # pragma: no cover

    monkeypatch.setattr(LearnedHopOptimizer, "irun", interrupted_at_once)
    out = tmp_path / "best.xyz"
    status = run_main(
        ["optimize", "lj7", "--steps", "10", "--out", str(out), "--quiet"]
    )
    assert status == 130
    assert not out.exists()
    assert "nothing written" in capsys.readouterr().err


def test_compare_writes_nothing_into_the_current_directory(
    tmp_path, monkeypatch, capsys
):
    cwd = tmp_path / "checkout"
    cwd.mkdir()
    cache = tmp_path / "cache"
    monkeypatch.chdir(cwd)
    monkeypatch.setenv("LEARN2HOP_CACHE", str(cache))
    status = run_main(
        ["compare", "--systems", "lj7", "--methods", "scipy_basin_hopping"]
        + ["--runs", "1", "--seconds", "5", "--quiet"]
    )
    out = capsys.readouterr().out
    assert status == 0
    assert list(cwd.iterdir()) == []
    folder = cache / "compare"
    assert (folder / "time_to_minimum.json").exists()
    assert str(folder) in out
    assert "scipy basinhopping" in out


def test_compare_help_names_its_output_folder(capsys):
    assert run_main(["compare", "--help"]) == 0
    assert "~/.cache/ase_learn2hop/compare" in capsys.readouterr().out

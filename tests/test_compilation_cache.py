"""JAX's persistent compilation cache: on in our cache folder when the
optimizer is used, never on import, never over the user's choice; by default
only where this machine's check found that cached programs load cleanly; off
with LEARN2HOP_COMPILATION_CACHE=0; a second process reuses it."""

import os

from python_process import run_python

from ase_learn2hop import compilation_cache

SCRIPT = """
import sys, time, jax
import ase_learn2hop.optimizer
before = jax.config.jax_compilation_cache_dir
from ase.io import read
from ase_learn2hop import LearnedHopOptimizer
from ase_learn2hop.calculators import LennardJones
atoms = read(sys.argv[1]); atoms.rattle(0.2, seed=1); atoms.calc = LennardJones()
started = time.perf_counter()
LearnedHopOptimizer(atoms, logfile=None, polish_steps=50).run(steps=40)
print(before, jax.config.jax_compilation_cache_dir, time.perf_counter() - started)
"""


def run(tmp_path, **environment):
    structure = os.path.join(
        os.path.dirname(__file__), "data", "lj13_global_minimum.xyz"
    )
    environment.setdefault("LEARN2HOP_COMPILATION_CACHE", None)
    done = run_python(SCRIPT, structure, LEARN2HOP_CACHE=str(tmp_path), **environment)
    out = done.stdout.split()
    return out[0], out[1], float(out[2]), done.stderr


def enable_in_a_new_process(tmp_path, switch=None) -> str:
    """What `compilation_cache.enable` returns in a new process."""
    script = (
        "from ase_learn2hop import compilation_cache; print(compilation_cache.enable())"
    )
    return run_python(
        script, LEARN2HOP_CACHE=str(tmp_path), LEARN2HOP_COMPILATION_CACHE=switch
    ).stdout.strip()


def test_cache_is_used_by_the_optimizer_not_by_import(tmp_path):
    before, after, first, _ = run(tmp_path, LEARN2HOP_COMPILATION_CACHE="1")
    assert before == "None"
    assert after == str(tmp_path / "jax")
    assert any((tmp_path / "jax").iterdir())
    _, _, second, log = run(tmp_path, LEARN2HOP_COMPILATION_CACHE="1")
    # The machine's check agrees with what the second process saw: XLA's
    # loader rejected the cached programs (and said so) exactly where the
    # check says they do not load cleanly.
    rejected = any(sign in log for sign in compilation_cache.REJECTION_SIGNS)
    clean = compilation_cache.reload_is_clean()
    assert rejected == (clean is False)
    if clean:
        # The second process loads compiled programs instead of compiling them.
        assert second < first


def test_by_default_the_machines_verdict_decides(tmp_path):
    folder = tmp_path / "jax"
    folder.mkdir()
    verdict = folder / f"loads-cleanly-{compilation_cache.host_identity()}.txt"
    verdict.write_text("no\n")
    assert enable_in_a_new_process(tmp_path) == "None"
    verdict.write_text("yes\n")
    assert enable_in_a_new_process(tmp_path) == str(folder)
    # Without a verdict, the check runs once and leaves its verdict.
    verdict.unlink()
    used = enable_in_a_new_process(tmp_path)
    clean = verdict.read_text().strip() == "yes"
    assert used == (str(folder) if clean else "None")


def test_cache_can_be_switched_off(tmp_path):
    assert enable_in_a_new_process(tmp_path, "0") == "None"
    _, after, _, _ = run(tmp_path, LEARN2HOP_COMPILATION_CACHE="0")
    assert after == "None"
    assert not (tmp_path / "jax").exists()
    assert not (tmp_path / "programs").exists()


def test_the_users_own_cache_directory_is_kept(tmp_path):
    own = tmp_path / "mine"
    _, after, _, _ = run(
        tmp_path, JAX_COMPILATION_CACHE_DIR=str(own), LEARN2HOP_COMPILATION_CACHE="1"
    )
    assert after == str(own)


def test_the_check_reads_the_loaders_rejection(monkeypatch):
    # The line XLA's CPU loader logs on the CPUs of jax-ml/jax#38445 (the
    # message as the issue quotes it, in a glog line).
    rejection = (
        "E0612 cpu_aot_loader.cc:195] Loading XLA:CPU AOT result. Target machine "
        "feature +prefer-no-gather is not supported on the host machine. Machine "
        "type used for XLA:CPU compilation doesn't match the machine type for "
        "execution. This could lead to execution errors such as SIGILL.\n"
    )
    outcomes = {
        (0, ""): True,
        (0, rejection): False,
        (1, "Traceback ...\nModuleNotFoundError: No module named 'jax'\n"): None,
    }
    for (returncode, stderr), verdict in outcomes.items():
        monkeypatch.setattr(
            compilation_cache.subprocess,
            "run",
            lambda command, returncode=returncode, stderr=stderr, **_: (
                compilation_cache.subprocess.CompletedProcess(
                    command, returncode, "", stderr
                )
            ),
        )
        assert compilation_cache.reload_is_clean() is verdict

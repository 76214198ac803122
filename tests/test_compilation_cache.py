"""JAX's persistent compilation cache: with LEARN2HOP_COMPILATION_CACHE=1, on in
our cache folder when the optimizer is used, never on import, never over the
user's choice; off by default; a second process reuses it."""

import os
import subprocess
import sys

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
    env = {**os.environ, "LEARN2HOP_CACHE": str(tmp_path), **environment}
    if "LEARN2HOP_COMPILATION_CACHE" not in environment:
        env.pop("LEARN2HOP_COMPILATION_CACHE", None)
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, structure],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    ).stdout.split()
    return out[0], out[1], float(out[2])


def test_cache_is_used_by_the_optimizer_not_by_import(tmp_path):
    before, after, first = run(tmp_path, LEARN2HOP_COMPILATION_CACHE="1")
    assert before == "None"
    assert after == str(tmp_path / "jax")
    assert any((tmp_path / "jax").iterdir())
    _, _, second = run(tmp_path, LEARN2HOP_COMPILATION_CACHE="1")
    # The second process loads compiled programs instead of compiling them.
    assert second < first


def test_cache_is_off_by_default_and_can_be_switched_off(tmp_path):
    environment = dict(os.environ)
    environment.pop("LEARN2HOP_COMPILATION_CACHE", None)
    for switch in (None, "0"):
        extra = {} if switch is None else {"LEARN2HOP_COMPILATION_CACHE": switch}
        _, after, _ = run(tmp_path, **extra)
        assert after == "None"
        assert not (tmp_path / "jax").exists()


def test_the_users_own_cache_directory_is_kept(tmp_path):
    own = tmp_path / "mine"
    _, after, _ = run(
        tmp_path, JAX_COMPILATION_CACHE_DIR=str(own), LEARN2HOP_COMPILATION_CACHE="1"
    )
    assert after == str(own)

"""Programs saved across processes (`saved_programs`): a second process runs
the search without tracing or lowering it and computes the same bits as plain
``jax.jit``; the key tells apart everything that makes a different program
and nothing else, in any process; what it cannot describe runs on plain jit."""

import functools
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from python_process import run_python

from ase_learn2hop import (
    compilation_cache,
    descent,
    devices,
    features,
    potentials,
    saved_programs,
)
from ase_learn2hop.geometry import FREE

SEARCH = """
import sys, jax
from ase.io import read
from ase_learn2hop import LearnedHopOptimizer
from ase_learn2hop.calculators import LennardJones
atoms = read(sys.argv[1]); atoms.rattle(0.3, seed=1); atoms.calc = LennardJones()
optimizer = LearnedHopOptimizer(atoms, logfile=None, n_starts=4, polish_steps=50)
optimizer.run(steps=300)
print(repr(atoms.positions.tolist()), optimizer.energy_evaluations)
"""


def search_in_a_new_process(tmp_path, switch):
    structure = os.path.join(
        os.path.dirname(__file__), "data", "lj13_global_minimum.xyz"
    )
    done = run_python(
        SEARCH,
        structure,
        LEARN2HOP_CACHE=str(tmp_path),
        LEARN2HOP_COMPILATION_CACHE=switch,
        JAX_LOG_COMPILES="1",
    )
    traced = [line for line in done.stderr.splitlines() if "Finished tracing" in line]
    return done.stdout, traced


def test_a_second_process_runs_the_search_without_tracing_it(tmp_path):
    plain, traced_plain = search_in_a_new_process(tmp_path, "0")
    first, traced_first = search_in_a_new_process(tmp_path, "1")
    second, traced_second = search_in_a_new_process(tmp_path, "1")
    assert any("driver_advance" in line for line in traced_plain)
    assert any("driver_advance" in line for line in traced_first)
    assert len(list((tmp_path / "programs").glob("*.program"))) >= 3
    # The search's programs (start, chunks, the calculator's energy) loaded:
    # what the second process still traces is a few small wrappers.
    assert not any("driver_" in line for line in traced_second)
    assert not any("_checked" in line for line in traced_second)
    # Four starts on two devices (random keys in the carry): the same bits as
    # plain jit, in the process that saved the programs and in the next.
    assert first == plain
    assert second == plain


def key(function, static=(), *leaves):
    return saved_programs.fingerprint(
        function, static, jax.tree_util.tree_structure(leaves), list(leaves)
    )


FIRE = descent.fire_descent.__wrapped__  # not cached: new closures each call
LJ = potentials.lennard_jones(FREE)


def test_the_key_describes_values_not_objects():
    x = jnp.zeros((13, 3))
    # Two optimizers built apart (different closure objects), equal by value.
    assert FIRE(LJ, 0.1) is not FIRE(LJ, 0.1)
    assert key(FIRE(LJ, 0.1), (), x) == key(FIRE(LJ, 0.1), (), x)
    # A different setting, shape, dtype or weak type is another program.
    assert key(FIRE(LJ, 0.1), (), x) != key(FIRE(LJ, 0.2), (), x)
    assert key(FIRE(LJ, 0.1), (), x) != key(FIRE(LJ, 0.1), (), jnp.zeros((12, 3)))
    assert key(LJ, (), x) != key(LJ, (), x.astype(jnp.float16))
    assert key(LJ, (), jnp.asarray(1.0)) != key(LJ, (), jnp.asarray(1.0, float))
    # Bound arrays by their values; another optimizer's code is another key.
    zeros, ones = np.zeros(3), np.ones(3)
    select = descent.select_tree
    assert key(functools.partial(select, zeros)) == key(
        functools.partial(select, zeros.copy())
    )
    assert key(functools.partial(select, zeros)) != key(functools.partial(select, ones))
    adam = descent.adam_descent.__wrapped__
    assert key(FIRE(LJ, 0.1), (), x) != key(adam(LJ, 0.1), (), x)
    # The store's salt (the package's source hash) joins every key.
    tree = jax.tree_util.tree_structure([x])
    assert saved_programs.fingerprint(LJ, (), tree, [x], "a") != (
        saved_programs.fingerprint(LJ, (), tree, [x], "b")
    )


def test_the_key_follows_our_module_constants(monkeypatch):
    before = saved_programs.describe(features.feature_blocks)
    monkeypatch.setattr(features, "DECAY_RATES", (0.5, 0.9))
    assert saved_programs.describe(features.feature_blocks) != before


def test_the_key_is_the_same_in_another_process():
    script = """
import jax.numpy as jnp
from ase_learn2hop import descent, potentials, saved_programs
from ase_learn2hop.geometry import FREE
import jax
fire = descent.fire_descent.__wrapped__(potentials.lennard_jones(FREE), 0.1)
leaves = [jnp.zeros((13, 3)), {"b": 1, "a": frozenset({"x", "y", "z"})}]
print(saved_programs.fingerprint(fire, (("s", frozenset({"p", "q", "r"})),),
      jax.tree_util.tree_structure(leaves), jax.tree_util.tree_leaves(leaves)))
"""
    # Other string hashes: sets and dicts iterate in another order.
    keys = {run_python(script, PYTHONHASHSEED=seed).stdout for seed in ("1", "2")}
    assert len(keys) == 1


class Unknown:
    pass


def test_what_the_key_cannot_describe_is_refused():
    with pytest.raises(saved_programs.NotDescribable):
        saved_programs.describe(lambda x: x)  # a function of this test file
    with pytest.raises(saved_programs.NotDescribable):
        saved_programs.describe(functools.partial(descent.select_tree, Unknown()))
    with pytest.raises(saved_programs.NotDescribable):
        saved_programs.describe(np.array([Unknown()]))  # bytes would be addresses


@pytest.fixture
def folder(tmp_path, monkeypatch):
    # Functions of this file count as trusted here, as the package's own do.
    trusted = saved_programs.TRUSTED_MODULES | {__name__}
    monkeypatch.setattr(saved_programs, "TRUSTED_MODULES", trusted)
    saved_programs.enable(compilation_cache.ProgramFolder(tmp_path))
    yield tmp_path
    saved_programs.enable(None)


def scaled_sum(x, scale, power):
    return jnp.sum(x**power) * scale, x * scale


def saved_files(folder):
    return sorted(folder.glob("*.program"))


def test_a_saved_program_is_loaded_and_computes_the_same(folder, monkeypatch):
    x = jnp.linspace(0.0, 1.0, 12).reshape(4, 3)
    expected = jax.jit(scaled_sum, static_argnames="power")(x, 2.0, power=3)
    saved = saved_programs.saved_jit(scaled_sum, static_argnames=("power",))
    got = saved(x, 2.0, power=3)
    assert len(saved_files(folder)) == 1
    assert jax.tree_util.tree_all(jax.tree_util.tree_map(np.array_equal, got, expected))

    def no_export(*args, **kwargs):
        raise AssertionError("loaded programs are not exported again")

    monkeypatch.setattr(jax.export, "export", no_export)
    loaded = saved_programs.saved_jit(scaled_sum, static_argnames=("power",))(
        x, 2.0, power=3
    )
    assert jax.tree_util.tree_all(
        jax.tree_util.tree_map(np.array_equal, loaded, expected)
    )


def test_a_corrupt_file_is_a_miss(folder):
    x = jnp.arange(6.0)
    saved_programs.saved_jit(scaled_sum, static_argnames=("power",))(x, 1.0, power=2)
    (path,) = saved_files(folder)
    path.write_bytes(b"not a program")
    value, _ = saved_programs.saved_jit(scaled_sum, static_argnames=("power",))(
        x, 1.0, power=2
    )
    assert value == pytest.approx(55.0)
    assert path.stat().st_size > len(b"not a program")  # saved again


def with_weak_output(x):
    return x + 1.0, jnp.asarray(2)


def test_weakly_typed_outputs_are_not_saved(folder):
    # Loaded, the output would come back strongly typed, and what it feeds
    # would trace apart from plain jit's.
    _, two = saved_programs.saved_jit(with_weak_output)(jnp.ones(3))
    assert two.weak_type
    assert two == 2
    assert saved_files(folder) == []


def split_keys(keys, count):
    return jax.vmap(lambda k: jax.random.split(k, count))(keys)


def test_keys_pass_through_a_batch_split_over_devices(folder):
    keys = jax.random.split(jax.random.key(7), 4)
    (keys,) = devices.distribute((keys,), 4)
    expected = jax.jit(split_keys, static_argnames="count")(keys, count=3)
    got = saved_programs.saved_jit(split_keys, static_argnames=("count",))(
        keys, count=3
    )
    assert len(saved_files(folder)) == 1
    assert jax.dtypes.issubdtype(got.dtype, jax.dtypes.prng_key)
    assert np.array_equal(jax.random.key_data(got), jax.random.key_data(expected))


def test_untrusted_functions_run_on_plain_jit(tmp_path):
    saved_programs.enable(compilation_cache.ProgramFolder(tmp_path))
    try:
        value, _ = saved_programs.saved_jit(scaled_sum, static_argnames=("power",))(
            jnp.arange(3.0), 1.0, power=2
        )
    finally:
        saved_programs.enable(None)
    assert value == pytest.approx(5.0)
    assert saved_files(tmp_path) == []


def test_the_folder_keeps_the_most_recently_used(folder, monkeypatch):
    monkeypatch.setattr(compilation_cache, "MAX_PROGRAMS", 2)
    saved = saved_programs.saved_jit(scaled_sum, static_argnames=("power",))
    for power in (1, 2, 3):
        saved(jnp.arange(3.0), 1.0, power=power)
    assert len(saved_files(folder)) == 2

"""Tests of the one batched driver (`ase_learn2hop.driver`): its best-so-far, its
first-hit count, chunking, progress, NaN handling and per-start parameters,
each against a plain Python loop over the optimizer's ``step_fn``."""

import jax
import jax.extend.core
import jax.numpy as jnp
import numpy as np
import pytest
from lennard_jones_reference import lennard_jones_energy_fn, random_cluster

from ase_learn2hop import systems
from ase_learn2hop.descent import adam_descent, fire_descent, gradient_descent
from ase_learn2hop.driver import advance, run_batched, start

STEPS = 60


@pytest.fixture(scope="module")
def lj7_starts():
    return jnp.asarray(
        np.stack([random_cluster(7, seed, 2.2, min_distance=0.8) for seed in range(3)])
    )


def loop_energies(optimizer, positions, steps, parameters=None):
    """Energies at the start and after each step, by a plain Python loop on one
    start: ``energies[i]`` is the ``i + 1``-th force call's."""
    init_fn, step_fn = optimizer
    step_fn = jax.jit(step_fn)
    state = init_fn(positions, parameters)
    energies, positions_seen = [float(state.energy)], [np.asarray(state.positions)]
    for _ in range(steps):
        state = step_fn(state, parameters)
        energies.append(float(state.energy))
        positions_seen.append(np.asarray(state.positions))
    return np.array(energies), np.array(positions_seen), state


def assert_trees_equal(first, second):
    first_leaves, first_structure = jax.tree_util.tree_flatten(first)
    second_leaves, second_structure = jax.tree_util.tree_flatten(second)
    assert first_structure == second_structure
    for a, b in zip(first_leaves, second_leaves, strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


@pytest.mark.parametrize(
    "optimizer",
    [
        fire_descent(lennard_jones_energy_fn, 0.1),
        adam_descent(lennard_jones_energy_fn, 0.05),
    ],
    ids=["fire", "adam"],
)
def test_best_so_far_and_first_hit_match_a_python_loop(lj7_starts, optimizer):
    loops = [loop_energies(optimizer, start, STEPS) for start in lj7_starts]
    result = run_batched(optimizer, lj7_starts, STEPS, record_every=1)
    carry = result.carry
    np.testing.assert_array_equal(carry.force_calls, STEPS + 1)
    np.testing.assert_array_equal(result.record_steps, np.arange(1, STEPS + 1))
    for index, (energies, positions, state) in enumerate(loops):
        np.testing.assert_allclose(
            carry.state.positions[index], state.positions, atol=1e-12
        )
        np.testing.assert_allclose(
            result.energy_records[index], energies[1:], rtol=1e-12
        )
        # Best so far: the minimum of the per-step energies, and where it was.
        lowest = int(np.argmin(energies))
        np.testing.assert_allclose(
            carry.best_energy[index], energies[lowest], rtol=1e-12
        )
        np.testing.assert_allclose(
            carry.best_positions[index], positions[lowest], atol=1e-12
        )

    # First hit: force calls spent when the energy first reached the target.
    # Targets between energies seen, so that starts hit at different calls.
    all_energies = np.concatenate([energies for energies, _, _ in loops])
    first_hits = []
    for quantile in (0.1, 0.3, 0.5, 0.7, 0.9):
        target = float(np.quantile(all_energies, quantile)) + 1e-9
        hit = run_batched(optimizer, lj7_starts, STEPS, target_energy=target)
        for index, (energies, _, _) in enumerate(loops):
            hits = np.flatnonzero(energies <= target)
            expected = hits[0] + 1 if hits.size else -1
            assert int(hit.carry.first_hit[index]) == expected
            first_hits.append(expected)
    # The comparison covered misses and hits at several different calls.
    assert -1 in first_hits
    assert len({hit for hit in first_hits if hit > 1}) > 3

    unreachable = run_batched(optimizer, lj7_starts, STEPS, target_energy=-1e6)
    np.testing.assert_array_equal(unreachable.carry.first_hit, -1)
    # A start already below the target is hit at the first force call.
    at_start = run_batched(optimizer, lj7_starts, STEPS, target_energy=1e6)
    np.testing.assert_array_equal(at_start.carry.first_hit, 1)


def test_best_is_below_the_last_energy_of_a_non_monotonic_run(lj7_starts):
    # FIRE at its default time step overshoots: the best-so-far must be kept.
    optimizer = fire_descent(lennard_jones_energy_fn, 0.1)
    energies, _, _ = loop_energies(optimizer, lj7_starts[0], STEPS)
    assert (np.diff(energies) > 0).any()
    result = run_batched(optimizer, lj7_starts[:1], STEPS)
    np.testing.assert_allclose(result.carry.best_energy[0], energies.min(), rtol=1e-12)


def test_chunking_does_not_change_results(lj7_starts):
    optimizer = fire_descent(lennard_jones_energy_fn, 0.1)
    target = -12.0
    chunked = run_batched(
        optimizer, lj7_starts, STEPS, target_energy=target, chunk_steps=7
    )
    whole = run_batched(
        optimizer, lj7_starts, STEPS, target_energy=target, chunk_steps=1000
    )
    assert_trees_equal(chunked.carry, whole.carry)
    np.testing.assert_array_equal(chunked.record_steps, whole.record_steps)
    np.testing.assert_array_equal(chunked.energy_records, whole.energy_records)

    # Stopping and going on with `advance` is the same run too.
    carry = start(optimizer, lj7_starts, target_energy=target)
    first = advance(optimizer, carry, 25, target_energy=target, record_every=1)
    second = advance(
        optimizer,
        first.carry,
        STEPS - 25,
        target_energy=target,
        record_every=1,
        first_step=25,
    )
    assert_trees_equal(second.carry, whole.carry)
    np.testing.assert_array_equal(
        np.concatenate([first.record_steps, second.record_steps]),
        np.arange(1, STEPS + 1),
    )


def test_stop_at_target_stops_each_start_at_its_first_hit(lj7_starts):
    # Against the Python loop: each start's force calls end at its first hit.
    optimizer = fire_descent(lennard_jones_energy_fn, 0.1)
    loops = [loop_energies(optimizer, start, STEPS)[0] for start in lj7_starts]
    target = float(np.quantile(np.concatenate(loops), 0.3)) + 1e-9
    hits = [np.flatnonzero(energies <= target) for energies in loops]
    expected = [int(hit[0]) + 1 if hit.size else STEPS + 1 for hit in hits]
    assert len(set(expected)) > 1  # the starts stop at different calls
    for batch in (lj7_starts, lj7_starts[:1]):  # vmapped, and a batch of one
        carry = start(optimizer, batch, target_energy=target)
        result = advance(
            optimizer, carry, STEPS, target_energy=target, chunk_steps=7,
            record_every=1, stop_at_target=True,
        )  # fmt: skip
        calls = np.asarray(result.carry.force_calls)
        np.testing.assert_array_equal(calls, expected[: len(batch)])
        np.testing.assert_array_equal(result.carry.first_hit, np.where(
            calls <= STEPS, calls, -1))  # fmt: skip
        # Steps made: the longest start's; the records stop there.
        assert result.steps == max(calls) - 1
        np.testing.assert_array_equal(
            result.record_steps, np.arange(1, result.steps + 1)
        )
        for index, energies in enumerate(loops[: len(batch)]):
            made = calls[index] - 1
            np.testing.assert_allclose(
                result.energy_records[index, :made], energies[1 : made + 1],
                rtol=1e-12,
            )  # fmt: skip
            # A start that stopped repeats its last energy.
            np.testing.assert_allclose(
                result.energy_records[index, made:], energies[made], rtol=1e-12
            )


def test_runs_of_other_lengths_compile_nothing_new(lj7_starts):
    # Every chunk runs on one program compiled for chunk_steps, whatever the
    # run's length and its remainder chunk (issue 12: a second run of another
    # length must not pay the compilation again).
    from ase_learn2hop.driver import driver_advance

    optimizer = gradient_descent(lennard_jones_energy_fn, 1e-3)
    run_batched(optimizer, lj7_starts, 250, chunk_steps=100)
    compiled = driver_advance._cache_size()
    for steps in (130, 37, 512):
        result = run_batched(optimizer, lj7_starts, steps, chunk_steps=100)
        assert int(result.carry.force_calls[0]) == steps + 1
    assert driver_advance._cache_size() == compiled


def test_progress_is_called_with_chunks_summing_to_steps(lj7_starts):
    optimizer = gradient_descent(lennard_jones_energy_fn, 1e-3)
    chunks = []
    run_batched(optimizer, lj7_starts, STEPS, chunk_steps=7, progress=chunks.append)
    assert sum(chunks) == STEPS
    assert len(chunks) > 1 and all(0 < chunk <= 7 for chunk in chunks)

    chunks.clear()
    run_batched(
        optimizer,
        lj7_starts,
        STEPS,
        chunk_steps=20,
        record_every=8,
        progress=chunks.append,
    )
    assert sum(chunks) == STEPS


def blows_up_energy(positions, parameters):
    """Harmonic pull of every coordinate towards 10, NaN once the atoms' mean
    coordinate passes ``parameters`` (the NaN region has zero gradient, so a run
    that enters it stays there)."""
    energy = jnp.sum((positions - 10.0) ** 2)
    return jnp.where(jnp.mean(positions) > parameters, jnp.nan, energy)


def test_nan_energies_never_become_best():
    optimizer = gradient_descent(blows_up_energy, 0.05)
    starts = jnp.zeros((2, 4, 3))
    # The first start enters the NaN region after a few steps, the second starts
    # in it.
    threshold = jnp.array([5.0, -1.0])
    loop, positions, _ = loop_energies(optimizer, starts[0], 30, threshold[0])
    finite = np.isfinite(loop)
    assert finite[0] and not finite[-1]

    result = run_batched(
        optimizer, starts, 30, threshold, target_energy=1e6, record_every=1
    )
    carry = result.carry
    assert np.isnan(np.asarray(carry.state.energy)).all()
    # The best is the lowest finite energy, where it was evaluated.
    lowest = int(np.nanargmin(loop))
    np.testing.assert_allclose(carry.best_energy[0], loop[lowest], rtol=1e-12)
    np.testing.assert_allclose(carry.best_positions[0], positions[lowest], atol=1e-12)
    # A start that never had a finite energy has no best, stays where it
    # started, and never reaches any target.
    assert carry.best_energy[1] == np.inf
    np.testing.assert_array_equal(carry.best_positions[1], starts[1])
    assert int(carry.first_hit[0]) == 1 and int(carry.first_hit[1]) == -1


def test_parameters_batched_per_start_match_each_system_alone():
    first = systems.system_from_name("Ag19Au19")
    second = systems.system_from_name("Ag30Au8")
    assert first.energy_fn is second.energy_fn
    starts = jnp.concatenate(
        [
            systems.starting_structures(jax.random.key(0), first, 1),
            systems.starting_structures(jax.random.key(1), second, 1),
        ]
    )
    parameters = jax.tree_util.tree_map(
        lambda a, b: jnp.stack([jnp.asarray(a), jnp.asarray(b)]),
        first.potential_parameters,
        second.potential_parameters,
    )
    optimizer = adam_descent(first.energy_fn, 1e-2)
    steps = 30
    together = run_batched(optimizer, starts, steps, parameters, record_every=1)
    for index, system in enumerate((first, second)):
        alone = run_batched(
            optimizer,
            starts[index : index + 1],
            steps,
            systems.broadcast_to_batch(system.potential_parameters, 1),
            record_every=1,
        )
        np.testing.assert_allclose(
            together.energy_records[index], alone.energy_records[0], rtol=1e-12
        )
        np.testing.assert_allclose(
            together.carry.best_energy[index], alone.carry.best_energy[0], rtol=1e-12
        )
        np.testing.assert_allclose(
            together.carry.state.positions[index],
            alone.carry.state.positions[0],
            atol=1e-12,
        )
        # ... and they are the system's own energies.
        np.testing.assert_allclose(
            together.carry.state.energy[index],
            system.energy_fn(
                together.carry.state.positions[index], system.potential_parameters
            ),
            rtol=1e-12,
        )
    # The two systems really differ: swapping their parameters changes energies.
    swapped = jax.tree_util.tree_map(lambda leaf: leaf[::-1], parameters)
    other = run_batched(optimizer, starts, 0, swapped)
    assert not np.allclose(other.carry.state.energy, together.carry.state.energy)


@pytest.mark.parametrize("stop_at_target", [False, True])
def test_the_step_loop_counts_in_the_type_of_its_bound(lj7_starts, stop_at_target):
    # An int32 counter compared with an int64 bound (x64, the product's mode)
    # made one learned LJ13 step of one search cost 26 instead of 20 µs
    # (benchmarks/results/step_cost.md): the loop's condition must compare
    # like with like, with no conversion.
    from ase_learn2hop.driver import driver_advance

    optimizer = gradient_descent(lennard_jones_energy_fn, 1e-3)
    carry = start(optimizer, lj7_starts[:1])
    bound = jnp.asarray(10)
    target = jnp.asarray(-jnp.inf)

    def chunk(carry, bound):
        return driver_advance(
            optimizer, carry, None, None, target, bound, 10, stop_at_target
        )

    jaxpr = jax.make_jaxpr(chunk)(carry, bound)

    def loops(jaxpr):
        for equation in jaxpr.eqns:
            if equation.primitive.name == "while":
                yield equation
            for parameter in equation.params.values():
                inner = getattr(parameter, "jaxpr", None)
                if inner is not None:
                    yield from loops(getattr(inner, "jaxpr", inner))

    (loop,) = list(loops(jaxpr.jaxpr))
    condition = loop.params["cond_jaxpr"].jaxpr
    comparisons = [
        [variable.aval.dtype for variable in equation.invars]
        for equation in condition.eqns
        if equation.primitive.name == "lt"
    ]
    assert bound.dtype == jnp.int64
    assert [jnp.int64, jnp.int64] in comparisons
    assert all(left == right for left, right in comparisons)
    narrowed = [
        equation for equation in condition.eqns
        if equation.primitive.name == "convert_element_type"
        and jnp.issubdtype(equation.params["new_dtype"], jnp.integer)
        and equation.params["new_dtype"] != jnp.int64
    ]  # fmt: skip
    assert narrowed == []


def test_batch_cond_gives_each_start_its_own_branch():
    # Under the driver's vmap axis the rare branch runs only when some start
    # takes it; each start still gets what lax.cond gives it, and outside the
    # batch (one search) it is lax.cond itself.
    from ase_learn2hop.driver import VMAP_AXIS, batch_cond

    def one(x, take):
        return batch_cond(take, lambda: jnp.sin(x) * 3.0, lambda: x - 1.0)

    def plain(x, take):
        return jax.lax.cond(take, lambda: jnp.sin(x) * 3.0, lambda: x - 1.0)

    x = jnp.linspace(-2.0, 2.0, 6)
    for take in ([True, False, False, True, False, False], [False] * 6):
        take = jnp.asarray(take)
        batched = jax.jit(jax.vmap(one, axis_name=VMAP_AXIS))(x, take)
        np.testing.assert_array_equal(batched, jax.vmap(plain)(x, take))
    assert float(one(x[0], jnp.asarray(True))) == float(plain(x[0], True))


def test_batch_select_keeps_shared_weights_shared():
    # Under the driver's vmap axis each start gets what lax.cond gives it,
    # and a weight matrix the branches close over multiplies the batch's
    # rows in one product (vmap of lax.cond would copy it per start: a
    # product with a batch dimension). Outside the batch: lax.cond itself.
    from ase_learn2hop.driver import VMAP_AXIS, batch_select

    weights = jnp.arange(12.0).reshape(4, 3) / 7.0

    def one(x, take):
        return batch_select(take, lambda: jnp.tanh(x @ weights), lambda: x[:3] - 1.0)

    def plain(x, take):
        return jax.lax.cond(take, lambda: jnp.tanh(x @ weights), lambda: x[:3] - 1.0)

    x = jnp.linspace(-2.0, 2.0, 24).reshape(6, 4)
    take = jnp.asarray([True, False, False, True, True, False])
    batched = jax.vmap(one, axis_name=VMAP_AXIS)
    np.testing.assert_allclose(
        jax.jit(batched)(x, take), jax.vmap(plain)(x, take), rtol=1e-6
    )

    def products(function, *arguments):
        equations = jax.make_jaxpr(function)(*arguments).eqns
        found = [eq for eq in equations if eq.primitive.name == "dot_general"]
        for equation in equations:
            for inner in jax.extend.core.jaxprs_in_params(equation.params):
                found += [e for e in inner.eqns if e.primitive.name == "dot_general"]
        return found

    (product,) = products(batched, x, take)
    assert product.params["dimension_numbers"][1] == ((), ())
    (copied,) = products(jax.vmap(plain), x, take)
    assert copied.params["dimension_numbers"][1] != ((), ())
    single = jax.make_jaxpr(one)(x[0], take[0])
    assert "cond" in [eq.primitive.name for eq in single.eqns]
    assert float(one(x[0], jnp.asarray(True))[0]) == float(plain(x[0], True)[0])

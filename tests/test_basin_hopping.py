"""Tests of the paper's basin hopping: exact step accounting, its acceptance rules,
its perturbation, and that it beats a single local descent on LJ13."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from lennard_jones_reference import (
    LJ13_GLOBAL_MINIMUM_ENERGY,
    lennard_jones_energy,
    lennard_jones_energy_fn,
    random_cluster,
)

from ase_learn2hop.basin_hopping import (
    basin_hopping,
)
from ase_learn2hop.descent import adam_descent
from ase_learn2hop.driver import polish_batch, run_batched
from ase_learn2hop.geometry import FREE, periodic_cube


def flat_energy(positions, parameters):
    """Zero everywhere: no force, so only the perturbations move the atoms."""
    return 0.0 * jnp.sum(positions)


def lj13_starts(count):
    return jnp.asarray(
        np.stack(
            [random_cluster(13, seed, 2.4, min_distance=0.8) for seed in range(count)]
        )
    )


# Calls of the energy function counted at run time, inside the compiled search.
_energy_calls = []


def counted_lennard_jones_energy(positions, parameters):
    jax.debug.callback(lambda: _energy_calls.append(1))
    return lennard_jones_energy(positions)


@pytest.mark.parametrize("budget", [1, 11, 12, 25, 33])
def test_charges_exactly_the_budget(budget):
    descent_steps = 10
    _energy_calls.clear()
    result = basin_hopping(
        counted_lennard_jones_energy,
        lj13_starts(1),
        budget,
        jax.random.key(0),
        descent_steps=descent_steps,
    )
    jax.block_until_ready(result)
    assert result.energy_evaluations == budget
    assert len(_energy_calls) == budget
    # A descent costs descent_steps + 1 evaluations; the last one may be cut short.
    assert result.n_hops == math.ceil(budget / (descent_steps + 1))


def test_first_descent_is_a_plain_adam_descent():
    starts = lj13_starts(3)
    descent_steps = 50
    result = basin_hopping(
        lennard_jones_energy_fn,
        starts,
        descent_steps + 1,
        jax.random.key(1),
        descent_steps=descent_steps,
    )
    adam = run_batched(adam_descent(lennard_jones_energy_fn, 1e-2), starts, 50).carry
    np.testing.assert_allclose(result.positions, adam.state.positions, atol=1e-10)
    np.testing.assert_allclose(result.energy, adam.state.energy, rtol=1e-10)
    np.testing.assert_allclose(result.best_energy, adam.best_energy, rtol=1e-10)
    assert result.n_hops == 1
    assert jnp.all(result.accepted == 0)


def test_perturbation_is_gaussian_with_standard_deviation_step_size():
    step_size, n_hops = 0.3, 9
    starts = jnp.zeros((64, 13, 3))
    # Metropolis at any temperature accepts every hop on a flat landscape, so
    # the minimum random-walks by n_hops - 1 Gaussian displacements.
    walk = basin_hopping(
        flat_energy,
        starts,
        2 * n_hops,
        jax.random.key(2),
        step_size=step_size,
        descent_steps=1,
        temperature=1.0,
    )
    assert walk.n_hops == n_hops
    assert jnp.all(walk.accepted == n_hops - 1)
    displacements = np.asarray(walk.positions).ravel()
    expected = step_size * math.sqrt(n_hops - 1)
    # 8000 samples: the standard deviation is known to about 1 %.
    assert abs(displacements.std() / expected - 1) < 0.05
    assert abs(displacements.mean()) < 0.05 * expected
    # A uniform draw in [-a, a] has kurtosis 1.8, a Gaussian 3.
    kurtosis = np.mean(displacements**4) / np.mean(displacements**2) ** 2
    assert abs(kurtosis - 3.0) < 0.3

    # Greedy acceptance never takes a hop that is not strictly lower.
    stay = basin_hopping(
        flat_energy, starts, 2 * n_hops, jax.random.key(2), descent_steps=1
    )
    assert jnp.all(stay.accepted == 0)
    np.testing.assert_array_equal(stay.positions, starts)


def test_basin_hopping_beats_a_single_adam_descent_on_lj13():
    starts = lj13_starts(32)
    descent_steps, n_hops = 300, 40
    result = basin_hopping(
        lennard_jones_energy_fn,
        starts,
        n_hops * (descent_steps + 1),
        jax.random.key(3),
        step_size=0.2,
        descent_steps=descent_steps,
        record_every=1000,
    )
    single = run_batched(
        adam_descent(lennard_jones_energy_fn, 1e-2), starts, descent_steps
    ).carry.state
    # One record every 1000 steps, at the steps the driver reports (it also
    # records the current energy after the last, partial block).
    steps = n_hops * (descent_steps + 1) - 1
    record_steps = np.asarray(result.run.record_steps)
    np.testing.assert_array_equal(
        record_steps[: steps // 1000], 1000 * np.arange(1, steps // 1000 + 1)
    )
    assert set(record_steps[steps // 1000 :]) <= {steps}
    assert result.energy_trajectory.shape == (32, len(record_steps))
    np.testing.assert_array_equal(result.run.carry.force_calls, steps + 1)

    # Never worse than its own first local minimum (the same Adam descent, up to
    # rounding), and the greedy chain ends at its lowest accepted minimum.
    assert jnp.all(result.best_energy <= single.energy + 1e-9)
    assert jnp.all(result.energy <= single.energy + 1e-9)
    np.testing.assert_allclose(
        jax.vmap(lennard_jones_energy)(result.positions), result.energy, rtol=1e-12
    )

    _, hopped = polish_batch(
        lennard_jones_energy_fn, result.best_positions, None, FREE, 1000, 1e-3
    )
    _, descended = polish_batch(
        lennard_jones_energy_fn, single.positions, None, FREE, 1000, 1e-3
    )
    assert jnp.all(hopped >= LJ13_GLOBAL_MINIMUM_ENERGY - 1e-6)
    improvable = descended > LJ13_GLOBAL_MINIMUM_ENERGY + 1e-3
    improved = hopped < descended - 1e-3
    # 77 % to 94 % of the improvable starts improved, and the mean dropped by 1.8
    # to 2.9, over five keys and two sets of 32 starts when this test was written:
    # the thresholds below hold with a wide margin, not by a lucky seed.
    assert improved[improvable].sum() > 0.5 * improvable.sum()
    assert hopped.mean() < descended.mean() - 1.0


def test_periodic_cube_keeps_positions_in_the_cell():
    box_length = 3.0

    def periodic_energy(positions, parameters):
        return -jnp.sum(jnp.cos(2 * jnp.pi * positions / box_length))

    starts = jnp.asarray(np.random.default_rng(0).uniform(0.0, 3.0, size=(2, 5, 3)))
    result = basin_hopping(
        periodic_energy,
        starts,
        40,
        jax.random.key(4),
        descent_steps=9,
        step_size=0.8,
        geometry=periodic_cube(box_length),
    )
    for positions in (result.positions, result.best_positions):
        assert jnp.all((positions >= 0.0) & (positions < box_length))


@pytest.mark.parametrize(
    "budget, options, message",
    [
        (0, {}, "budget"),
        (10.5, {}, "budget"),
        (10, {"descent_steps": 0}, "descent_steps"),
        (10, {"step_size": 0.0}, "step_size"),
        (10, {"temperature": -1.0}, "temperature"),
    ],
)
def test_rejects_bad_input(budget, options, message):
    with pytest.raises(ValueError, match=message):
        basin_hopping(
            lennard_jones_energy_fn,
            lj13_starts(1),
            budget,
            jax.random.key(0),
            **options,
        )


def test_rejects_unbatched_positions():
    with pytest.raises(ValueError, match="batch"):
        basin_hopping(lennard_jones_energy_fn, lj13_starts(1)[0], 10, jax.random.key(0))

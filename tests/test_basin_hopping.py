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
    random_cluster,
)

import ase_learn2hop  # noqa: F401  (enables float64 before any array is made)
from ase_learn2hop.basin_hopping import (
    BASIN_HOPPING_STEP_SIZES,
    basin_hopping,
)
from ase_learn2hop.descent import adam_descent, polish, run_optimizer


def flat_energy(positions):
    """Zero everywhere: no force, so only the perturbations move the atoms."""
    return 0.0 * jnp.sum(positions)


def lj13_starts(count):
    return jnp.asarray(
        np.stack(
            [random_cluster(13, seed, 2.4, min_distance=0.8) for seed in range(count)]
        )
    )


def test_step_sizes_are_the_papers():
    assert BASIN_HOPPING_STEP_SIZES == (0.2, 0.4, 0.6, 0.8)


# Calls of the energy function counted at run time, inside the compiled search.
_energy_calls = []


def counted_lennard_jones_energy(positions):
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
        lennard_jones_energy,
        starts,
        descent_steps + 1,
        jax.random.key(1),
        descent_steps=descent_steps,
    )
    adam = run_optimizer(*adam_descent(lennard_jones_energy, 1e-2), starts, 50)
    np.testing.assert_allclose(result.positions, adam.positions, atol=1e-10)
    np.testing.assert_allclose(result.energy, adam.energy, rtol=1e-10)
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
        lennard_jones_energy,
        starts,
        n_hops * (descent_steps + 1),
        jax.random.key(3),
        step_size=0.2,
        descent_steps=descent_steps,
        record_every=1000,
    )
    single = run_optimizer(
        *adam_descent(lennard_jones_energy, 1e-2), starts, descent_steps
    )
    assert result.energy_trajectory.shape == (32, n_hops * (descent_steps + 1) // 1000)

    # Never worse than its own first local minimum (the same Adam descent, up to
    # rounding), and the greedy chain ends at its lowest accepted minimum.
    assert jnp.all(result.best_energy <= single.energy + 1e-9)
    assert jnp.all(result.energy <= single.energy + 1e-9)
    np.testing.assert_allclose(
        jax.vmap(lennard_jones_energy)(result.positions), result.energy, rtol=1e-12
    )

    hopped = polish(lennard_jones_energy, result.best_positions).energy
    descended = polish(lennard_jones_energy, single.positions).energy
    assert jnp.all(hopped >= LJ13_GLOBAL_MINIMUM_ENERGY - 1e-6)
    improvable = descended > LJ13_GLOBAL_MINIMUM_ENERGY + 1e-3
    improved = hopped < descended - 1e-3
    # 77 % to 94 % of the improvable starts improved, and the mean dropped by 1.8
    # to 2.9, over five keys and two sets of 32 starts when this test was written:
    # the thresholds below hold with a wide margin, not by a lucky seed.
    assert improved[improvable].sum() > 0.5 * improvable.sum()
    assert hopped.mean() < descended.mean() - 1.0


def test_box_length_keeps_positions_in_the_cell():
    box_length = 3.0

    def periodic_energy(positions):
        return -jnp.sum(jnp.cos(2 * jnp.pi * positions / box_length))

    starts = jnp.asarray(np.random.default_rng(0).uniform(0.0, 3.0, size=(2, 5, 3)))
    result = basin_hopping(
        periodic_energy,
        starts,
        40,
        jax.random.key(4),
        descent_steps=9,
        step_size=0.8,
        box_length=box_length,
    )
    for positions in (result.positions, result.best_positions):
        assert jnp.all((positions >= 0.0) & (positions < box_length))


def test_rejects_an_empty_budget():
    with pytest.raises(ValueError, match="budget"):
        basin_hopping(lennard_jones_energy, lj13_starts(1), 0, jax.random.key(0))

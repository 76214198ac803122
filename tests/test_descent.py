"""Tests of the classical local optimizers against ASE, optax, a by-hand Adam and
published minima, run one structure at a time and on the batched driver."""

from pathlib import Path

import ase.io
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from ase import Atoms
from ase.calculators.lj import LennardJones
from ase.optimize import FIRE
from lennard_jones_reference import (
    LJ13_GLOBAL_MINIMUM_ENERGY,
    lennard_jones_energy,
    lennard_jones_energy_fn,
    random_cluster,
)

from ase_learn2hop.descent import (
    adam_descent,
    fire_descent,
    gradient_descent,
    polish,
)
from ase_learn2hop.driver import polish_batch, run_batched
from ase_learn2hop.geometry import FREE, periodic_cell, periodic_cube

DATA = Path(__file__).parent / "data"


def ase_lennard_jones_atoms(positions):
    """ASE atoms whose calculator is the same potential: sigma = 2^(-1/6)."""
    atoms = Atoms(f"Ar{len(positions)}", positions=np.asarray(positions))
    # rc far beyond the cluster: the energy shift at rc is below 1e-17 per pair.
    atoms.calc = LennardJones(sigma=2 ** (-1 / 6), epsilon=1.0, rc=1000.0)
    return atoms


@pytest.fixture(scope="module")
def lj7_starts():
    return jnp.asarray(np.stack([random_cluster(7, seed) for seed in range(4)]))


def test_test_potential_matches_ase_lennard_jones():
    positions = random_cluster(7, seed=11)
    atoms = ase_lennard_jones_atoms(positions)
    energy, gradient = jax.value_and_grad(lennard_jones_energy)(jnp.asarray(positions))
    np.testing.assert_allclose(energy, atoms.get_potential_energy(), rtol=1e-12)
    np.testing.assert_allclose(-gradient, atoms.get_forces(), atol=1e-10)


def test_gradient_descent_follows_ase_forces():
    positions = random_cluster(7, seed=3)
    learning_rate = 0.002
    init_fn, step_fn = gradient_descent(lennard_jones_energy_fn, learning_rate)
    state = init_fn(jnp.asarray(positions), None)
    atoms = ase_lennard_jones_atoms(positions)
    for _ in range(5):
        state = step_fn(state, None)
        atoms.positions = atoms.positions + learning_rate * atoms.get_forces()
        np.testing.assert_allclose(state.positions, atoms.positions, atol=1e-12)
        np.testing.assert_allclose(
            state.energy, atoms.get_potential_energy(), rtol=1e-12
        )
        np.testing.assert_allclose(-state.gradient, atoms.get_forces(), atol=1e-10)


def test_adam_matches_adam_by_hand_and_optax():
    positions = jnp.asarray(random_cluster(7, seed=4))
    learning_rate, b1, b2, eps = 0.01, 0.9, 0.999, 1e-8
    init_fn, step_fn = adam_descent(lennard_jones_energy_fn, learning_rate)
    state = init_fn(positions, None)

    # Kingma & Ba (2015), algorithm 1, written out here.
    by_hand = np.asarray(positions)
    first_moment = np.zeros_like(by_hand)
    second_moment = np.zeros_like(by_hand)
    gradient_fn = jax.grad(lennard_jones_energy)

    reference = optax.adam(learning_rate)
    reference_state = reference.init(positions)
    reference_positions = positions
    for step in range(1, 11):
        state = step_fn(state, None)

        gradient = np.asarray(gradient_fn(jnp.asarray(by_hand)))
        first_moment = b1 * first_moment + (1 - b1) * gradient
        second_moment = b2 * second_moment + (1 - b2) * gradient**2
        corrected_first = first_moment / (1 - b1**step)
        corrected_second = second_moment / (1 - b2**step)
        by_hand = by_hand - learning_rate * corrected_first / (
            np.sqrt(corrected_second) + eps
        )

        updates, reference_state = reference.update(
            gradient_fn(reference_positions), reference_state
        )
        reference_positions = optax.apply_updates(reference_positions, updates)

        np.testing.assert_allclose(state.positions, by_hand, atol=1e-12)
        np.testing.assert_allclose(state.positions, reference_positions, atol=1e-12)
        np.testing.assert_allclose(
            state.energy, lennard_jones_energy(state.positions), rtol=1e-12
        )


@pytest.mark.parametrize("learning_rate", [0.1, 0.01])
def test_fire_matches_ase_fire_step_by_step(learning_rate):
    positions = random_cluster(7, seed=5, side=2.2, min_distance=0.8)
    init_fn, step_fn = fire_descent(lennard_jones_energy_fn, learning_rate)
    step_fn = jax.jit(step_fn)
    state = init_fn(jnp.asarray(positions), None)
    atoms = ase_lennard_jones_atoms(positions)
    ase_fire = FIRE(atoms, dt=learning_rate, logfile=None)
    time_steps, displacement_norms = [], []
    for _ in range(50):
        ase_fire.step()
        previous_positions = state.positions
        state = step_fn(state, None)
        time_steps.append(float(state.time_step))
        displacement_norms.append(
            float(jnp.linalg.norm(state.positions - previous_positions))
        )
        np.testing.assert_allclose(state.positions, atoms.positions, atol=1e-8)
        np.testing.assert_allclose(state.time_step, ase_fire.dt, rtol=1e-12)
        np.testing.assert_allclose(
            state.velocity, ase_fire.vel.reshape(-1, 3), atol=1e-8
        )
    # The comparison must have exercised both the growth and the uphill reset.
    changes = np.diff(time_steps)
    assert (changes > 0).any() and (changes < 0).any()
    if learning_rate == 0.1:
        # ... and, at ASE's default time step, the max_step clipping.
        assert np.isclose(displacement_norms, 0.2, rtol=1e-12).any()


def test_fire_limits_each_step_to_max_step():
    positions = random_cluster(7, seed=6, min_distance=0.7)
    init_fn, step_fn = fire_descent(lennard_jones_energy_fn, learning_rate=0.1)
    state = init_fn(jnp.asarray(positions), None)
    for _ in range(10):
        new_state = step_fn(state, None)
        assert jnp.linalg.norm(new_state.positions - state.positions) <= 0.2 + 1e-12
        state = new_state


def relaxes_no_further_with_ase(positions, energy):
    """True if ASE's FIRE, from our structure slightly rattled, comes back to the
    same energy: the structure is a local minimum, not a saddle."""
    atoms = ase_lennard_jones_atoms(positions)
    atoms.rattle(stdev=1e-3, seed=0)
    FIRE(atoms, logfile=None).run(fmax=1e-6, steps=3000)
    return abs(atoms.get_potential_energy() - energy) < 1e-7


@pytest.mark.parametrize(
    "make_optimizer, learning_rate",
    [(gradient_descent, 0.005), (adam_descent, 0.01), (fire_descent, 0.01)],
)
def test_optimizer_then_polish_reaches_local_minimum(
    lj7_starts, make_optimizer, learning_rate
):
    optimizer = make_optimizer(lennard_jones_energy_fn, learning_rate)
    result = run_batched(optimizer, lj7_starts, 500)
    positions, energies = polish_batch(
        lennard_jones_energy_fn, result.carry.state.positions, None, FREE, 1000, 1e-3
    )
    forces = -jax.vmap(jax.grad(lennard_jones_energy))(positions)
    assert jnp.max(jnp.abs(forces)) < 1e-3
    np.testing.assert_allclose(
        jax.vmap(lennard_jones_energy)(positions), energies, rtol=1e-12
    )
    for structure, energy in zip(positions, energies, strict=True):
        assert relaxes_no_further_with_ase(structure, float(energy))


# Calls of the energy function counted at run time, inside the compiled polish.
_energy_calls = []


def counted_lennard_jones_energy(positions, parameters):
    jax.debug.callback(lambda: _energy_calls.append(1))
    return lennard_jones_energy(positions)


def test_polish_recovers_lj13_global_minimum():
    atoms = ase.io.read(DATA / "lj13_global_minimum.xyz")
    starts = np.stack(
        [
            atoms.positions + np.random.default_rng(seed).normal(0, 0.03, (13, 3))
            for seed in range(3)
        ]
    )
    for start in starts:
        _energy_calls.clear()
        positions, energy = polish(counted_lennard_jones_energy, jnp.asarray(start))
        jax.block_until_ready(energy)
        np.testing.assert_allclose(energy, LJ13_GLOBAL_MINIMUM_ENERGY, atol=1e-6)
        np.testing.assert_allclose(
            energy, lennard_jones_energy(positions), rtol=1e-12
        )
        # The paper's polish: 1000 steps, one evaluation at the start and per step.
        assert len(_energy_calls) == 1001
    # The batched polish is the same polish.
    positions, energies = polish_batch(
        lennard_jones_energy_fn, jnp.asarray(starts), None, FREE, 1000, 1e-3
    )
    for index, start in enumerate(starts):
        single_positions, single_energy = polish(
            lennard_jones_energy_fn, jnp.asarray(start)
        )
        np.testing.assert_allclose(positions[index], single_positions, atol=1e-12)
        np.testing.assert_allclose(energies[index], single_energy, rtol=1e-12)


def test_batched_run_equals_per_start_runs(lj7_starts):
    optimizer = fire_descent(lennard_jones_energy_fn, 0.01)
    batched = run_batched(optimizer, lj7_starts, 60).carry
    for index in range(lj7_starts.shape[0]):
        single = run_batched(optimizer, lj7_starts[index : index + 1], 60).carry
        np.testing.assert_allclose(
            single.state.positions[0], batched.state.positions[index], atol=1e-12
        )
        np.testing.assert_allclose(
            single.state.energy[0], batched.state.energy[index], rtol=1e-12
        )
        np.testing.assert_allclose(
            single.best_energy[0], batched.best_energy[index], rtol=1e-12
        )


def test_run_reports_best_counts_and_trajectory(lj7_starts):
    optimizer = adam_descent(lennard_jones_energy_fn, 0.01)
    result = run_batched(optimizer, lj7_starts, 100, record_every=25)
    carry = result.carry
    np.testing.assert_array_equal(carry.force_calls, 101)
    np.testing.assert_array_equal(result.record_steps, [25, 50, 75, 100])
    assert result.energy_records.shape == (lj7_starts.shape[0], 4)
    np.testing.assert_allclose(result.energy_records[:, -1], carry.state.energy)
    start_energy = jax.vmap(lennard_jones_energy)(lj7_starts)
    assert jnp.all(carry.best_energy <= jnp.minimum(carry.state.energy, start_energy))
    np.testing.assert_allclose(
        jax.vmap(lennard_jones_energy)(carry.best_positions),
        carry.best_energy,
        rtol=1e-12,
    )
    np.testing.assert_allclose(
        jax.vmap(lennard_jones_energy)(carry.state.positions),
        carry.state.energy,
        rtol=1e-12,
    )
    shorter = run_batched(optimizer, lj7_starts, 60, record_every=25)
    np.testing.assert_array_equal(shorter.carry.force_calls, 61)
    np.testing.assert_array_equal(shorter.record_steps[:2], [25, 50])
    np.testing.assert_allclose(
        shorter.energy_records[:, :2], result.energy_records[:, :2]
    )


@pytest.mark.parametrize(
    "geometry",
    [
        periodic_cube(3.0),
        periodic_cell([[3.0, 0.0, 0.0], [1.0, 3.0, 0.0], [0.5, 0.5, 3.0]]),
    ],
    ids=["cube", "skewed cell"],
)
def test_periodic_geometry_wraps_positions_into_the_cell(geometry):
    box_length = 3.0

    def periodic_energy(positions, parameters):
        return -jnp.sum(jnp.cos(2 * jnp.pi * positions / box_length))

    starts = jnp.asarray(np.random.default_rng(0).uniform(-4.0, 7.0, size=(2, 5, 3)))
    positions, energies = polish_batch(
        periodic_energy, starts, None, geometry, 50, 1e-3
    )
    fractional = np.asarray(positions) @ np.linalg.inv(geometry.cell_matrix)
    assert np.all((fractional >= 0.0) & (fractional < 1.0))
    np.testing.assert_allclose(
        jax.vmap(periodic_energy, (0, None))(positions, None), energies, rtol=1e-12
    )
    # Every optimizer moves atoms through the geometry.
    for optimizer in (
        gradient_descent(periodic_energy, 1e-2, geometry),
        adam_descent(periodic_energy, 1e-1, geometry),
        fire_descent(periodic_energy, 1e-1, geometry),
    ):
        state = run_batched(optimizer, starts, 20).carry.state
        fractional = np.asarray(state.positions) @ np.linalg.inv(geometry.cell_matrix)
        assert np.all((fractional >= 0.0) & (fractional < 1.0))


def test_rejects_unbatched_positions(lj7_starts):
    with pytest.raises(ValueError, match="batch"):
        run_batched(adam_descent(lennard_jones_energy_fn, 0.01), lj7_starts[0], 10)

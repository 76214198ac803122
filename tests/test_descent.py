"""Tests of the classical local optimizers against ASE, optax and published minima."""

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
    random_cluster,
)

import ase_learn2hop  # noqa: F401  (enables float64 before any array is made)
from ase_learn2hop.descent import (
    BASELINE_LEARNING_RATES,
    adam_descent,
    fire_descent,
    gradient_descent,
    polish,
    run_optimizer,
)

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


def test_learning_rate_grid_is_the_papers():
    assert BASELINE_LEARNING_RATES == (0.01, 0.005, 0.001)


def test_gradient_descent_follows_ase_forces():
    positions = random_cluster(7, seed=3)
    learning_rate = 0.002
    init_fn, step_fn = gradient_descent(lennard_jones_energy, learning_rate)
    state = init_fn(jnp.asarray(positions))
    atoms = ase_lennard_jones_atoms(positions)
    for _ in range(5):
        state = step_fn(state)
        atoms.positions = atoms.positions + learning_rate * atoms.get_forces()
        np.testing.assert_allclose(state.positions, atoms.positions, atol=1e-12)
        np.testing.assert_allclose(
            state.energy, atoms.get_potential_energy(), rtol=1e-12
        )


def test_adam_matches_optax_adam_by_hand():
    positions = jnp.asarray(random_cluster(7, seed=4))
    learning_rate = 0.01
    init_fn, step_fn = adam_descent(lennard_jones_energy, learning_rate)
    state = init_fn(positions)
    reference = optax.adam(learning_rate)
    reference_state = reference.init(positions)
    reference_positions = positions
    for _ in range(10):
        state = step_fn(state)
        updates, reference_state = reference.update(
            jax.grad(lennard_jones_energy)(reference_positions), reference_state
        )
        reference_positions = optax.apply_updates(reference_positions, updates)
        np.testing.assert_allclose(state.positions, reference_positions, atol=1e-12)


@pytest.mark.parametrize("learning_rate", [0.1, 0.01])
def test_fire_matches_ase_fire_step_by_step(learning_rate):
    positions = random_cluster(7, seed=5, side=2.2, min_distance=0.8)
    init_fn, step_fn = fire_descent(lennard_jones_energy, learning_rate)
    step_fn = jax.jit(step_fn)
    state = init_fn(jnp.asarray(positions))
    atoms = ase_lennard_jones_atoms(positions)
    ase_fire = FIRE(atoms, dt=learning_rate, logfile=None)
    time_steps, displacement_norms = [], []
    for _ in range(50):
        ase_fire.step()
        previous_positions = state.positions
        state = step_fn(state)
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
    init_fn, step_fn = fire_descent(lennard_jones_energy, learning_rate=0.1)
    state = init_fn(jnp.asarray(positions))
    for _ in range(10):
        new_state = step_fn(state)
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
    optimizer = make_optimizer(lennard_jones_energy, learning_rate)
    result = run_optimizer(*optimizer, lj7_starts, 500)
    polished = polish(lennard_jones_energy, result.positions)
    forces = -jax.vmap(jax.grad(lennard_jones_energy))(polished.positions)
    assert jnp.max(jnp.abs(forces)) < 1e-3
    for positions, energy in zip(polished.positions, polished.energy, strict=True):
        assert relaxes_no_further_with_ase(positions, float(energy))


def test_polish_recovers_lj13_global_minimum():
    atoms = ase.io.read(DATA / "lj13_global_minimum.xyz")
    starts = np.stack(
        [
            atoms.positions + np.random.default_rng(seed).normal(0, 0.03, (13, 3))
            for seed in range(3)
        ]
    )
    result = polish(lennard_jones_energy, jnp.asarray(starts))
    np.testing.assert_allclose(result.energy, LJ13_GLOBAL_MINIMUM_ENERGY, atol=1e-6)
    assert result.energy_evaluations == 1001


def test_batched_run_equals_per_start_runs(lj7_starts):
    optimizer = fire_descent(lennard_jones_energy, 0.01)
    batched = run_optimizer(*optimizer, lj7_starts, 60)
    for index in range(lj7_starts.shape[0]):
        single = run_optimizer(*optimizer, lj7_starts[index : index + 1], 60)
        np.testing.assert_allclose(
            single.positions[0], batched.positions[index], atol=1e-12
        )
        np.testing.assert_allclose(single.energy[0], batched.energy[index], rtol=1e-12)


def test_run_reports_best_counts_and_trajectory(lj7_starts):
    optimizer = adam_descent(lennard_jones_energy, 0.01)
    result = run_optimizer(*optimizer, lj7_starts, 100, record_every=25)
    assert result.energy_evaluations == 101
    assert result.energy_trajectory.shape == (lj7_starts.shape[0], 4)
    np.testing.assert_allclose(result.energy_trajectory[:, -1], result.energy)
    start_energy = jax.vmap(lennard_jones_energy)(lj7_starts)
    assert jnp.all(result.best_energy <= jnp.minimum(result.energy, start_energy))
    np.testing.assert_allclose(
        jax.vmap(lennard_jones_energy)(result.best_positions),
        result.best_energy,
        rtol=1e-12,
    )
    shorter = run_optimizer(*optimizer, lj7_starts, 60, record_every=25)
    np.testing.assert_allclose(
        shorter.energy_trajectory, result.energy_trajectory[:, :2]
    )


def test_box_length_wraps_positions_into_the_cell():
    box_length = 3.0

    def periodic_energy(positions):
        return -jnp.sum(jnp.cos(2 * jnp.pi * positions / box_length))

    starts = jnp.asarray(np.random.default_rng(0).uniform(-4.0, 7.0, size=(2, 5, 3)))
    result = polish(periodic_energy, starts, steps=50, box_length=box_length)
    assert jnp.all((result.positions >= 0.0) & (result.positions < box_length))
    np.testing.assert_allclose(
        jax.vmap(periodic_energy)(result.positions), result.energy, rtol=1e-12
    )


def test_rejects_unbatched_positions(lj7_starts):
    with pytest.raises(ValueError, match="batch"):
        run_optimizer(*adam_descent(lennard_jones_energy, 0.01), lj7_starts[0], 10)

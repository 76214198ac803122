"""The L-BFGS quench (one force call per iteration) against independent
references: published minima, scipy's L-BFGS-B, a periodic crystal whose atoms
cross the cell boundary, fixed coordinates, and its rejection rule."""

import jax
import jax.numpy as jnp
import numpy as np
from ase.build import bulk
from ase.cluster import Icosahedron
from scipy.optimize import minimize

from ase_learn2hop import driver, quench, systems

LJ13_GLOBAL_MINIMUM = -44.326801  # Cambridge Cluster Database
SILICON_DIAMOND_PER_ATOM = -4.33652  # Stillinger-Weber diamond at 5.431 A, eV/atom


def lj13_icosahedron() -> np.ndarray:
    atoms = Icosahedron("Ar", 2, latticeconstant=2 ** (1 / 6) * np.sqrt(2))
    return atoms.get_positions() - atoms.get_center_of_mass()


def run_quench(system, starts, steps, **options):
    optimizer = quench.lbfgs_descent(
        system.energy_fn, geometry=system.geometry, **options
    )
    parameters = systems.broadcast_to_batch(system.potential_parameters, len(starts))
    return driver.run_batched(optimizer, jnp.asarray(starts), steps, parameters)


def test_perturbed_icosahedron_quenches_to_the_published_lj13_minimum():
    system = systems.lennard_jones_system(13)
    rng = np.random.default_rng(0)
    starts = lj13_icosahedron()[None] + 0.05 * rng.normal(size=(3, 13, 3))
    run = run_quench(system, starts, 300)
    np.testing.assert_allclose(
        run.carry.state.quench.energy, LJ13_GLOBAL_MINIMUM, atol=1e-6
    )
    # One evaluation per step, the start's first: exactly what ASE charges.
    np.testing.assert_array_equal(run.carry.force_calls, 301)


def test_quench_ends_where_scipy_finds_a_minimum_with_as_few_calls():
    """From random starts: our end points are minima (scipy's L-BFGS-B from
    them does not go lower), reached in a similar number of force calls."""
    system = systems.lennard_jones_system(13)
    starts = np.asarray(systems.starting_structures(jax.random.key(1), system, 6))
    run = run_quench(system, starts, 400)
    value_and_grad = jax.jit(jax.value_and_grad(system.energy_fn))

    def energy(x):
        e, g = value_and_grad(jnp.asarray(x.reshape(-1, 3)), None)
        return float(e), np.asarray(g).ravel()

    ends = np.asarray(run.carry.state.quench.positions)
    for index, end in enumerate(ends):
        assert (
            np.linalg.norm(run.carry.state.quench.gradient[index], axis=1).max() < 1e-6
        )
        polished = minimize(energy, end.ravel(), jac=True, method="L-BFGS-B")
        assert polished.fun > float(run.carry.state.quench.energy[index]) - 1e-8
    # Force calls to converge to 1e-3 (ASE's fmax), ours against scipy's.
    ours, theirs = [], []
    for start in starts:
        calls = [0]

        def counted(x):
            calls[0] += 1
            return energy(x)

        minimize(counted, start.ravel(), jac=True, method="L-BFGS-B")
        theirs.append(calls[0])
        carry = driver.start(
            quench.lbfgs_descent(system.energy_fn), jnp.asarray(start)[None], None
        )
        steps = 0
        while np.linalg.norm(carry.state.quench.gradient[0], axis=1).max() >= 1e-3:
            carry = driver.advance(
                quench.lbfgs_descent(system.energy_fn), carry, 1
            ).carry
            steps += 1
        ours.append(steps + 1)
    assert np.median(ours) < 1.5 * np.median(theirs), (ours, theirs)


def test_periodic_quench_across_the_cell_boundary_reaches_diamond():
    """Si64 diamond, rattled and shifted so that atoms sit on the cell's faces:
    L-BFGS pairs are taken in unwrapped coordinates, so crossing atoms do not
    corrupt them; the minimum is Stillinger-Weber's diamond."""
    crystal = bulk("Si", "diamond", a=5.431, cubic=True) * (2, 2, 2)
    box = crystal.cell[0, 0]
    system = systems.silicon_system(64, box_length=box)
    rng = np.random.default_rng(2)
    positions = crystal.get_positions() + 0.1 * rng.normal(size=(64, 3)) + 0.01
    run = run_quench(system, positions[None], 400)
    energy = float(run.carry.state.quench.energy[0])
    np.testing.assert_allclose(energy / 64, SILICON_DIAMOND_PER_ATOM, atol=1e-4)


def test_fixed_coordinates_do_not_move():
    system = systems.lennard_jones_system(13)
    start = np.asarray(systems.starting_structures(jax.random.key(3), system, 1)[0])
    free = np.ones((13, 3))
    free[:4] = 0.0
    state = quench.quench_begin(
        jnp.asarray(start),
        *jax.value_and_grad(system.energy_fn)(jnp.asarray(start), None),
        free=jnp.asarray(free),
    )
    trial = quench.quench_trial(state, 0.4)
    np.testing.assert_array_equal(np.asarray(trial)[:4], start[:4])
    assert np.abs(np.asarray(trial)[4:] - start[4:]).max() > 0


def test_a_step_that_raises_the_energy_is_rejected_and_halved():
    system = systems.lennard_jones_system(13)
    start = jnp.asarray(lj13_icosahedron())
    energy, gradient = jax.value_and_grad(system.energy_fn)(start, None)
    state = quench.quench_begin(start, energy, gradient)
    uphill = start.at[0, 0].add(0.3)
    raised, raised_gradient = jax.value_and_grad(system.energy_fn)(uphill, None)
    judged = quench.quench_observe(state, uphill, raised, raised_gradient)
    np.testing.assert_array_equal(judged.positions, start)
    assert float(judged.step_scale) == 0.5 and int(judged.rejections) == 1
    nan = quench.quench_observe(state, uphill, jnp.nan, raised_gradient)
    np.testing.assert_array_equal(nan.positions, start)


def test_rejections_in_a_row_restart_along_the_gradient_from_the_last_accepted_point():
    """After `MAX_REJECTIONS` rejected trials the memory is dropped and the
    next direction is steepest descent from the last accepted point; a quench
    that begins anew (``begins``) starts the same way from the new point."""
    system = systems.lennard_jones_system(13)
    value_and_grad = jax.value_and_grad(system.energy_fn)
    start = jnp.asarray(systems.starting_structures(jax.random.key(5), system, 1)[0])
    state = quench.quench_begin(start, *value_and_grad(start, None))
    accepted = quench.quench_trial(state, 0.1)
    state = quench.quench_observe(state, accepted, *value_and_grad(accepted, None))
    assert int(state.rejections) == 0 and int(state.iterations) == 1
    energy, gradient = state.energy, state.gradient
    uphill = accepted.at[0, 0].add(0.5)
    raised, raised_gradient = value_and_grad(uphill, None)
    assert float(raised) > float(energy) + quench.MAX_RISE
    for rejection in range(1, quench.MAX_REJECTIONS):
        state = quench.quench_observe(state, uphill, raised, raised_gradient)
        assert int(state.rejections) == rejection
        assert float(state.step_scale) == 0.5**rejection
    state = quench.quench_observe(state, uphill, raised, raised_gradient)
    np.testing.assert_array_equal(state.positions, accepted)
    assert float(state.energy) == float(energy)
    assert int(state.rejections) == 0 and float(state.step_scale) == 1.0
    assert int(state.iterations) == 1 + quench.MAX_REJECTIONS
    cosine = jnp.vdot(state.direction, gradient) / (
        jnp.linalg.norm(state.direction) * jnp.linalg.norm(gradient)
    )
    np.testing.assert_allclose(float(cosine), 1.0, atol=1e-6)
    # Beginning anew at the uphill point: steepest descent from there.
    fresh = quench.quench_observe(
        state, uphill, raised, raised_gradient, begins=jnp.asarray(True)
    )
    np.testing.assert_array_equal(fresh.positions, uphill)
    assert int(fresh.iterations) == 0 and int(fresh.rejections) == 0
    cosine = jnp.vdot(fresh.direction, raised_gradient) / (
        jnp.linalg.norm(fresh.direction) * jnp.linalg.norm(raised_gradient)
    )
    np.testing.assert_allclose(float(cosine), 1.0, atol=1e-6)

"""The learned optimizer's update and the unrolled search (SPEC section 4)."""

import jax
import jax.numpy as jnp
import numpy as np

import ase_learn2hop  # noqa: F401  (float64)
from ase_learn2hop import learned_optimizer, search
from ase_learn2hop.features import FeatureSet, StructureContext
from ase_learn2hop.learned_optimizer import LearnedOptimizerConfig, init_theta
from ase_learn2hop.potentials import lennard_jones_energy


def lj(positions, _):
    return lennard_jones_energy(positions)


def lj_context(n):
    return StructureContext(
        jnp.zeros(n, jnp.int32), jnp.zeros((n, 5)), jnp.asarray(1.0)
    )


def perturbed_theta(config, scale=0.3, seed=1):
    theta = init_theta(jax.random.key(0), config)
    leaves, treedef = jax.tree_util.tree_flatten(theta)
    keys = jax.random.split(jax.random.key(seed), len(leaves))
    leaves = [
        leaf + scale * jax.random.normal(k, leaf.shape) for leaf, k in zip(leaves, keys)
    ]
    return jax.tree_util.tree_unflatten(treedef, leaves)


def test_initial_theta_matches_the_paper():
    config = LearnedOptimizerConfig()
    theta = init_theta(jax.random.key(0), config)
    assert float(theta["alpha"]) == 0.1
    assert float(theta["beta"]) == 1.0
    assert float(theta["gamma"]) == -3.0
    dense = theta["network"]
    assert dense["Dense_0"]["kernel"].shape == (config.features.n_inputs, 32)
    assert dense["Dense_1"]["kernel"].shape == (32, 32)
    assert np.all(np.asarray(dense["Dense_2"]["kernel"]) == 0.0)
    # LeCun normal: variance 1 / fan_in.
    variance = float(np.var(np.asarray(dense["Dense_0"]["kernel"])))
    assert abs(variance * config.features.n_inputs - 1.0) < 0.2


def test_zero_output_weights_leave_positions_unchanged():
    config = LearnedOptimizerConfig()
    theta = init_theta(jax.random.key(0), config)
    positions = jax.random.uniform(jax.random.key(3), (7, 3)) * 2
    result, trace = search.learned_search(
        theta,
        config,
        lj,
        positions,
        lj_context(7),
        n_steps=20,
        polish_steps=0,
        record=True,
    )
    np.testing.assert_array_equal(
        np.asarray(result.final_positions), np.asarray(positions)
    )
    assert np.all(np.asarray(trace.step_size) == 0.0)


def test_update_is_paper_equation_two():
    config = LearnedOptimizerConfig(network_dtype="float64")
    theta = perturbed_theta(config)
    positions = jax.random.uniform(jax.random.key(3), (5, 3)) * 2
    gradient = jax.grad(lennard_jones_energy)(positions)
    state = learned_optimizer.init(positions)
    displacement, new_state = learned_optimizer.update(
        theta, config, state, positions, gradient, lj_context(5)
    )
    from ase_learn2hop.features import component_features

    features = component_features(
        config.features,
        positions,
        gradient,
        new_state.first_moments,
        new_state.second_moments,
        state.step,
        lj_context(5),
    )
    outputs = learned_optimizer.ComponentMLP((32, 32)).apply(
        {"params": theta["network"]}, features
    )
    gate = jax.nn.sigmoid(theta["beta"] * outputs[..., 0] + theta["gamma"])
    np.testing.assert_allclose(
        displacement, theta["alpha"] * outputs[..., 1] * gate, rtol=1e-12
    )
    assert int(new_state.step) == 1
    # The float32 network gives the same step to single precision.
    fast, _ = learned_optimizer.update(
        theta, LearnedOptimizerConfig(), state, positions, gradient, lj_context(5)
    )
    np.testing.assert_allclose(fast, displacement, rtol=1e-4, atol=1e-7)


def test_search_keeps_the_best_structure_and_polishes_it():
    config = LearnedOptimizerConfig(features=FeatureSet(radial=False))
    theta = perturbed_theta(config, scale=1.0)
    starts = jax.random.uniform(jax.random.key(4), (6, 7, 3)) * 2.0
    context = search.broadcast_to_batch(lj_context(7), 6)
    result, trace = search.batched_learned_search(
        theta, config, lj, starts, context, None, n_steps=50, record=True
    )
    best = np.asarray(result.best_energy)
    assert np.all(best <= np.asarray(result.final_energy) + 1e-12)
    assert np.all(best <= np.min(np.asarray(trace.energy), axis=1) + 1e-9)
    # Gradient descent with a small step only lowers the energy.
    raw_best = jax.vmap(lennard_jones_energy)(result.best_positions)
    np.testing.assert_allclose(raw_best, result.best_energy, rtol=1e-12)
    assert int(result.energy_evaluations[0]) == 1 + 50 + 2 * 1000


def test_batched_search_equals_single_searches():
    config = LearnedOptimizerConfig()
    theta = perturbed_theta(config)
    starts = jax.random.uniform(jax.random.key(5), (3, 5, 3)) * 2.0
    context = search.broadcast_to_batch(lj_context(5), 3)
    batched, _ = search.batched_learned_search(
        theta, config, lj, starts, context, None, n_steps=30, polish_steps=10
    )
    for i in range(3):
        single, _ = search.learned_search(
            theta, config, lj, starts[i], lj_context(5), n_steps=30, polish_steps=10
        )
        np.testing.assert_allclose(
            batched.best_energy[i], single.best_energy, rtol=1e-10
        )


def test_config_round_trips_through_a_dict():
    config = LearnedOptimizerConfig(
        features=FeatureSet(step=False), hidden_sizes=(16, 8)
    )
    assert LearnedOptimizerConfig.from_dict(config.to_dict()) == config


def test_cycles_keep_the_best_minimum_over_all_cycles():
    config = LearnedOptimizerConfig()
    theta = perturbed_theta(config, scale=0.5)
    starts = jax.random.uniform(jax.random.key(6), (4, 6, 3)) * 2.0
    context = search.broadcast_to_batch(lj_context(6), 4)
    one_cycle = search.learned_search_in_cycles(
        theta,
        config,
        lj,
        starts,
        context,
        None,
        n_steps=20,
        horizon=20,
        polish_steps=50,
    )
    single, _ = search.batched_learned_search(
        theta, config, lj, starts, context, None, n_steps=20, polish_steps=50
    )
    np.testing.assert_allclose(one_cycle.best_energy, single.best_energy, rtol=1e-12)
    three_cycles = search.learned_search_in_cycles(
        theta,
        config,
        lj,
        starts,
        context,
        None,
        n_steps=50,
        horizon=20,
        polish_steps=50,
    )
    assert np.all(
        np.asarray(three_cycles.best_energy) <= np.asarray(single.best_energy) + 1e-12
    )
    assert int(three_cycles.energy_evaluations[0]) == 3 * (1 + 2 * 50) + 50

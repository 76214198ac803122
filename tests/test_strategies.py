"""Meta-training strategies (paper 3.2): estimators against eqs. 3-4 by hand in NumPy,
descent on quadratics with a known minimum, GA selection, non-finite losses."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from ase_learn2hop.training import estimators, strategies

SIGMA = 0.1


def _eq4_by_hand(eps, plus, minus, center, sigma):
    """Paper eq. 4 as a plain loop over pairs, skipping non-finite pairs."""
    total = np.zeros(eps.shape[1])
    n_finite = 0
    for i in range(eps.shape[0]):
        if not (
            np.isfinite(plus[i]) and np.isfinite(minus[i]) and np.isfinite(center[i])
        ):
            continue
        clipped_difference = min(center[i], plus[i]) - min(center[i], minus[i])
        total += clipped_difference / (2 * sigma**2) * eps[i]
        n_finite += 1
    return total / max(n_finite, 1)


def _eq3_by_hand(eps, plus, minus, sigma):
    total = np.zeros(eps.shape[1])
    n_finite = 0
    for i in range(eps.shape[0]):
        if not (np.isfinite(plus[i]) and np.isfinite(minus[i])):
            continue
        total += (plus[i] - minus[i]) / (2 * sigma**2) * eps[i]
        n_finite += 1
    return total / max(n_finite, 1)


def _toy_loss_numpy(theta_w, theta_b, target):
    # An instance-dependent non-convex toy loss, written independently in NumPy.
    return float(np.sum(np.sin(3 * theta_w) + (theta_w - target) ** 2) + theta_b**2)


def _toy_loss(theta, target):
    return jnp.sum(jnp.sin(3 * theta["w"]) + (theta["w"] - target) ** 2) + (
        theta["b"] ** 2
    )


def test_estimators_match_equations_3_and_4_by_hand():
    rng = np.random.default_rng(0)
    eps = SIGMA * rng.normal(size=(5, 3))
    plus = np.array([1.0, 2.0, 0.5, 3.0, 1.5])
    minus = np.array([2.0, 1.0, 0.7, 0.2, 1.5])
    # Center between, above and below the perturbed losses: every clipping case.
    center = np.array([1.5, 0.5, 1.0, 1.0, 1.4])
    np.testing.assert_allclose(
        estimators.esmc_gradient(eps, plus, minus, center, SIGMA),
        _eq4_by_hand(eps, plus, minus, center, SIGMA),
        rtol=1e-13,
    )
    np.testing.assert_allclose(
        estimators.es_gradient(eps, plus, minus, SIGMA),
        _eq3_by_hand(eps, plus, minus, SIGMA),
        rtol=1e-13,
    )


def test_esmc_update_is_eq4_on_a_toy_loss():
    """ask -> evaluate (NumPy) -> tell with SGD(lr=1) moves theta by -eq. 4."""
    n_pairs = 4
    strategy = strategies.esmc(n_pairs=n_pairs, sigma=SIGMA, optimizer=optax.sgd(1.0))
    theta = {"w": jnp.array([0.3, -0.2]), "b": jnp.asarray(0.5)}
    state = strategy.init(jax.random.PRNGKey(0), theta)
    candidates, state = strategy.ask(jax.random.PRNGKey(1), state)
    assert jax.tree.leaves(candidates)[0].shape[0] == strategy.population_size == 12

    targets = np.array([0.0, 0.4, -0.3, 1.0])
    w = np.asarray(candidates["w"])
    b = np.asarray(candidates["b"])
    losses = np.array(
        [_toy_loss_numpy(w[j], b[j], targets[j % n_pairs]) for j in range(12)]
    )
    plus, minus, center = losses.reshape(3, n_pairs)
    # The perturbation pairs, independently recovered from the candidates.
    eps = np.concatenate([w[:n_pairs], b[:n_pairs, None]], axis=1) - np.array(
        [0.3, -0.2, 0.5]
    )
    np.testing.assert_allclose(
        np.concatenate([w[n_pairs : 2 * n_pairs], b[n_pairs : 2 * n_pairs, None]], 1),
        np.array([0.3, -0.2, 0.5]) - eps,
        atol=1e-14,
    )
    expected_gradient = _eq4_by_hand(eps, plus, minus, center, SIGMA)
    assert np.any(plus > center) and np.any(minus < center)  # clipping is active

    new_state, metrics = strategy.tell(state, jnp.asarray(losses))
    np.testing.assert_allclose(
        new_state.theta["w"], np.array([0.3, -0.2]) - expected_gradient[:2], atol=1e-12
    )
    np.testing.assert_allclose(
        new_state.theta["b"], 0.5 - expected_gradient[2], atol=1e-12
    )
    np.testing.assert_allclose(metrics["theta_loss"], center.mean(), rtol=1e-13)
    assert int(metrics["n_finite_pairs"]) == n_pairs


def _run_strategy(strategy, theta, loss_fn, sample_instances, n_updates, seed=0):
    batched_loss = jax.jit(jax.vmap(loss_fn))
    key = jax.random.PRNGKey(seed)
    state = strategy.init(key, theta)
    for _ in range(n_updates):
        key, sample_key, ask_key = jax.random.split(key, 3)
        instances = sample_instances(sample_key, strategy.n_instances)
        candidates, state = strategy.ask(ask_key, state)
        losses = batched_loss(
            candidates, strategies.repeat_instances(instances, strategy.n_groups)
        )
        state, _ = strategy.tell(state, losses)
    return state


def _quadratic_loss(theta, target):
    return jnp.sum((theta["w"] - target) ** 2) + jnp.sum(theta["b"] ** 2)


def _sample_targets(key, n):
    return 0.02 * jax.random.normal(key, (n, 4))


@pytest.mark.parametrize("factory", [strategies.antithetic_es, strategies.esmc])
def test_es_and_esmc_descend_a_quadratic(factory):
    strategy = factory(
        n_pairs=16, sigma=SIGMA, optimizer=strategies.default_meta_optimizer(0.1)
    )
    theta = {"w": jnp.ones(4), "b": jnp.array([1.0, -1.0])}
    state = _run_strategy(strategy, theta, _quadratic_loss, _sample_targets, 50)
    # Exact minimum of the mean loss: w = 0, b = 0 (loss 6 at the start).
    final_loss = float(_quadratic_loss(state.theta, jnp.zeros(4)))
    assert final_loss < 0.05 * 6.0, final_loss


def test_default_meta_optimizer_is_adam_with_staircase_decay():
    optimizer = strategies.default_meta_optimizer(1e-2, 0.98, 10)
    params = jnp.zeros(1)
    state = optimizer.init(params)
    for step in range(25):
        updates, state = optimizer.update(jnp.ones(1), state, params)
        # Under a constant gradient, bias-corrected Adam moves by exactly the
        # learning rate, here 1e-2 * 0.98 ** floor(step / 10) (paper 3.3).
        np.testing.assert_allclose(
            -float(updates[0]), 1e-2 * 0.98 ** (step // 10), rtol=1e-6
        )


def test_ga_keeps_theta_when_every_candidate_is_worse():
    theta = {"w": jnp.array([0.1, -0.3, 0.7])}

    def loss_fn(candidate, instance):
        # theta is the exact minimum: any perturbation is worse on every instance.
        return jnp.sum((candidate["w"] - theta["w"]) ** 2) + instance

    for n_confirm in (0, 8):
        strategy = strategies.genetic_algorithm(
            population_size=16, sigma=SIGMA, n_confirm_instances=n_confirm
        )
        state = strategy.init(jax.random.PRNGKey(0), theta)
        candidates, state = strategy.ask(jax.random.PRNGKey(1), state)
        instances = strategies.repeat_instances(jnp.arange(16.0), 2)
        state, metrics = strategy.tell(state, jax.vmap(loss_fn)(candidates, instances))
        assert not bool(metrics["has_winner"])
        assert not bool(state.has_proposal)
        np.testing.assert_array_equal(state.theta["w"], theta["w"])
        assert int(state.n_accepted) == 0


def test_ga_adopts_the_candidate_that_improves_most_on_its_instance():
    strategy = strategies.genetic_algorithm(
        population_size=3, sigma=SIGMA, n_confirm_instances=0
    )
    theta = jnp.zeros(2)
    state = strategy.init(jax.random.PRNGKey(0), theta)
    candidates, state = strategy.ask(jax.random.PRNGKey(1), state)
    # Candidate 0 has the lowest loss, but candidate 2 improves most on theta's
    # loss on the same instance: the paired comparison picks candidate 2.
    candidate_losses = np.array([0.5, 2.0, 0.9])
    theta_losses = np.array([0.6, 1.0, 1.5])
    state, _ = strategy.tell(
        state, jnp.asarray(np.concatenate([candidate_losses, theta_losses]))
    )
    np.testing.assert_array_equal(state.theta, candidates[2])
    assert int(state.n_accepted) == 1


def test_ga_confirmation_decides_on_fresh_instances():
    strategy = strategies.genetic_algorithm(
        population_size=4, sigma=SIGMA, n_confirm_instances=3
    )
    theta = jnp.zeros(2)
    state = strategy.init(jax.random.PRNGKey(0), theta)
    candidates, state = strategy.ask(jax.random.PRNGKey(1), state)
    losses = np.array([1.0, 1.0, 0.2, 1.0, 0.5, 0.5, 0.5, 0.5])
    proposed, _ = strategy.tell(state, jnp.asarray(losses))
    assert bool(proposed.has_proposal)
    np.testing.assert_array_equal(proposed.theta, theta)  # not yet replaced
    np.testing.assert_array_equal(proposed.proposal, candidates[2])
    confirm_candidates = strategy.confirm_ask(proposed)
    np.testing.assert_array_equal(
        confirm_candidates[:3], np.tile(candidates[2], (3, 1))
    )
    np.testing.assert_array_equal(confirm_candidates[3:], np.zeros((3, 2)))

    # The lucky winner is worse on fresh instances: theta stays.
    rejected, metrics = strategy.confirm_tell(
        proposed, jnp.array([0.6, 0.7, 0.5, 0.5, 0.5, 0.5])
    )
    assert not bool(metrics["accepted"])
    np.testing.assert_array_equal(rejected.theta, theta)
    # It still wins there (one collapse of theta counts as +inf): it replaces theta.
    accepted, metrics = strategy.confirm_tell(
        proposed, jnp.array([0.4, 0.4, 0.4, 0.5, jnp.inf, 0.5])
    )
    assert bool(metrics["accepted"])
    np.testing.assert_array_equal(accepted.theta, candidates[2])
    assert int(accepted.n_accepted) == 1 and not bool(accepted.has_proposal)


@pytest.mark.parametrize("name", ["es", "esmc"])
def test_non_finite_losses_do_not_poison_es(name):
    n_pairs = 4
    strategy = strategies.make_strategy(
        name, n_pairs=n_pairs, sigma=SIGMA, optimizer=optax.sgd(1.0)
    )
    theta = jnp.array([0.2, -0.1, 0.4])
    state = strategy.init(jax.random.PRNGKey(0), theta)
    candidates, state = strategy.ask(jax.random.PRNGKey(1), state)
    eps = np.asarray(candidates[:n_pairs]) - np.asarray(theta)
    plus = np.array([1.0, np.nan, 0.3, 2.0])
    minus = np.array([0.5, 1.0, np.inf, 1.0])
    center = np.array([0.8, 0.9, 0.4, 1.2])
    losses = np.concatenate([plus, minus] + ([center] if name == "esmc" else []))
    new_state, metrics = strategy.tell(state, jnp.asarray(losses))
    # Pairs 1 and 2 are dropped; the mean is over the 2 finite pairs.
    if name == "esmc":
        expected = _eq4_by_hand(
            eps[[0, 3]], plus[[0, 3]], minus[[0, 3]], center[[0, 3]], SIGMA
        )
    else:
        expected = _eq3_by_hand(eps[[0, 3]], plus[[0, 3]], minus[[0, 3]], SIGMA)
    np.testing.assert_allclose(
        new_state.theta, np.asarray(theta) - expected, atol=1e-12
    )
    assert int(metrics["n_finite_pairs"]) == 2
    assert np.all(np.isfinite(new_state.theta))

    # No finite pair: no update at all (theta and optimizer state untouched).
    all_bad = np.full_like(losses, np.nan)
    all_bad[: 2 * n_pairs : 2] = np.inf
    unchanged, metrics = strategy.tell(state, jnp.asarray(all_bad))
    assert int(metrics["n_finite_pairs"]) == 0
    for before, after in zip(jax.tree.leaves(state), jax.tree.leaves(unchanged)):
        np.testing.assert_array_equal(before, after)


def test_non_finite_losses_in_ga_count_as_worst():
    strategy = strategies.genetic_algorithm(
        population_size=4, sigma=SIGMA, n_confirm_instances=0
    )
    theta = jnp.zeros(2)
    state = strategy.init(jax.random.PRNGKey(0), theta)
    candidates, state = strategy.ask(jax.random.PRNGKey(1), state)
    # NaN candidate never wins; candidate 3 is finite where theta collapsed.
    candidate_losses = np.array([np.nan, 5.0, -np.inf, 3.0])
    theta_losses = np.array([1.0, 1.0, np.nan, np.inf])
    new_state, metrics = strategy.tell(
        state, jnp.asarray(np.concatenate([candidate_losses, theta_losses]))
    )
    np.testing.assert_array_equal(new_state.theta, candidates[3])
    assert int(metrics["n_candidates_beating_theta"]) == 1
    assert np.isfinite(float(metrics["min_loss"]))

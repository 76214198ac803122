"""Meta-training strategies: antithetic ES, ESMC and a genetic algorithm.

Implements the outer loop of "Learn2Hop" (Merchant et al., ICML 2021), section 3.2:
antithetic evolution strategies (eq. 3), ES with meta-loss clipping (ESMC, eq. 4) and
the genetic algorithm (GA). A strategy optimizes meta-parameters ``theta`` (any pytree
of float arrays) to *minimize* a meta-loss ``L(theta, instance)``.

Every strategy has the evosax shape: pure functions over an immutable ``NamedTuple``
state, the random key first, losses minimized::

    strategy = esmc(n_pairs=40)
    evaluate = make_population_evaluator(loss_fn)  # training.distributed
    state = strategy.init(key, theta)
    candidates, state = strategy.ask(ask_key, state)
    losses = evaluate(candidates, repeat_instances(instances, strategy.n_groups))
    state, metrics = strategy.tell(state, losses)

Population layout. One update draws ``n_instances`` fresh problem instances; ``ask``
returns ``population_size = n_groups * n_instances`` candidates, group-major, and
candidate ``j`` is evaluated on instance ``j % n_instances``
(``repeat_instances`` builds that batch). The members of one group share their
instance (common random numbers), so differences between them measure theta, not the
luck of the draw:

* ES: groups ``(theta + eps_i, theta - eps_i)``.
* ESMC: groups ``(theta + eps_i, theta - eps_i, theta)``.
* GA: groups ``(theta + eps_i, theta)``; a winner is then confirmed on
  ``n_confirm_instances`` fresh instances (``confirm_ask`` / ``confirm_tell``,
  groups ``(winner, theta)``) before it replaces theta.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from jax.flatten_util import ravel_pytree

from .estimators import es_gradient, esmc_gradient

PyTree = Any


class Strategy(NamedTuple):
    """A meta-training strategy: pure ``init`` / ``ask`` / ``tell`` functions.

    Attributes:
        name: short identifier ("es", "esmc" or "ga").
        n_instances: fresh problem instances drawn per update.
        n_groups: candidates evaluated per instance (see the module docstring).
        init: ``init(key, theta) -> state``.
        ask: ``ask(key, state) -> (candidates, state)``; ``candidates`` is theta's
            pytree with a leading axis of size ``population_size``.
        tell: ``tell(state, losses) -> (state, metrics)``; ``losses`` is a
            ``[population_size]`` array in the layout of ``ask``; ``metrics`` a dict
            of scalar arrays.
        n_confirm_instances: fresh instances for the GA's confirmation (0: none).
        confirm_ask: ``confirm_ask(state) -> candidates`` with a leading axis of
            ``2 * n_confirm_instances``, or None when the strategy confirms nothing.
            Call it only while ``state.has_proposal`` is true.
        confirm_tell: ``confirm_tell(state, losses) -> (state, metrics)``, or None.
    """

    name: str
    n_instances: int
    n_groups: int
    init: Callable[[jax.Array, PyTree], Any]
    ask: Callable[[jax.Array, Any], tuple[PyTree, Any]]
    tell: Callable[[Any, jax.Array], tuple[Any, dict[str, jax.Array]]]
    n_confirm_instances: int = 0
    confirm_ask: Callable[[Any], PyTree] | None = None
    confirm_tell: Callable[[Any, jax.Array], tuple[Any, dict]] | None = None

    @property
    def population_size(self) -> int:
        """Number of loss evaluations in one ``ask``: ``n_groups * n_instances``."""
        return self.n_groups * self.n_instances


class ESState(NamedTuple):
    """State of antithetic ES and ESMC.

    Attributes:
        theta: the meta-parameters (pytree of float64 arrays).
        optimizer_state: state of the outer optax optimizer.
        perturbations: ``[n_pairs, n_params]`` the eps of the last ``ask``.
        n_updates_applied: int scalar, updates that moved theta (an update with no
            finite pair is skipped and not counted).
    """

    theta: PyTree
    optimizer_state: optax.OptState
    perturbations: jax.Array
    n_updates_applied: jax.Array


class GAState(NamedTuple):
    """State of the genetic algorithm.

    Attributes:
        theta: the meta-parameters (pytree of float64 arrays).
        perturbations: ``[population_size, n_params]`` the eps of the last ``ask``.
        proposal: the winner of the last ``tell`` awaiting confirmation (theta when
            there is none).
        has_proposal: bool scalar, whether ``proposal`` awaits confirmation.
        n_accepted: int scalar, how many winners have replaced theta.
    """

    theta: PyTree
    perturbations: jax.Array
    proposal: PyTree
    has_proposal: jax.Array
    n_accepted: jax.Array


def default_meta_optimizer(
    learning_rate: float = 1e-2, decay_rate: float = 0.98, decay_every: int = 10
) -> optax.GradientTransformation:
    """Adam with a staircase exponential decay: the paper's outer optimizer (3.3).

    Args:
        learning_rate: initial learning rate (paper: 1e-2).
        decay_rate: factor applied every ``decay_every`` updates (paper: 0.98).
        decay_every: updates between decays (paper: 10).

    Returns:
        An optax gradient transformation.

    Example:
        >>> optimizer = default_meta_optimizer(learning_rate=1e-2)
    """
    schedule = optax.exponential_decay(
        init_value=learning_rate,
        transition_steps=decay_every,
        decay_rate=decay_rate,
        staircase=True,
    )
    return optax.adam(schedule)


def repeat_instances(instances: PyTree, n_groups: int) -> PyTree:
    """Repeats a batch of instances once per candidate group (module docstring).

    Args:
        instances: pytree whose leaves have a leading axis ``[n_instances, ...]``.
        n_groups: the strategy's ``n_groups``.

    Returns:
        The same pytree with leading axis ``[n_groups * n_instances, ...]``.
    """
    return jax.tree.map(
        lambda leaf: jnp.concatenate([jnp.asarray(leaf)] * n_groups, axis=0),
        instances,
    )


def _as_float64(theta: PyTree) -> PyTree:
    return jax.tree.map(lambda leaf: jnp.asarray(leaf, dtype=jnp.float64), theta)


def _finite_mean(values: jax.Array) -> jax.Array:
    finite = jnp.isfinite(values)
    total = jnp.sum(jnp.where(finite, values, 0.0))
    n_finite = jnp.sum(finite)
    return jnp.where(n_finite > 0, total / jnp.maximum(n_finite, 1), jnp.nan)


def _finite_min(values: jax.Array) -> jax.Array:
    return jnp.min(jnp.where(jnp.isfinite(values), values, jnp.inf))


def _select(condition: jax.Array, if_true: PyTree, if_false: PyTree) -> PyTree:
    return jax.tree.map(lambda a, b: jnp.where(condition, a, b), if_true, if_false)


def _antithetic_strategy(
    name: str,
    n_pairs: int,
    sigma: float,
    optimizer: optax.GradientTransformation | None,
    clip_at_theta: bool,
) -> Strategy:
    optimizer = default_meta_optimizer() if optimizer is None else optimizer
    n_groups = 3 if clip_at_theta else 2

    def init(key: jax.Array, theta: PyTree) -> ESState:
        del key  # deterministic; the argument keeps the evosax signature
        theta = _as_float64(theta)
        flat_theta, _ = ravel_pytree(theta)
        return ESState(
            theta=theta,
            optimizer_state=optimizer.init(theta),
            perturbations=jnp.zeros((n_pairs, flat_theta.size)),
            n_updates_applied=jnp.zeros((), jnp.int32),
        )

    def ask(key: jax.Array, state: ESState) -> tuple[PyTree, ESState]:
        flat_theta, unravel = ravel_pytree(state.theta)
        eps = sigma * jax.random.normal(key, (n_pairs, flat_theta.size))
        groups = [flat_theta + eps, flat_theta - eps]
        if clip_at_theta:
            groups.append(jnp.broadcast_to(flat_theta, eps.shape))
        candidates = jax.vmap(unravel)(jnp.concatenate(groups, axis=0))
        return candidates, state._replace(perturbations=eps)

    def tell(state: ESState, losses: jax.Array) -> tuple[ESState, dict[str, jax.Array]]:
        losses = jnp.reshape(losses, (n_groups, n_pairs))
        losses_plus, losses_minus = losses[0], losses[1]
        finite_pairs = jnp.isfinite(losses_plus) & jnp.isfinite(losses_minus)
        if clip_at_theta:
            losses_center = losses[2]
            finite_pairs &= jnp.isfinite(losses_center)
            flat_gradient = esmc_gradient(
                state.perturbations, losses_plus, losses_minus, losses_center, sigma
            )
            theta_loss = _finite_mean(losses_center)
        else:
            flat_gradient = es_gradient(
                state.perturbations, losses_plus, losses_minus, sigma
            )
            # Plain ES never evaluates theta itself.
            theta_loss = jnp.asarray(jnp.nan)
        _, unravel = ravel_pytree(state.theta)
        updates, optimizer_state = optimizer.update(
            unravel(flat_gradient), state.optimizer_state, state.theta
        )
        updated = ESState(
            theta=optax.apply_updates(state.theta, updates),
            optimizer_state=optimizer_state,
            perturbations=state.perturbations,
            n_updates_applied=state.n_updates_applied + 1,
        )
        n_finite_pairs = jnp.sum(finite_pairs)
        # With no finite pair there is no information: Adam's momentum must not
        # move theta either, so the whole state stays as it was.
        new_state = _select(n_finite_pairs > 0, updated, state)
        perturbed_losses = losses[:2].ravel()
        metrics = {
            "mean_loss": _finite_mean(perturbed_losses),
            "min_loss": _finite_min(perturbed_losses),
            "theta_loss": theta_loss,
            "n_finite_pairs": n_finite_pairs,
            "gradient_norm": jnp.linalg.norm(flat_gradient),
        }
        return new_state, metrics

    return Strategy(
        name=name,
        n_instances=n_pairs,
        n_groups=n_groups,
        init=init,
        ask=jax.jit(ask),
        tell=jax.jit(tell),
    )


def antithetic_es(
    n_pairs: int = 80,
    sigma: float = 0.1,
    optimizer: optax.GradientTransformation | None = None,
) -> Strategy:
    """Antithetic evolution strategies, paper eq. 3.

    Each update draws ``n_pairs`` instances and evaluates theta + eps and theta - eps
    on each (population ``2 * n_pairs``); the gradient estimate (``es_gradient``) is
    applied by ``optimizer``.

    Args:
        n_pairs: antithetic pairs (= instances) per update (paper: 80 instances).
        sigma: perturbation scale (paper: 0.1).
        optimizer: outer optax optimizer; default ``default_meta_optimizer()``.

    Returns:
        A ``Strategy`` over ``ESState``.

    Example:
        >>> strategy = antithetic_es(n_pairs=80, sigma=0.1)
    """
    return _antithetic_strategy("es", n_pairs, sigma, optimizer, clip_at_theta=False)


def esmc(
    n_pairs: int = 80,
    sigma: float = 0.1,
    optimizer: optax.GradientTransformation | None = None,
) -> Strategy:
    """ES with meta-loss clipping (ESMC), paper eq. 4.

    Like ``antithetic_es``, but theta itself is also evaluated on each pair's
    instance (population ``3 * n_pairs``) and each perturbed loss is clipped at that
    unperturbed loss (``esmc_gradient``).

    Args:
        n_pairs: antithetic pairs (= instances) per update (paper: 80 instances).
        sigma: perturbation scale (paper: 0.1).
        optimizer: outer optax optimizer; default ``default_meta_optimizer()``.

    Returns:
        A ``Strategy`` over ``ESState``.

    Example:
        >>> strategy = esmc(n_pairs=80, sigma=0.1)
    """
    return _antithetic_strategy("esmc", n_pairs, sigma, optimizer, clip_at_theta=True)


def genetic_algorithm(
    population_size: int = 80, sigma: float = 0.1, n_confirm_instances: int = 80
) -> Strategy:
    """Genetic algorithm of paper section 3.2: keep the best candidate if it wins.

    Candidates theta + eps_k, eps_k ~ N(0, sigma^2 I), are each evaluated on their
    own instance k, and theta is evaluated on every instance too. Non-finite losses
    count as +inf. The winner is the candidate that improves most on theta's loss on
    its own instance (a paired comparison, so an easy instance does not make a
    candidate look good); with no candidate below theta, theta is kept.

    One instance is a noisy judge: with ``n_confirm_instances > 0`` the winner only
    becomes a proposal, and replaces theta in ``confirm_tell`` if its mean loss on
    fresh instances is below theta's on the same instances. The caller (the training
    loop) does that extra evaluation. With ``n_confirm_instances = 0`` the winner
    replaces theta at once.

    Args:
        population_size: candidates per update (paper: 80).
        sigma: perturbation scale (paper: 0.1).
        n_confirm_instances: fresh instances for the confirmation (0 disables it).

    Returns:
        A ``Strategy`` over ``GAState`` (population ``2 * population_size``).

    Example:
        >>> strategy = genetic_algorithm(population_size=80, sigma=0.1)
    """

    def init(key: jax.Array, theta: PyTree) -> GAState:
        del key  # deterministic; the argument keeps the evosax signature
        theta = _as_float64(theta)
        flat_theta, _ = ravel_pytree(theta)
        return GAState(
            theta=theta,
            perturbations=jnp.zeros((population_size, flat_theta.size)),
            proposal=theta,
            has_proposal=jnp.asarray(False),
            n_accepted=jnp.zeros((), jnp.int32),
        )

    def ask(key: jax.Array, state: GAState) -> tuple[PyTree, GAState]:
        flat_theta, unravel = ravel_pytree(state.theta)
        eps = sigma * jax.random.normal(key, (population_size, flat_theta.size))
        flat_candidates = jnp.concatenate(
            [flat_theta + eps, jnp.broadcast_to(flat_theta, eps.shape)], axis=0
        )
        return jax.vmap(unravel)(flat_candidates), state._replace(perturbations=eps)

    def tell(state: GAState, losses: jax.Array) -> tuple[GAState, dict[str, jax.Array]]:
        losses = jnp.reshape(losses, (2, population_size))
        candidate_losses = jnp.where(jnp.isfinite(losses[0]), losses[0], jnp.inf)
        theta_losses = jnp.where(jnp.isfinite(losses[1]), losses[1], jnp.inf)
        beats_theta = candidate_losses < theta_losses
        # A finite candidate on an instance where theta collapsed gets -inf: the
        # strongest possible win, still subject to confirmation.
        improvement = jnp.where(beats_theta, candidate_losses - theta_losses, jnp.inf)
        best = jnp.argmin(improvement)
        has_winner = beats_theta[best]
        flat_theta, unravel = ravel_pytree(state.theta)
        winner = unravel(flat_theta + state.perturbations[best])
        proposal = _select(has_winner, winner, state.theta)
        if n_confirm_instances > 0:
            new_state = state._replace(proposal=proposal, has_proposal=has_winner)
        else:
            new_state = state._replace(
                theta=proposal,
                proposal=proposal,
                n_accepted=state.n_accepted + has_winner.astype(jnp.int32),
            )
        metrics = {
            "mean_loss": _finite_mean(losses[0]),
            "min_loss": _finite_min(losses[0]),
            "theta_loss": _finite_mean(losses[1]),
            "n_candidates_beating_theta": jnp.sum(beats_theta),
            "has_winner": has_winner,
        }
        return new_state, metrics

    def confirm_ask(state: GAState) -> PyTree:
        flat_proposal, unravel = ravel_pytree(state.proposal)
        flat_theta, _ = ravel_pytree(state.theta)
        shape = (n_confirm_instances, flat_theta.size)
        flat_candidates = jnp.concatenate(
            [
                jnp.broadcast_to(flat_proposal, shape),
                jnp.broadcast_to(flat_theta, shape),
            ]
        )
        return jax.vmap(unravel)(flat_candidates)

    def confirm_tell(
        state: GAState, losses: jax.Array
    ) -> tuple[GAState, dict[str, jax.Array]]:
        losses = jnp.reshape(losses, (2, n_confirm_instances))
        losses = jnp.where(jnp.isfinite(losses), losses, jnp.inf)
        proposal_loss = jnp.mean(losses[0])
        theta_loss = jnp.mean(losses[1])
        accepted = state.has_proposal & (proposal_loss < theta_loss)
        theta = _select(accepted, state.proposal, state.theta)
        new_state = state._replace(
            theta=theta,
            proposal=theta,
            has_proposal=jnp.asarray(False),
            n_accepted=state.n_accepted + accepted.astype(jnp.int32),
        )
        metrics = {
            "confirm_proposal_loss": proposal_loss,
            "confirm_theta_loss": theta_loss,
            "accepted": accepted,
        }
        return new_state, metrics

    with_confirmation = n_confirm_instances > 0
    return Strategy(
        name="ga",
        n_instances=population_size,
        n_groups=2,
        init=init,
        ask=jax.jit(ask),
        tell=jax.jit(tell),
        n_confirm_instances=n_confirm_instances,
        confirm_ask=jax.jit(confirm_ask) if with_confirmation else None,
        confirm_tell=jax.jit(confirm_tell) if with_confirmation else None,
    )


STRATEGIES: dict[str, Callable[..., Strategy]] = {
    "es": antithetic_es,
    "esmc": esmc,
    "ga": genetic_algorithm,
}


def make_strategy(name: str, **kwargs: Any) -> Strategy:
    """Builds a strategy by name ("es", "esmc" or "ga").

    Args:
        name: key of ``STRATEGIES``.
        **kwargs: passed to the factory (e.g. ``sigma``, ``n_pairs``).

    Returns:
        The ``Strategy``.

    Example:
        >>> strategy = make_strategy("esmc", n_pairs=40)
    """
    try:
        factory = STRATEGIES[name]
    except KeyError:
        raise ValueError(
            f"unknown strategy {name!r}; choose one of {sorted(STRATEGIES)}"
        ) from None
    return factory(**kwargs)

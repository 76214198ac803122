"""The meta-gradient estimators of paper section 3.2: antithetic ES (eq. 3) and
ES with meta-loss clipping (ESMC, eq. 4), over perturbations ``eps`` and the
meta-losses of their mirrored pairs (see `strategies` for the populations)."""

from __future__ import annotations

import jax
import jax.numpy as jnp

__all__ = ["es_gradient", "esmc_gradient"]


def _weighted_mean_of_perturbations(
    weights: jax.Array, perturbations: jax.Array, finite_pairs: jax.Array
) -> jax.Array:
    # jnp.where, not multiplication by the mask: 0 * inf would be NaN.
    weights = jnp.where(finite_pairs, weights, 0.0)
    n_finite = jnp.sum(finite_pairs)
    return (weights @ perturbations) / jnp.maximum(n_finite, 1)


def es_gradient(
    eps: jax.Array,
    losses_plus: jax.Array,
    losses_minus: jax.Array,
    sigma: float,
) -> jax.Array:
    """Antithetic ES estimate of the meta-gradient (paper eq. 3).

    ``mean_i (L(theta + eps_i) - L(theta - eps_i)) / (2 sigma^2) * eps_i`` over the
    pairs whose two losses are finite; zero when no pair is.

    Args:
        eps: ``[n_pairs, n_params]`` perturbations drawn from N(0, sigma^2 I).
        losses_plus: ``[n_pairs]`` meta-losses at theta + eps.
        losses_minus: ``[n_pairs]`` meta-losses at theta - eps, same instances.
        sigma: perturbation scale (paper: 0.1).

    Returns:
        ``[n_params]`` gradient estimate.

    Example:
        >>> gradient = es_gradient(eps, losses_plus, losses_minus, sigma=0.1)
    """
    finite_pairs = jnp.isfinite(losses_plus) & jnp.isfinite(losses_minus)
    weights = (losses_plus - losses_minus) / (2.0 * sigma**2)
    return _weighted_mean_of_perturbations(weights, eps, finite_pairs)


def esmc_gradient(
    eps: jax.Array,
    losses_plus: jax.Array,
    losses_minus: jax.Array,
    losses_center: jax.Array,
    sigma: float,
) -> jax.Array:
    """ES with meta-loss clipping (ESMC), paper eq. 4.

    ``mean_i (min(L0_i, L+_i) - min(L0_i, L-_i)) / (2 sigma^2) * eps_i`` where
    ``L0_i`` is the unperturbed loss on pair i's instance; pairs with any
    non-finite loss are left out, and the estimate is zero when none is finite.

    Args:
        eps: ``[n_pairs, n_params]`` perturbations drawn from N(0, sigma^2 I).
        losses_plus: ``[n_pairs]`` meta-losses at theta + eps.
        losses_minus: ``[n_pairs]`` meta-losses at theta - eps.
        losses_center: ``[n_pairs]`` meta-losses at theta, on the same instances.
        sigma: perturbation scale (paper: 0.1).

    Returns:
        ``[n_params]`` gradient estimate.

    Example:
        >>> gradient = esmc_gradient(eps, l_plus, l_minus, l_theta, sigma=0.1)
    """
    finite_pairs = (
        jnp.isfinite(losses_plus)
        & jnp.isfinite(losses_minus)
        & jnp.isfinite(losses_center)
    )
    clipped_plus = jnp.minimum(losses_center, losses_plus)
    clipped_minus = jnp.minimum(losses_center, losses_minus)
    weights = (clipped_plus - clipped_minus) / (2.0 * sigma**2)
    return _weighted_mean_of_perturbations(weights, eps, finite_pairs)

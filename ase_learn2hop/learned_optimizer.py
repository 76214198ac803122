"""The learned optimizer: a per-component MLP that moves atoms (paper section 3.1).

Pure JAX, in the optax / jax-md shape: the meta-parameters ``theta`` (network
weights and the scalars alpha, beta, gamma) are kept apart from the optimizer's
state, and

    state = init(positions)
    displacement, state = update(theta, config, state, positions, gradient, context)

are pure functions, so the same update runs inside a jitted ``lax.scan`` unroll
(training, fast path of the ASE adapter) and step by step (generic ASE path).

The update is paper eq. 2: ``delta_x = l * alpha * d * sigmoid(beta * m + gamma)``
where (m, d) are the network's two outputs per component and l the potential's
length scale (so one set of weights serves reduced LJ units and Å alike).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from ase_learn2hop.features import (
    DECAY_RATES,
    FeatureBlocks,
    FeatureSet,
    StructureContext,
    feature_blocks,
)

Theta = dict[str, Any]


@dataclasses.dataclass(frozen=True)
class LearnedOptimizerConfig:
    """Architecture of the learned optimizer (static, stored with the weights).

    Attributes:
        features: which feature groups the network sees.
        hidden_sizes: widths of the hidden layers (paper: two layers of 32).
        alpha, beta, gamma: initial values of the learned output scalars.
        network_dtype: precision of the features and the network, ``"float32"``
            (about twice as fast on CPU; positions and energies stay float64) or
            ``"float64"``.
    """

    features: FeatureSet = dataclasses.field(default_factory=FeatureSet)
    hidden_sizes: tuple[int, ...] = (32, 32)
    alpha: float = 0.1
    beta: float = 1.0
    gamma: float = -3.0
    network_dtype: str = "float32"

    def to_dict(self) -> dict:
        return {
            "features": self.features.to_dict(),
            "hidden_sizes": list(self.hidden_sizes),
            "alpha": self.alpha,
            "beta": self.beta,
            "gamma": self.gamma,
            "network_dtype": self.network_dtype,
        }

    @classmethod
    def from_dict(cls, values: dict) -> LearnedOptimizerConfig:
        values = dict(values)
        features = FeatureSet.from_dict(values.pop("features", {}))
        hidden = tuple(values.pop("hidden_sizes", (32, 32)))
        return cls(features=features, hidden_sizes=hidden, **values)


class ComponentMLP(nn.Module):
    """MLP applied to each coordinate component independently: features -> (m, d)."""

    hidden_sizes: tuple[int, ...]

    @nn.compact
    def __call__(self, features: jax.Array) -> jax.Array:
        x = features
        for width in self.hidden_sizes:
            x = nn.relu(nn.Dense(width, kernel_init=nn.initializers.lecun_normal())(x))
        # Zero output layer: an untrained optimizer does not move atoms.
        return nn.Dense(2, kernel_init=nn.initializers.zeros)(x)


class LearnedOptimizerState(NamedTuple):
    """State of the learned optimizer for one structure.

    Attributes:
        step: scalar int, number of updates made.
        first_moments: ``[n_decays, n, 3]`` moving averages of the gradient.
        second_moments: ``[n_decays, n, 3]`` moving averages of its square.
    """

    step: jax.Array
    first_moments: jax.Array
    second_moments: jax.Array


def apply_network(params: dict, blocks: FeatureBlocks, dtype: str) -> jax.Array:
    """The `ComponentMLP` on feature blocks: ``[n, 3, 2]`` outputs (m, d).

    Identical to ``ComponentMLP.apply`` on `features.component_features` (the
    first layer is linear, so its kernel splits into row blocks), but per-atom and
    shared features are multiplied once per atom and once per structure.
    """
    cast = functools.partial(jnp.asarray, dtype=dtype)
    first = params["Dense_0"]
    kernel = cast(first["kernel"])
    n_component = blocks.component.shape[-1]
    n_atom = blocks.atom.shape[-1]
    hidden = (
        cast(blocks.component) @ kernel[:n_component]
        + (cast(blocks.atom) @ kernel[n_component : n_component + n_atom])[:, None, :]
        + cast(blocks.shared) @ kernel[n_component + n_atom :]
        + cast(first["bias"])
    )
    hidden = jax.nn.relu(hidden)
    n_layers = len(params)
    for index in range(1, n_layers):
        layer = params[f"Dense_{index}"]
        hidden = hidden @ cast(layer["kernel"]) + cast(layer["bias"])
        if index < n_layers - 1:
            hidden = jax.nn.relu(hidden)
    return hidden


def init_theta(key: jax.Array, config: LearnedOptimizerConfig) -> Theta:
    """Fresh meta-parameters: LeCun-normal hidden layers, zero output layer.

    Returns:
        ``{"network": flax params, "alpha": (), "beta": (), "gamma": ()}``.
    """
    network = ComponentMLP(config.hidden_sizes)
    params = network.init(key, jnp.zeros((1, config.features.n_inputs)))["params"]
    return {
        "network": params,
        "alpha": jnp.asarray(config.alpha),
        "beta": jnp.asarray(config.beta),
        "gamma": jnp.asarray(config.gamma),
    }


def init(positions: jax.Array) -> LearnedOptimizerState:
    """Empty optimizer state for ``positions`` ``[n, 3]``."""
    zeros = jnp.zeros((len(DECAY_RATES),) + positions.shape, positions.dtype)
    return LearnedOptimizerState(jnp.asarray(0), zeros, zeros)


def update(
    theta: Theta,
    config: LearnedOptimizerConfig,
    state: LearnedOptimizerState,
    positions: jax.Array,
    gradient: jax.Array,
    context: StructureContext,
) -> tuple[jax.Array, LearnedOptimizerState]:
    """One learned step (paper eq. 2).

    Args:
        theta: meta-parameters from `init_theta` (or loaded weights).
        config: the architecture the weights belong to (static).
        state: the optimizer state of this structure.
        positions: ``[n, 3]`` current positions.
        gradient: ``[n, 3]`` dE/dx at ``positions``.
        context: species, length scale and box of the system.

    Returns:
        ``(displacement [n, 3], new_state)``; the caller adds the displacement.
    """
    decays = jnp.asarray(DECAY_RATES)[:, None, None]
    first = decays * state.first_moments + (1.0 - decays) * gradient
    second = decays * state.second_moments + (1.0 - decays) * gradient**2

    # Features in the network's precision: the radial sums and the encoding's
    # logarithms are most of the cost of a step, and float32 halves it on CPU.
    def cast(tree):
        return jax.tree_util.tree_map(
            lambda leaf: (
                leaf.astype(config.network_dtype)
                if jnp.issubdtype(leaf.dtype, jnp.floating)
                else leaf
            ),
            tree,
        )

    blocks = feature_blocks(
        config.features,
        *cast((positions, gradient, first, second)),
        state.step,
        cast(context),
    )
    outputs = apply_network(theta["network"], blocks, config.network_dtype)
    outputs = outputs.astype(positions.dtype)
    magnitude_gate, direction = outputs[..., 0], outputs[..., 1]
    gate = jax.nn.sigmoid(theta["beta"] * magnitude_gate + theta["gamma"])
    displacement = context.length_scale * theta["alpha"] * direction * gate
    return displacement, LearnedOptimizerState(state.step + 1, first, second)

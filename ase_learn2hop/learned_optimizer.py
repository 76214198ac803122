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
from collections.abc import Callable
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax.linen.dtypes import promote_dtype

from ase_learn2hop import neighbours
from ase_learn2hop.features import (
    DECAY_RATES,
    FeatureBlocks,
    FeatureSet,
    feature_blocks,
)
from ase_learn2hop.precision import floating_as
from ase_learn2hop.systems import StructureContext

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


class BlockDense(nn.Module):
    """`nn.Dense` on `FeatureBlocks`, without concatenating them.

    Same parameters as ``nn.Dense(features)`` on the concatenated input
    ``[component, atom, shared]`` (``kernel [n_inputs, features]``, ``bias``, same
    initialisers and random streams), and the same result: the layer is linear, so
    its kernel splits into row blocks, and the per-atom and shared features are
    multiplied once per atom and once per structure instead of once per component.

    Attributes:
        features: output width.
        dtype: precision of the computation (inputs and parameters are cast to
            it), ``None`` for the promoted type of both.
        param_dtype: precision of the stored parameters.
    """

    features: int
    dtype: Any = None
    param_dtype: Any = jnp.float32
    kernel_init: Callable = nn.initializers.lecun_normal()
    bias_init: Callable = nn.initializers.zeros_init()

    @nn.compact
    def __call__(self, blocks: FeatureBlocks) -> jax.Array:
        """``[..., 3, features]`` from blocks ``[..., 3, c]``, ``[..., a]``, ``[s]``."""
        n_component = blocks.component.shape[-1]
        n_atom = blocks.atom.shape[-1]
        n_inputs = n_component + n_atom + blocks.shared.shape[-1]
        kernel = self.param(
            "kernel", self.kernel_init, (n_inputs, self.features), self.param_dtype
        )
        bias = self.param("bias", self.bias_init, (self.features,), self.param_dtype)
        component, atom, shared, kernel, bias = promote_dtype(
            blocks.component, blocks.atom, blocks.shared, kernel, bias, dtype=self.dtype
        )
        return (
            component @ kernel[:n_component]
            + (atom @ kernel[n_component : n_component + n_atom])[..., None, :]
            + shared @ kernel[n_component + n_atom :]
            + bias
        )


class ComponentMLP(nn.Module):
    """MLP applied to each coordinate component independently: features -> (m, d).

    Takes the `FeatureBlocks`; the first layer is a `BlockDense`, so the network
    is the plain MLP on the concatenated ``[n, 3, n_inputs]`` features. The layers
    are named ``Dense_0``, ``Dense_1``, ... (the names in the shipped weight files).

    Attributes:
        hidden_sizes: widths of the hidden layers.
        dtype: precision of the computation (`LearnedOptimizerConfig.network_dtype`);
            parameters stay float32.
    """

    hidden_sizes: tuple[int, ...]
    dtype: Any = None

    @nn.compact
    def __call__(self, blocks: FeatureBlocks) -> jax.Array:
        """``[n, 3, 2]`` outputs (m, d) in ``dtype``."""
        widths = (*self.hidden_sizes, 2)
        x = blocks
        for index, width in enumerate(widths):
            last = index == len(widths) - 1
            # Zero output layer: an untrained optimizer does not move atoms.
            kernel_init = (
                nn.initializers.zeros if last else nn.initializers.lecun_normal()
            )
            layer = BlockDense if index == 0 else nn.Dense
            x = layer(
                width, dtype=self.dtype, kernel_init=kernel_init, name=f"Dense_{index}"
            )(x)
            if not last:
                x = nn.relu(x)
        return x


class LearnedOptimizerState(NamedTuple):
    """State of the learned optimizer for one structure.

    Attributes:
        step: scalar int, number of updates made.
        first_moments: ``[n_decays, n, 3]`` moving averages of the gradient.
        second_moments: ``[n_decays, n, 3]`` moving averages of its square.
        neighbours: the radial features' `jax_md.partition.NeighborList`
            (`neighbours`), or ``None`` for all pairs.
    """

    step: jax.Array
    first_moments: jax.Array
    second_moments: jax.Array
    neighbours: Any = None


def apply_network(
    params: dict, blocks: FeatureBlocks, config: LearnedOptimizerConfig
) -> jax.Array:
    """The `ComponentMLP` of ``config`` on feature blocks: ``[n, 3, 2]`` outputs
    (m, d) in ``config.network_dtype`` (features and parameters are cast to it)."""
    network = ComponentMLP(config.hidden_sizes, dtype=config.network_dtype)
    return network.apply({"params": params}, blocks)


def init_theta(key: jax.Array, config: LearnedOptimizerConfig) -> Theta:
    """Fresh meta-parameters: LeCun-normal hidden layers, zero output layer.

    Returns:
        ``{"network": flax params, "alpha": (), "beta": (), "gamma": ()}``.
    """
    network = ComponentMLP(config.hidden_sizes, dtype=config.network_dtype)
    # Only the total width of the blocks shapes the parameters.
    blocks = FeatureBlocks(
        component=jnp.zeros((1, 3, config.features.n_inputs)),
        atom=jnp.zeros((1, 0)),
        shared=jnp.zeros((0,)),
    )
    params = network.init(key, blocks)["params"]
    return {
        "network": params,
        "alpha": jnp.asarray(config.alpha),
        "beta": jnp.asarray(config.beta),
        "gamma": jnp.asarray(config.gamma),
    }


def init(
    positions: jax.Array, context: StructureContext | None = None
) -> LearnedOptimizerState:
    """Empty optimizer state for ``positions`` ``[n, 3]``, with an empty
    neighbour list for the radial features when ``context`` has one
    (`neighbours.initial`; rebuilt at the first update)."""
    zeros = jnp.zeros((len(DECAY_RATES),) + positions.shape, positions.dtype)
    listed = None if context is None else neighbours.initial(context, positions)
    step = jnp.asarray(0, dtype=int)  # not weakly typed (`saved_programs`)
    return LearnedOptimizerState(step, zeros, zeros, listed)


def restart(state: LearnedOptimizerState) -> LearnedOptimizerState:
    """``state`` emptied for a new start (step 0, zero moments), its
    neighbour list kept: the list is valid wherever the atoms are, since every
    update checks it and rebuilds it as needed."""
    zeros = jnp.zeros_like(state.first_moments)
    return LearnedOptimizerState(
        jnp.zeros_like(state.step), zeros, zeros, state.neighbours
    )


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
        return floating_as(tree, config.network_dtype)

    listed = state.neighbours
    if listed is not None:
        # Rebuilt here when an atom has moved half the skin since the last build.
        listed = context.neighbour_list.update(listed, positions)
    blocks = feature_blocks(
        config.features,
        *cast((positions, gradient, first, second)),
        state.step,
        cast(context),
        None if listed is None else listed.idx,
    )
    outputs = apply_network(theta["network"], blocks, config)
    outputs = outputs.astype(positions.dtype)
    magnitude_gate, direction = outputs[..., 0], outputs[..., 1]
    gate = jax.nn.sigmoid(theta["beta"] * magnitude_gate + theta["gamma"])
    displacement = context.length_scale * theta["alpha"] * direction * gate
    return displacement, LearnedOptimizerState(state.step + 1, first, second, listed)

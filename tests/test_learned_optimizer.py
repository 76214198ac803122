"""The learned optimizer's update and the unrolled search (SPEC section 4)."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from ase_learn2hop import learned_optimizer, search
from ase_learn2hop.features import FeatureBlocks, FeatureSet, feature_blocks
from ase_learn2hop.learned_optimizer import LearnedOptimizerConfig, init_theta
from ase_learn2hop.potentials import lennard_jones
from ase_learn2hop.systems import lennard_jones_system
from ase_learn2hop.weights import load_weights

lj = lennard_jones()

# A random LJ13 structure (uniform in a 2.5 cube, closest pair 0.40).
LJ13_POSITIONS = np.array(
    [
        [1.592, 0.674, 0.102],
        [0.041, 2.033, 2.282],
        [1.517, 1.824, 1.359],
        [2.338, 2.040, 0.007],
        [2.144, 0.084, 1.824],
        [0.439, 2.158, 1.354],
        [0.749, 1.057, 0.071],
        [0.311, 1.677, 1.618],
        [1.538, 0.959, 2.493],
        [2.452, 1.714, 1.626],
        [1.721, 0.972, 0.338],
        [1.804, 1.313, 0.776],
        [1.215, 2.224, 2.335],
    ]
)
# Displacements of the shipped "lj" weights in three steps from LJ13_POSITIONS,
# recorded with the implementation before `ComponentMLP` took the feature blocks
# (the first layer was then applied by hand).
LJ13_DISPLACEMENTS = np.array(
    [
        [
            [-0.0341503628, -0.0316970978, -0.0322731819],
            [-0.0476981392, 0.0112545197, 0.0120809978],
            [-0.0461464907, 0.0108059992, 0.0107118880],
            [-0.0511812002, -0.0504798283, 0.0108763031],
            [-0.0530191452, 0.0107947313, 0.0052488057],
            [0.0136081153, 0.0148845408, -0.0388775903],
            [-0.0520684851, 0.0109250064, 0.0103241991],
            [-0.0424129815, -0.0388430099, 0.0145379098],
            [0.0053341649, 0.0099581777, -0.0511053439],
            [-0.0531785763, -0.0514399182, -0.0521370201],
            [0.0214676398, 0.0230916181, 0.0231240552],
            [0.0140354015, 0.0131106227, 0.0133700544],
            [-0.0540964005, -0.0503509145, -0.0499631676],
        ],
        [
            [-0.0349167704, -0.0322387590, -0.0325981021],
            [-0.0416852424, 0.0067862938, 0.0073034381],
            [-0.0381659551, 0.0065763494, 0.0064533228],
            [-0.0402746989, -0.0399515178, 0.0144833752],
            [-0.0407886503, 0.0143930156, 0.0031618445],
            [0.0158849520, 0.0108818312, -0.0352603768],
            [-0.0431788043, 0.0143192894, 0.0143269817],
            [-0.0380963568, -0.0352591423, 0.0101258873],
            [0.0031645993, 0.0139563703, -0.0401996657],
            [-0.0439364039, -0.0404321492, -0.0409028369],
            [0.0199010375, 0.0234094295, 0.0232565468],
            [0.0096721619, 0.0158323481, 0.0162625915],
            [-0.0439672199, -0.0400090144, -0.0397704791],
        ],
        [
            [-0.0341792379, -0.0315185867, -0.0318721784],
            [-0.0412261992, 0.0075441824, 0.0080546876],
            [-0.0375338058, 0.0073307763, 0.0072173747],
            [-0.0396015763, -0.0392498443, 0.0151217172],
            [-0.0400985857, 0.0151024345, 0.0040951318],
            [0.0159671076, 0.0111809716, -0.0347409362],
            [-0.0395333458, 0.0149948686, 0.0150980457],
            [-0.0374405279, -0.0345371042, 0.0106463910],
            [0.0041550767, 0.0147030730, -0.0394525797],
            [0.0055993300, -0.0463736519, 0.0052897637],
            [0.0096483041, 0.0120044565, 0.0117968414],
            [0.0102717947, 0.0159748860, 0.0170422664],
            [-0.0428915278, -0.0395148160, -0.0393885476],
        ],
    ]
)


def lj_context(n):
    return lennard_jones_system(n).context


def numpy_network(params, blocks):
    """The MLP written out in NumPy float64: the three feature blocks broadcast to
    every component and concatenated, then dense layers with ReLU between them."""
    component, atom, shared = (np.asarray(block, np.float64) for block in blocks)
    n_atoms = component.shape[0]
    x = np.concatenate(
        [
            component,
            np.broadcast_to(atom[:, None, :], (n_atoms, 3, atom.shape[-1])),
            np.broadcast_to(shared, (n_atoms, 3, shared.shape[-1])),
        ],
        axis=-1,
    )
    n_layers = len(params)
    for index in range(n_layers):
        layer = params[f"Dense_{index}"]
        x = x @ np.asarray(layer["kernel"], np.float64)
        x = x + np.asarray(layer["bias"], np.float64)
        if index < n_layers - 1:
            x = np.maximum(x, 0.0)
    return x


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


def test_initial_theta_is_a_plain_flax_mlp_on_the_concatenated_features():
    class PlainMLP(nn.Module):
        hidden_sizes: tuple[int, ...]

        @nn.compact
        def __call__(self, x):
            for width in self.hidden_sizes:
                x = nn.relu(nn.Dense(width)(x))
            return nn.Dense(2, kernel_init=nn.initializers.zeros)(x)

    for hidden_sizes in [(32, 32), (16, 8, 4)]:
        config = LearnedOptimizerConfig(hidden_sizes=hidden_sizes)
        theta = init_theta(jax.random.key(0), config)
        plain = PlainMLP(hidden_sizes).init(
            jax.random.key(0), jnp.zeros((1, config.features.n_inputs))
        )["params"]
        assert jax.tree_util.tree_structure(
            theta["network"]
        ) == jax.tree_util.tree_structure(plain)
        for ours, reference in zip(
            jax.tree_util.tree_leaves(theta["network"]),
            jax.tree_util.tree_leaves(plain),
        ):
            assert ours.dtype == reference.dtype == jnp.float32
            np.testing.assert_array_equal(ours, reference)


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
    )
    np.testing.assert_array_equal(
        np.asarray(result.final_positions), np.asarray(positions)
    )
    assert np.all(np.asarray(trace.step_size) == 0.0)


def test_update_is_paper_equation_two():
    config = LearnedOptimizerConfig(network_dtype="float64")
    theta = perturbed_theta(config)
    positions = jax.random.uniform(jax.random.key(3), (5, 3)) * 2
    gradient = jax.grad(lj)(positions)
    state = learned_optimizer.init(positions)
    displacement, new_state = learned_optimizer.update(
        theta, config, state, positions, gradient, lj_context(5)
    )
    blocks = feature_blocks(
        config.features,
        positions,
        gradient,
        new_state.first_moments,
        new_state.second_moments,
        state.step,
        lj_context(5),
    )
    outputs = numpy_network(theta["network"], blocks)
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


def test_network_is_the_mlp_on_the_concatenated_feature_blocks():
    for hidden_sizes in [(32, 32), (16, 8, 4)]:
        config = LearnedOptimizerConfig(
            hidden_sizes=hidden_sizes, network_dtype="float64"
        )
        theta = perturbed_theta(config)
        n_atoms, n_inputs = 6, config.features.n_inputs
        keys = jax.random.split(jax.random.key(7), 3)
        blocks = FeatureBlocks(
            jax.random.normal(keys[0], (n_atoms, 3, n_inputs - 30)),
            jax.random.normal(keys[1], (n_atoms, 18)),
            jax.random.normal(keys[2], (12,)),
        )
        expected = numpy_network(theta["network"], blocks)
        outputs = learned_optimizer.apply_network(theta["network"], blocks, config)
        assert outputs.shape == (n_atoms, 3, 2) and outputs.dtype == jnp.float64
        np.testing.assert_allclose(outputs, expected, rtol=1e-12, atol=1e-12)
        # The float32 network casts features and weights to float32.
        fast = learned_optimizer.apply_network(
            theta["network"], blocks, LearnedOptimizerConfig(hidden_sizes=hidden_sizes)
        )
        assert fast.dtype == jnp.float32
        np.testing.assert_allclose(fast, expected, rtol=1e-4, atol=1e-5)


def test_shipped_lj_weights_give_the_recorded_displacements():
    weights = load_weights("lj")
    system = lennard_jones_system(13)
    positions = jnp.asarray(LJ13_POSITIONS)
    state = learned_optimizer.init(positions)
    for expected in LJ13_DISPLACEMENTS:
        gradient = jax.grad(system.energy_fn)(positions, system.potential_parameters)
        displacement, state = learned_optimizer.update(
            weights.theta, weights.config, state, positions, gradient, system.context
        )
        # Float32 tolerance: the network runs in float32, and XLA's code for
        # another CPU (vector width, fused multiply-adds) moves the last bits
        # (3.4e-7 relative between the recording CPU and another one).
        np.testing.assert_allclose(displacement, expected, rtol=2e-6, atol=1e-9)
        positions = positions + displacement


def _batched_search(theta, config, starts, n_atoms, n_steps, polish_steps=1000):
    batch = starts.shape[0]
    return jax.vmap(
        lambda x: search.learned_search(
            theta,
            config,
            lj,
            x,
            lj_context(n_atoms),
            n_steps=n_steps,
            polish_steps=polish_steps,
        )
    )(starts[:batch])


def test_search_keeps_the_best_structure_and_polishes_it():
    config = LearnedOptimizerConfig(features=FeatureSet(radial=False))
    theta = perturbed_theta(config, scale=1.0)
    starts = jax.random.uniform(jax.random.key(4), (6, 7, 3)) * 2.0
    result, trace = _batched_search(theta, config, starts, 7, 50)
    best = np.asarray(result.best_energy)
    assert np.all(best <= np.asarray(result.final_energy) + 1e-12)
    assert np.all(best <= np.min(np.asarray(trace.energy), axis=1) + 1e-9)
    # Gradient descent with a small step only lowers the energy.
    raw_best = jax.vmap(lambda x: lj(x, None))(result.best_positions)
    np.testing.assert_allclose(raw_best, result.best_energy, rtol=1e-12)


def test_batched_search_equals_single_searches():
    config = LearnedOptimizerConfig()
    theta = perturbed_theta(config)
    starts = jax.random.uniform(jax.random.key(5), (3, 5, 3)) * 2.0
    batched, _ = _batched_search(theta, config, starts, 5, 30, polish_steps=10)
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

"""Feature values of the learned optimizer on hand-made inputs (SPEC section 4)."""

import math

import jax.numpy as jnp
import numpy as np
import pytest
from ase import Atoms
from ase.cluster import Icosahedron

from ase_learn2hop import conversion, systems
from ase_learn2hop.features import (
    DECAY_RATES,
    RADIAL_ETAS,
    STEP_TIMESCALES,
    FeatureSet,
    centered_positions,
    cosine_cutoff,
    exponential,
    feature_blocks,
    log_sign_encoding,
    radial_symmetry_features,
    step_sine_features,
)
from ase_learn2hop.geometry import FREE, periodic_cell, periodic_cube
from ase_learn2hop.systems import ANY_COMPOSITION, ONE_SPECIES, StructureContext


def context(species, length_scale=1.0, geometry=FREE, composition=ANY_COMPOSITION):
    n = len(species)
    return StructureContext(
        jnp.asarray(species, dtype=jnp.int32),
        jnp.zeros((n, 5)),
        jnp.asarray(length_scale),
        geometry,
        composition=composition,
    )


def test_encoding_large_values_give_log_magnitude_and_sign():
    encoded = np.asarray(log_sign_encoding(jnp.array([2.0, -0.5, 1e3]), p=10.0))
    np.testing.assert_allclose(encoded[:, 0], np.log([2.0, 0.5, 1e3]) / 10.0)
    np.testing.assert_allclose(encoded[:, 1], [1.0, -1.0, 1.0])


def test_encoding_small_values_are_linear_below_exp_minus_p():
    tiny = math.exp(-10.0) / 2
    encoded = np.asarray(log_sign_encoding(jnp.array([tiny, -tiny, 0.0]), p=10.0))
    np.testing.assert_allclose(encoded[:, 0], [-1.0, -1.0, -1.0])
    np.testing.assert_allclose(encoded[:, 1], [0.5, -0.5, 0.0])


def test_encoding_is_continuous_at_the_branch_point():
    edge = math.exp(-10.0)
    below = np.asarray(log_sign_encoding(jnp.array(edge * (1 - 1e-9))))
    above = np.asarray(log_sign_encoding(jnp.array(edge * (1 + 1e-9))))
    np.testing.assert_allclose(below, above, atol=1e-6)


@pytest.mark.parametrize("composition", [ANY_COMPOSITION, ONE_SPECIES])
def test_radial_features_of_a_dimer_match_the_behler_parrinello_formula(composition):
    """Whether or not the context knows that both atoms are of one species
    (which leaves out the other-species sums)."""
    r = 1.3
    positions = jnp.array([[0.0, 0.0, 0.0], [r, 0.0, 0.0]])
    phi = np.asarray(
        radial_symmetry_features(positions, context([0, 0], composition=composition))
    )
    gamma = 0.5 * (math.cos(math.pi * r / 2.5) + 1.0)
    expected = [math.exp(-eta * r * r) * gamma for eta in RADIAL_ETAS]
    np.testing.assert_allclose(phi[0, : len(RADIAL_ETAS)], expected, rtol=1e-12)
    np.testing.assert_allclose(phi[0, len(RADIAL_ETAS) :], 0.0)
    np.testing.assert_allclose(phi[0], phi[1])


def test_radial_features_split_same_and_other_species_and_use_the_length_scale():
    scale = 2.88
    positions = jnp.array([[0.0, 0.0, 0.0], [scale, 0, 0], [0, 2 * scale, 0]])
    phi = np.asarray(radial_symmetry_features(positions, context([0, 1, 0], scale)))
    n_eta = len(RADIAL_ETAS)
    gamma_1 = 0.5 * (math.cos(math.pi * 1.0 / 2.5) + 1.0)
    gamma_2 = 0.5 * (math.cos(math.pi * 2.0 / 2.5) + 1.0)
    same_0 = [math.exp(-eta * 4.0) * gamma_2 for eta in RADIAL_ETAS]
    other_0 = [math.exp(-eta * 1.0) * gamma_1 for eta in RADIAL_ETAS]
    np.testing.assert_allclose(phi[0, :n_eta], same_0, rtol=1e-12)
    np.testing.assert_allclose(phi[0, n_eta:], other_0, rtol=1e-12)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_one_species_radial_features_are_the_full_sums_bit_for_bit(dtype):
    """The other-species sums a one-species context leaves out are exactly 0,
    so the features keep the bits of the full computation (and with them
    every trajectory of the shipped weights)."""
    rng = np.random.default_rng(4)
    positions = jnp.asarray(rng.uniform(0.0, 2.4, size=(13, 3)), dtype=dtype)
    full = radial_symmetry_features(positions, context([0] * 13, 1.1))
    skipped = radial_symmetry_features(
        positions, context([0] * 13, 1.1, composition=ONE_SPECIES)
    )
    assert skipped.dtype == full.dtype == dtype
    assert np.any(np.asarray(full)[:, : len(RADIAL_ETAS)] > 0.0)
    np.testing.assert_array_equal(np.asarray(skipped), np.asarray(full))


@pytest.mark.parametrize(
    "name, one_species",
    [("lj13", True), ("au55", True), ("si64", True), ("Pd19Pt19", False)],
)
def test_systems_know_one_species_only_where_every_atom_is_one_element(
    name, one_species
):
    context = systems.system_from_name(name).context
    assert context.composition.one_species is one_species
    assert (len(set(np.asarray(context.species).tolist())) == 1) is one_species


def test_contexts_of_ase_atoms_know_one_species_from_the_atomic_numbers():
    copper = Icosahedron("Cu", 2)
    assert conversion.generic_context(copper, None).composition.one_species
    alloy = copper.copy()
    alloy.numbers[:5] = 47
    assert not conversion.generic_context(alloy, None).composition.one_species
    dimer = Atoms("Ar2", positions=[[0, 0, 0], [0, 0, 3.8]])
    assert conversion.generic_context(dimer, 3.8).composition.one_species


def test_neighbours_beyond_the_cutoff_contribute_nothing():
    positions = jnp.array([[0.0, 0.0, 0.0], [2.6, 0.0, 0.0]])
    assert np.all(
        np.asarray(radial_symmetry_features(positions, context([0, 0]))) == 0.0
    )
    assert float(cosine_cutoff(jnp.array(2.5), 2.5)) == 0.0


@pytest.mark.parametrize("cutoff", [2.5, 1.0, 7.3])
def test_float32_cutoff_is_the_cosine_to_float32_rounding(cutoff):
    # The float32 cutoff is a polynomial (XLA's scalar cosine is slow on CPU):
    # it must agree with the exact cosine as closely as float32 can.
    r = np.linspace(0.0, 1.2 * cutoff, 100001)
    exact = [0.5 * (math.cos(math.pi * x / cutoff) + 1.0) if x < cutoff else 0.0
             for x in r.astype(np.float32).astype(float)]  # fmt: skip
    cutoff_32 = np.asarray(cosine_cutoff(jnp.asarray(r, jnp.float32), cutoff))
    assert cutoff_32.dtype == np.float32
    np.testing.assert_allclose(cutoff_32, exact, rtol=0, atol=2e-7)
    assert float(cosine_cutoff(jnp.float32(cutoff), cutoff)) == 0.0


def test_float32_exponential_is_within_one_ulp_of_the_exact_value():
    # The float32 exponential is written out (XLA's is computed one element
    # at a time in the radial kernels): float64 numpy is the reference.
    x = np.concatenate(
        [np.linspace(-87.3, 88.3, 2_000_001), [-10.0, -1e-30, 0.0, 1e-30]]
    ).astype(np.float32)
    ours = np.asarray(exponential(jnp.asarray(x)))
    assert ours.dtype == np.float32
    exact = np.exp(x.astype(np.float64))
    ulp = np.spacing(exact.astype(np.float32)).astype(np.float64)
    assert np.max(np.abs(ours - exact) / ulp) <= 1.0
    # Below float32's smallest normal number it flushes to zero; above its
    # largest, infinity.
    edges = np.asarray(
        exponential(jnp.asarray([-88.0, -1e4, -np.inf, 89.0, np.inf], jnp.float32))
    )
    np.testing.assert_array_equal(edges, [0.0, 0.0, 0.0, np.inf, np.inf])
    assert float(exponential(jnp.float32(0.0))) == 1.0
    assert np.isnan(float(exponential(jnp.float32(np.nan))))


def test_float64_exponential_is_the_library_exponential():
    x = np.linspace(-50.0, 50.0, 1001)
    ours = np.asarray(exponential(jnp.asarray(x, jnp.float64)))
    assert ours.dtype == np.float64
    np.testing.assert_allclose(ours, np.exp(x), rtol=1e-15)


def test_radial_features_use_the_minimum_image_in_a_periodic_box():
    positions = jnp.array([[0.2, 5.0, 5.0], [9.8, 5.0, 5.0]])
    periodic = np.asarray(
        radial_symmetry_features(positions, context([0, 0], 1.0, periodic_cube(10.0)))
    )
    near = jnp.array([[0.0, 0.0, 0.0], [0.4, 0.0, 0.0]])
    free = np.asarray(radial_symmetry_features(near, context([0, 0])))
    np.testing.assert_allclose(periodic, free, rtol=1e-12)


def test_radial_features_use_the_minimum_image_in_a_sheared_cell():
    cell = np.array([[10.0, 0.0, 0.0], [4.0, 10.0, 0.0], [0.0, 0.0, 10.0]])
    # 0.2 + 0.5 along the second cell vector: the image is 0.5 away along b.
    positions = jnp.array([[1.0, 1.0, 1.0], [1.0, 1.0, 1.0]]) + jnp.array(
        [[0.0, 0.0, 0.0], list(cell[1] - 0.05 * cell[1])]
    )
    periodic = np.asarray(
        radial_symmetry_features(positions, context([0, 0], 1.0, periodic_cell(cell)))
    )
    near = jnp.array([[0.0, 0.0, 0.0], list(0.05 * cell[1])])
    free = np.asarray(radial_symmetry_features(near, context([0, 0])))
    np.testing.assert_allclose(periodic, free, rtol=1e-12)


def test_centered_positions_use_the_centroid_or_the_cell_centre():
    positions = jnp.array([[1.0, 2.0, 3.0], [3.0, 2.0, 5.0]])
    np.testing.assert_allclose(
        centered_positions(positions, context([0, 0], 2.0)),
        [[-0.5, 0.0, -0.5], [0.5, 0.0, 0.5]],
    )
    np.testing.assert_allclose(
        centered_positions(positions, context([0, 0], 2.0, periodic_cube(4.0))),
        [[-0.5, 0.0, 0.5], [0.5, 0.0, 1.5]],
    )
    cell = [[4.0, 0.0, 0.0], [2.0, 4.0, 0.0], [0.0, 0.0, 6.0]]
    np.testing.assert_allclose(
        centered_positions(positions, context([0, 0], 1.0, periodic_cell(cell))),
        np.asarray(positions) - [3.0, 2.0, 3.0],
    )


def test_step_sine_features():
    values = np.asarray(step_sine_features(jnp.asarray(50)))
    np.testing.assert_allclose(values, [math.sin(50 / tau) for tau in STEP_TIMESCALES])


def test_feature_count_follows_the_feature_set():
    n = 4
    positions = jnp.arange(12.0).reshape(n, 3) * 0.7
    gradient = jnp.ones((n, 3))
    moments = jnp.ones((len(DECAY_RATES), n, 3))
    for feature_set in [
        FeatureSet(),
        FeatureSet(radial=False, step=False),
        FeatureSet(
            gradients=True,
            positions=False,
            decays=False,
            adam_like=False,
            particle_count=False,
            species=False,
            step=False,
            radial=False,
        ),
    ]:
        blocks = feature_blocks(
            feature_set,
            positions,
            gradient,
            moments,
            moments,
            jnp.asarray(3),
            context([0] * n),
        )
        assert blocks.component.shape[:2] == (n, 3)
        assert blocks.atom.shape[0] == n and blocks.shared.ndim == 1
        widths = sum(block.shape[-1] for block in blocks)
        assert widths == feature_set.n_inputs
        for block in blocks:
            assert np.all(np.isfinite(np.asarray(block)))


def test_gradient_only_features_encode_the_gradient_component():
    feature_set = FeatureSet(
        positions=False,
        decays=False,
        adam_like=False,
        particle_count=False,
        species=False,
        step=False,
        radial=False,
    )
    gradient = jnp.array([[2.0, -3.0, 0.0]])
    moments = jnp.zeros((len(DECAY_RATES), 1, 3))
    features = np.asarray(
        feature_blocks(
            feature_set,
            jnp.zeros((1, 3)),
            gradient,
            moments,
            moments,
            jnp.asarray(0),
            context([0]),
        ).component
    )
    np.testing.assert_allclose(
        features[0, :, 0], [math.log(2) / 10, math.log(3) / 10, -1.0]
    )
    np.testing.assert_allclose(features[0, :, 1], [1.0, -1.0, 0.0])


def test_unknown_feature_group_is_refused():
    with pytest.raises(ValueError, match="unknown feature groups"):
        FeatureSet.from_dict({"gradients": True, "curvature": True})

"""Harmonic initialization (SPEC section 3): reproducible, batched, spread apart."""

import jax
import numpy as np
import pytest

from ase_learn2hop import initialization, potentials, systems
from ase_learn2hop.geometry import periodic_cell, periodic_cube


def closest_pair_distances(positions, cell=None):
    """``[n_starts]`` closest distance per structure, computed with numpy (ASE's
    minimum image when ``cell`` is given)."""
    positions = np.asarray(positions)
    delta = positions[:, :, None, :] - positions[:, None, :, :]
    if cell is not None:
        from ase.geometry import find_mic

        delta = find_mic(delta.reshape(-1, 3), cell, pbc=True)[0].reshape(delta.shape)
    distances = np.linalg.norm(delta, axis=-1)
    n_atoms = positions.shape[1]
    distances[:, np.arange(n_atoms), np.arange(n_atoms)] = np.inf
    return distances.min(axis=(1, 2))


def test_same_key_same_structures_and_batched_shape():
    key = jax.random.key(3)
    kwargs = {"box_size": 3.0, "diameter": 1.0, "steps": 50}
    first = initialization.harmonic_initialization(key, 13, 4, **kwargs)
    second = initialization.harmonic_initialization(key, 13, 4, **kwargs)
    other = initialization.harmonic_initialization(jax.random.key(4), 13, 4, **kwargs)
    assert first.shape == (4, 13, 3)
    assert first.dtype == np.float64
    np.testing.assert_array_equal(first, second)
    assert not np.allclose(first, other)
    # Every start of the batch is different.
    assert len({np.asarray(start).tobytes() for start in first}) == 4


@pytest.mark.parametrize(
    "n_atoms, box_size, diameter", [(13, 3.0, 1.0), (38, 3.0, 1.0), (55, 4.0, 2.96)]
)
def test_clusters_are_spread_to_contact(n_atoms, box_size, diameter):
    positions = initialization.harmonic_initialization(
        jax.random.key(0),
        n_atoms,
        6,
        box_size=box_size,
        diameter=diameter,
        learning_rate=1e-2,
    )
    assert np.all(closest_pair_distances(positions) > 0.8 * diameter)
    soft_sphere = jax.vmap(lambda x: potentials.soft_sphere()(x, diameter))
    assert np.all(np.asarray(soft_sphere(positions)) < 1e-2)


def test_paper_defaults_remove_overlaps_of_small_clusters():
    key = jax.random.key(1)
    raw = initialization.harmonic_initialization(
        key, 13, 8, box_size=3.0, diameter=1.0, steps=0
    )
    relaxed = initialization.harmonic_initialization(
        key, 13, 8, box_size=3.0, diameter=1.0
    )
    assert np.all(np.abs(np.asarray(raw)) <= 1.5)
    soft_sphere = jax.vmap(lambda x: potentials.soft_sphere()(x, 1.0))
    assert np.all(np.asarray(soft_sphere(relaxed)) < 0.2)
    assert np.all(closest_pair_distances(relaxed) > 0.6)
    assert closest_pair_distances(raw).min() < closest_pair_distances(relaxed).min()


def test_periodic_starts_lie_inside_box_and_respect_images():
    box = potentials.SILICON_BOX_LENGTH
    diameter = potentials.SILICON_NEAREST_NEIGHBOUR_DISTANCE
    positions = initialization.harmonic_initialization(
        jax.random.key(2),
        64,
        4,
        box_size=1.0,  # ignored with a periodic box
        diameter=diameter,
        geometry=periodic_cube(box),
        learning_rate=1e-2,
    )
    positions = np.asarray(positions)
    assert positions.shape == (4, 64, 3)
    assert np.all((positions >= 0.0) & (positions < box))
    # The atoms fill the box rather than the 1.0 cube.
    assert np.ptp(positions[..., 0]) > 0.8 * box
    assert np.all(closest_pair_distances(positions, box * np.eye(3)) > 0.8 * diameter)


def test_periodic_starts_in_a_sheared_cell_lie_inside_it():
    cell = np.array([[11.0, 0.0, 0.0], [3.0, 10.5, 0.0], [-1.0, 2.0, 11.5]])
    diameter = potentials.SILICON_NEAREST_NEIGHBOUR_DISTANCE
    positions = np.asarray(
        initialization.harmonic_initialization(
            jax.random.key(6),
            64,
            2,
            box_size=1.0,
            diameter=diameter,
            geometry=periodic_cell(cell),
            learning_rate=1e-2,
        )
    )
    fractional = positions @ np.linalg.inv(cell)
    assert np.all((fractional >= 0.0) & (fractional < 1.0))
    assert np.all(closest_pair_distances(positions, cell) > 0.8 * diameter)


def test_starting_structures_per_system():
    key = jax.random.key(5)
    lennard_jones = systems.starting_structures(
        key, systems.lennard_jones_system(13), 2
    )
    assert lennard_jones.shape == (2, 13, 3)
    gupta = systems.starting_structures(key, systems.system_from_name("au13"), 2)
    assert gupta.shape == (2, 13, 3)
    # The Gupta box (4.0 Å) and diameter (2.96 Å) make bigger clusters than LJ.
    assert np.ptp(np.asarray(gupta)) > np.ptp(np.asarray(lennard_jones))
    silicon = np.asarray(
        systems.starting_structures(key, systems.system_from_name("si64"), 1)
    )
    assert np.all((silicon >= 0.0) & (silicon < potentials.SILICON_BOX_LENGTH))
    assert not hasattr(initialization, "starting_structures")


def test_compact_random_clusters_are_bonded_spread_and_relax_to_lj38_minima():
    import scipy.optimize
    from lennard_jones_reference import lennard_jones_energy

    from ase_learn2hop.precision import float64

    keys = jax.random.split(jax.random.key(5), 6)
    centre = np.array([1.0, -2.0, 0.5])
    clusters = np.stack([
        initialization.compact_random_cluster(key, 38, 1.0, jax.numpy.asarray(centre))
        for key in keys
    ])  # fmt: skip
    np.testing.assert_array_equal(
        clusters[0],
        initialization.compact_random_cluster(keys[0], 38, 1.0, centre),
    )
    assert len({cluster.tobytes() for cluster in clusters}) == 6
    np.testing.assert_allclose(
        clusters.mean(axis=1), centre[None].repeat(6, 0), atol=0.6
    )
    assert closest_pair_distances(clusters).min() > 0.3
    # Bonded: every atom has a grid neighbour (edge or face diagonal, jittered).
    distances = np.linalg.norm(clusters[:, :, None] - clusters[:, None], axis=-1)
    distances[:, np.arange(38), np.arange(38)] = np.inf
    assert distances.min(axis=2).max() < 1.8
    # scipy relaxes each to a bound LJ38 minimum, above the global one
    # (-173.928427, Cambridge Cluster Database).
    with float64():
        energy_and_gradient = jax.jit(jax.value_and_grad(
            lambda x: lennard_jones_energy(x.reshape(-1, 3))))  # fmt: skip
        for cluster in clusters:
            relaxed = scipy.optimize.minimize(
                lambda x: tuple(np.asarray(v) for v in energy_and_gradient(x)),
                cluster.ravel(), jac=True, method="L-BFGS-B")  # fmt: skip
            assert -173.928427 - 1e-6 < relaxed.fun < -150.0

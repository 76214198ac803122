"""Neighbour lists of the radial features (issue 12): the features on a list
equal a direct NumPy sum over every pair, a list that overflows is grown and
its chunk run again, and a search on lists follows the all-pairs trajectory."""

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk

from ase_learn2hop import (
    LearnedHopOptimizer,
    driver,
    features,
    neighbours,
    search,
    systems,
)
from ase_learn2hop.calculators import LennardJones
from ase_learn2hop.features import RADIAL_CUTOFF, RADIAL_ETAS, radial_symmetry_features
from ase_learn2hop.geometry import FREE, periodic_cube
from ase_learn2hop.precision import float64
from ase_learn2hop.systems import StructureContext
from ase_learn2hop.weights import load_weights


def numpy_radial_features(positions, species, length_scale, box=None):
    """Behler-Parrinello radial features (SPEC section 4) by a plain double
    loop in float64: the independent reference."""
    n = len(positions)
    result = np.zeros((n, 2 * len(RADIAL_ETAS)))
    for i in range(n):
        for j in range(n):
            if i == j:
                continue
            d = positions[i] - positions[j]
            if box is not None:
                d -= box * np.round(d / box)
            r = np.linalg.norm(d) / length_scale
            if r >= RADIAL_CUTOFF:
                continue
            cutoff = 0.5 * (np.cos(np.pi * r / RADIAL_CUTOFF) + 1.0)
            block = 0 if species[i] == species[j] else len(RADIAL_ETAS)
            for k, eta in enumerate(RADIAL_ETAS):
                result[i, block + k] += np.exp(-eta * r**2) * cutoff
    return result


def context_of(species, length_scale, geometry):
    return StructureContext(
        jnp.asarray(species, jnp.int32),
        jnp.zeros((len(species), 5)),
        jnp.asarray(length_scale),
        geometry,
    )


@pytest.mark.parametrize("periodic", [False, True])
def test_features_on_a_list_equal_a_direct_sum_over_all_pairs(periodic):
    # A dilute gas of two species: most pairs are beyond the cutoff, so the
    # list is much shorter than n - 1 and its padding is exercised.
    rng = np.random.default_rng(4)
    n, side, length_scale = 120, 14.0, 1.3
    positions = rng.uniform(0.0, side, (n, 3))
    species = rng.integers(0, 2, n)
    geometry = periodic_cube(side) if periodic else FREE
    with float64():
        spec = features.radial_list_spec(positions[None], geometry, length_scale)
        if periodic:
            # Three cells of the list's range a side: rebuilds on a cell list
            # (forced: too few cells for radial_list_spec to choose one).
            occupancy = neighbours.cell_occupancy(
                positions[None], geometry, spec.cutoff + spec.skin
            )
            spec = dataclasses.replace(spec, cell_capacity=occupancy + 1)
        listed = spec.update(spec.stale(jnp.asarray(positions)), jnp.asarray(positions))
        assert not neighbours.overflowed(listed)
        assert spec.capacity < n // 3
        computed = radial_symmetry_features(
            jnp.asarray(positions),
            context_of(species, length_scale, geometry),
            neighbour_indices=listed.idx,
        )
    expected = numpy_radial_features(
        positions, species, length_scale, side if periodic else None
    )
    assert expected[:, 0].max() > 1.0 and expected[:, 8].max() > 1.0
    np.testing.assert_allclose(np.asarray(computed), expected, rtol=1e-10, atol=1e-12)


def lj_search_carry(context, steps, positions, system=None, weights="lj"):
    """The learned steps (shipped LJ weights) of one search on the driver."""
    system = system or systems.system_from_name(f"lj{positions.shape[1]}")
    weights = load_weights(weights)
    parameters = systems.broadcast_to_batch(
        search.SearchParameters(system.potential_parameters, context), 1
    )
    optimizer = search.learned_steps(weights.config, system.energy_fn)
    return driver.run_batched(
        optimizer, positions, steps, parameters, weights.theta, record_every=1,
        chunk_steps=25,
    )  # fmt: skip


def test_an_overflowing_list_is_grown_and_its_chunk_run_again():
    system = systems.system_from_name("lj38")
    with float64():
        positions = jnp.asarray(
            systems.starting_structures(jax.random.key(2), system, 1)
        )
        spec = features.radial_list_spec(np.asarray(positions), FREE, 1.0)
        short = neighbours.NeighbourListSpec(spec.cutoff, spec.skin, 3, FREE)
        all_pairs = lj_search_carry(system.context, 100, positions)
        grown = lj_search_carry(
            system.context._replace(neighbour_list=short), 100, positions
        )
    assert grown.parameters.context.neighbour_list.capacity > 3
    assert not neighbours.overflowed(grown.carry)
    # The same steps as all pairs: no neighbour was dropped in any chunk.
    np.testing.assert_allclose(
        grown.energy_records, all_pairs.energy_records, rtol=1e-9
    )


def test_an_overflowing_cell_list_is_grown_and_its_chunk_run_again():
    # Si512 in its 21.7 Å cube: three cells of the list's range (cutoff plus
    # skin, 6.3 Å) a side, the cell list forced on with too few atoms per cell.
    atoms = bulk("Si", "diamond", 5.431, cubic=True).repeat(4)
    atoms.rattle(0.1, seed=0)
    system = systems.silicon_system(len(atoms), atoms.cell[0, 0])
    with float64():
        positions = jnp.asarray(atoms.positions)[None]
        spec = features.radial_list_spec(
            np.asarray(positions), system.context.geometry, 2.0951
        )
        short = dataclasses.replace(spec, cell_capacity=math.ceil(spec.capacity / 27))
        # The reference: the list without a cell list (every atom a candidate).
        enough = lj_search_carry(
            system.context._replace(
                neighbour_list=dataclasses.replace(spec, cell_capacity=None)
            ),
            50,
            positions,
            system,
            "si64",
        )
        grown = lj_search_carry(
            system.context._replace(neighbour_list=short),
            50,
            positions,
            system,
            "si64",
        )
    assert grown.parameters.context.neighbour_list.cell_capacity > short.cell_capacity
    assert not neighbours.overflowed(grown.carry)
    np.testing.assert_array_equal(grown.energy_records, enough.energy_records)


def test_the_search_on_a_list_follows_the_all_pairs_trajectory(monkeypatch):
    # The product path (learned basin hopping, shipped weights): 300 steps of
    # hops and quenches, the list kept from hop to hop and rebuilt on the way.
    system = systems.system_from_name("lj38")
    start = np.asarray(systems.starting_structures(jax.random.key(5), system, 1))[0]

    def run(min_atoms):
        monkeypatch.setattr(features, "RADIAL_LIST_MIN_ATOMS", min_atoms)
        atoms = Atoms("X38", positions=start)
        atoms.calc = LennardJones()
        optimizer = LearnedHopOptimizer(atoms, logfile=None, seed=1, observe_every=100)
        searches = [optimizer._search for _ in optimizer.irun(steps=300)]
        return optimizer, searches[-2]  # after 200 steps (the end clears it)

    (listed, listed_search), (all_pairs, all_pairs_search) = run(0), run(10_000)
    context = listed_search.parameters.context
    assert context.neighbour_list is not None
    assert all_pairs_search.parameters.context.neighbour_list is None
    carried = listed_search.carry.state.learned.neighbours
    # The list was rebuilt away from the start (the atoms moved past the skin).
    moved = np.linalg.norm(np.asarray(carried.reference_position)[0] - start, axis=1)
    assert moved.max() > context.neighbour_list.skin
    assert listed.best_energy == pytest.approx(all_pairs.best_energy, abs=1e-6)
    np.testing.assert_allclose(
        listed.atoms.get_positions(), all_pairs.atoms.get_positions(), atol=1e-6
    )


def test_lists_are_for_one_large_search_only():
    system = systems.system_from_name("lj38")
    positions = np.asarray(systems.starting_structures(jax.random.key(0), system, 2))
    context = system.context
    assert features.with_radial_list(context, positions[:1]).neighbour_list is None
    assert features.with_radial_list(context, positions, 0).neighbour_list is None
    spec = features.with_radial_list(context, positions[:1], 0).neighbour_list
    assert spec.cutoff == pytest.approx(RADIAL_CUTOFF)
    # Capacity: the largest neighbour count within cutoff + skin, plus margin.
    distances = np.linalg.norm(positions[0][:, None] - positions[0][None], axis=-1)
    count = (distances < spec.cutoff + spec.skin).sum(axis=1).max() - 1
    assert count <= spec.capacity <= 37


@pytest.mark.parametrize("cells, cell_list", [(5, False), (6, True)])
def test_a_periodic_list_uses_a_cell_list_where_it_leaves_few_candidates(
    cells, cell_list
):
    # Si1000: 4 cells of the list's range a side, the 27 around an atom hold
    # most atoms; Si1728: 5 a side, fewer than half.
    atoms = bulk("Si", "diamond", 5.431, cubic=True).repeat(cells)
    atoms.rattle(0.1, seed=0)
    geometry = periodic_cube(atoms.cell[0, 0])
    spec = features.radial_list_spec(atoms.positions[None], geometry, 2.0951)
    assert (spec.cell_capacity is not None) == cell_list
    if cell_list:
        occupancy = neighbours.cell_occupancy(
            atoms.positions[None], geometry, spec.cutoff + spec.skin
        )
        assert occupancy < spec.cell_capacity
        assert 27 * spec.cell_capacity <= len(atoms) / 2


def test_a_list_of_every_other_atom_cannot_grow():
    spec = neighbours.NeighbourListSpec(2.5, 0.5, 4, FREE)
    carry = spec.stale(jnp.zeros((5, 3)))
    with pytest.raises(RuntimeError, match="every other atom"):
        neighbours.grown(spec, carry)


def test_a_restart_file_of_a_grown_list_continues_the_search(monkeypatch, tmp_path):
    # Lists on, at a third of the neighbours a list needs: the first chunk
    # overflows and grows the list, and the restart file holds the grown one.
    monkeypatch.setattr(features, "RADIAL_LIST_MIN_ATOMS", 0)
    monkeypatch.setattr(features, "RADIAL_LIST_CAPACITY_MARGIN", 0.3)
    system = systems.system_from_name("lj38")
    start = np.asarray(systems.starting_structures(jax.random.key(5), system, 1))[0]

    def optimizer(restart=None):
        atoms = Atoms("X38", positions=start)
        atoms.calc = LennardJones()
        return LearnedHopOptimizer(
            atoms, logfile=None, seed=1, observe_every=100, restart=restart
        )

    uninterrupted = optimizer()
    uninterrupted.run(steps=300)
    restart = tmp_path / "restart.json"
    first = optimizer(restart)
    runner = first.irun(steps=300)
    for _ in range(3):
        next(runner)  # stopped after 200 steps
    grown = first._search.parameters.context.neighbour_list
    runner.close()
    initial = features.with_radial_list(first.context, start[None], 0).neighbour_list
    assert grown.capacity > initial.capacity

    resumed = optimizer(restart)
    assert resumed.nsteps == 200
    assert resumed._search.parameters.context.neighbour_list == grown
    resumed.run(steps=100)
    assert resumed.best_energy == pytest.approx(uninterrupted.best_energy, abs=1e-10)
    np.testing.assert_allclose(
        resumed.atoms.get_positions(), uninterrupted.atoms.get_positions(), atol=1e-10
    )

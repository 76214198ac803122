"""Tests of the learned search's cycle loop (`cycles.cycles_start` /
`cycles_advance` / `cycles_finish`) against `search.learned_search` run cycle by
cycle by hand, with the shipped Lennard-Jones weights on LJ13."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from ase import Atoms
from ase.calculators.lj import LennardJones
from ase.optimize import FIRE
from lennard_jones_reference import hessian_from_forces

from ase_learn2hop import cycles, search, systems
from ase_learn2hop.weights import load_weights

HORIZON = 40
POLISH_STEPS = 50
N_STARTS = 3


@pytest.fixture(scope="module")
def setup():
    weights = load_weights("lj")
    system = systems.system_from_name("lj13")
    starts = systems.starting_structures(jax.random.key(0), system, N_STARTS)
    return weights, system, starts


def start_search(setup, horizon=HORIZON, polish_steps=POLISH_STEPS):
    weights, system, starts = setup
    return cycles.cycles_start(
        weights.theta,
        weights.config,
        system.energy_fn,
        starts,
        system.context,
        system.potential_parameters,
        horizon=horizon,
        polish_steps=polish_steps,
    )


def cycle_force_calls(horizon, polish_steps):
    """One evaluation at the cycle's start, one per learned step, and two
    polishes of ``polish_steps + 1`` evaluations."""
    return 1 + horizon + 2 * (polish_steps + 1)


@pytest.fixture(scope="module")
def two_and_a_half_horizons(setup):
    """The cycle loop over 2.5 horizons, the half cycle closed by
    `cycles_finish`, with every `on_minimum` call recorded."""
    minima = []
    found = start_search(setup)
    found, record_steps, records = cycles.cycles_advance(
        found,
        5 * HORIZON // 2,
        record_every=10,
        on_minimum=lambda energies, positions: minima.append((energies, positions)),
    )
    calls_in_advance = len(minima)
    before_finish = found
    found = cycles.cycles_finish(
        found, lambda energies, positions: minima.append((energies, positions))
    )
    return {
        "before_finish": before_finish,
        "search": found,
        "record_steps": record_steps,
        "records": records,
        "minima": minima,
        "calls_in_advance": calls_in_advance,
    }


def test_cycle_loop_equals_learned_search_cycle_by_cycle(
    setup, two_and_a_half_horizons
):
    """By hand: `learned_search` cycle after cycle, each from the polished last
    structure of the one before, each start keeping its lowest polished minimum.

    The by-hand cycles are ``vmap``-ed over the same three starts: the network
    runs in float32, and XLA rounds a batch of three differently from a single
    structure (about 1e-7 relative at the first step), which 40 chaotic steps
    amplify to different minima. A batch of one through the cycle loop equals
    the unbatched `learned_search` (checked below on the first cycle).
    """
    weights, system, starts = setup
    found = two_and_a_half_horizons["search"]

    def one_cycle(positions, n_steps):
        return jax.vmap(
            lambda x: search.learned_search(
                weights.theta,
                weights.config,
                system.energy_fn,
                x,
                system.context,
                system.potential_parameters,
                n_steps=n_steps,
                polish_steps=POLISH_STEPS,
            )
        )(positions)

    positions = starts
    best_energy = np.full(N_STARTS, np.inf)
    cycle_minima = []
    for n_steps in (HORIZON, HORIZON, HORIZON // 2):
        result, trace = one_cycle(positions, n_steps)
        assert trace.energy.shape == (N_STARTS, n_steps)
        assert np.all(np.isfinite(result.final_energy))
        cycle_minima += [result.final_energy, result.best_energy]
        best_energy = np.minimum(best_energy, np.asarray(result.best_energy))
        positions = result.final_positions
    np.testing.assert_allclose(found.best_energy, best_energy, rtol=1e-12)
    # The minima reported to on_minimum are the by-hand cycles' minima.
    np.testing.assert_allclose(
        [energies for energies, _ in two_and_a_half_horizons["minima"]],
        cycle_minima,
        rtol=1e-12,
    )
    # The search restarted from the polished last structure of the last cycle.
    np.testing.assert_allclose(found.carry.state.positions, positions, atol=1e-12)
    # The kept minimum is where its energy is.
    np.testing.assert_allclose(
        jax.vmap(system.energy_fn, (0, None))(
            jnp.asarray(found.best_positions), system.potential_parameters
        ),
        found.best_energy,
        rtol=1e-12,
    )

    # A single start: the loop on a batch of one is the unbatched learned_search.
    single = cycles.cycles_start(
        weights.theta,
        weights.config,
        system.energy_fn,
        starts[:1],
        system.context,
        system.potential_parameters,
        horizon=HORIZON,
        polish_steps=POLISH_STEPS,
    )
    single, _, _ = cycles.cycles_advance(single, HORIZON)
    result, _ = search.learned_search(
        weights.theta,
        weights.config,
        system.energy_fn,
        starts[0],
        system.context,
        system.potential_parameters,
        n_steps=HORIZON,
        polish_steps=POLISH_STEPS,
    )
    np.testing.assert_allclose(single.best_energy[0], result.best_energy, rtol=1e-12)
    np.testing.assert_allclose(
        single.carry.state.positions[0], result.final_positions, atol=1e-12
    )


def test_records_are_every_record_every_steps(two_and_a_half_horizons):
    record_steps = two_and_a_half_horizons["record_steps"]
    records = two_and_a_half_horizons["records"]
    np.testing.assert_array_equal(record_steps, np.arange(10, 5 * HORIZON // 2 + 1, 10))
    assert records.shape == (N_STARTS, len(record_steps))
    np.testing.assert_allclose(
        records[:, -1], two_and_a_half_horizons["before_finish"].current_energy
    )


def test_force_calls_per_cycle(two_and_a_half_horizons):
    per_cycle = cycle_force_calls(HORIZON, POLISH_STEPS)
    assert per_cycle == 1 + HORIZON + 2 * (POLISH_STEPS + 1)
    before = two_and_a_half_horizons["before_finish"]
    assert before.steps == 5 * HORIZON // 2 and before.cycle_step == HORIZON // 2
    np.testing.assert_array_equal(before.force_calls, 2 * per_cycle)
    np.testing.assert_array_equal(before.carry.force_calls, 1 + HORIZON // 2)
    np.testing.assert_array_equal(
        before.total_force_calls, 2 * per_cycle + 1 + HORIZON // 2
    )
    found = two_and_a_half_horizons["search"]
    np.testing.assert_array_equal(
        found.force_calls, 2 * per_cycle + cycle_force_calls(HORIZON // 2, POLISH_STEPS)
    )
    # cycles_finish restarts: a fresh cycle with its one start evaluation.
    assert found.cycle_step == 0
    np.testing.assert_array_equal(found.carry.force_calls, 1)


def test_on_minimum_is_called_twice_per_cycle_end(two_and_a_half_horizons):
    minima = two_and_a_half_horizons["minima"]
    assert two_and_a_half_horizons["calls_in_advance"] == 4
    assert len(minima) == 6
    for energies, positions in minima:
        assert energies.shape == (N_STARTS,)
        assert positions.shape == (N_STARTS, 13, 3)
    # Calls come in pairs: the polished last structure, then the lower of it and
    # the polished best-seen structure.
    for (last, _), (best, _) in zip(minima[::2], minima[1::2], strict=True):
        assert np.all(best <= last)
    # Each start keeps its lowest polished minimum.
    np.testing.assert_allclose(
        np.min([energies for energies, _ in minima], axis=0),
        two_and_a_half_horizons["search"].best_energy,
    )


def test_chunking_does_not_change_results(setup, two_and_a_half_horizons):
    steps = 5 * HORIZON // 2
    chunked, record_steps, records = cycles.cycles_advance(
        start_search(setup), steps, chunk_steps=7, record_every=10
    )
    reference = two_and_a_half_horizons["before_finish"]
    np.testing.assert_array_equal(record_steps, two_and_a_half_horizons["record_steps"])
    np.testing.assert_array_equal(records, two_and_a_half_horizons["records"])
    np.testing.assert_array_equal(chunked.best_energy, reference.best_energy)
    np.testing.assert_array_equal(chunked.best_positions, reference.best_positions)
    np.testing.assert_array_equal(chunked.force_calls, reference.force_calls)
    np.testing.assert_array_equal(
        chunked.carry.state.positions, reference.carry.state.positions
    )
    # Stopping mid-cycle and going on is the same search.
    split, first_steps, _ = cycles.cycles_advance(
        start_search(setup), 50, record_every=10
    )
    split, _, _ = cycles.cycles_advance(split, steps - 50, record_every=10)
    np.testing.assert_array_equal(first_steps, [10, 20, 30, 40, 50])
    np.testing.assert_array_equal(split.best_energy, reference.best_energy)
    np.testing.assert_array_equal(
        split.carry.state.positions, reference.carry.state.positions
    )
    np.testing.assert_array_equal(split.force_calls, reference.force_calls)


def ase_lennard_jones_atoms(positions):
    """ASE's own Lennard-Jones with the package's LJ13 units (pair minimum -1 at
    r = 1, so sigma = 2^(-1/6)), cutoff far beyond the cluster."""
    atoms = Atoms("Ar13", positions=np.asarray(positions))
    atoms.calc = LennardJones(sigma=2 ** (-1 / 6), epsilon=1.0, rc=1000.0)
    return atoms


def lowest_curvature(atoms, step=1e-5):
    """Lowest eigenvalue of the Hessian of ASE's energy at ``atoms``, by
    central differences of ASE's forces (energy / length^2)."""
    hessian = hessian_from_forces(atoms, step)
    return np.linalg.eigvalsh((hessian + hessian.T) / 2)[0]


def test_polished_minima_are_local_minima(setup):
    """Every minimum a cycle reports is the polish of a real local minimum, judged
    by ASE's own Lennard-Jones: its energy is ASE's, and a longer polish (3000
    steps) reaches the minimum (max force below 1e-2, which ASE's FIRE lowers by
    less than 1e-2) or stops where the energy curves down in some direction (a
    shoulder or saddle that gradient descent at 1e-3 leaves only slowly: on one
    2-core CPU one start's polish stopped at max force 5e-3 with a Hessian
    eigenvalue of -8e-4, and FIRE went on 2.6 lower). The paper's polish (1000
    steps of gradient descent at 1e-3) is only checked never to end below the
    basin's minimum: after 40 learned steps it can stop on a flat shoulder (max
    force 0.01, 1.8 above the minimum FIRE and BFGS reach) depending on the
    float32 rounding of the CPU."""
    for polish_steps in (1000, 3000):
        minima = []
        found = start_search(setup, polish_steps=polish_steps)
        cycles.cycles_advance(
            found,
            HORIZON,
            on_minimum=lambda energies, positions, minima=minima: minima.append(
                (energies, positions)
            ),
        )
        assert len(minima) == 2
        for energies, positions in minima:
            for energy, structure in zip(energies, positions, strict=True):
                atoms = ase_lennard_jones_atoms(structure)
                np.testing.assert_allclose(
                    atoms.get_potential_energy(), energy, rtol=1e-9
                )
                curvature = np.inf
                if polish_steps == 3000:
                    assert np.abs(atoms.get_forces()).max() < 1e-2
                    curvature = lowest_curvature(atoms)
                FIRE(atoms, logfile=None).run(fmax=1e-6, steps=3000)
                assert -1e-9 < energy - atoms.get_potential_energy()
                if polish_steps == 3000 and curvature > -1e-4:
                    assert energy - atoms.get_potential_energy() < 1e-2

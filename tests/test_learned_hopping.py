"""Learned basin hopping: honest force calls, never worse than a local
relaxation of its start, Metropolis and greedy acceptance, whole clusters, and
the published LJ13 minimum with the shipped weights."""

import jax
import numpy as np
import pytest

from ase_learn2hop import driver, learned_hopping, protocols, quench, systems
from ase_learn2hop.precision import float64
from ase_learn2hop.search import SearchParameters
from ase_learn2hop.weights import resolve_weights

LJ13_GLOBAL_MINIMUM = -44.326801  # Cambridge Cluster Database


@pytest.fixture(scope="module")
def lj13():
    with float64():
        system = systems.lennard_jones_system(13)
        weights = resolve_weights(None, "lj", "lj", "lj13", 1)
        starts = systems.starting_structures(jax.random.key(7), system, 4)
    return system, weights, starts


def hopping_of(lj13, **settings):
    """The optimizer of ``HoppingConfig(**settings)`` and the batched
    parameters of the LJ13 starts."""
    system, weights, starts = lj13
    hopping = learned_hopping.HoppingConfig(**settings)
    optimizer = learned_hopping.learned_hopping(
        weights.config, system.energy_fn, hopping
    )
    parameters = systems.broadcast_to_batch(
        SearchParameters(system.potential_parameters, system.context), len(starts)
    )
    return optimizer, parameters


def hop(lj13, steps, key=0, **settings):
    _, weights, starts = lj13
    optimizer, parameters = hopping_of(lj13, **settings)
    return driver.run_batched(
        optimizer,
        starts,
        steps,
        parameters,
        weights.theta,
        key=jax.random.key(key),
        target_energy=LJ13_GLOBAL_MINIMUM + 1e-6,
        record_every=50,
    )


def hop_in_chunks(lj13, chunks, **settings):
    """The driver's state after each of ``chunks`` chunks of 100 steps of one
    search (`hop`'s, continued)."""
    optimizer, parameters = hopping_of(lj13, **settings)
    carries = [hop(lj13, 100, **settings).carry]
    for _ in range(chunks - 1):
        carries.append(driver.advance(
            optimizer, carries[-1], 100, parameters, lj13[1].theta, record_every=100
        ).carry)  # fmt: skip
    return carries


def test_finds_the_published_minimum_never_above_a_local_relaxation(lj13):
    system, _, starts = lj13
    with float64():
        run = hop(lj13, 3000, hop_steps=150)
        relaxed = driver.run_batched(
            quench.lbfgs_descent(system.energy_fn), starts, 1000, None
        )
    carry = run.carry
    # Every step is one force call, the start's evaluation the first.
    np.testing.assert_array_equal(carry.force_calls, 3001)
    best = np.asarray(carry.best_energy)
    assert np.all(best >= LJ13_GLOBAL_MINIMUM - 1e-6)
    # The first quench is L-BFGS from the start: the search keeps it or better.
    # (to the quench criterion, fmax 1e-2: within 1e-6 of the converged energy)
    assert np.all(best <= np.asarray(relaxed.carry.state.quench.energy) + 1e-6)
    # The shipped weights find LJ13's minimum from most starts in 3000 calls.
    hits = np.asarray(carry.first_hit)
    assert (hits > 0).sum() >= 3, hits
    assert np.all(np.asarray(carry.state.hops) >= 2)
    # The first hit is counted where the energy was evaluated.
    assert np.all((hits < 0) | ((hits > 1) & (hits <= 3001)))


def test_greedy_acceptance_never_raises_the_current_minimum(lj13):
    with float64():
        carries = hop_in_chunks(lj13, 9, hop_steps=30, temperature=0.0)
    minima = np.array([np.asarray(carry.state.minimum_energy) for carry in carries])
    assert np.all(np.diff(minima, axis=0) <= 1e-12)


def test_metropolis_accepts_uphill_moves_at_high_temperature(lj13):
    with float64():
        run = hop(lj13, 2000, hop_steps=100, temperature=50.0)
    state = run.carry.state
    # Almost every quenched structure is accepted, the global minimum included
    # as a point of passage, so the current minimum sits above the best.
    assert np.all(np.asarray(state.accepted) >= np.asarray(state.hops) - 3)
    assert np.any(np.asarray(state.minimum_energy) > np.asarray(run.carry.best_energy))


def test_random_frames_make_every_hop_a_new_move(lj13):
    # At T = 0 nothing else is random: without frames the key changes nothing
    # (a rejected hop would repeat forever), with frames it changes the search.
    with float64():
        fixed = [hop(lj13, 600, key, hop_steps=30, temperature=0.0, reorient=False)
                 for key in (0, 1)]  # fmt: skip
        turned = [hop(lj13, 600, key, hop_steps=30, temperature=0.0) for key in (0, 1)]
    np.testing.assert_array_equal(fixed[0].energy_records, fixed[1].energy_records)
    assert not np.array_equal(turned[0].energy_records, turned[1].energy_records)


def test_default_temperature_follows_the_potential():
    from ase_learn2hop.potentials import lennard_jones_parameters

    assert protocols.default_temperature("gupta", None) == 0.2
    assert protocols.default_temperature(None, None) == 0.2
    argon = lennard_jones_parameters(sigma=3.4, epsilon=0.0104)
    assert protocols.default_temperature("lj", argon) == pytest.approx(0.8 * 0.0104)


def test_a_stuck_walker_restarts_and_keeps_its_best(lj13):
    # Greedy, restart after every hop that finds no new lowest minimum: the
    # walkers restart from new compact clusters; the best so far never rises
    # and stays below a local L-BFGS relaxation of the start.
    system, _, starts = lj13
    with float64():
        carries = hop_in_chunks(
            lj13, 15, hop_steps=30, temperature=0.0, restart_after=1
        )
        plain = hop(lj13, 1500, hop_steps=30, temperature=0.0)
        relaxed = driver.run_batched(
            quench.lbfgs_descent(system.energy_fn), starts, 1000, None
        )
    restarts = np.asarray(carries[-1].state.restarts)
    assert np.all(restarts >= 1), restarts
    np.testing.assert_array_equal(plain.carry.state.restarts, 0)
    best = np.array([np.asarray(carry.best_energy) for carry in carries])
    assert np.all(np.diff(best, axis=0) <= 0.0)
    # (within the quench criterion: the relaxation converged further)
    assert np.all(best[-1] <= np.asarray(relaxed.carry.state.quench.energy) + 1e-6)
    assert np.all(best[-1] >= LJ13_GLOBAL_MINIMUM - 1e-6)

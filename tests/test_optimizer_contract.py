"""LearnedHopOptimizer against ASE's optimizer contract.

The generic tests of ASE's own suite (``ase/test/optimize/``: test_optimizers,
test_nsteps, test_optimize_stepwise, test_restart) with `LearnedHopOptimizer`
substituted, on small Lennard-Jones clusters, plus the deliberate differences
(chunked yields and observers, the default step budget, the final polish).
"""

import io
import itertools

import numpy as np
import pytest
from ase.calculators.calculator import compare_atoms
from ase.io import read
from ase.io.trajectory import Trajectory
from ase.optimize import FIRE, RestartError
from test_optimizer import hand_set_weights, lj_cluster

from ase_learn2hop import LearnedHopOptimizer
from ase_learn2hop.optimizer import DEFAULT_HOPPING_STEPS, DEFAULT_SEARCH_CYCLES
from ase_learn2hop.protocols import default_hop_steps

HORIZON = 10


@pytest.fixture(scope="module")
def weights():
    return hand_set_weights(horizon=HORIZON)


@pytest.fixture()
def atoms0():
    return lj_cluster(7, seed=1)


@pytest.fixture()
def atoms(atoms0):
    atoms = atoms0.copy()
    atoms.calc = atoms0.calc.__class__()
    return atoms


def optimizer(atoms, weights, **kwargs):
    kwargs.setdefault("logfile", None)
    kwargs.setdefault("observe_every", 5)
    return LearnedHopOptimizer(atoms, weights=weights, **kwargs)


def largest_force(atoms):
    return float(np.max(np.linalg.norm(atoms.get_forces(), axis=1)))


# -- ase/test/optimize/test_optimizers.py ------------------------------------------


@pytest.mark.parametrize("protocol", ["hopping", "paper"])
def test_optimize_without_steps_runs_the_default_search(atoms, weights, protocol):
    """ASE's test_optimize: ``run(fmax)`` without steps converges. Here it makes
    ``DEFAULT_HOPPING_STEPS`` force calls of hopping, or ``DEFAULT_SEARCH_CYCLES``
    cycles (not ASE's 100 million steps)."""
    opt = optimizer(atoms, weights, protocol=protocol, observe_every=5000)
    expected = {
        "hopping": DEFAULT_HOPPING_STEPS,
        "paper": DEFAULT_SEARCH_CYCLES * HORIZON,
    }[protocol]
    assert opt.default_steps() == expected
    assert opt.run(fmax=0.01) is True
    assert opt.nsteps == expected
    assert opt.stopped_by == "steps"
    assert largest_force(atoms) < 0.01
    assert opt.converged()


def test_unconverged(atoms, weights):
    """ASE's test_unconverged, with one difference: the final polish may meet
    even fmax=1e-9 after one learned step, so ``run`` is only required to agree
    with ``converged()``."""
    opt = optimizer(atoms, weights)
    converged = opt.run(fmax=1e-9, steps=1)
    assert opt.nsteps == 1
    assert converged == opt.converged()
    assert converged == opt.gradient_converged(opt.optimizable.get_gradient())
    assert opt.todict()["fmax"] == 1e-9


def test_run_twice(atoms, weights):
    opt = optimizer(atoms, weights)
    opt.run(fmax=1e-9, steps=5)
    opt.run(fmax=1e-9, steps=5)
    assert opt.nsteps == 2 * 5
    assert opt.max_steps == 2 * 5


def test_path(tmp_path, atoms, weights):
    traj, log, restart = (
        tmp_path / "trajectory.traj",
        tmp_path / "relax.log",
        tmp_path / "restart.json",
    )
    opt = optimizer(atoms, weights, logfile=log, trajectory=traj, restart=restart)
    with opt:
        assert opt.run(fmax=0.01, steps=10)
    assert opt.todict()["restart"] == str(restart)
    assert "LearnedHopOptimizer" in log.read_text()
    assert len(read(traj, ":")) == 1 + 2
    assert restart.is_file()


# -- ase/test/optimize/test_nsteps.py ----------------------------------------------


@pytest.mark.parametrize("steps", [0, 1, 4])
def test_nsteps(atoms, weights, steps):
    """With ``observe_every=1``, ``irun(steps=n)`` yields n + 1 times, as ASE."""
    irun = optimizer(atoms, weights, observe_every=1).irun(fmax=0, steps=steps)
    for _ in range(steps + 1):
        next(irun)
    with pytest.raises(StopIteration):
        next(irun)


@pytest.mark.parametrize(
    "protocol, yields",
    [("hopping", [0, 3, 6, 9, 12, 14]), ("paper", [0, 3, 6, 9, 10, 13, 14])],
)
def test_irun_yields_once_per_chunk(atoms, weights, protocol, yields):
    """Deliberate difference: one yield per chunk of ``observe_every`` steps
    (with the paper's protocol chunks also end with each cycle of ``horizon``
    steps)."""
    opt = optimizer(atoms, weights, observe_every=3, protocol=protocol)
    assert [opt.nsteps for _ in opt.irun(fmax=0, steps=14)] == yields


# -- ase/test/optimize/test_optimize_stepwise.py -----------------------------------


def test_irun_start(atoms0, atoms, weights):
    irun = optimizer(atoms, weights).irun(fmax=0.0)
    next(irun)  # Initially it yields without yet having performed a step:
    assert not compare_atoms(atoms0, atoms)
    next(irun)  # Now it must have performed a step:
    assert compare_atoms(atoms0, atoms) == ["positions"]


def test_attach_trajectory(tmp_path, atoms0, atoms, weights):
    trajfile = tmp_path / "tmp.traj"
    n_yields = 3
    with Trajectory(trajfile, "w") as traj:
        irun = optimizer(atoms, weights, trajectory=traj, observe_every=1).irun(
            fmax=0.0
        )
        for _ in range(n_yields):
            next(irun)
    with Trajectory(trajfile) as traj:
        images = list(traj)
    assert len(images) == n_yields
    assert not compare_atoms(atoms0, images[0])
    assert compare_atoms(atoms0, images[-1]) == ["positions"]


# -- ase/test/optimize/test_restart.py ---------------------------------------------


def test_none_restart(atoms, weights):
    opt = optimizer(atoms, weights, restart=None)
    opt.run(steps=5)
    assert opt.todict()["restart"] is None


def test_bad_restart(tmp_path, atoms, weights):
    path = tmp_path / "tmp.dat"
    path.write_text("hello world\n")
    with pytest.raises(RestartError, match="Could not decode"):
        optimizer(atoms, weights, restart=path)


def test_restart_of_another_system_is_refused(tmp_path, weights):
    restart = tmp_path / "restart.json"
    first = optimizer(lj_cluster(13), weights, restart=restart)
    runner = first.irun(steps=20)
    next(runner)
    next(runner)  # the restart file holds a search of LJ13 in progress
    runner.close()
    with pytest.raises(ValueError, match=r"n_atoms 13 \(this optimizer: 7\)") as error:
        optimizer(lj_cluster(7), weights, restart=restart)
    assert "X13" in str(error.value) and str(restart) in str(error.value)


# -- observers: as ASE with observe_every=1, at chunk ends otherwise ---------------


def test_observers_fire_as_ase_with_observe_every_1(atoms, weights):
    ase_calls, calls = [], []
    reference = FIRE(atoms.copy(), logfile=None)
    reference.atoms.calc = atoms.calc.__class__()
    reference.attach(lambda: ase_calls.append(reference.nsteps), interval=3)
    reference.run(fmax=0, steps=10)
    opt = optimizer(atoms, weights, observe_every=1)
    opt.attach(lambda: calls.append(opt.nsteps), interval=3)
    opt.run(fmax=0, steps=10)
    assert calls == ase_calls == [0, 3, 6, 9]


def test_observers_fire_at_chunk_ends(atoms, weights):
    """Deliberate difference: an observer with interval k fires at the end of
    every chunk in which a multiple of k was reached."""
    calls = []
    opt = optimizer(atoms, weights, observe_every=5)
    opt.attach(lambda: calls.append(opt.nsteps), interval=3)
    opt.run(fmax=0, steps=20)
    assert calls == [0, 5, 10, 15, 20]


# -- steps, stopping criteria ------------------------------------------------------


def test_steps_zero_moves_nothing(atoms0, atoms, weights):
    opt = optimizer(atoms, weights)
    assert opt.run(fmax=1e-9, steps=0) is False
    assert not compare_atoms(atoms0, atoms)
    assert opt.run(fmax=1e9, steps=0) is True
    assert not compare_atoms(atoms0, atoms)
    assert opt.nsteps == 0
    assert opt.current_positions is None


@pytest.mark.parametrize("steps", [-5, 2.5, "10", float("nan"), True])
def test_bad_steps_are_refused(atoms, weights, steps):
    opt = optimizer(atoms, weights)
    with pytest.raises(ValueError, match="steps must be a non-negative integer"):
        opt.run(steps=steps)
    with pytest.raises(ValueError, match="steps must be a non-negative integer"):
        opt.irun(steps=steps)  # at the call, not at the first next()


def test_bad_force_call_budget_is_refused(atoms, weights):
    with pytest.raises(ValueError, match="max_force_calls"):
        optimizer(atoms, weights).run(steps=5, max_force_calls=-1)


def test_restarts_are_on_by_default_and_can_be_turned_off(atoms, weights):
    from ase_learn2hop.protocols import RESTART_AFTER_HOPS

    assert optimizer(atoms, weights).hopping.restart_after == RESTART_AFTER_HOPS
    assert optimizer(atoms, weights, restart_after=0).hopping.restart_after == 0
    with pytest.raises(ValueError, match="restart_after"):
        optimizer(atoms, weights, restart_after=-1)


@pytest.mark.parametrize("protocol", ["hopping", "paper"])
def test_target_energy_stops_the_search(atoms, weights, protocol):
    start = atoms.get_potential_energy()
    opt = optimizer(atoms, weights, protocol=protocol)
    opt.run(fmax=0.01, steps=1000, target_energy=start)
    assert opt.stopped_by == "target_energy"
    # Hopping: within the first steps, inside the first chunk; paper: at the
    # first chunk's end.
    assert opt.nsteps < 5 if protocol == "hopping" else opt.nsteps == 5
    assert atoms.get_potential_energy() <= start
    assert largest_force(atoms) < 0.01


def test_target_energy_stops_hopping_at_the_force_call_that_reaches_it(atoms0, weights):
    """One start: the run ends at the step whose force call first reaches the
    target, inside a chunk, as the same search observed after every step
    says."""
    stepwise = atoms0.copy()
    stepwise.calc = atoms0.calc.__class__()
    opt = optimizer(stepwise, weights, observe_every=1)
    best = [opt.best_so_far for _ in opt.irun(steps=200)][1:-1]
    improved = [k for k in range(30, len(best)) if best[k] < best[k - 1]]
    step = next(k + 1 for k in improved if (k + 1) % 50)  # not a chunk's end
    atoms = atoms0.copy()
    atoms.calc = atoms0.calc.__class__()
    opt = optimizer(atoms, weights, observe_every=50)
    opt.run(steps=200, target_energy=best[step - 1])
    assert opt.stopped_by == "target_energy"
    assert opt.nsteps == step
    assert opt.energy_evaluations - opt._polish_calls == step + 1


@pytest.mark.parametrize("protocol, budget", [("hopping", 500), ("paper", 2500)])
def test_force_call_budget_stops_the_search(atoms, weights, protocol, budget):
    opt = optimizer(atoms, weights, protocol=protocol)
    opt.run(steps=1000, max_force_calls=budget)
    assert opt.stopped_by == "max_force_calls"
    assert opt.nsteps < 1000
    assert opt.nsteps % 5 == 0
    assert opt.energy_evaluations >= budget
    if protocol == "hopping":  # one force call per step, the start's first
        assert opt.energy_evaluations - opt._polish_calls == opt.nsteps + 1


def test_get_minimum_before_a_run_is_the_start(atoms0, atoms, weights):
    energy, minimum = optimizer(atoms, weights).get_minimum()
    assert energy == pytest.approx(atoms0.get_potential_energy())
    assert not compare_atoms(atoms0, minimum)


# -- the logfile -------------------------------------------------------------------


def test_log_has_each_step_once_and_the_best_so_far(atoms, weights):
    log = io.StringIO()
    opt = optimizer(atoms, weights, logfile=log)
    opt.run(fmax=0.01, steps=20)
    lines = log.getvalue().splitlines()[1:]
    steps = [int(line.split()[1]) for line in lines]
    energies = [float(line.split()[3]) for line in lines]
    best = [float(line.split()[4]) for line in lines]
    assert steps == [0, 5, 10, 15, 20]
    assert all(b <= e + 1e-6 for b, e in zip(best, energies))
    assert all(later <= earlier + 1e-6 for earlier, later in itertools.pairwise(best))
    # Mid-cycle, "Best" already shows the lowest energy found, not the start's.
    assert best[1] < best[0]
    assert best[-1] == pytest.approx(opt.best_energy, abs=1e-6)
    assert energies[-1] == pytest.approx(opt.best_energy, abs=1e-6)


# -- the minima --------------------------------------------------------------------


def test_minima_as_atoms_and_a_local_minima_trajectory(tmp_path, atoms, weights):
    path = tmp_path / "local_minima.traj"
    opt = optimizer(atoms, weights, minima_trajectory=str(path))
    opt.run(fmax=0.01, steps=3 * HORIZON)
    opt.close()
    pairs = list(opt.minima)
    assert len(pairs) == len(opt.minima) >= 1
    energies = [energy for energy, _ in pairs]
    assert energies == sorted(energies)
    for energy, minimum in pairs:
        assert minimum.get_potential_energy() == pytest.approx(energy)
        assert minimum.get_chemical_symbols() == atoms.get_chemical_symbols()
    listed = opt.get_minima()
    assert [m.get_potential_energy() for m in listed] == pytest.approx(energies)
    assert opt.best_energy <= energies[0] + 1e-9
    written = read(path, ":")
    assert len(written) == len(opt.minima)  # each distinct minimum, once
    assert sorted(m.get_potential_energy() for m in written) == pytest.approx(energies)


def test_todict_and_current_positions(atoms, weights):
    opt = optimizer(atoms, weights)
    runner = opt.irun(steps=10)
    next(runner)
    next(runner)
    assert opt.current_positions.shape == (1, len(atoms), 3)
    description = opt.todict()
    assert description["optimizer"] == "LearnedHopOptimizer"
    assert description["protocol"] == "hopping"
    assert description["horizon"] == default_hop_steps(len(atoms))
    assert optimizer(atoms, weights, protocol="paper").todict()["horizon"] == HORIZON
    runner.close()

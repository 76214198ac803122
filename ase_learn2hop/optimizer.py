"""`LearnedHopOptimizer`: the learned optimizer as an ASE optimizer.

A drop-in where users ran ``ase.optimize.FIRE`` or ``BasinHopping``::

    from ase.io import read
    from ase_learn2hop import LearnedHopOptimizer
    from ase_learn2hop.calculators import LennardJones
    atoms = read("cluster.xyz")
    atoms.calc = LennardJones()
    opt = LearnedHopOptimizer(atoms, logfile="-", trajectory="hop.traj")
    opt.run(steps=50000)          # atoms now holds the best minimum found
    energy, best = opt.get_minimum()

The full semantics (the two protocols, the relaxed start and the guards,
stopping criteria, ``run()`` without ``steps``, constraints, cells) are in the
README section "LearnedHopOptimizer semantics". The search is `protocols`'
(learned basin hopping, or the paper's cycle loop), the code the benchmark
runs; with another ASE calculator it calls ``atoms.calc`` from inside the
jitted steps (`conversion.calculator_energy_fn`).
"""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np
from ase import Atoms
from ase.io.trajectory import Trajectory
from ase.optimize import FIRE
from ase.optimize.optimize import Optimizer

from ase_learn2hop import compilation_cache, conversion, protocols, search
from ase_learn2hop import restart as restart_files
from ase_learn2hop import weights as weight_files
from ase_learn2hop.minima import DistinctMinima
from ase_learn2hop.precision import float64
from ase_learn2hop.protocols import PROTOCOLS, check_count
from ase_learn2hop.weights import NoSuitableWeightsError

__all__ = ["LearnedHopOptimizer", "NoSuitableWeightsError"]

#: Most force calls the final FIRE polish may spend to reach ``fmax``.
FINAL_POLISH_MAX_STEPS = 5000
#: Most FIRE steps that relax each start before the search (`cycles.relax_starts`).
RELAX_STEPS = 1000

#: ``run()`` without ``steps`` (ASE's 100 million mean "until converged", which
#: a global search never is): ten cycles (paper), or these force calls (hopping).
DEFAULT_SEARCH_CYCLES = 10
DEFAULT_HOPPING_STEPS = 20000


class LearnedHopOptimizer(Optimizer):
    """Global optimization with a learned optimizer (Learn2Hop, ICML 2021).

    Args:
        atoms: the structure, with a calculator attached.
        protocol: ``"hopping"`` (default): learned basin hopping
            (`learned_hopping`: hops of ``hop_steps`` learned steps between
            L-BFGS quenches, Metropolis acceptance at ``temperature``; a step
            is one force call); ``"paper"``: the paper's cycles of H learned
            steps and a gradient-descent polish (`cycles`).
        hop_steps: learned steps per hop (default: the hop the weights were
            trained for when they were trained for hopping, e.g. 10 per atom
            for ``lj_hopping``, else `protocols.default_hop_steps`: 25
            per atom, 10 for Gupta potentials, 3 for gold with ``au55``).
        temperature: Metropolis kT of hopping (energy units; default per
            potential, `protocols.default_temperature`).
        restart_after: hops without a new lowest minimum before a free
            cluster restarts from a new random structure (default
            `protocols.RESTART_AFTER_HOPS`; 0 never).
        weights: a `weights.LearnedWeights`, a shipped name (``"lj"``) or a
            path to a weight manifest; ``None`` picks the shipped weights that
            fit the system and the protocol (``lj_hopping_time`` for
            Lennard-Jones hopping up to 26 atoms, ``lj_hopping`` above,
            ``lj`` for the paper protocol).
        restart: file the search state is written to at every chunk; an
            existing one is read back, and the run continues where it stopped.
        logfile: ``"-"`` for stdout, a path, a file object, or ``None``.
        trajectory: path or open `Trajectory`.
        seed: seed of the extra starts (multi-start).
        n_starts: number of searches run at once (fast path only).
        starts: ``"harmonic"`` or ``"perturb"`` for the extra starts.
        perturbation: standard deviation of ``"perturb"`` starts, in units of the
            potential's length scale.
        observe_every: steps per jitted chunk (logfile, trajectory and observers
            fire at chunk ends).
        fast: force the fast (True) or generic (False) path; ``None`` picks fast
            whenever the calculator is one of ours.
        length_scale: length scale of the learned step (length units); default
            the potential's, or for the generic path the start's median
            nearest-neighbour distance.
        polish_steps, polish_learning_rate: the gradient-descent polish (paper
            section 3.3: 1000 steps at 0.001).
        minima_trajectory: path (opened for writing, like `BasinHopping`'s
            ``local_minima_trajectory``) or open `Trajectory` that receives each
            distinct minimum, as `Atoms` with its energy, when first found;
            ``None`` (default) writes none. ``opt.minima`` iterates over
            ``(energy, atoms)`` lowest first, `get_minima` lists the `Atoms`.

    Attributes:
        stopped_by: why the last run stopped: ``"steps"``,
            ``"target_energy"`` or ``"max_force_calls"`` (``None`` before).
    """

    def __init__(
        self,
        atoms: Atoms,
        weights: Any = None,
        restart: str | None = None,
        logfile: Any = "-",
        trajectory: Any = None,
        append_trajectory: bool = False,
        *,
        seed: int = 0,
        n_starts: int = 1,
        starts: str = "harmonic",
        perturbation: float = 0.3,
        observe_every: int = 1000,
        fast: bool | None = None,
        length_scale: float | None = None,
        polish_steps: int = search.POLISH_STEPS,
        polish_learning_rate: float = search.POLISH_LEARNING_RATE,
        relax_steps: int = RELAX_STEPS,
        minima_trajectory: Any = None,
        protocol: str = "hopping",
        hop_steps: int | None = None,
        temperature: float | None = None,
        restart_after: int | None = None,
        **kwargs,
    ):
        if not isinstance(atoms, Atoms):
            raise TypeError(
                "LearnedHopOptimizer searches atomic positions of an Atoms object; "
                f"{type(atoms).__name__} (a cell filter or other optimizable) is not "
                "supported: search the positions, then relax the cell with e.g. "
                "BFGS(FrechetCellFilter(atoms))"
            )
        if atoms.calc is None:
            raise ValueError(
                "LearnedHopOptimizer needs atoms with a calculator attached"
            )
        if not np.all(np.isfinite(atoms.get_positions())):
            raise ValueError("atoms has non-finite (NaN or infinite) positions")
        if n_starts < 1:
            raise ValueError(f"n_starts must be at least 1, got {n_starts}")
        if starts not in ("harmonic", "perturb"):
            raise ValueError(f"starts must be 'harmonic' or 'perturb', got {starts!r}")
        if observe_every < 1:
            raise ValueError("observe_every must be a positive number of steps")
        if protocol not in PROTOCOLS:
            raise ValueError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}")
        compilation_cache.enable()
        with float64():
            options = {"fast": fast, "length_scale": length_scale, "starts": starts}
            problem = conversion.search_problem(atoms, n_starts=n_starts, **options)
            self.system, self.fast, self.context = problem[:3]
            self.energy_fn, self.potential_parameters = problem[3:]
            self.weights = weight_files.weights_for(
                self.system, weights, self.context.species, protocol
            )
        self.seed = seed
        self.n_starts = n_starts
        self.starts = starts
        self.perturbation = perturbation
        self.observe_every = observe_every
        self.polish_steps = polish_steps
        self.polish_learning_rate = polish_learning_rate
        self.relax_steps = int(relax_steps)
        self.protocol = protocol
        self.hopping = None
        if protocol == "hopping":
            settings = (hop_steps, temperature, len(atoms), restart_after)
            self.hopping = protocols.hopping_config(
                self.weights, self.system, self.fast, *settings
            )
        self.minima = DistinctMinima(geometry=self.context.geometry, template=atoms)
        if isinstance(minima_trajectory, (str, os.PathLike)):
            trajectory_file = Trajectory(minima_trajectory, "w", atoms)
            minima_trajectory = self.closelater(trajectory_file)
        self.minima.trajectory = minima_trajectory
        self.stopped_by: str | None = None
        self.start_energies: np.ndarray | None = None
        self.best_energy = np.inf
        self.best_positions: np.ndarray | None = None
        self.energy_evaluations = 0
        self._polish_calls = 0
        self._search = None  # a CycleSearch or HoppingSearch (protocols)
        super().__init__(
            atoms, restart, logfile, trajectory, append_trajectory, **kwargs
        )

    # -- set-up ------------------------------------------------------------------

    @property
    def horizon(self) -> int:
        """Learned steps per cycle (the weights' training horizon H)."""
        return self.weights.horizon

    @property
    def current_positions(self) -> np.ndarray | None:
        """``[n_starts, n_atoms, 3]`` current (unpolished) structures of the
        searches, ``None`` outside a run."""
        if self._search is None:
            return None
        return np.asarray(self._search.carry.state.positions)

    @property
    def _cycle_step(self) -> int:
        return 0 if self._search is None else self._search.cycle_step

    def todict(self) -> dict:
        description = super().todict()
        description.update(
            weights=self.weights.name,
            protocol=self.protocol,
            horizon=self.horizon if self.hopping is None else self.hopping.hop_steps,
            n_starts=self.n_starts,
            seed=self.seed,
            fast=self.fast,
        )
        return description

    def initialize(self) -> None:
        self._search = None

    # -- the search --------------------------------------------------------------

    def _start_positions(self) -> np.ndarray:
        return conversion.start_positions(
            self.atoms.get_positions(), self.system, self.context, self.n_starts,
            self.starts, self.perturbation, self.seed,
        )  # fmt: skip

    def _begin(self) -> None:
        self._search = protocols.start_search(self, self._start_positions())
        if self.hopping is None:  # relaxed starts: first candidates, minima
            self._record_minima(self._search.best_energy, self._search.best_positions)

    def _record_minima(self, energies: np.ndarray, positions: np.ndarray) -> None:
        for energy, structure in zip(energies, positions):
            self.minima.add(float(energy), structure)
            self._offer_best(float(energy), structure)

    def _advance(self, n_steps: int, target: float | None = None) -> int:
        found = protocols.advance_search(self, n_steps, self._record_minima, target)
        self._search, made = found
        self._account()
        return made

    def _finish_cycle(self) -> None:
        self._search = protocols.finish_search(self, self._record_minima)
        self._account()

    def _account(self) -> None:
        found = self._search.best_energy
        if np.isfinite(found).any():
            self.start_energies = np.where(np.isfinite(found), found, np.inf)
        self.energy_evaluations = self._polish_calls + int(
            self._search.total_force_calls.sum()
        )

    def _offer_best(self, energy: float, positions: np.ndarray) -> None:
        if np.isfinite(energy) and energy < self.best_energy:
            self.best_energy = energy
            self.best_positions = np.array(positions)

    # -- the ASE interface -------------------------------------------------------

    def default_steps(self) -> int:
        """Steps of ``run()`` / ``irun()`` without ``steps``:
        `DEFAULT_HOPPING_STEPS` (hopping) or ``DEFAULT_SEARCH_CYCLES *
        horizon`` (paper)."""
        if self.hopping is not None:
            return DEFAULT_HOPPING_STEPS
        return DEFAULT_SEARCH_CYCLES * self.horizon

    def irun(
        self,
        fmax: float = 0.05,
        steps: int | None = None,
        *,
        target_energy: float | None = None,
        max_force_calls: int | None = None,
    ):
        """Run the learned search as a generator (see the module docstring).

        Args:
            fmax: force criterion (eV/Å) of the final polish.
            steps: learned steps; ``None`` makes `default_steps` (ten cycles of
                the weights' horizon), 0 leaves ``atoms`` untouched.
            target_energy: stop once the best energy found (the logfile's
                "Best") reaches this energy: one start's learned basin hopping
                at that force call, else at the end of that chunk.
            max_force_calls: stop at the end of the chunk in which the energy
                and force calls of this optimizer (``energy_evaluations``)
                reach this number; the closing polish comes on top.

        Yields:
            False before the first learned step and after every chunk of
            ``observe_every`` steps but the last; after the last, whether the
            final (best, polished) structure meets ``fmax``. With
            ``steps=0``: once, whether the start meets ``fmax``.
        """
        steps = self.default_steps() if steps is None else check_count(steps)
        if target_energy is not None:
            target_energy = float(target_energy)
            if np.isnan(target_energy):
                raise ValueError("target_energy must be a number, got NaN")
        if max_force_calls is not None:
            max_force_calls = check_count(max_force_calls, "max_force_calls")
        self.fmax = fmax
        self.max_steps = self.nsteps + steps
        return self._irun(steps, target_energy, max_force_calls)

    def _irun(self, steps, target_energy, max_force_calls):
        self.stopped_by = None
        self._offer_best(self.atoms.get_potential_energy(), self.atoms.get_positions())
        if self.nsteps == 0:
            self.log()
            # As ASE: no second first image on a restart with a trajectory.
            if self.trajectory is None or self._traj_is_empty():
                self.call_observers()
        if steps == 0:  # as FIRE: nothing moves, is the start converged?
            self.stopped_by = "steps"
            yield bool(self.converged())
            return
        try:
            yield False
            if self._search is None:
                self._begin()
            while True:
                chunk = int(
                    min(
                        self.observe_every,
                        protocols.steps_to_cycle_end(self),
                        self.max_steps - self.nsteps,
                    )
                )
                chunk = self._advance(chunk, target_energy)
                self.nsteps += chunk
                self.stopped_by = self._stop_reason(target_energy, max_force_calls)
                if self.stopped_by is None:
                    self._show_current()
                else:
                    if self._cycle_step > 0 or self.start_energies is None:
                        self._finish_cycle()
                    converged = self._settle_best()
                    self._search = None
                self.log()
                self._call_observers_crossed(chunk)
                self._dump_state()
                if self.stopped_by is not None:
                    yield converged
                    return
                yield False
        finally:
            self._restore_best()

    def run(
        self,
        fmax: float = 0.05,
        steps: int | None = None,
        *,
        target_energy: float | None = None,
        max_force_calls: int | None = None,
    ) -> bool:
        """Make ``steps`` learned steps, polish, leave atoms at the best minimum.

        Arguments as `irun` (``steps=None``: ``DEFAULT_SEARCH_CYCLES *
        horizon`` learned steps; ``steps=0``: nothing moves).

        Returns:
            True when the final structure's largest force is below ``fmax``.
        """
        converged = False
        for converged in self.irun(
            fmax=fmax,
            steps=steps,
            target_energy=target_energy,
            max_force_calls=max_force_calls,
        ):
            pass
        return converged

    def _stop_reason(self, target_energy, max_force_calls) -> str | None:
        if self.nsteps >= self.max_steps:
            return "steps"
        if target_energy is not None and self.best_so_far <= target_energy:
            return "target_energy"
        if max_force_calls is not None and self.energy_evaluations >= max_force_calls:
            return "max_force_calls"
        return None

    @property
    def best_so_far(self) -> float:
        """Lowest energy found so far (the logfile's "Best"): the lowest polished
        minimum (the start included), or the lowest energy evaluated in the
        current cycle when that is lower (that structure is polished at the end
        of the cycle, which only lowers it)."""
        best = self.best_energy
        if self._search is not None:
            for energies in (self._search.best_energy, self._search.carry.best_energy):
                finite = np.asarray(energies)[np.isfinite(energies)]
                if finite.size:
                    best = min(best, float(finite.min()))
        return best

    def step(self) -> None:
        """One learned step (ASE's `Dynamics.irun` interface)."""
        if self._search is None:
            self._begin()
        self._advance(1)
        self._show_current()

    def _show_current(self) -> None:
        """Put the current structure of the first search on ``atoms`` for the
        logfile, trajectory and observers, unless its energy is not finite."""
        if np.isfinite(self._search.current_energy[0]):
            self.atoms.set_positions(np.asarray(self._search.carry.state.positions)[0])

    def _settle_best(self) -> bool:
        """Put the best minimum on ``atoms`` and polish it with FIRE to ``fmax``."""
        self.atoms.set_positions(self.best_positions)
        polish = FIRE(self.atoms, logfile=None)
        converged = polish.run(fmax=self.fmax, steps=FINAL_POLISH_MAX_STEPS)
        self._polish_calls += polish.nsteps + 1
        self.energy_evaluations += polish.nsteps + 1
        energy = self.atoms.get_potential_energy()
        if np.isfinite(energy) and energy <= self.best_energy:
            self.best_energy = float(energy)
            self.best_positions = self.atoms.get_positions()
        else:
            self.atoms.set_positions(self.best_positions)
        return bool(converged)

    def _restore_best(self) -> None:
        if self.best_positions is not None:
            self.atoms.set_positions(self.best_positions)

    def _call_observers_crossed(self, chunk: int) -> None:
        for function, interval, args, kwargs in self.observers:
            if interval > 0:
                call = (self.nsteps // interval) > ((self.nsteps - chunk) // interval)
            else:
                call = self.nsteps - chunk < abs(interval) <= self.nsteps
            if call:
                function(*args, **kwargs)

    def log(self, gradient=None) -> None:
        """One line: step, time, current energy, best energy, largest force."""
        if self.logfile is None:
            return
        forces = self.atoms.get_forces()
        energy = self.atoms.get_potential_energy()
        fmax = float(np.sqrt((forces**2).sum(axis=1).max()))
        name = self.__class__.__name__
        now = time.localtime()
        if self.nsteps == 0 and not getattr(self, "_header_written", False):
            self.logfile.write(
                f"{' ' * len(name)}  {'Step':>8} {'Time':>8} {'Energy':>15} "
                f"{'Best':>15} {'fmax':>12}\n"
            )
            self._header_written = True
        self.logfile.write(
            f"{name}:  {self.nsteps:8d} {now[3]:02d}:{now[4]:02d}:{now[5]:02d} "
            f"{energy:15.6f} {self.best_so_far:15.6f} {fmax:12.6f}\n"
        )

    def get_minimum(self) -> tuple[float, Atoms]:
        """``(energy, atoms)`` of the best minimum found (as `BasinHopping`).

        Before any run: the energy and a copy of ``atoms`` as they are (ASE's
        `BasinHopping` relaxes its start in the constructor and returns that;
        this optimizer does not move atoms before ``run``).
        """
        atoms = self.atoms.copy()
        if self.best_positions is None:
            return float(self.atoms.get_potential_energy()), atoms
        atoms.set_positions(self.best_positions)
        return self.best_energy, atoms

    def get_minima(self) -> list[Atoms]:
        """The distinct minima found, lowest energy first, each a copy of
        ``atoms`` with a `SinglePointCalculator` holding its energy."""
        return [atoms for _, atoms in self.minima]

    # -- restart files (see `ase_learn2hop.restart`) -------------------------------------------

    def _dump_state(self) -> None:
        if self.restart is not None:
            self.dump(restart_files.optimizer_state(self))

    def read(self) -> None:
        restart_files.restore_optimizer_state(self, self.load())

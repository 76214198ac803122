"""`LearnedHopOptimizer`: the learned optimizer as an ASE optimizer.

A drop-in where users ran ``ase.optimize.FIRE`` or ``BasinHopping``::

    from ase_learn2hop import LearnedHopOptimizer
    from ase_learn2hop.calculators import LennardJones
    atoms.calc = LennardJones()
    opt = LearnedHopOptimizer(atoms, logfile="-", trajectory="hop.traj")
    opt.run(steps=50000)          # atoms now holds the best minimum found
    energy, best = opt.get_minimum()

Semantics of ``run(fmax=0.05, steps=N)``:

- it makes N learned steps. The weights were trained for a horizon of H learned
  steps (``opt.horizon``); when N exceeds H the search goes on in successive
  cycles of H steps, each cycle ending with the paper's polish (1000 steps of
  gradient descent at learning rate 0.001) and the next one starting from that
  polished structure with a fresh optimizer state;
- then it polishes, and leaves ``atoms`` at the **best** minimum found: never
  above its start (the start, polished, is a candidate too) nor above any minimum
  it visited;
- ``fmax`` (eV/Å) is the force criterion of that final polish (FIRE, after the
  gradient-descent polish); it does not stop the search at the first local
  minimum. ``run`` returns True when the final structure meets it.

The search is the core's cycle loop (`cycles.cycles_start` / `cycles_advance`
/ `cycles_finish`), the same code the benchmark runs; this class is a thin state
machine over it. Fast path: when ``atoms.calc`` is one of our JAX calculators
(`LennardJones`, `Gupta`, `StillingerWeber`) the energy is the JAX potential and
the steps run as jitted ``lax.scan`` chunks of ``observe_every`` steps. Generic
path: with any other ASE calculator (``EMT``, ...) the same loop runs with an
energy function that calls ``atoms.calc`` from inside the jitted steps
(`conversion.calculator_energy_fn`). Either way the logfile, trajectory and attached
observers fire at chunk ends (an observer attached with ``interval=k`` fires at
the end of every chunk in which a multiple of k was reached).

Multi-start (fast path only): ``n_starts=K`` runs K searches at once as one
batched computation: the given structure plus K - 1 harmonic-initialization
starts (``starts="harmonic"``) or K Gaussian perturbations of it
(``starts="perturb"``, standard deviation ``perturbation`` length scales, the
first one unperturbed); ``start_energies`` holds the best energy of each.
"""

from __future__ import annotations

import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from ase import Atoms
from ase.optimize import FIRE
from ase.optimize.optimize import DEFAULT_MAX_STEPS, Optimizer

from ase_learn2hop import conversion, cycles, search, systems
from ase_learn2hop import weights as weight_files
from ase_learn2hop.minima import DistinctMinima
from ase_learn2hop.precision import float64
from ase_learn2hop.weights import NoSuitableWeightsError

__all__ = ["LearnedHopOptimizer", "NoSuitableWeightsError"]

#: Most force calls the final FIRE polish may spend to reach ``fmax``.
FINAL_POLISH_MAX_STEPS = 5000


class LearnedHopOptimizer(Optimizer):
    """Global optimization with a learned optimizer (Learn2Hop, ICML 2021).

    Args:
        atoms: the structure, with a calculator attached.
        weights: a `weights.LearnedWeights`, a shipped name (``"lj"``) or a
            path to a weight manifest; ``None`` picks the shipped weights that
            fit the system.
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
        **kwargs,
    ):
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
        with float64():
            self.system = conversion.system_from_atoms(atoms)
            if fast and self.system is None:
                raise ValueError(
                    "the fast path needs one of ase_learn2hop's JAX calculators "
                    "(LennardJones, Gupta, StillingerWeber)"
                )
            self.fast = self.system is not None if fast is None else bool(fast)
            if n_starts > 1 and not self.fast:
                raise ValueError(
                    "n_starts > 1 runs the starts as one batched JAX computation "
                    "and needs one of ase_learn2hop's calculators (LennardJones, "
                    "Gupta, StillingerWeber)"
                )
            if self.fast:
                self.context = self.system.context
                self.energy_fn = self.system.energy_fn
                self.potential_parameters = self.system.potential_parameters
                if length_scale is not None:
                    self.context = self.context._replace(
                        length_scale=jnp.asarray(length_scale)
                    )
            else:
                self.context = conversion.generic_context(atoms, length_scale)
                self.energy_fn = conversion.calculator_energy_fn(atoms)
                self.potential_parameters = None
            self.weights = self._resolve_weights(weights)
        self.seed = seed
        self.n_starts = n_starts
        self.starts = starts
        self.perturbation = perturbation
        self.observe_every = observe_every
        self.polish_steps = polish_steps
        self.polish_learning_rate = polish_learning_rate
        self.minima = DistinctMinima(geometry=self.context.geometry)
        self.start_energies: np.ndarray | None = None
        self.best_energy = np.inf
        self.best_positions: np.ndarray | None = None
        self.energy_evaluations = 0
        self._search: cycles.CycleSearch | None = None
        super().__init__(
            atoms, restart, logfile, trajectory, append_trajectory, **kwargs
        )

    # -- set-up ------------------------------------------------------------------

    def _resolve_weights(self, weights) -> weight_files.LearnedWeights:
        n_species = len(np.unique(np.asarray(self.context.species)))
        if self.system is None:
            if weights is None:
                raise NoSuitableWeightsError(
                    "with a calculator that is not one of ase_learn2hop's, pass "
                    "weights= explicitly (shipped: "
                    f"{weight_files.available_pretrained() or 'none'})"
                )
            return weight_files.resolve_weights(weights, "", "", "this system", n_species)
        return weight_files.resolve_weights(
            weights,
            self.system.family,
            self.system.potential,
            self.system.name,
            n_species,
        )

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
            horizon=self.horizon,
            n_starts=self.n_starts,
            seed=self.seed,
            fast=self.fast,
        )
        return description

    def initialize(self) -> None:
        self._search = None

    # -- the search --------------------------------------------------------------

    def _start_positions(self) -> np.ndarray:
        positions = self.atoms.get_positions()[None]
        extra = self.n_starts - 1
        if extra == 0:
            return positions
        key = jax.random.key(self.seed)
        if self.starts == "harmonic":
            others = np.asarray(systems.starting_structures(key, self.system, extra))
        else:
            noise = jax.random.normal(key, (extra,) + positions.shape[1:])
            others = positions + self.perturbation * float(
                self.context.length_scale
            ) * np.asarray(noise)
        return np.concatenate([positions, others])

    def _begin(self) -> None:
        with float64():
            self._search = cycles.cycles_start(
                self.weights.theta,
                self.weights.config,
                self.energy_fn,
                jnp.asarray(self._start_positions()),
                self.context,
                self.potential_parameters,
                horizon=self.horizon,
                polish_steps=self.polish_steps,
                polish_learning_rate=self.polish_learning_rate,
            )

    def _record_minima(self, energies: np.ndarray, positions: np.ndarray) -> None:
        for energy, structure in zip(energies, positions):
            self.minima.add(float(energy), structure)
            self._offer_best(float(energy), structure)

    def _advance(self, n_steps: int) -> None:
        with float64():
            self._search, _, _ = cycles.cycles_advance(
                self._search,
                n_steps,
                chunk_steps=self.observe_every,
                on_minimum=self._record_minima,
            )
        self._account()

    def _finish_cycle(self) -> None:
        with float64():
            self._search = cycles.cycles_finish(self._search, self._record_minima)
        self._account()

    def _account(self) -> None:
        found = self._search.best_energy
        if np.isfinite(found).any():
            self.start_energies = np.where(np.isfinite(found), found, np.inf)
        self.energy_evaluations = self._polish_calls + int(
            self._search.total_force_calls.sum()
        )

    _polish_calls = 0

    def _offer_best(self, energy: float, positions: np.ndarray) -> None:
        if np.isfinite(energy) and energy < self.best_energy:
            self.best_energy = energy
            self.best_positions = np.array(positions)

    # -- the ASE interface -------------------------------------------------------

    def irun(self, fmax: float = 0.05, steps: int = DEFAULT_MAX_STEPS):
        """Run the learned search as a generator (see the module docstring).

        Yields False after every chunk of learned steps, then whether the final
        polished structure meets ``fmax``.
        """
        self.fmax = fmax
        self.max_steps = self.nsteps + steps
        self._offer_best(self.atoms.get_potential_energy(), self.atoms.get_positions())
        try:
            if self._search is None:
                self._begin()
            if self.nsteps == 0:
                self.log()
                self.call_observers()
            while self.nsteps < self.max_steps:
                chunk = min(
                    self.observe_every,
                    self.horizon - self._cycle_step,
                    self.max_steps - self.nsteps,
                )
                self._advance(chunk)
                self.nsteps += chunk
                self._show_current()
                self.log()
                self._call_observers_crossed(chunk)
                self._dump_state()
                yield False
            if self._cycle_step > 0 or self.start_energies is None:
                self._finish_cycle()
            converged = self._settle_best()
            self._search = None
            self.log()
            self.call_observers()
            self._dump_state()
            yield converged
        finally:
            self._restore_best()

    def run(self, fmax: float = 0.05, steps: int = DEFAULT_MAX_STEPS) -> bool:
        """Make ``steps`` learned steps, polish, leave atoms at the best minimum.

        Returns:
            True when the final structure's largest force is below ``fmax``.
        """
        converged = False
        for converged in self.irun(fmax=fmax, steps=steps):
            pass
        return converged

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
            f"{energy:15.6f} {self.best_energy:15.6f} {fmax:12.6f}\n"
        )

    def get_minimum(self) -> tuple[float, Atoms]:
        """``(energy, atoms)`` of the best minimum found (as `BasinHopping`)."""
        atoms = self.atoms.copy()
        atoms.set_positions(self.best_positions)
        return self.best_energy, atoms

    # -- restart files -------------------------------------------------------------

    def _dump_state(self) -> None:
        if self.restart is None:
            return
        found = self._search
        data = {
            "nsteps": self.nsteps,
            "best_energy": self.best_energy,
            "best_positions": self.best_positions,
            "energy_evaluations": self.energy_evaluations,
            "start_energies": self.start_energies,
            "search": None if found is None else _search_to_dict(found),
        }
        self.dump(data)

    def read(self) -> None:
        data = self.load()
        self.nsteps = int(data["nsteps"])
        self.best_energy = float(data["best_energy"])
        if data["best_positions"] is not None:
            self.best_positions = np.asarray(data["best_positions"])
        self.energy_evaluations = int(data["energy_evaluations"])
        if data.get("start_energies") is not None:
            self.start_energies = np.asarray(data["start_energies"])
        self._search = None
        if data.get("search") is not None:
            self._begin()
            self._search = _search_from_dict(self._search, data["search"])


_SEARCH_ARRAYS = ("best_energy", "best_positions", "force_calls", "first_hit")


def _search_to_dict(found: cycles.CycleSearch) -> dict:
    return {
        "cycle_step": found.cycle_step,
        "steps": found.steps,
        "carry": [np.asarray(leaf) for leaf in jax.tree_util.tree_leaves(found.carry)],
        **{name: np.asarray(getattr(found, name)) for name in _SEARCH_ARRAYS},
    }


def _search_from_dict(template: cycles.CycleSearch, data: dict) -> cycles.CycleSearch:
    """The saved search, on the structure of a fresh one (shapes checked)."""
    leaves, structure = jax.tree_util.tree_flatten(template.carry)
    saved = [np.asarray(leaf) for leaf in data["carry"]]
    if len(saved) != len(leaves) or any(
        a.shape != np.shape(b) for a, b in zip(saved, leaves)
    ):
        raise ValueError(
            "the restart file holds a search of another system: its arrays have "
            f"shapes {[a.shape for a in saved][:2]}..., this one needs "
            f"{[np.shape(b) for b in leaves][:2]}... (atoms or starts differ)"
        )
    with float64():
        carry = jax.tree_util.tree_unflatten(
            structure, [jnp.asarray(a) for a in saved]
        )
    return template._replace(
        carry=carry,
        cycle_step=int(data["cycle_step"]),
        steps=int(data["steps"]),
        **{name: np.asarray(data[name]) for name in _SEARCH_ARRAYS},
    )

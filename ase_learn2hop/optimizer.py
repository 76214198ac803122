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

Fast path: when ``atoms.calc`` is one of our JAX calculators (`LennardJones`,
`Gupta`, `StillingerWeber`) the steps run as jitted ``lax.scan`` chunks of
``observe_every`` steps; the logfile, trajectory and attached observers fire at
chunk ends (an observer attached with ``interval=k`` fires at the end of every
chunk in which a multiple of k was reached). Generic path: with any other ASE
calculator (``EMT``, ...) the optimizer steps one at a time through
``atoms.get_forces()``, and observers fire as usual.

Multi-start (fast path only): ``n_starts=K`` runs K searches at once as one
batched computation: the given structure plus K - 1 harmonic-initialization
starts (``starts="harmonic"``) or K Gaussian perturbations of it
(``starts="perturb"``, standard deviation ``perturbation`` length scales, the
first one unperturbed); ``start_energies`` holds the best energy of each.
"""

from __future__ import annotations

import time
import warnings
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from ase import Atoms
from ase.optimize import FIRE
from ase.optimize.optimize import DEFAULT_MAX_STEPS, Optimizer

from ase_learn2hop import learned_optimizer, search, systems
from ase_learn2hop import weights as weight_files
from ase_learn2hop.features import N_SPECIES_DESCRIPTORS, StructureContext
from ase_learn2hop.minima import DistinctMinima

#: Shipped weights picked by `LearnedHopOptimizer` when ``weights=None``, in order
#: of preference, by `systems.System.family` (then by potential).
DEFAULT_WEIGHTS = {
    "lj": ("lj", "lj13"),
    "gupta:Au": ("au55", "bimetallic"),
    "gupta:AgAu": ("agau", "bimetallic"),
    "gupta": ("bimetallic",),
    "sw": ("si64",),
}
#: Most force calls the final FIRE polish may spend to reach ``fmax``.
FINAL_POLISH_MAX_STEPS = 5000


class NoSuitableWeightsError(ValueError):
    """No shipped weights fit this system, or the given weights do not fit it."""


def system_from_atoms(atoms: Atoms) -> systems.System | None:
    """The `systems.System` of ``atoms`` when its calculator is one of ours."""
    from ase_learn2hop import calculators

    calc = atoms.calc
    symbols = atoms.get_chemical_symbols()
    if isinstance(calc, calculators.JaxCalculator):
        calc.check_atoms(atoms)
    if isinstance(calc, calculators.LennardJones):
        return systems.lennard_jones_system(len(atoms))
    if isinstance(calc, calculators.Gupta):
        return systems.gupta_system(calc.parameter_set.name, symbols)
    if isinstance(calc, calculators.StillingerWeber):
        return systems.silicon_system(len(atoms), float(atoms.cell[0, 0]))
    return None


def default_weights_for(system: systems.System) -> weight_files.LearnedWeights:
    """The shipped weights that fit ``system``, or a clear error.

    Lennard-Jones clusters get ``lj`` (else ``lj13``), gold ``au55``, silver-gold
    ``agau``, other bimetallic clusters ``bimetallic``, silicon ``si64``.
    """
    candidates = DEFAULT_WEIGHTS.get(system.family, DEFAULT_WEIGHTS[system.potential])
    available = weight_files.available_pretrained()
    for name in candidates:
        if name in available:
            return weight_files.load_weights(name)
    raise NoSuitableWeightsError(
        f"no shipped weights fit {system.name} (looked for {candidates}; shipped: "
        f"{available or 'none'}). Pass weights='path/to/weights.json' or train "
        "your own with `learn2hop train`."
    )


def median_nearest_neighbour_distance(
    positions: np.ndarray, box_length: float | None = None
) -> float:
    """Median over atoms of the distance to the nearest other atom (Å): the
    length scale of the learned step when the potential is unknown."""
    difference = positions[:, None, :] - positions[None, :, :]
    if box_length is not None:
        difference -= box_length * np.round(difference / box_length)
    distances = np.linalg.norm(difference, axis=-1)
    np.fill_diagonal(distances, np.inf)
    return float(np.median(distances.min(axis=1)))


def _generic_context(atoms: Atoms, length_scale: float | None) -> StructureContext:
    numbers = atoms.get_atomic_numbers()
    kinds = {z: index for index, z in enumerate(sorted(set(numbers)))}
    species = np.array([kinds[z] for z in numbers], dtype=np.int32)
    positions = atoms.get_positions()
    box_length = None
    if atoms.pbc.any():
        cell = atoms.cell.array
        if not (
            atoms.pbc.all()
            and np.allclose(cell, np.diag(np.diag(cell)))
            and np.allclose(np.diag(cell), cell[0, 0])
        ):
            raise ValueError("periodic systems must be fully periodic cubic cells")
        box_length = float(cell[0, 0])
    if length_scale is None:
        length_scale = median_nearest_neighbour_distance(positions, box_length)
    return StructureContext(
        species=jnp.asarray(species),
        species_descriptors=jnp.zeros((len(atoms), N_SPECIES_DESCRIPTORS)),
        length_scale=jnp.asarray(length_scale),
        box_length=None if box_length is None else jnp.asarray(box_length),
    )


class LearnedHopOptimizer(Optimizer):
    """Global optimization with a learned optimizer (Learn2Hop, ICML 2021).

    Args:
        atoms: the structure, with a calculator attached.
        weights: a `weight_files.LearnedWeights`, a shipped name (``"lj"``) or a
            path to a weight manifest; ``None`` picks the shipped weights that
            fit the system.
        restart: JSON file the search state is written to at every chunk; an
            existing one is read back, and the run continues where it stopped.
        logfile: ``"-"`` for stdout, a path, a file object, or ``None``.
        trajectory: path or open `Trajectory`.
        seed: seed of the extra starts (multi-start).
        n_starts: number of searches run at once (fast path only).
        starts: ``"harmonic"`` or ``"perturb"`` for the extra starts.
        perturbation: standard deviation of ``"perturb"`` starts, in units of the
            potential's length scale.
        observe_every: steps per jitted chunk on the fast path (logfile,
            trajectory and observers fire at chunk ends).
        fast: force the fast (True) or generic (False) path; ``None`` picks fast
            whenever the calculator is one of ours and the system fits.
        length_scale: length scale of the learned step for the generic path (Å);
            default the start's median nearest-neighbour distance.
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
        self.system = system_from_atoms(atoms)
        if fast and self.system is None:
            raise ValueError(
                "the fast path needs one of ase_learn2hop's JAX calculators "
                "(LennardJones, Gupta, StillingerWeber)"
            )
        self.fast = self.system is not None if fast is None else bool(fast)
        if n_starts > 1 and not self.fast:
            raise ValueError(
                "n_starts > 1 runs the starts as one batched JAX computation and needs "
                "one of ase_learn2hop's calculators (LennardJones, Gupta, StillingerWeber)"
            )
        self.weights = self._resolve_weights(weights)
        self.context = (
            self.system.context
            if self.system is not None
            else _generic_context(atoms, length_scale)
        )
        if length_scale is not None and self.system is not None:
            self.context = self.context._replace(length_scale=jnp.asarray(length_scale))
        self._check_species_fit()
        self.seed = seed
        self.n_starts = n_starts
        self.starts = starts
        self.perturbation = perturbation
        self.observe_every = observe_every
        self.polish_steps = polish_steps
        self.polish_learning_rate = polish_learning_rate
        box = self.context.box_length
        self.minima = DistinctMinima(box_length=None if box is None else float(box))
        self.start_energies: np.ndarray | None = None
        self.best_energy = np.inf
        self.best_positions: np.ndarray | None = None
        self.energy_evaluations = 0
        self._state = None
        self._cycle_step = 0
        self._last_observed_step = 0
        super().__init__(
            atoms, restart, logfile, trajectory, append_trajectory, **kwargs
        )

    # -- set-up ------------------------------------------------------------------

    def _resolve_weights(self, weights) -> weight_files.LearnedWeights:
        if isinstance(weights, weight_files.LearnedWeights):
            return weights
        if weights is not None:
            return weight_files.load_weights(weights)
        if self.system is None:
            raise NoSuitableWeightsError(
                "with a calculator that is not one of ase_learn2hop's, pass weights= "
                f"explicitly (shipped: {weight_files.available_pretrained() or 'none'})"
            )
        return default_weights_for(self.system)

    def _check_species_fit(self) -> None:
        n_species = len(np.unique(np.asarray(self.context.species)))
        trained = int(self.weights.manifest.get("max_species", 1))
        if n_species > trained and self.weights.config.features.species:
            raise NoSuitableWeightsError(
                f"weights {self.weights.name!r} were trained on systems with at most "
                f"{trained} species; this system has {n_species}"
            )

    @property
    def horizon(self) -> int:
        """Learned steps per cycle (the weights' training horizon H)."""
        return self.weights.horizon

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
        self._state = None
        self._cycle_step = 0

    # -- state of the searches -------------------------------------------------

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

    def _batched_context(self):
        return search.broadcast_to_batch(self.context, self.n_starts)

    def _batched_parameters(self):
        parameters = (
            self.system.potential_parameters if self.system is not None else None
        )
        return search.broadcast_to_batch(parameters, self.n_starts)

    def _begin_cycle(self, positions: np.ndarray) -> None:
        if self.fast:
            self._state = search.batched_search_init(
                self.system.energy_fn,
                jnp.asarray(positions),
                self._batched_parameters(),
            )
        else:
            energy, gradient = self._generic_energy_gradient(positions[0])
            single = search.SearchState(
                positions=jnp.asarray(positions[0]),
                optimizer_state=learned_optimizer.init(jnp.asarray(positions[0])),
                energy=jnp.asarray(energy),
                gradient=jnp.asarray(gradient),
                best_energy=jnp.asarray(energy if np.isfinite(energy) else np.inf),
                best_positions=jnp.asarray(positions[0]),
                energy_evaluations=jnp.asarray(1),
            )
            self._state = jax.tree_util.tree_map(lambda leaf: leaf[None], single)
        self.energy_evaluations += self.n_starts
        self._cycle_step = 0

    def _generic_energy_gradient(
        self, positions: np.ndarray
    ) -> tuple[float, np.ndarray]:
        probe = self.atoms.copy()
        probe.calc = self.atoms.calc
        probe.set_positions(positions)
        try:
            energy = probe.get_potential_energy()
            gradient = -probe.get_forces()
        except (ValueError, FloatingPointError):
            return np.inf, np.zeros_like(positions)
        if not (np.isfinite(energy) and np.all(np.isfinite(gradient))):
            return np.inf, np.zeros_like(positions)
        return float(energy), gradient

    def _advance(self, n_steps: int) -> None:
        theta, config = self.weights.theta, self.weights.config
        if self.fast:
            self._state = search.batched_search_steps(
                theta,
                config,
                self.system.energy_fn,
                self._state,
                self._batched_context(),
                self._batched_parameters(),
                n_steps,
            )
        else:
            state = jax.tree_util.tree_map(lambda leaf: leaf[0], self._state)
            for _ in range(n_steps):
                state = self._generic_step(state)
            self._state = jax.tree_util.tree_map(lambda leaf: leaf[None], state)
        self.energy_evaluations += n_steps * self.n_starts
        self._cycle_step += n_steps
        self._restart_diverged()

    def _generic_step(self, state: search.SearchState) -> search.SearchState:
        displacement, optimizer_state = _jitted_update(
            self.weights.theta,
            self.weights.config,
            state.optimizer_state,
            state.positions,
            state.gradient,
            self.context,
        )
        positions = search.wrap_positions(
            state.positions + displacement, self.context.box_length
        )
        energy, gradient = self._generic_energy_gradient(np.asarray(positions))
        better = energy < float(state.best_energy)
        return search.SearchState(
            positions=positions,
            optimizer_state=optimizer_state,
            energy=jnp.asarray(energy),
            gradient=jnp.asarray(gradient),
            best_energy=jnp.asarray(energy) if better else state.best_energy,
            best_positions=positions if better else state.best_positions,
            energy_evaluations=state.energy_evaluations + 1,
        )

    def _restart_diverged(self) -> None:
        """A search whose energy went non-finite restarts from its best structure."""
        energies = np.asarray(self._state.energy)
        diverged = ~np.isfinite(energies)
        if not diverged.any():
            return
        warnings.warn(
            f"{int(diverged.sum())} search(es) reached a non-finite energy; "
            "restarting them from their best structure",
            RuntimeWarning,
            stacklevel=3,
        )
        positions = np.where(
            diverged[:, None, None],
            np.asarray(self._state.best_positions),
            np.asarray(self._state.positions),
        )
        best_energy, best_positions = (
            self._state.best_energy,
            self._state.best_positions,
        )
        cycle_step = self._cycle_step
        self._begin_cycle(positions)
        self._state = self._state._replace(
            best_energy=best_energy, best_positions=best_positions
        )
        self._cycle_step = cycle_step

    def _finish_cycle(self) -> None:
        """Polish every search, record minima, restart from the polished structures."""
        if self.fast:
            result = search.batched_search_finish(
                self.system.energy_fn,
                self._state,
                self._batched_context(),
                self._batched_parameters(),
                self.polish_steps,
                self.polish_learning_rate,
            )
            final_positions = np.asarray(result.final_positions)
            final_energies = np.asarray(result.final_energy)
            best_positions = np.asarray(result.best_positions)
            best_energies = np.asarray(result.best_energy)
        else:
            state = jax.tree_util.tree_map(
                lambda leaf: np.asarray(leaf[0]), self._state
            )
            last = self._generic_polish(state.positions)
            seen = self._generic_polish(state.best_positions)
            final_positions, final_energies = last[0][None], np.array([last[1]])
            best = seen if seen[1] < last[1] else last
            best_positions, best_energies = best[0][None], np.array([best[1]])
        self.energy_evaluations += 2 * self.polish_steps * self.n_starts
        for energy, positions in zip(final_energies, final_positions):
            self.minima.add(energy, positions)
        for energy, positions in zip(best_energies, best_positions):
            self.minima.add(energy, positions)
            self._offer_best(float(energy), positions)
        finite = np.where(np.isfinite(best_energies), best_energies, np.inf)
        self.start_energies = (
            finite
            if self.start_energies is None
            else np.minimum(self.start_energies, finite)
        )
        restart = np.where(
            np.isfinite(final_energies)[:, None, None], final_positions, best_positions
        )
        self._begin_cycle(restart)

    def _generic_polish(self, positions: np.ndarray) -> tuple[np.ndarray, float]:
        box = self.context.box_length
        for _ in range(self.polish_steps):
            _, gradient = self._generic_energy_gradient(positions)
            positions = positions - self.polish_learning_rate * gradient
            if box is not None:
                positions = np.mod(positions, float(box))
        energy, _ = self._generic_energy_gradient(positions)
        return positions, energy

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
        start_energy = self.atoms.get_potential_energy()
        self._offer_best(start_energy, self.atoms.get_positions())
        try:
            if self._state is None:
                self._begin_cycle(self._start_positions())
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
                if self._cycle_step >= self.horizon:
                    self._finish_cycle()
                self._show_current()
                self.log()
                self._call_observers_crossed(chunk)
                self._dump_state()
                yield False
            if self._cycle_step > 0 or self.start_energies is None:
                self._finish_cycle()
            converged = self._settle_best()
            self._state = None
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
        if self._state is None:
            self._begin_cycle(self._start_positions())
        self._advance(1)
        self._show_current()

    def _show_current(self) -> None:
        """Put the current structure of the first search on ``atoms`` for the
        logfile, trajectory and observers, unless its energy is not finite."""
        energy = float(np.asarray(self._state.energy)[0])
        if np.isfinite(energy):
            self.atoms.set_positions(np.asarray(self._state.positions)[0])

    def _settle_best(self) -> bool:
        """Put the best minimum on ``atoms`` and polish it with FIRE to ``fmax``."""
        self.atoms.set_positions(self.best_positions)
        polish = FIRE(self.atoms, logfile=None)
        converged = polish.run(fmax=self.fmax, steps=FINAL_POLISH_MAX_STEPS)
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
        data = {
            "nsteps": self.nsteps,
            "cycle_step": self._cycle_step,
            "best_energy": self.best_energy,
            "best_positions": self.best_positions,
            "energy_evaluations": self.energy_evaluations,
            "start_energies": self.start_energies,
            "state": None if self._state is None else _state_to_dict(self._state),
        }
        self.dump(data)

    def read(self) -> None:
        data = self.load()
        self.nsteps = int(data["nsteps"])
        self._cycle_step = int(data["cycle_step"])
        self.best_energy = float(data["best_energy"])
        if data["best_positions"] is not None:
            self.best_positions = np.asarray(data["best_positions"])
        self.energy_evaluations = int(data["energy_evaluations"])
        if data.get("start_energies") is not None:
            self.start_energies = np.asarray(data["start_energies"])
        self._state = None if data["state"] is None else _state_from_dict(data["state"])


_jitted_update = jax.jit(learned_optimizer.update, static_argnames=("config",))


def _state_to_dict(state: search.SearchState) -> dict:
    optimizer_state = state.optimizer_state
    return {
        "positions": np.asarray(state.positions),
        "step": np.asarray(optimizer_state.step),
        "first_moments": np.asarray(optimizer_state.first_moments),
        "second_moments": np.asarray(optimizer_state.second_moments),
        "energy": np.asarray(state.energy),
        "gradient": np.asarray(state.gradient),
        "best_energy": np.asarray(state.best_energy),
        "best_positions": np.asarray(state.best_positions),
        "energy_evaluations": np.asarray(state.energy_evaluations),
    }


def _state_from_dict(data: dict) -> search.SearchState:
    def array(key):
        return jnp.asarray(np.asarray(data[key]))

    return search.SearchState(
        positions=array("positions"),
        optimizer_state=learned_optimizer.LearnedOptimizerState(
            array("step"), array("first_moments"), array("second_moments")
        ),
        energy=array("energy"),
        gradient=array("gradient"),
        best_energy=array("best_energy"),
        best_positions=array("best_positions"),
        energy_evaluations=array("energy_evaluations"),
    )

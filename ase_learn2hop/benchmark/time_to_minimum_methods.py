"""The methods of the time-to-minimum benchmark, one run from one start each.

Each runner takes ``(system, start [n, 3], seconds, force_calls, target, seed)``
and returns a `RunTrace`: every improvement of the method's best energy as
``(force calls, seconds, energy)``, so that success can be judged afterwards
against any threshold (the known global minimum, or the lowest energy any
method found). A runner stops at ``target``, at the wall-time budget or at the
force-call budget, whichever comes first.

- ``learned``: the product path, learned basin hopping
  (`hopping_search.hopping_start` / ``hopping_advance`` in chunks of
  `HOPPING_CHUNK` steps that stop at the call reaching the target, the
  optimizer's defaults) with the shipped weights, batch of one; force calls
  to the target are the driver's exact count.
- ``learned_paper``: the paper's cycle loop (`cycles`), no reinsertion; the
  best is the lowest energy evaluated or polished, checked after each chunk.
- ``scipy_basin_hopping``: `scipy.optimize.basinhopping` with L-BFGS-B quenches
  (`scipy_quench_options` of the potential) on NumPy energies and gradients
  (`lennard_jones_numpy`, `gupta_numpy`); the best is the lowest quench
  minimum.
- ``ase_basin_hopping``: ASE's ``BasinHopping`` with FIRE quenches (fmax 1e-3)
  through our JAX calculator; the best is ``BasinHopping.Emin``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ase_learn2hop import cycles, driver, hopping_search, protocols, systems
from ase_learn2hop import weights as weight_files
from ase_learn2hop.benchmark.ase_tools import CountingCalculator, ForceBudgetExhausted
from ase_learn2hop.descent import fire_descent
from ase_learn2hop.precision import float64
from ase_learn2hop.protocols import hopping_config

#: FIRE steps that relax every start before any method begins (the product
#: path's `optimizer.RELAX_STEPS`).
START_RELAX_STEPS = 1000
#: Learned steps between two looks at the clock and the best energy.
LEARNED_CHUNK = 100
#: The same for learned basin hopping, whose chunks stop at the force call
#: that reaches the target (`hopping_search.hopping_advance`'s
#: ``stop_at_target``), so a long chunk adds no calls or seconds past it.
HOPPING_CHUNK = 1000
#: Basin-hopping temperature (kT, energy units; the same as our hopping's) and
#: step (length units).
HOPPING_TEMPERATURE = protocols.HOPPING_TEMPERATURE
HOPPING_STEP = 0.4
#: Options of scipy's L-BFGS-B quenches in ``scipy_basin_hopping``
#: (``scipy.optimize.minimize(method="L-BFGS-B", options=...)``) per potential
#: family, the baseline's best settings; a family not named here quenches at
#: scipy's defaults (ftol 2.2e-9, gtol 1e-5).
#: - Lennard-Jones: a quench that stops once the energy falls by less than
#:   1e-5 relative per iteration reached the global minimum in 12-26% fewer
#:   force calls on each of three sets of 96 starts of LJ13 and LJ26, none of
#:   them the benchmark's; 3e-6, 3e-5 and 1e-4 did no better
#:   (`benchmarks/results/scipy_settings.md`).
#: - Gupta: the defaults. On 24 Au55 starts (seed 0, 200 000 calls each) they
#:   found the minimum in 13 runs (median 44 113 calls), ftol 1e-5 in 8
#:   (`benchmarks/results/scipy_settings_au55.md`).
SCIPY_QUENCH_OPTIONS: dict[str, dict] = {"lj": {"ftol": 1e-5}}


def scipy_quench_options(potential: str | None) -> dict:
    """`SCIPY_QUENCH_OPTIONS` of a potential family (``{}``: scipy's defaults)."""
    return dict(SCIPY_QUENCH_OPTIONS.get(potential, {}))


def scipy_quench_settings(potential: str | None) -> str:
    """`scipy_quench_options` as the reports print them."""
    options = scipy_quench_options(potential)
    return (
        ", ".join(f"{name} {value:g}" for name, value in options.items())
        or "scipy's defaults"
    )


ASE_FMAX = 1e-3


class RunTrace(NamedTuple):
    """One run: improvements ``[(force calls, seconds, best energy)]`` in
    order, and what the run spent in all."""

    improvements: list[tuple[int, float, float]]
    force_calls: int
    seconds: float


class _Stop(Exception):
    """Raised inside a run to end it (target reached or a budget spent)."""


class _Recorder:
    """The clock, the force-call counter and the improvements of one run."""

    def __init__(self, seconds: float, force_calls: int, target: float):
        self.started = time.perf_counter()
        self.deadline = self.started + seconds
        self.budget = force_calls
        self.target = target
        self.calls = 0
        self.improvements: list[tuple[int, float, float]] = []

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def spent(self) -> bool:
        return self.calls >= self.budget or time.perf_counter() >= self.deadline

    def offer(self, energy: float, calls: int | None = None) -> bool:
        """Note a best energy; True when it reaches the target."""
        energy = float(energy)
        if math.isfinite(energy) and (
            not self.improvements or energy < self.improvements[-1][2]
        ):
            used = self.calls if calls is None else int(calls)
            self.improvements.append((used, self.elapsed(), energy))
        return energy <= self.target

    def watch(self, energy: float) -> bool:
        """An energy evaluated at force call ``calls``: noted only when it
        reaches the target (True then), so that a run is credited at that
        call while its trace keeps one improvement per quench (`offer`)."""
        return float(energy) <= self.target and self.offer(energy)

    def trace(self) -> RunTrace:
        return RunTrace(self.improvements, int(self.calls), self.elapsed())


# -- NumPy energies (the baseline's best implementation) ------------------------


def _pairs(x: np.ndarray):
    positions = np.reshape(x, (-1, 3))
    displacements = positions[:, None, :] - positions[None, :, :]
    squared = np.einsum("ijk,ijk->ij", displacements, displacements)
    np.fill_diagonal(squared, 1.0)
    return positions, displacements, squared


def lennard_jones_numpy(x: np.ndarray) -> tuple[float, np.ndarray]:
    """Reduced Lennard-Jones (pair minimum -1 at r = 1, no cutoff): ``(energy,
    gradient [3n])`` of flat positions ``x``."""
    _, displacements, squared = _pairs(x)
    inverse6 = squared**-3
    np.fill_diagonal(inverse6, 0.0)
    energy = 0.5 * np.sum(inverse6 * inverse6 - 2.0 * inverse6)
    # dE/dr / r for each pair.
    coefficient = 12.0 * (inverse6 - inverse6 * inverse6) / squared
    gradient = np.einsum("ij,ijk->ik", coefficient, displacements)
    return float(energy), gradient.ravel()


def gupta_numpy(x: np.ndarray, species: np.ndarray, table) -> tuple[float, np.ndarray]:
    """Gupta (RGL) energy of `potentials.gupta`: ``(energy, gradient [3n])`` of
    flat positions ``x`` (Å), ``species [n]`` indices into ``table``, a
    `gupta_parameters.GuptaParameters` of ``[S, S]`` arrays."""
    positions, displacements, squared = _pairs(x)
    distances = np.sqrt(squared)
    rows, columns = species[:, None], species[None, :]
    p, q, r0, prefactor, xi = (
        np.asarray(column)[rows, columns]
        for column in (table.p, table.q, table.r0, table.A, table.xi)
    )
    off_diagonal = ~np.eye(len(positions), dtype=bool)
    stretch = distances / r0 - 1.0
    repulsion = np.where(off_diagonal, prefactor * np.exp(-p * stretch), 0.0)
    attraction = np.where(off_diagonal, xi**2 * np.exp(-2.0 * q * stretch), 0.0)
    density = attraction.sum(axis=1)
    band = np.sqrt(density)
    energy = repulsion.sum() - band.sum()
    inverse_band = np.where(density > 0, 1.0 / np.where(density > 0, band, 1.0), 0.0)
    derivative = (
        -2.0 * p * repulsion
        + q * attraction * (inverse_band[:, None] + inverse_band[None, :])
    ) / r0
    gradient = np.einsum("ij,ijk->ik", derivative / distances, displacements)
    return float(energy), gradient.ravel()


def numpy_energy(system: systems.System) -> tuple[Callable, str]:
    """``f(x) -> (energy, gradient)`` of flat positions for ``system`` and what
    it is: NumPy for reduced Lennard-Jones and free Gupta clusters, else our
    JAX potential jitted (one call per evaluation)."""
    if system.potential == "lj" and system.potential_parameters is None:
        return lennard_jones_numpy, "numpy"
    if system.potential == "gupta" and not system.geometry.periodic:
        species = np.asarray(system.potential_parameters.species)
        table = system.potential_parameters.parameters
        return (lambda x: gupta_numpy(x, species, table)), "numpy"
    with float64():
        value_and_grad = jax.jit(jax.value_and_grad(system.energy_fn))
        parameters = system.potential_parameters

        def energy(x):
            with float64():
                value, grad = value_and_grad(
                    jnp.reshape(jnp.asarray(x), (-1, 3)), parameters
                )
            return float(value), np.asarray(grad, dtype=float).ravel()

    return energy, "jax (no numpy version)"


# -- starts ----------------------------------------------------------------------


def relaxed_starts(
    system: systems.System, key: jax.Array, n: int, steps: int = START_RELAX_STEPS
) -> np.ndarray:
    """``[n, n_atoms, 3]`` harmonic starts, each relaxed by ``steps`` of FIRE
    (ASE's FIRE step for step) on the batched driver."""
    with float64():
        starts = systems.starting_structures(key, system, n)
        result = driver.run_batched(
            fire_descent(system.energy_fn, 0.1, system.geometry),
            starts,
            int(steps),
            systems.broadcast_to_batch(system.potential_parameters, n),
        )
        return np.asarray(result.carry.state.positions)


# -- the runners -----------------------------------------------------------------


def learned_weights(
    system: systems.System, protocol: str = "hopping"
) -> weight_files.LearnedWeights:
    """The shipped weights `LearnedHopOptimizer` picks for ``system`` and the
    search ``protocol`` (loaded once per system name)."""
    key = (system.name, protocol)
    if key not in _SHIPPED_WEIGHTS:
        _SHIPPED_WEIGHTS[key] = weight_files.weights_for(
            system, None, system.context.species, protocol
        )
    return _SHIPPED_WEIGHTS[key]


_SHIPPED_WEIGHTS: dict[tuple[str, str], weight_files.LearnedWeights] = {}


def _watch(recorder: _Recorder, search, advance, chunk, **options) -> RunTrace:
    """Advance a batch-of-one search in chunks of ``chunk`` steps (``options``
    to its ``advance``) until the target or a budget."""
    while True:
        recorder.calls = int(search.total_force_calls[0])
        # One transfer for the rest (an index into a device array costs a
        # dispatch each).
        carry_best, carry_hit = jax.device_get(
            (search.carry.best_energy, search.carry.first_hit)
        )
        best = min(float(search.best_energy[0]), float(carry_best[0]))
        first_hit = int(search.first_hit[0])
        if first_hit < 0 and int(carry_hit[0]) > 0:
            first_hit = int(search.force_calls[0] + carry_hit[0])
        if recorder.offer(best, first_hit if first_hit > 0 else None):
            break
        if recorder.spent():
            break
        search, _, _ = advance(search, chunk, chunk_steps=chunk, **options)
    return recorder.trace()


def _run_learned_search(
    system, start, seconds, force_calls, target, protocol, settings
) -> RunTrace:
    """A batch-of-one learned search with the shipped weights of ``protocol``
    ("hopping": `learned_hopping`, "paper": `cycles`); ``settings(weights)``
    its keyword arguments."""
    weights = learned_weights(system, protocol)
    begin, advance = {
        "hopping": (hopping_search.hopping_start, hopping_search.hopping_advance),
        "paper": (cycles.cycles_start, cycles.cycles_advance),
    }[protocol]
    recorder = _Recorder(seconds, force_calls, target)
    with float64():
        search = begin(
            weights.theta,
            weights.config,
            system.energy_fn,
            jnp.asarray(start)[None],
            system.context,
            system.potential_parameters,
            target_energy=target,
            **settings(weights),
        )
        if protocol == "hopping":
            return _watch(recorder, search, advance, HOPPING_CHUNK, stop_at_target=True)
        return _watch(recorder, search, advance, LEARNED_CHUNK)


def run_learned(system, start, seconds, force_calls, target, seed) -> RunTrace:
    """The product path: learned basin hopping (`learned_hopping`) with the
    shipped weights and the optimizer's defaults, batch of one."""

    def settings(weights):
        return {
            "hopping": hopping_config(
                weights, system, True, None, None, system.n_atoms
            ),
            "key": jax.random.key(seed),
        }

    return _run_learned_search(
        system,
        start,
        seconds,
        force_calls,
        target,
        "hopping",
        settings,
    )


def run_learned_paper(system, start, seconds, force_calls, target, seed) -> RunTrace:
    """The paper's protocol: cycles of H learned steps and the polish, batch
    of one, no reinsertion."""
    del seed  # deterministic from the start

    def settings(weights):
        return {"horizon": weights.horizon, "relax_steps": 0, "reinsert": False}

    return _run_learned_search(
        system,
        start,
        seconds,
        force_calls,
        target,
        "paper",
        settings,
    )


def run_scipy_basin_hopping(
    system,
    start,
    seconds,
    force_calls,
    target,
    seed,
    *,
    quench_options: dict | None = None,
) -> RunTrace:
    """``scipy.optimize.basinhopping`` with L-BFGS-B quenches (GMIN / pele),
    their ``options`` ``quench_options`` (default `scipy_quench_options` of
    the system's potential; ``{}`` is scipy's defaults).

    Every evaluated energy is watched, as the driver watches ours: the run
    reaches the target at the first force call below it, not when the quench
    that made that call ends; each quench's minimum is noted as an
    improvement."""
    from scipy.optimize import basinhopping

    energy, _ = numpy_energy(system)
    recorder = _Recorder(seconds, force_calls, target)

    def f(x):
        if recorder.spent():
            raise _Stop
        recorder.calls += 1
        value, gradient = energy(x)
        if recorder.watch(value):
            raise _Stop
        return value, gradient

    def callback(x, quench_minimum, accepted):
        recorder.offer(quench_minimum)
        return recorder.spent()

    try:
        basinhopping(
            f,
            np.asarray(start, dtype=float).ravel(),
            niter=10**9,
            T=HOPPING_TEMPERATURE[system.potential],
            stepsize=HOPPING_STEP,
            minimizer_kwargs={
                "method": "L-BFGS-B",
                "jac": True,
                "options": (
                    scipy_quench_options(system.potential)
                    if quench_options is None
                    else dict(quench_options)
                ),
            },
            callback=callback,
            rng=np.random.default_rng(seed),
        )
    except _Stop:
        pass
    return recorder.trace()


class _BudgetCalculator(CountingCalculator):
    """`CountingCalculator` that also stops at the recorder's deadline and
    lets it watch every evaluated energy (a hit ends the run at that call)."""

    def __init__(self, calculator, recorder: _Recorder):
        super().__init__(calculator, recorder.budget)
        self.recorder = recorder

    def calculate(self, *args, **kwargs):
        if time.perf_counter() >= self.recorder.deadline:
            raise ForceBudgetExhausted
        super().calculate(*args, **kwargs)
        self.recorder.calls = self.force_calls
        if self.recorder.watch(self.results["energy"]):
            raise _Stop


def run_ase_basin_hopping(
    system, start, seconds, force_calls, target, seed
) -> RunTrace:
    """ASE's ``BasinHopping`` (kT, dr = 0.4, FIRE quenches to fmax 1e-3) through
    our calculator; one ``run`` (so Metropolis acceptance is ASE's own). Every
    evaluated energy is watched, as for the other methods, and each hop's
    lowest minimum noted."""
    from ase.optimize import FIRE
    from ase.optimize.basin import BasinHopping

    from ase_learn2hop.conversion import atoms_from_system, calculator_for

    recorder = _Recorder(seconds, force_calls, target)
    atoms = atoms_from_system(system, np.asarray(start))
    atoms.calc = _BudgetCalculator(calculator_for(system), recorder)
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        hopping = BasinHopping(
            atoms,
            temperature=HOPPING_TEMPERATURE[system.potential],
            optimizer=FIRE,
            fmax=ASE_FMAX,
            dr=HOPPING_STEP,
            logfile=None,
            trajectory=None,
            optimizer_logfile=None,
            local_minima_trajectory=None,
        )
        recorder.offer(hopping.Emin)
        hopping.attach(lambda: recorder.offer(hopping.Emin))
        hopping.run(10**9)
    except (_Stop, ForceBudgetExhausted):
        pass
    finally:
        np.random.set_state(state)
    return recorder.trace()


class Method(NamedTuple):
    label: str
    run: Callable[..., RunTrace]
    note: str


METHODS: dict[str, Method] = {
    "learned": Method(
        "Learn2Hop (ours, learned basin hopping)",
        run_learned,
        "learned hops + L-BFGS quench + Metropolis, shipped weights, batch of 1",
    ),
    "learned_paper": Method(
        "Learn2Hop (paper protocol)",
        run_learned_paper,
        "cycle loop with shipped weights, no reinsertion, batch of 1",
    ),
    "scipy_basin_hopping": Method(
        "scipy basinhopping + L-BFGS-B",
        run_scipy_basin_hopping,
        "scipy.optimize.basinhopping, L-BFGS-B quenches ("
        + "".join(
            f"{scipy_quench_settings(family)} on {family}, "
            for family in SCIPY_QUENCH_OPTIONS
        )
        + "scipy's defaults otherwise), NumPy energy",
    ),
    "ase_basin_hopping": Method(
        "ASE BasinHopping + FIRE",
        run_ase_basin_hopping,
        "ase.optimize.basin.BasinHopping, FIRE quenches to fmax 1e-3",
    ),
}

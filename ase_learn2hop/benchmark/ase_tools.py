"""ASE's own ``FIRE`` and ``BasinHopping`` through our calculators, with every
force call counted and a hard budget.

- `CountingCalculator` (raises `ForceBudgetExhausted` when the budget is spent);
- `ase_calculator`, `ase_atoms`: our calculator and an ``ase.Atoms`` for a system;
- `run_ase_tool`: either tool from each start, then the paper's polish.
"""

from __future__ import annotations

import math
import time
from typing import Any, ClassVar

import jax.numpy as jnp
import numpy as np
from ase.calculators.calculator import Calculator, all_changes

from ase_learn2hop import systems
from ase_learn2hop.benchmark.protocol import (
    ASE_BASIN_HOPPING_STEP,
    ASE_BASIN_HOPPING_TEMPERATURE,
    ASE_FMAX,
    VariantResult,
    global_minimum_threshold,
    reaches_global_minimum,
)
from ase_learn2hop.benchmark.runners import polish_lowest
from ase_learn2hop.conversion import atoms_from_system, calculator_for


class ForceBudgetExhausted(Exception):
    """Raised by `CountingCalculator` when a run has spent its force calls."""


class CountingCalculator(Calculator):
    """Wraps an ASE calculator: counts force calls, keeps the lowest energy
    and structure evaluated, notes when the global minimum is first reached,
    and raises `ForceBudgetExhausted` once ``budget`` calls are spent.

    One call is one evaluation of energy and forces at new positions (ASE
    caches repeated requests at the same positions, which cost nothing).
    """

    implemented_properties: ClassVar[list[str]] = ["energy", "free_energy", "forces"]

    def __init__(self, calculator, budget=None, target_energy=-math.inf):
        Calculator.__init__(self)
        self.calculator = calculator
        self.budget = budget
        self.target_energy = target_energy
        self.force_calls = 0
        self.lowest_energy = math.inf
        self.lowest_positions = None
        self.first_hit_calls = -1
        self.first_hit_seconds = math.nan
        self.started = time.perf_counter()

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        if self.budget is not None and self.force_calls >= self.budget:
            raise ForceBudgetExhausted
        Calculator.calculate(self, atoms, properties, system_changes)
        self.calculator.calculate(
            self.atoms, ["energy", "forces"], system_changes=all_changes
        )
        self.results = dict(self.calculator.results)
        self.force_calls += 1
        energy = self.results["energy"]
        if energy < self.lowest_energy:
            self.lowest_energy = energy
            self.lowest_positions = self.atoms.get_positions()
        if self.first_hit_calls < 0 and energy <= self.target_energy:
            self.first_hit_calls = self.force_calls
            self.first_hit_seconds = time.perf_counter() - self.started


def run_ase_tool(
    system: systems.System,
    starts: np.ndarray,
    budget: int,
    tool: str,
    *,
    seed: int = 0,
    temperature: float | None = None,
    progress: Any = None,
) -> VariantResult:
    """ASE's ``FIRE`` (``tool="ase_fire"``) or ``BasinHopping`` with FIRE quenches
    (``"ase_basin_hopping"``) from each start, with at most ``budget`` force calls,
    then the paper's polish of the lowest structure evaluated.

    FIRE stops at ``fmax = 1e-3`` (or the budget); BasinHopping hops until the
    budget is spent (temperature `ASE_BASIN_HOPPING_TEMPERATURE`, ``dr`` =
    0.4 length scales, FIRE quenches to ``fmax = 1e-3``). BasinHopping draws from
    NumPy's global random state; it is seeded with ``seed + start index`` and
    restored afterwards.
    """
    from ase.optimize import FIRE
    from ase.optimize.basin import BasinHopping

    target = global_minimum_threshold(system.global_minimum)
    if temperature is None:
        temperature = ASE_BASIN_HOPPING_TEMPERATURE[system.potential]
    step = ASE_BASIN_HOPPING_STEP * float(system.context.length_scale)
    calls, hit_calls, hit_seconds, lowest = [], [], [], []
    started = time.perf_counter()
    random_state = np.random.get_state()
    try:
        for index, start in enumerate(np.asarray(starts)):
            atoms = atoms_from_system(system, start)
            calculator = CountingCalculator(calculator_for(system), budget, target)
            atoms.calc = calculator
            try:
                if tool == "ase_fire":
                    with FIRE(atoms, logfile=None) as optimizer:
                        optimizer.run(fmax=ASE_FMAX, steps=budget)
                else:
                    np.random.seed(seed + index)
                    hopping = BasinHopping(
                        atoms,
                        temperature=temperature,
                        optimizer=FIRE,
                        fmax=ASE_FMAX,
                        dr=step,
                        logfile=None,
                        trajectory=None,
                        optimizer_logfile=None,
                        local_minima_trajectory=None,
                    )
                    hopping.run(budget)
            except ForceBudgetExhausted:
                pass
            calls.append(calculator.force_calls)
            hit_calls.append(calculator.first_hit_calls)
            hit_seconds.append(calculator.first_hit_seconds)
            lowest.append(calculator.lowest_positions)
            if progress is not None:
                progress.update(1)
    finally:
        np.random.set_state(random_state)
    wall_time = time.perf_counter() - started
    energies, positions, polish_evaluations = polish_lowest(
        system, jnp.asarray(np.stack(lowest))
    )
    evaluations = np.asarray(calls) + polish_evaluations
    first_hit = np.asarray(hit_calls)
    polished_hit = (first_hit < 0) & reaches_global_minimum(
        energies, system.global_minimum
    )
    first_hit = np.where(polished_hit, evaluations, first_hit)
    setting = {"fmax": ASE_FMAX, "force_call_budget": int(budget)}
    if tool == "ase_basin_hopping":
        setting.update(temperature=float(temperature), dr=step)
    return VariantResult(
        setting=setting,
        energies=energies,
        energy_evaluations=evaluations,
        first_hit_evaluations=first_hit,
        wall_time_s=wall_time,
        seconds_to_first_hit=np.asarray(hit_seconds, dtype=float),
        positions=positions,
    )

"""LJ13 from one random start: LearnedHopOptimizer beside ASE's FIRE and
BasinHopping, each with the same budget of force calls (the learned
optimizer's learned basin hopping makes one per step); the table shows the
force calls each spent (the learned optimizer's include its closing polish).

    python examples/lj13_learned_vs_ase.py            # about a minute
    python examples/lj13_learned_vs_ase.py --fast     # a few seconds

Every tool gets the same starting structure (a harmonic-initialization start, as
in the paper) and our Lennard-Jones calculator; `CountingCalculator` counts the
force calls each one makes.
"""

import argparse
import os
import time

import jax
import numpy as np
from ase import Atoms
from ase.optimize import FIRE
from ase.optimize.basin import BasinHopping

from ase_learn2hop import LearnedHopOptimizer, systems
from ase_learn2hop.benchmark.ase_tools import CountingCalculator, ForceBudgetExhausted
from ase_learn2hop.calculators import LennardJones
from ase_learn2hop.optimizer import NoSuitableWeightsError


def fast_mode(args) -> bool:
    return args.fast or os.environ.get("LEARN2HOP_EXAMPLE_FAST") == "1"


def main() -> None:
    # Our own process: float64 everywhere (energies to 1e-6), switched explicitly.
    jax.config.update("jax_enable_x64", True)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, help="force-call budget per tool")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--weights", help="weight file (default: shipped lj13)")
    parser.add_argument("--fast", action="store_true", help="a quick check")
    args = parser.parse_args()
    budget = args.steps or (1000 if fast_mode(args) else 20000)

    system = systems.system_from_name("lj13")
    start = np.asarray(
        systems.starting_structures(jax.random.key(args.seed), system, 1)[0]
    )

    def fresh_atoms():
        atoms = Atoms("X13", positions=start)
        atoms.calc = CountingCalculator(LennardJones(), budget=budget)
        return atoms

    rows = []

    # The learned optimizer: `budget` force calls of learned basin hopping
    # (its default), then the closing FIRE polish to fmax, which it also spends.
    # Our calculator itself (not wrapped), so that the optimizer takes its fast,
    # jitted path.
    atoms = Atoms("X13", positions=start)
    atoms.calc = LennardJones()
    began = time.perf_counter()
    try:
        optimizer = LearnedHopOptimizer(atoms, weights=args.weights, logfile=None)
        optimizer.run(steps=budget)
        rows.append(
            (
                "LearnedHopOptimizer",
                atoms.get_potential_energy(),
                optimizer.energy_evaluations,
                time.perf_counter() - began,
            )
        )
    except NoSuitableWeightsError as error:
        print(f"LearnedHopOptimizer skipped: {error}")

    # ASE FIRE: a local optimizer; it stops in the first minimum it reaches.
    atoms = fresh_atoms()
    began = time.perf_counter()
    try:
        FIRE(atoms, logfile=None).run(fmax=1e-3, steps=budget)
    except ForceBudgetExhausted:
        pass
    rows.append(
        (
            "ASE FIRE",
            atoms.calc.lowest_energy,
            atoms.calc.force_calls,
            time.perf_counter() - began,
        )
    )

    # ASE BasinHopping with FIRE quenches, hopping until the budget is spent.
    # It draws from NumPy's global random state: seed it for a repeatable run.
    atoms = fresh_atoms()
    np.random.seed(args.seed)
    began = time.perf_counter()
    try:
        hopping = BasinHopping(
            atoms,
            temperature=0.8,
            dr=0.4,
            fmax=1e-3,
            logfile=None,
            trajectory=None,
            optimizer_logfile=None,
            local_minima_trajectory=None,
        )
        hopping.run(budget)
    except ForceBudgetExhausted:
        pass
    rows.append(
        (
            "ASE BasinHopping",
            atoms.calc.lowest_energy,
            atoms.calc.force_calls,
            time.perf_counter() - began,
        )
    )

    print(f"LJ13 global minimum: {system.global_minimum:.6f} (reduced units)")
    print(f"{'tool':<22}{'lowest energy':>15}{'force calls':>13}{'seconds':>10}")
    for name, energy, calls, seconds in rows:
        print(f"{name:<22}{energy:>15.6f}{calls:>13d}{seconds:>10.2f}")


if __name__ == "__main__":
    main()

"""Au55 (Gupta potential, Garzon parameters; global minimum -181.89 eV): the
learned optimizer with the shipped gold weights, beside ASE's BasinHopping.

    python examples/au55_gold.py                       # a few minutes
    python examples/au55_gold.py --fast                # a few seconds
    python examples/au55_gold.py --weights my_au.json  # your own weights

Without --weights the optimizer picks the shipped ``au55`` weights by itself.
"""

import argparse
import os

import jax
import numpy as np
from ase import Atoms
from ase.io import write
from ase.optimize.basin import BasinHopping

from ase_learn2hop import LearnedHopOptimizer, systems
from ase_learn2hop.benchmark.ase_tools import CountingCalculator, ForceBudgetExhausted
from ase_learn2hop.calculators import Gupta
from ase_learn2hop.optimizer import NoSuitableWeightsError


def fast_mode(args) -> bool:
    return args.fast or os.environ.get("LEARN2HOP_EXAMPLE_FAST") == "1"


def main() -> None:
    # Our own process: float64 everywhere (energies to 1e-6), switched explicitly.
    jax.config.update("jax_enable_x64", True)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, help="learned steps / force calls")
    parser.add_argument("--weights", help="weight file (default: shipped au55)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="au55_best.xyz")
    parser.add_argument("--fast", action="store_true", help="a quick check")
    args = parser.parse_args()
    budget = args.steps or (300 if fast_mode(args) else 20000)

    system = systems.system_from_name("au55")
    start = np.asarray(
        systems.starting_structures(jax.random.key(args.seed), system, 1)[0]
    )
    print(f"Au55 global minimum (Garzon parameters): {system.global_minimum} eV")

    atoms = Atoms("Au55", positions=start)
    atoms.calc = Gupta(system="Au")
    try:
        optimizer = LearnedHopOptimizer(atoms, weights=args.weights, logfile=None)
        optimizer.run(steps=budget)
        energy, best = optimizer.get_minimum()
        print(f"LearnedHopOptimizer: {energy:.4f} eV after {budget} force calls of learned hopping")
        write(args.out, best)
        print(f"wrote {args.out}")
    except NoSuitableWeightsError as error:
        print(f"LearnedHopOptimizer skipped: {error}")

    # ASE's BasinHopping with FIRE quenches. kT = 0.8 eV and dr = 0.4 r0: the
    # settings the benchmark uses (scaled from LJ's 0.8 epsilon and 0.4 d0).
    atoms = Atoms("Au55", positions=start)
    atoms.calc = CountingCalculator(Gupta(system="Au"), budget=budget)
    np.random.seed(args.seed)
    try:
        hopping = BasinHopping(
            atoms,
            temperature=0.8,
            dr=0.4 * 2.96,
            fmax=1e-3,
            logfile=None,
            trajectory=None,
            optimizer_logfile=None,
            local_minima_trajectory=None,
        )
        hopping.run(budget)
    except ForceBudgetExhausted:
        pass
    print(
        f"ASE BasinHopping: {atoms.calc.lowest_energy:.4f} eV after "
        f"{atoms.calc.force_calls} force calls"
    )


if __name__ == "__main__":
    main()

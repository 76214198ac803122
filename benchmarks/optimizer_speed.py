"""Speed of LearnedHopOptimizer beside ASE's FIRE on LJ13 (issue 3's speed table).

Rows:
- one search: ``LearnedHopOptimizer(atoms).run(steps=N)`` with our JAX calculator
  beside ``ase.optimize.FIRE`` making N steps (fmax=0, so it never stops early)
  with ASE's own ``LennardJones`` on the same structure;
- many starts: ``n_starts=K`` as one batched computation beside K sequential
  ASE FIRE runs (fmax=1e-3, at most N steps each: what a user would run). With
  ``--fire-sample M`` only M of the K FIRE runs are timed and the total is
  extrapolated (said in the output).

Timing only: with no shipped weights it uses untrained weights set by hand, which
move atoms as much as trained ones cost. Run:

    python benchmarks/optimizer_speed.py --steps 50000 --starts 150
"""

from __future__ import annotations

import argparse
import time

import jax
import numpy as np
from ase import Atoms
from ase.calculators.lj import LennardJones as AseLennardJones
from ase.optimize import FIRE

from ase_learn2hop import LearnedHopOptimizer, systems
from ase_learn2hop.calculators import LennardJones
from ase_learn2hop.learned_optimizer import LearnedOptimizerConfig, init_theta
from ase_learn2hop.weights import LearnedWeights, WeightFileError, weights_for

SIGMA = 2 ** (-1 / 6)


def ase_lennard_jones() -> AseLennardJones:
    # Reduced units (pair minimum -1 at r = 1) with ASE's calculator.
    return AseLennardJones(sigma=SIGMA, epsilon=1.0, rc=1e3, smooth=False)


def weights_for_timing(system) -> tuple[LearnedWeights, str]:
    try:
        # The optimizer's default search (learned basin hopping) and its weights.
        weights = weights_for(system, None, system.context.species, "hopping")
        return weights, f"shipped weights {weights.name!r} (horizon {weights.horizon})"
    except (ValueError, WeightFileError):
        config = LearnedOptimizerConfig()
        theta = init_theta(jax.random.key(0), config)
        theta = jax.tree_util.tree_map(
            lambda leaf: leaf + 0.1 * jax.random.normal(jax.random.key(1), leaf.shape),
            theta,
        )
        manifest = {"horizon": 1000, "name": "untrained-timing-only"}
        return LearnedWeights(
            theta, config, manifest
        ), "untrained weights (timing only)"


def main() -> None:
    # Our own process: float64 everywhere (energies to 1e-6), switched explicitly.
    jax.config.update("jax_enable_x64", True)
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=50000)
    parser.add_argument("--starts", type=int, default=150)
    parser.add_argument(
        "--fire-sample",
        type=int,
        default=10,
        help="sequential ASE FIRE runs actually timed",
    )
    args = parser.parse_args()

    system = systems.lennard_jones_system(13)
    starts = np.asarray(
        systems.starting_structures(jax.random.key(0), system, args.starts)
    )
    weights, description = weights_for_timing(system)
    print(
        f"LJ13, {args.steps} steps, {description}; device {jax.devices()[0].platform}"
    )

    def learned(n_starts: int) -> float:
        atoms = Atoms("X13", positions=starts[0])
        atoms.calc = LennardJones()
        optimizer = LearnedHopOptimizer(
            atoms,
            weights=weights,
            logfile=None,
            n_starts=n_starts,
            observe_every=args.steps,
        )
        began = time.perf_counter()
        optimizer.run(steps=args.steps)
        return time.perf_counter() - began

    learned(1)  # compile
    learned_single = learned(1)

    atoms = Atoms("X13", positions=starts[0])
    atoms.calc = ase_lennard_jones()
    began = time.perf_counter()
    FIRE(atoms, logfile=None).run(fmax=0.0, steps=args.steps)
    fire_single = time.perf_counter() - began

    learned(args.starts)  # compile the batch
    learned_batch = learned(args.starts)

    sample = min(args.fire_sample, args.starts)
    began = time.perf_counter()
    force_calls = []
    for positions in starts[:sample]:
        atoms = Atoms("X13", positions=positions)
        atoms.calc = ase_lennard_jones()
        fire = FIRE(atoms, logfile=None)
        fire.run(fmax=1e-3, steps=args.steps)
        force_calls.append(fire.nsteps + 1)
    fire_batch = (time.perf_counter() - began) * args.starts / sample

    print()
    print("| run | ours (s) | ASE FIRE (s) | speed-up |")
    print("|---|---|---|---|")
    print(
        f"| 1 search, {args.steps} steps | {learned_single:.2f} | {fire_single:.2f} "
        f"| {fire_single / learned_single:.1f}x |"
    )
    note = "" if sample == args.starts else f" (FIRE: {sample} timed, extrapolated)"
    print(
        f"| {args.starts} starts{note} | {learned_batch:.2f} | {fire_batch:.2f} "
        f"| {fire_batch / learned_batch:.1f}x |"
    )
    print(
        f"| {args.starts} starts, {args.steps} FIRE steps each (extrapolated from the "
        f"single run) | {learned_batch:.2f} | {fire_single * args.starts:.2f} "
        f"| {fire_single * args.starts / learned_batch:.1f}x |"
    )
    print(
        f"\nASE FIRE to fmax 1e-3 used a median of {int(np.median(force_calls))} force "
        f"calls per start; our searches (learned basin hopping) make {args.steps} force "
        "calls each, learned hop steps and L-BFGS quench steps together."
    )


if __name__ == "__main__":
    main()

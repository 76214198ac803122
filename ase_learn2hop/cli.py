"""The ``learn2hop`` command line.

Subcommands:

- ``learn2hop optimize STRUCTURE --potential lj|gupta:SET|sw --steps N --starts K
  --out best.xyz``: global optimization of a structure (any file ASE reads, or a
  system name such as ``lj13`` for a random harmonic start);
- ``learn2hop compare``, ``learn2hop benchmark``: the learned optimizer beside
  FIRE, Adam and basin hopping (see `ase_learn2hop.benchmark`);
- ``learn2hop train CONFIG``: meta-training (see ``training/``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np


def _calculator(potential: str):
    from ase_learn2hop.calculators import Gupta, LennardJones, StillingerWeber

    if potential == "lj":
        return LennardJones()
    if potential == "sw":
        return StillingerWeber()
    if potential.startswith("gupta"):
        _, _, set_name = potential.partition(":")
        return Gupta(system=set_name or "Au")
    raise SystemExit(
        f"unknown potential {potential!r}: use lj, gupta:SET (e.g. gupta:AgAu) or sw"
    )


def _infer_potential(system) -> str:
    return {"lj": "lj", "sw": "sw"}.get(system.potential, system.family)


def load_structure(structure: str, potential: str | None, seed: int):
    """Read ``structure`` (a file) or build a harmonic start of a named system.

    Returns:
        ``(atoms, potential)``.
    """
    import jax
    from ase.io import read

    from ase_learn2hop import systems
    from ase_learn2hop.conversion import atoms_from_system

    if Path(structure).exists():
        atoms = read(structure)
        if potential is None:
            raise SystemExit("--potential is required when STRUCTURE is a file")
        return atoms, potential
    try:
        system = systems.system_from_name(structure)
    except ValueError as error:
        raise SystemExit(f"{structure!r} is neither a file nor a system name: {error}")
    positions = np.asarray(
        systems.starting_structures(jax.random.key(seed), system, 1)[0]
    )
    return atoms_from_system(system, positions), potential or _infer_potential(system)


def optimize_command(args: argparse.Namespace) -> int:
    from ase.io import write
    from tqdm import tqdm

    from ase_learn2hop import LearnedHopOptimizer, systems

    atoms, potential = load_structure(args.structure, args.potential, args.seed)
    atoms.calc = _calculator(potential)
    start_energy = atoms.get_potential_energy()
    optimizer = LearnedHopOptimizer(
        atoms,
        weights=args.weights,
        logfile=args.logfile,
        trajectory=args.trajectory,
        seed=args.seed,
        n_starts=args.starts,
        observe_every=args.observe_every,
    )
    with tqdm(
        total=args.steps, desc="learned steps", unit="step", disable=args.quiet
    ) as bar:
        done = 0
        for _ in optimizer.irun(fmax=args.fmax, steps=args.steps):
            bar.update(optimizer.nsteps - done)
            done = optimizer.nsteps
            bar.set_postfix(best=f"{optimizer.best_energy:.6f}")
    energy, best = optimizer.get_minimum()
    print(f"start energy      {start_energy:.6f}")
    print(
        f"best energy       {energy:.6f}  ({args.steps} learned steps, {args.starts} start(s))"
    )
    if potential == "lj":
        reference = systems.lennard_jones_global_minima().get(len(atoms))
        if reference is not None:
            gap = energy - reference
            print(
                f"global minimum    {reference:.6f}  (gap {0.0 if abs(gap) < 5e-7 else gap:.6f})"
            )
    print(f"distinct minima   {len(optimizer.minima)}")
    if args.out:
        write(args.out, best)
        print(f"wrote {args.out}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="learn2hop",
        description="Learned optimizers that hop between basins (Learn2Hop, ICML 2021).",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    optimize = commands.add_parser(
        "optimize", help="global optimization of one structure"
    )
    optimize.add_argument(
        "structure",
        help="structure file (any ASE format) or a name: lj13, au55, si64, Ag35Au3",
    )
    optimize.add_argument(
        "--potential", help="lj, gupta:SET (Au, AgAu, AgPt, PdAu, PdPt) or sw"
    )
    optimize.add_argument(
        "--steps", type=int, default=50000, help="learned steps (default 50000)"
    )
    optimize.add_argument("--starts", type=int, default=1, help="searches run at once")
    optimize.add_argument(
        "--weights", help="weight manifest or shipped name (default: chosen by system)"
    )
    optimize.add_argument("--seed", type=int, default=0)
    optimize.add_argument(
        "--fmax", type=float, default=0.01, help="force criterion of the final polish"
    )
    optimize.add_argument(
        "--out", help="write the best structure here (any ASE format)"
    )
    optimize.add_argument("--trajectory", help="ASE trajectory of the search")
    optimize.add_argument(
        "--logfile", default=None, help="optimizer log ('-' for stdout)"
    )
    optimize.add_argument(
        "--observe-every", type=int, default=1000, help="steps per jitted chunk"
    )
    optimize.add_argument("--quiet", action="store_true", help="no progress bar")
    optimize.set_defaults(handler=optimize_command)

    from ase_learn2hop.training.run import register_commands as register_training

    register_training(commands)
    from ase_learn2hop.benchmark.command import register_commands as register_benchmark

    register_benchmark(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    import jax

    # Our own process: float64 everywhere (energies to 1e-6), switched explicitly.
    jax.config.update("jax_enable_x64", True)
    args = build_parser().parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())

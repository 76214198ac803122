"""The ``learn2hop`` command line.

Subcommands:

- ``learn2hop optimize STRUCTURE --potential lj|gupta:SET|sw --steps N --starts K
  --out best.xyz``: global optimization of a structure (any file ASE reads, or a
  system name such as ``lj13`` for a random harmonic start);
- ``learn2hop compare``, ``learn2hop benchmark``: the learned optimizer beside
  FIRE, Adam and basin hopping (see `ase_learn2hop.benchmark`);
- ``learn2hop train CONFIG``: meta-training (see ``training/``).

Ordinary input errors (an unknown system, potential, parameter set or weight
file, a cell that does not fit, a bad number) end with one line
``learn2hop: error: ...`` on stderr and exit status 2, like argparse's usage
errors; anything else is a bug and keeps its traceback. Ctrl-C during
``optimize`` writes the best structure found so far to ``--out`` and exits with
status 130.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

#: Exit status of an ordinary input error (argparse's usage-error status).
USAGE_ERROR = 2
#: Exit status after Ctrl-C (128 + SIGINT, as shells report it).
INTERRUPTED = 130


class UsageError(ValueError):
    """An ordinary input error of the command line: the message is the report."""


def _input_errors() -> tuple[type[BaseException], ...]:
    """The library's own input-error types: reported as one line, no traceback."""
    from ase_learn2hop.calculators import CalculatorInputError
    from ase_learn2hop.weights import NoSuitableWeightsError, WeightFileError

    return (UsageError, CalculatorInputError, WeightFileError, NoSuitableWeightsError)


def _at_least(minimum: int):
    """An argparse ``type``: an integer no smaller than ``minimum``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value

    parse.__name__ = f"integer >= {minimum}"
    return parse


def _calculator(potential: str):
    from ase_learn2hop.calculators import Gupta, LennardJones, StillingerWeber

    if potential == "lj":
        return LennardJones()
    if potential == "sw":
        return StillingerWeber()
    if potential.startswith("gupta"):
        _, _, set_name = potential.partition(":")
        return Gupta(system=set_name or "Au")
    raise UsageError(
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
        if potential is None:
            raise UsageError("--potential is required when STRUCTURE is a file")
        from ase.io.formats import UnknownFileTypeError

        try:
            atoms = read(structure)
        except (ValueError, UnknownFileTypeError) as error:
            raise UsageError(f"cannot read {structure}: {error}") from error
        return atoms, potential
    try:
        system = systems.system_from_name(structure)
    except ValueError as error:
        raise UsageError(
            f"{structure!r} is neither a file nor a system name: {error}"
        ) from error
    positions = np.asarray(
        systems.starting_structures(jax.random.key(seed), system, 1)[0]
    )
    return atoms_from_system(system, positions), potential or _infer_potential(system)


def _with_energy_and_forces(atoms, calculator):
    """``atoms`` with a `SinglePointCalculator` holding the energy and forces
    that ``calculator`` gives it, so that written files (extxyz) carry them."""
    from ase.calculators.singlepoint import SinglePointCalculator

    atoms.calc = calculator
    energy = atoms.get_potential_energy()
    forces = atoms.get_forces()
    atoms.calc = SinglePointCalculator(atoms, energy=energy, forces=forces)
    return atoms


def write_structure(path: str, atoms, calculator) -> None:
    """Write ``atoms`` with its energy and forces (extxyz for ``.xyz``)."""
    from ase.io import write

    atoms = _with_energy_and_forces(atoms, calculator)
    format = "extxyz" if Path(path).suffix.lower() in (".xyz", ".extxyz") else None
    write(path, atoms, format=format)


def _set_up(args: argparse.Namespace):
    """Structure, calculator and optimizer; their ValueErrors are input errors."""
    from ase_learn2hop import LearnedHopOptimizer

    try:
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
    except _input_errors():
        raise
    except ValueError as error:
        raise UsageError(str(error)) from error
    return atoms, potential, start_energy, optimizer


def _interrupted(args: argparse.Namespace, optimizer, calculator) -> int:
    """After Ctrl-C: write the best structure so far to ``--out``; status 130."""
    if optimizer.best_positions is None:
        print(
            "learn2hop: interrupted before any structure was evaluated; nothing written",
            file=sys.stderr,
        )
        return INTERRUPTED
    energy, best = optimizer.get_minimum()
    if args.out:
        write_structure(args.out, best, calculator)
        what = f"wrote the best structure so far (energy {energy:.6f}) to {args.out}"
    else:
        what = f"best energy so far {energy:.6f} (no --out given, nothing written)"
    print(
        f"learn2hop: interrupted after {optimizer.nsteps} learned steps; {what}",
        file=sys.stderr,
    )
    return INTERRUPTED


def optimize_command(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from ase_learn2hop import systems

    atoms, potential, start_energy, optimizer = _set_up(args)
    calculator = atoms.calc
    search = optimizer.irun(fmax=args.fmax, steps=args.steps)
    try:
        with tqdm(
            total=args.steps, desc="learned steps", unit="step", disable=args.quiet
        ) as bar:
            done = 0
            for _ in search:
                bar.update(optimizer.nsteps - done)
                done = optimizer.nsteps
                bar.set_postfix(best=f"{optimizer.best_energy:.6f}")
    except KeyboardInterrupt:
        search.close()  # leaves atoms at the best minimum so far
        return _interrupted(args, optimizer, calculator)
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
        write_structure(args.out, best, calculator)
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
        "--steps",
        type=_at_least(0),
        default=50000,
        help="learned steps (default 50000)",
    )
    optimize.add_argument(
        "--starts", type=_at_least(1), default=1, help="searches run at once"
    )
    optimize.add_argument(
        "--weights", help="weight manifest or shipped name (default: chosen by system)"
    )
    optimize.add_argument("--seed", type=int, default=0)
    optimize.add_argument(
        "--fmax", type=float, default=0.01, help="force criterion of the final polish"
    )
    optimize.add_argument(
        "--out",
        help="write the best structure here, with its energy and forces (any ASE "
        "format; .xyz is written as extended XYZ). Ctrl-C writes the best so far",
    )
    optimize.add_argument("--trajectory", help="ASE trajectory of the search")
    optimize.add_argument(
        "--logfile", default=None, help="optimizer log ('-' for stdout)"
    )
    optimize.add_argument(
        "--observe-every",
        type=_at_least(1),
        default=1000,
        help="steps per jitted chunk",
    )
    optimize.add_argument("--quiet", action="store_true", help="no progress bar")
    optimize.set_defaults(handler=optimize_command)

    from ase_learn2hop.training.run import register_commands as register_training

    register_training(commands)
    from ase_learn2hop.benchmark.command import register_commands as register_benchmark

    register_benchmark(commands)
    from ase_learn2hop.benchmark.time_to_minimum_command import (
        register_commands as register_time_to_minimum,
    )

    register_time_to_minimum(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status.

    Usage errors exit like argparse's (`SystemExit` with status 2, one line
    ``learn2hop: error: ...`` on stderr); Ctrl-C returns 130.
    """
    import jax

    # Our own process: float64 everywhere (energies to 1e-6), switched explicitly.
    jax.config.update("jax_enable_x64", True)
    from ase_learn2hop import compilation_cache

    parser = build_parser()
    args = parser.parse_args(argv)
    # Compiled programs persist between runs (`compilation_cache`; after the
    # parser, so that --help never waits for the machine's one-time check).
    compilation_cache.enable()
    try:
        return args.handler(args)
    except _input_errors() as error:
        parser.exit(USAGE_ERROR, f"{parser.prog}: error: {error}\n")
    except KeyboardInterrupt:
        print(f"{parser.prog}: interrupted", file=sys.stderr)
        return INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())

"""The command line: ``learn2hop benchmark`` (full tables and figures) and
``learn2hop compare`` (LJ13 in about two minutes; the README's first command).

- `register_commands`: adds both to the ``learn2hop`` parser;
- `settings_from_args`: a `protocol.BenchmarkSettings` from the arguments
  (``--quick`` fills in `QUICK` where no explicit flag was given);
- `benchmark_command`, `compare_command`: run, print the tables, write the files;
- `default_compare_folder`: where ``compare`` writes without ``--out`` (the user
  cache directory, so that a run never dirties the current directory).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import ase_learn2hop.benchmark as benchmark_package
from ase_learn2hop import descent
from ase_learn2hop import weights as weight_files
from ase_learn2hop.basin_hopping import BASIN_HOPPING_STEP_SIZES
from ase_learn2hop.benchmark.orchestration import run_benchmark
from ase_learn2hop.benchmark.protocol import (
    DEFAULT_SYSTEMS,
    METHOD_IDS,
    PAPER_STARTS,
    PAPER_STEPS,
    BenchmarkSettings,
    build_system,
    expand_system_names,
)
from ase_learn2hop.benchmark.report import report

#: ``--quick``: a first look in a minute or two.
QUICK = {"starts": 16, "steps": 2000, "ase_starts": 3}
#: ``learn2hop compare``: time to the global minimum of LJ13 and LJ26, ours
#: against scipy's and ASE's basin hopping, in about two minutes on 2 cores.
COMPARE_DEFAULTS = {
    "systems": ["lj13", "lj26"],
    "runs": 3,
    "seconds": {"lj13": 10.0, "lj26": 15.0},
    "methods": ["learned", "scipy_basin_hopping", "ase_basin_hopping"],
}


def settings_from_args(args, systems_requested, methods) -> BenchmarkSettings:
    quick = getattr(args, "quick", False)

    def pick(name, default):
        value = getattr(args, name)
        if value is not None:
            return value
        return QUICK[name] if quick and name in QUICK else default

    return BenchmarkSettings(
        systems=tuple(systems_requested),
        methods=tuple(methods),
        starts=pick("starts", args.default_starts),
        steps=pick("steps", args.default_steps),
        seed=args.seed,
        ase_starts=pick("ase_starts", args.default_ase_starts),
        weights=args.weights,
        learning_rates=tuple(args.learning_rates),
        step_sizes=tuple(args.step_sizes),
        descent_steps=args.descent_steps,
        compositions=(None if args.compositions is None else tuple(args.compositions)),
    )


def _run_command(args, systems_requested, methods) -> int:
    settings = settings_from_args(args, systems_requested, methods)
    for name, value in (("starts", settings.starts), ("steps", settings.steps)):
        if value < 1:
            raise SystemExit(f"--{name} must be at least 1, got {value}")
    try:
        for name, _, _ in expand_system_names(settings.systems, settings.compositions):
            build_system(name)
    except ValueError as error:
        raise SystemExit(str(error))
    try:
        run = run_benchmark(settings, quiet=args.quiet)
    except weight_files.WeightFileError as error:
        raise SystemExit(str(error))
    return report(run, Path(args.out), not args.no_figures, args.quiet)


def benchmark_command(args: argparse.Namespace) -> int:
    return _run_command(args, args.systems, args.methods)


#: ``learn2hop compare --out`` default, as its help shows it.
COMPARE_OUT_HELP = "$LEARN2HOP_CACHE/compare, or ~/.cache/ase_learn2hop/compare"


def default_compare_folder() -> Path:
    """``$LEARN2HOP_CACHE/compare`` or ``~/.cache/ase_learn2hop/compare``: the
    user cache (the same root as training's reference energies), never the
    current directory."""
    root = os.environ.get("LEARN2HOP_CACHE") or Path.home() / ".cache" / "ase_learn2hop"
    return Path(root).expanduser() / "compare"


def compare_command(args: argparse.Namespace) -> int:
    from ase_learn2hop.benchmark.time_to_minimum_command import (
        time_to_minimum_command,
    )

    if args.out is None:
        args.out = default_compare_folder()
    if args.seconds is None:
        args.seconds = COMPARE_DEFAULTS["seconds"]
    status = time_to_minimum_command(args)
    print(f"compare results are in {Path(args.out).resolve()}")
    return status


def _add_common_arguments(
    parser, starts, steps, ase_starts, methods, out, out_help=None
):
    parser.add_argument(
        "--starts", type=int, default=None, help=f"random starts (default {starts})"
    )
    parser.add_argument(
        "--steps",
        type=int,
        default=None,
        help=f"steps (evaluation budget) per start (default {steps})",
    )
    parser.add_argument(
        "--methods",
        nargs="+",
        default=list(methods),
        choices=METHOD_IDS,
        metavar="METHOD",
        help=f"methods to run, of {', '.join(METHOD_IDS)} "
        f"(default: {' '.join(methods)})",
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of the starting structures"
    )
    parser.add_argument(
        "--ase-starts",
        type=int,
        default=None,
        help=f"starts for ASE's FIRE and BasinHopping (default {ase_starts})",
    )
    parser.add_argument(
        "--weights",
        help="weight manifest or shipped name (default: shipped weights that fit "
        "each system; the learned optimizer is skipped where none fit)",
    )
    parser.add_argument(
        "--learning-rates",
        type=float,
        nargs="+",
        default=list(descent.BASELINE_LEARNING_RATES),
        help="Adam and FIRE learning rates (paper: 0.01 0.005 0.001)",
    )
    parser.add_argument(
        "--step-sizes",
        type=float,
        nargs="+",
        default=list(BASIN_HOPPING_STEP_SIZES),
        help="basin-hopping perturbation sizes (paper: 0.2 0.4 0.6 0.8)",
    )
    parser.add_argument(
        "--descent-steps",
        type=int,
        default=None,
        help="Adam steps per basin-hopping descent (default min(5000, steps/10))",
    )
    parser.add_argument(
        "--compositions",
        type=int,
        nargs="+",
        default=None,
        help="values of m for composition scans such as AgAu38 (default: all)",
    )
    parser.add_argument(
        "--out",
        default=out,
        help=f"output folder (default {out_help or out}); created if missing",
    )
    parser.add_argument("--no-figures", action="store_true", help="tables only")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.set_defaults(
        default_starts=starts, default_steps=steps, default_ase_starts=ase_starts
    )


def register_commands(commands) -> None:
    """Add ``benchmark`` and ``compare`` to the ``learn2hop`` command line."""
    benchmark = commands.add_parser(
        "benchmark",
        help="the paper's tables and figures: learned optimizer vs Adam, FIRE, "
        "basin hopping and ASE's tools",
        description=benchmark_package.__doc__.split("\n\n")[0]
        + " Systems: ljN (any N; ljA-B for a sweep, e.g. lj10-100:5), auN, si64, "
        "a bimetallic formula (Ag35Au3) or a composition scan (AgAu38, PdPt38).",
    )
    benchmark.add_argument(
        "--systems",
        nargs="+",
        default=list(DEFAULT_SYSTEMS),
        help="systems (default: the paper's Table 2: lj13 lj75 au55 si64)",
    )
    _add_common_arguments(
        benchmark,
        PAPER_STARTS,
        PAPER_STEPS,
        10,
        METHOD_IDS,
        "benchmark_results",
    )
    benchmark.add_argument(
        "--quick",
        action="store_true",
        help=f"a first look: {QUICK['starts']} starts, {QUICK['steps']} steps, "
        f"{QUICK['ase_starts']} ASE starts (explicit flags win)",
    )
    benchmark.set_defaults(handler=benchmark_command)

    from ase_learn2hop.benchmark import time_to_minimum_command

    compare = commands.add_parser(
        "compare",
        help="force calls and seconds to the global minimum of LJ13 and LJ26: "
        "ours beside scipy's and ASE's basin hopping (about two minutes)",
        description="Time to the global minimum (the time-to-minimum benchmark "
        "at a small scale): LJ13 and LJ26, 3 runs each from the same relaxed "
        "starts, ours beside scipy basinhopping + L-BFGS-B and ASE's "
        "BasinHopping, 10 s (LJ13) and 15 s (LJ26) per run. Tables go to the "
        "terminal; the table, JSON and figure to --out (default "
        f"{COMPARE_OUT_HELP}), never into the current directory unless asked.",
    )
    time_to_minimum_command.add_arguments(compare)
    compare.set_defaults(
        handler=compare_command,
        out=None,
        systems=COMPARE_DEFAULTS["systems"],
        runs=COMPARE_DEFAULTS["runs"],
        methods=COMPARE_DEFAULTS["methods"],
    )

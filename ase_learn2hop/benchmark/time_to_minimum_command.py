"""``learn2hop time-to-minimum``: the time-to-minimum benchmark from the command
line (see `time_to_minimum`): every method from the same relaxed starts, with
the same wall-time and force-call budget per run; writes
``time_to_minimum.md``, ``.json`` and ``.png`` into ``--out``."""

from __future__ import annotations

import argparse
from pathlib import Path

from ase_learn2hop.benchmark import time_to_minimum as ttm


def time_to_minimum_command(args: argparse.Namespace) -> int:
    from ase_learn2hop.benchmark.time_to_minimum_figure import success_figure

    if args.runs < 1:
        raise ValueError(f"--runs must be at least 1, got {args.runs}")
    results = ttm.run_time_to_minimum(
        args.systems,
        args.runs,
        args.seconds,
        args.force_calls,
        args.seed,
        args.methods,
        progress=not args.quiet,
        tolerance=args.tolerance,
    )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "time_to_minimum.md").write_text(ttm.markdown_table(results))
    (args.out / "time_to_minimum.json").write_text(ttm.to_json(results))
    success_figure(results, args.out / "time_to_minimum.png")
    print(ttm.terminal_table(results))
    print(f"wrote {args.out}/time_to_minimum.md, .json, .png")
    return 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The command's arguments (also used by ``benchmarks/time_to_minimum.py``)."""
    parser.add_argument("--systems", nargs="+", default=["lj13", "lj26"])
    parser.add_argument("--runs", type=int, default=6, help="runs per system")
    parser.add_argument(
        "--seconds",
        type=float,
        default=None,
        help=f"wall time per run (default per system: {ttm.DEFAULT_SECONDS}, "
        f"else {ttm.FALLBACK_SECONDS:g})",
    )
    parser.add_argument("--force-calls", type=int, default=ttm.DEFAULT_FORCE_CALLS)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--tolerance",
        type=float,
        default=ttm.GLOBAL_MINIMUM_TOLERANCE,
        help="success: an energy within this fraction of |GM| above the global "
        "minimum GM (default %(default)g; 1e-3 is 0.4 wide on LJ75)",
    )
    parser.add_argument(
        "--methods",
        nargs="+",
        default=list(ttm.DEFAULT_METHODS),
        choices=list(ttm.METHODS),
    )
    parser.add_argument("--out", type=Path, default=Path("time_to_minimum_results"))
    parser.add_argument("--quiet", action="store_true", help="no progress lines")
    parser.set_defaults(handler=time_to_minimum_command)


def register_commands(commands) -> None:
    """Add ``time-to-minimum`` to the ``learn2hop`` command line."""
    parser = commands.add_parser(
        "time-to-minimum",
        help="force calls and seconds to the global minimum: ours vs scipy's "
        "basin hopping (L-BFGS-B) and ASE's BasinHopping",
        description=__doc__.split("\n\n")[0],
    )
    add_arguments(parser)

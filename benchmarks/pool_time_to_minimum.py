"""Time-to-minimum runs of several start sets pooled: per system, our learned
basin hopping against scipy's basin hopping over all the runs of the given
reports (median [quartiles], successes, ratio of medians), with the report's
own statistics (`censored_statistics.quartiles`
and `median_ratio`: censored runs count as above the budget, percentile
bootstrap of the ratio of medians).

A single start set of 96 runs moves by a third on LJ26 between starts that
differ by rounding (README); pooling sets narrows the intervals.

    python benchmarks/pool_time_to_minimum.py benchmarks/results/time_to_minimum.json benchmarks/results/time_to_minimum_seed7_4290eb4/time_to_minimum.json

``REPORT:METHOD`` takes only that method's runs from a report: ours from a
run of the current search beside scipy's from an earlier run on the same
starts (scipy's force calls on given starts do not change with our code;
its seconds were then measured in another run).
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from ase_learn2hop.benchmark.censored_statistics import median_ratio, quartiles

METHODS = ("learned", "scipy_basin_hopping")


def pooled_first_hits(paths) -> dict:
    """``{(system, method): (force calls, seconds)}``, the first hits of every
    run in the reports (+inf where a run did not reach the minimum); a path
    ``REPORT:METHOD`` contributes only that method's runs."""
    pool: dict = {}
    for path in paths:
        path, _, only = str(path).partition(":")
        if only and only not in METHODS:
            raise SystemExit(f"{only}: not one of {', '.join(METHODS)}")
        wanted = (only,) if only else METHODS
        for system in json.loads(Path(path).read_text()):
            for method in system["methods"]:
                if method["method"] not in wanted:
                    continue
                calls, seconds = pool.setdefault(
                    (system["system"], method["method"]), ([], [])
                )
                for run in method["runs"]:
                    hit = run["force_calls_to_success"]
                    calls.append(math.inf if hit is None else hit)
                    hit = run["seconds_to_success"]
                    seconds.append(math.inf if hit is None else hit)
    return pool


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "reports",
        nargs="+",
        help="time_to_minimum.json files, or FILE:METHOD for one method's runs",
    )
    arguments = parser.parse_args(argv)
    pool = pooled_first_hits(arguments.reports)
    for name in sorted({system for system, _ in pool}):
        ours, scipy = pool[(name, METHODS[0])], pool[(name, METHODS[1])]
        for index, unit in ((0, "force calls"), (1, "seconds")):
            ratio, low, high = median_ratio(ours[index], scipy[index])
            successes = [sum(map(math.isfinite, runs[index])) for runs in (ours, scipy)]
            ours_median, scipy_median = (
                "{:.4g} [{:.4g}, {:.4g}]".format(*quartiles(runs[index]))
                for runs in (ours, scipy)
            )
            print(
                f"{name} {unit}: ours {ours_median} "
                f"({successes[0]}/{len(ours[index])}), scipy "
                f"{scipy_median} ({successes[1]}/"
                f"{len(scipy[index])}), ratio {ratio:.2f} [{low:.2f}, {high:.2f}]"
            )


if __name__ == "__main__":
    main()

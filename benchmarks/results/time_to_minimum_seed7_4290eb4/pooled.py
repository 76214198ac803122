"""Medians and bootstrap ratios (ours over scipy) pooled over the seed-0 run
(benchmarks/results/time_to_minimum.json) and this seed-7 run, 192 runs per
method and system. Run from the repository root:
python benchmarks/results/time_to_minimum_seed7_4290eb4/pooled.py"""

import json
from pathlib import Path

import numpy as np

RUNS = (
    "benchmarks/results/time_to_minimum.json",
    "benchmarks/results/time_to_minimum_seed7_4290eb4/time_to_minimum.json",
)


def first_hits(run, key):
    value = run[key]
    return np.inf if value is None else value


pool = {}
for path in RUNS:
    for system in json.loads(Path(path).read_text()):
        for method in system["methods"]:
            if method["method"] not in ("learned", "scipy_basin_hopping"):
                continue
            entry = pool.setdefault((system["system"], method["method"]), ([], []))
            for run in method["runs"]:
                entry[0].append(first_hits(run, "force_calls_to_success"))
                entry[1].append(first_hits(run, "seconds_to_success"))
rng = np.random.default_rng(0)
for name in ("lj13", "lj26"):
    ours, scipy = pool[(name, "learned")], pool[(name, "scipy_basin_hopping")]
    for index, unit in ((0, "force calls"), (1, "seconds")):
        a, b = np.asarray(ours[index]), np.asarray(scipy[index])
        ratios = [
            np.median(rng.choice(a, a.size)) / np.median(rng.choice(b, b.size))
            for _ in range(4000)
        ]
        low, high = np.percentile(ratios, [2.5, 97.5])
        print(
            f"{name} {unit}: ours {np.median(a):.4g}, scipy {np.median(b):.4g} "
            f"({a.size} runs each), ratio {np.median(a) / np.median(b):.2f} "
            f"[{low:.2f}, {high:.2f}]"
        )

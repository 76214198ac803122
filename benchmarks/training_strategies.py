"""Paper Figure 3 at CPU scale: ES, ESMC and GA meta-trained on LJ13, same budget.

Each strategy gets the same number of learned searches per update (48: ES 24
antithetic pairs; ESMC 16 pairs, each with its unperturbed centre; GA 16
candidates paired with theta plus 8 + 8 confirmation searches), the same horizon,
updates, seed and validation set. The figure plots the validation meta-loss of
theta (a fixed set of 32 starts, so the curves are comparable across strategies)
against the meta-update.

    python benchmarks/training_strategies.py --updates 60 --horizon 200

writes benchmarks/results/figure3_*.jsonl and figure3_meta_loss.png.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import jax

from ase_learn2hop.training.loop import plot_meta_loss
from ase_learn2hop.training.run import DEFAULTS, run_training

SETTINGS = {
    "es": {"population": 24},
    "esmc": {"population": 16},
    "ga": {"population": 16, "confirm_instances": 8},
}


def main() -> None:
    # Our own process: float64 everywhere (energies to 1e-6), switched explicitly.
    jax.config.update("jax_enable_x64", True)
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--updates", type=int, default=60)
    parser.add_argument("--horizon", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="benchmarks/results")
    parser.add_argument("--runs", default="runs/figure3")
    args = parser.parse_args()
    out = Path(args.out)
    timings = {}
    for strategy, settings in SETTINGS.items():
        config = {
            **DEFAULTS,
            "name": f"figure3_{strategy}",
            "systems": ["lj13"],
            "strategy": strategy,
            "horizon": args.horizon,
            "updates": args.updates,
            "seed": args.seed,
            "validation_starts": 32,
            "validate_every": 5,
            **settings,
        }
        run_directory = Path(args.runs) / strategy
        started = time.time()
        run_training(config, run_directory, progress=True)
        timings[strategy] = (time.time() - started) / args.updates
        (out / f"figure3_{strategy}.jsonl").parent.mkdir(parents=True, exist_ok=True)
        (out / f"figure3_{strategy}.jsonl").write_text(
            (run_directory / "metrics.jsonl").read_text()
        )
    plot_meta_loss(
        {name.upper(): out / f"figure3_{name}.jsonl" for name in SETTINGS},
        out / "figure3_meta_loss.png",
        metric="validation_loss",
        title=f"LJ13 meta-training, horizon {args.horizon}, 48 searches per update",
    )
    (out / "figure3_timing.json").write_text(
        json.dumps({"seconds_per_update": timings, **vars(args)}, indent=2) + "\n"
    )
    print(json.dumps(timings, indent=2))


if __name__ == "__main__":
    main()

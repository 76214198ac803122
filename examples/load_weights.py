"""Loading learned-optimizer weights from a file and using them.

    python examples/load_weights.py                          # the shipped lj13
    python examples/load_weights.py path/to/weights.json     # any weight file
    python examples/load_weights.py --fast

A weight file is NAME.safetensors (the parameters) beside NAME.json (the
manifest: network configuration, training horizon, systems, training settings,
sha256). `load_weights` checks the checksum and the configuration before use.
"""

import argparse
import os

import jax
import numpy as np
from ase import Atoms

from ase_learn2hop import LearnedHopOptimizer, systems
from ase_learn2hop.calculators import LennardJones
from ase_learn2hop.weights import (
    available_pretrained,
    load_weights,
    pretrained_directory,
)


def fast_mode(args) -> bool:
    return args.fast or os.environ.get("LEARN2HOP_EXAMPLE_FAST") == "1"


def main() -> None:
    # Our own process: float64 everywhere (energies to 1e-6), switched explicitly.
    jax.config.update("jax_enable_x64", True)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "weights",
        nargs="?",
        default=str(pretrained_directory() / "lj13.json"),
        help="weight manifest (.json) or parameters (.safetensors)",
    )
    parser.add_argument("--system", default="lj13", help="an LJ cluster, e.g. lj19")
    parser.add_argument("--steps", type=int)
    parser.add_argument("--fast", action="store_true", help="a quick check")
    args = parser.parse_args()
    steps = args.steps or (200 if fast_mode(args) else 10000)

    print(f"shipped weights: {available_pretrained()}")
    weights = load_weights(args.weights)
    manifest = weights.manifest
    print(f"loaded {args.weights}")
    print(f"  horizon H = {weights.horizon} learned steps per cycle")
    print(f"  trained on {manifest.get('systems')}")
    training = manifest.get("training", {})
    print(f"  strategy {training.get('strategy')}, {training.get('updates')} updates")

    system = systems.system_from_name(args.system)
    start = systems.starting_structures(jax.random.key(0), system, 1)[0]
    atoms = Atoms(system.symbols, positions=np.asarray(start))
    atoms.calc = LennardJones()
    optimizer = LearnedHopOptimizer(atoms, weights=weights, logfile=None)
    optimizer.run(steps=steps)
    energy, _ = optimizer.get_minimum()
    print(f"{args.system}: best energy {energy:.6f} after {steps} learned steps")
    if system.global_minimum is not None:
        print(f"{args.system}: global minimum {system.global_minimum:.6f}")


if __name__ == "__main__":
    main()

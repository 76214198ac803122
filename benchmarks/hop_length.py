"""Force calls to the global minimum against the settings and weights of learned basin hopping.

`LearnedHopOptimizer` hops as long as its weights were trained for
(`lj_hopping`: 10 learned steps per atom), and weights trained for the
paper's protocol `protocols.HOP_STEPS_PER_ATOM` (25) steps per atom,
chosen on LJ26 with `lj`. This script measures other hop lengths, Metropolis
temperatures, quench criteria, restart thresholds and weights:
R searches of one system from the time-to-minimum benchmark's relaxed
starts (``--seed`` picks the set of starts), run as one batch on the batched
driver for a fixed number of force calls each, with the shipped weights; per
setting, the successes (the benchmark's criterion, within 1e-3 relative of
the global minimum) and the median and quartiles of the force calls at the
first hit (runs that fail count as above the budget). Force calls are exact
(no timing), so a loaded machine changes nothing but the wall time.

Run:

    python benchmarks/hop_length.py --system lj55 --runs 12 --force-calls 80000 \
        --hop-steps 700 950 1375 --seed 0
    python benchmarks/hop_length.py --system lj26 --runs 24 --force-calls 30000 \
        --quench-fmax 1e-2 1e-3 --seed 0
"""

from __future__ import annotations

import argparse
import itertools
import platform
import time

import jax
import jax.numpy as jnp
import numpy as np
from ase_learn2hop.training.run import current_commit

from ase_learn2hop import hopping_search, learned_hopping, protocols, systems
from ase_learn2hop.benchmark import protocol
from ase_learn2hop.benchmark import time_to_minimum_methods as methods
from ase_learn2hop.precision import float64
from ase_learn2hop.weights import load_weights


def first_hits(
    system: systems.System,
    runs: int,
    force_calls: int,
    hop_steps: int | None,
    seed: int,
    weights: str | None = None,
    temperature: float | None = None,
    reference_energy: float | None = None,
    **settings,
) -> tuple[np.ndarray, learned_hopping.HoppingConfig]:
    """``([runs], settings)``: the force calls at which each search first
    reached the global minimum (+inf where it did not within ``force_calls``),
    and the `HoppingConfig` used: the optimizer's (`protocols.hopping_config`;
    ``hop_steps`` and ``temperature`` ``None`` are its defaults) with the
    ``settings`` not ``None`` replaced (``quench_fmax``, ``restart_after``).
    Success is within 1e-3 relative of ``reference_energy``, by default the
    system's known global minimum."""
    starts = methods.relaxed_starts(system, jax.random.key(seed), runs)
    weights = (
        methods.learned_weights(system) if weights is None else load_weights(weights)
    )
    hopping = protocols.hopping_config(
        weights, system, True, hop_steps, temperature, system.n_atoms
    )
    hopping = hopping._replace(
        **{name: value for name, value in settings.items() if value is not None}
    )
    if reference_energy is None:
        reference_energy = system.global_minimum
    if reference_energy is None:
        raise ValueError(f"{system.name} has no known minimum: give --reference-energy")
    target = protocol.global_minimum_threshold(reference_energy)
    with float64():
        search = hopping_search.hopping_start(
            weights.theta,
            weights.config,
            system.energy_fn,
            jnp.asarray(starts),
            system.context,
            system.potential_parameters,
            hopping=hopping,
            key=jax.random.key(1 + 100 * seed),
            target_energy=target,
        )
        search, _, _ = hopping_search.hopping_advance(
            search, force_calls, chunk_steps=1000
        )
    hits = np.asarray(search.carry.first_hit).astype(float)
    hits[hits <= 0] = np.inf
    return hits, hopping


def listed_first_hits(hits: np.ndarray) -> str:
    """Each run's first hit in force calls, in the order of the starts ("-":
    none within the budget), as the tables' "first hits" column."""
    return " ".join("-" if np.isinf(hit) else str(int(hit)) for hit in hits)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--system", default="lj55")
    parser.add_argument("--runs", type=int, default=12)
    parser.add_argument("--force-calls", type=int, default=80000)
    parser.add_argument(
        "--hop-steps",
        type=int,
        nargs="+",
        default=[None],
        help="hop lengths (default: each weight file's own)",
    )
    parser.add_argument(
        "--weights",
        nargs="+",
        default=[None],
        help="weight files, shipped names or paths (default: the shipped default)",
    )
    parser.add_argument(
        "--temperature",
        type=float,
        nargs="+",
        default=[None],
        help="Metropolis temperatures kT (default: the potential's)",
    )
    parser.add_argument(
        "--quench-fmax",
        type=float,
        nargs="+",
        default=[None],
        help="quench force criteria (default: the optimizer's)",
    )
    parser.add_argument(
        "--restart-after",
        type=int,
        nargs="+",
        default=[None],
        help="stale hops before a restart, 0 never (default: the optimizer's)",
    )
    parser.add_argument("--seed", type=int, default=0, help="set of starts")
    parser.add_argument(
        "--reference-energy",
        type=float,
        default=None,
        help="success within 1e-3 relative of this energy (default: the "
        "system's known global minimum)",
    )
    arguments = parser.parse_args()
    system = systems.system_from_name(arguments.system)
    commit = current_commit()
    print(
        f"{platform.machine()}, jax {jax.__version__}, code {commit}; "
        f"{system.name}, {arguments.runs} runs, seed {arguments.seed}, "
        f"{arguments.force_calls} force calls each, success within 1e-3 "
        f"relative of {arguments.reference_energy or system.global_minimum}\n"
    )
    print(
        "| weights | hop steps | kT | quench fmax | restart after | successes "
        "| median force calls [q1, q3] | first hits | wall s |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for weights, hop_steps, temperature, fmax, restart_after in itertools.product(
        arguments.weights,
        arguments.hop_steps,
        arguments.temperature,
        arguments.quench_fmax,
        arguments.restart_after,
    ):
        started = time.perf_counter()
        hits, hopping = first_hits(
            system,
            arguments.runs,
            arguments.force_calls,
            hop_steps,
            arguments.seed,
            weights,
            temperature,
            arguments.reference_energy,
            quench_fmax=fmax,
            restart_after=restart_after,
        )
        seconds = time.perf_counter() - started
        quantiles = np.percentile(hits, [50, 25, 75])
        median, first_quartile, third_quartile = (
            f"{value:.0f}" if np.isfinite(value) else f"> {arguments.force_calls}"
            for value in quantiles
        )
        print(
            f"| {weights or 'default'} | {hopping.hop_steps} | {hopping.temperature:g} "
            f"| {hopping.quench_fmax:g} | {hopping.restart_after} "
            f"| {int(np.isfinite(hits).sum())}/{len(hits)} "
            f"| {median} [{first_quartile}, {third_quartile}] "
            f"| {listed_first_hits(hits)} | {seconds:.0f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()

"""The two searches behind `LearnedHopOptimizer`, one interface.

- ``"hopping"`` (default): learned basin hopping (`learned_hopping`): hops of
  learned steps between L-BFGS quenches, Metropolis acceptance; every step is
  one force call.
- ``"paper"``: the paper's protocol (`cycles`): cycles of H learned steps, each
  ending in the gradient-descent polish; starts relaxed with FIRE first.

Each function takes the optimizer (its weights, potential, starts and
settings) and returns or advances its search (`hopping_search.HoppingSearch`
or `cycles.CycleSearch`, which share their field names).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import numpy as np

from ase_learn2hop import cycles, features, hopping_search
from ase_learn2hop.learned_hopping import HoppingConfig
from ase_learn2hop.precision import float64

PROTOCOLS = ("hopping", "paper")

#: Metropolis temperature kT per potential family (energy units: reduced for
#: Lennard-Jones, times epsilon in ASE's units; eV for Gupta and
#: Stillinger-Weber), the basin-hopping temperatures of the benchmark; any
#: other calculator gets `GENERIC_TEMPERATURE` eV.
HOPPING_TEMPERATURE = {"lj": 0.8, "gupta": 0.2, "sw": 1.0}
GENERIC_TEMPERATURE = 0.2
#: Learned steps per hop, per atom, for weights trained on the paper's
#: protocol: larger clusters need longer hops (LJ13 and LJ26 with the ``lj``
#: weights, README); weights trained for hopping carry their own hop length.
HOP_STEPS_PER_ATOM = 25
#: The same per potential family where it was measured apart: Gupta hops 10
#: steps per atom. On Pd19Pt19 (``bimetallic``) 10 reached the lowest known
#: energy in 4 of 8 searches within 400 000 calls and 25 in none
#: (`benchmarks/results/hop_length_pdpt38.md`; 5 per atom: none of 8, 10: 2
#: of 8 with restarts after 25, `hop_length_gold.md`).
HOP_STEPS_PER_ATOM_BY_POTENTIAL = {"gupta": 10}
#: The same per shipped weights (manifest ``name``), before the potential's:
#: gold with ``au55`` hops 3 steps per atom. On two sets of 24 Au55 starts
#: (200 000 calls each, restarts after 25) 3 per atom found the minimum in
#: 48 of 48 searches with medians of 16 950 and 30 954 calls, 5 per atom in
#: 46 (18 676, 32 830), 10 per atom in 44 (28 717, 61 523) and 2 per atom,
#: on one set, 24 of 24 (45 067) (`benchmarks/results/hop_length_gold.md`;
#: 25 per atom left half of 8 searches above the minimum,
#: `hop_length_au55.md`).
HOP_STEPS_PER_ATOM_BY_WEIGHTS = {"au55": 3}
#: Hops without a new lowest minimum after which a free cluster restarts from
#: a new random structure (`learned_hopping.HoppingConfig.restart_after`): on
#: LJ38 a third of the searches stay in the icosahedral funnel for the whole
#: budget without restarts (`benchmarks/results/hopping_restarts.md`). 25
#: rather than 100: LJ38's median force calls to the minimum fell to 0.71 of
#: 100's on each of two sets of 24 starts (48 runs: 267 808 against
#: 405 366), and LJ13's and LJ26's medians did not move (96 runs each;
#: `benchmarks/results/hopping_restart_after.md`).
RESTART_AFTER_HOPS = 25


def default_hop_steps(
    n_atoms: int, potential: str | None = None, weights_name: str | None = None
) -> int:
    """Learned steps per hop of weights trained on the paper's protocol: the
    weights' `HOP_STEPS_PER_ATOM_BY_WEIGHTS`, else the potential family's
    `HOP_STEPS_PER_ATOM_BY_POTENTIAL`, else `HOP_STEPS_PER_ATOM`, times the
    number of atoms."""
    per_atom = HOP_STEPS_PER_ATOM_BY_WEIGHTS.get(
        weights_name,
        HOP_STEPS_PER_ATOM_BY_POTENTIAL.get(potential, HOP_STEPS_PER_ATOM),
    )
    return per_atom * int(n_atoms)


def default_temperature(potential: str | None, potential_parameters: Any) -> float:
    """`HOPPING_TEMPERATURE` of a potential family (``None``: another
    calculator, `GENERIC_TEMPERATURE` eV); Lennard-Jones in ASE's units is
    scaled by its epsilon."""
    if potential is None:
        return GENERIC_TEMPERATURE
    temperature = HOPPING_TEMPERATURE[potential]
    epsilon = getattr(potential_parameters, "epsilon", None)
    if potential == "lj" and epsilon is not None:
        temperature *= float(epsilon)
    return temperature


def check_count(value, name: str = "steps") -> int:
    """``value`` as a non-negative int; a clear ValueError otherwise."""
    number = (int, float, np.integer, np.floating)
    is_count = isinstance(value, number) and not isinstance(value, bool)
    if not (is_count and float(value).is_integer() and value >= 0):
        raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
    return int(value)


def trained_hop_steps(training: dict, n_atoms: int) -> int:
    """The hop a hopping-protocol training config (a weight manifest's
    ``training``) trains for on ``n_atoms``: ``hop_steps_per_atom`` times the
    atoms when set, else ``horizon`` learned steps. Training and the optimizer
    both read hops from here, so the weights hop as they were trained."""
    per_atom = training.get("hop_steps_per_atom")
    if per_atom:
        return int(per_atom) * int(n_atoms)
    return int(training["horizon"])


def hopping_config(
    weights,
    system,
    fast: bool,
    hop_steps: Any,
    temperature: Any,
    n_atoms: int,
    restart_after: Any = None,
) -> HoppingConfig:
    """The `HoppingConfig` of an optimizer: ``hop_steps`` defaults to the hop
    the weights were trained for when they were trained for hopping (their
    ``hop_steps_per_atom`` times the atoms, or their horizon), else to
    `default_hop_steps` of the system's size; ``temperature``
    to the potential's (`default_temperature`); ``restart_after`` to
    `RESTART_AFTER_HOPS` (0: never)."""
    # A generic calculator (not fast) has no potential family.
    potential = system.potential if fast else None
    if hop_steps is None:
        training = weights.manifest.get("training", {})
        if training.get("protocol") == "hopping":
            hop_steps = trained_hop_steps(
                {**training, "horizon": weights.horizon}, n_atoms
            )
        else:
            hop_steps = default_hop_steps(
                n_atoms, potential, weights.manifest.get("name")
            )
    hop_steps = check_count(hop_steps, "hop_steps")
    if hop_steps < 1:
        raise ValueError("hop_steps must be at least 1")
    if temperature is None:
        parameters = system.potential_parameters if fast else None
        temperature = default_temperature(potential, parameters)
    if not float(temperature) >= 0.0:
        raise ValueError(f"temperature must be >= 0, got {temperature!r}")
    if restart_after is None:
        restart_after = RESTART_AFTER_HOPS
    return HoppingConfig(
        hop_steps=hop_steps,
        temperature=float(temperature),
        restart_after=check_count(restart_after, "restart_after"),
    )


def start_search(optimizer, positions: np.ndarray):
    """The optimizer's search at ``[n_starts, n, 3]`` starts."""
    weights = optimizer.weights
    # One search of a large structure: radial features on a neighbour list.
    context = features.with_radial_list(optimizer.context, positions)
    with float64():
        if optimizer.hopping is not None:
            return hopping_search.hopping_start(
                weights.theta,
                weights.config,
                optimizer.energy_fn,
                jax.device_put(positions),  # jnp.asarray compiles a program
                context,
                optimizer.potential_parameters,
                hopping=optimizer.hopping,
                key=jax.random.key(optimizer.seed),
            )
        return cycles.cycles_start(
            weights.theta,
            weights.config,
            optimizer.energy_fn,
            jax.device_put(positions),
            context,
            optimizer.potential_parameters,
            horizon=weights.horizon,
            polish_steps=optimizer.polish_steps,
            polish_learning_rate=optimizer.polish_learning_rate,
            relax_steps=optimizer.relax_steps,
            reinsert=True,
        )


def advance_search(
    optimizer,
    n_steps: int,
    on_minimum: Callable[[np.ndarray, np.ndarray], Any],
    target_energy: float | None = None,
):
    """``n_steps`` more steps of the optimizer's search, in chunks of
    ``observe_every``: ``(search, steps made)``. With a ``target_energy``,
    learned basin hopping stops each start at the force call at which it
    first reaches it (fewer steps once every start has); the paper's cycles
    run all ``n_steps``."""
    search = optimizer._search
    with float64():
        if optimizer.hopping is None:
            found, _, _ = cycles.cycles_advance(
                search, n_steps, chunk_steps=optimizer.observe_every,
                on_minimum=on_minimum,
            )  # fmt: skip
            return found, n_steps
        if target_energy is not None:
            search = search._replace(target_energy=float(target_energy))
        found, _, _ = hopping_search.hopping_advance(
            search,
            n_steps,
            chunk_steps=optimizer.observe_every,
            on_minimum=on_minimum,
            stop_at_target=target_energy is not None,
        )
    return found, found.steps - search.steps


def finish_search(optimizer, on_minimum: Callable[[np.ndarray, np.ndarray], Any]):
    """End the current cycle (paper); hopping has none, its best is known."""
    if optimizer.hopping is not None:
        return optimizer._search
    with float64():
        return cycles.cycles_finish(optimizer._search, on_minimum)


def steps_to_cycle_end(optimizer) -> float:
    """Steps before the current cycle ends (``inf`` for hopping)."""
    if optimizer.hopping is not None:
        return np.inf
    done = 0 if optimizer._search is None else optimizer._search.cycle_step
    return optimizer.horizon - done

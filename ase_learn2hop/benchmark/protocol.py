"""The benchmark's protocol: what is run, how it is judged, what comes out.

- `METHODS`: every method the benchmark knows, in table order, each with its
  label, its colour in the figures and how it is run and charged;
- the paper's numbers (`PAPER_TABLE_2`, `PAPER_STEPS`, `PAPER_STARTS`), the
  global-minimum tolerance and the settings of ASE's tools;
- the result types (`VariantResult`, `MethodResult`, `SystemResult`,
  `BenchmarkSettings`, `BenchmarkRun`) and `summarize`;
- system names: `expand_system_names` (sweeps and composition scans),
  `build_system`, `composition_count`.

The bottom of the benchmark package: it imports none of its siblings.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from ase_learn2hop import descent, systems
from ase_learn2hop.basin_hopping import BASIN_HOPPING_STEP_SIZES


class Method(NamedTuple):
    """How the benchmark shows one method.

    Attributes:
        label: name in the tables, the JSON and the figures' legends.
        colour: Matplotlib colour, the same in every figure.
        note: how the method is run and charged (the Markdown notes and JSON).
    """

    label: str
    colour: str
    note: str


#: Every method the benchmark knows, in table order: id -> `Method`.
METHODS = {
    "learned": Method(
        "Learned optimizer",
        "tab:red",
        "learned steps in cycles of the horizon H; each cycle polishes its last and "
        "lowest structure (1 + H + 2 x 1000 evaluations per cycle, as "
        "search.learned_search charges them)",
    ),
    "adam": Method(
        "Adam",
        "tab:blue",
        "`steps` steps, then the polish of the last and lowest structure",
    ),
    "fire": Method(
        "FIRE",
        "tab:orange",
        "ASE-convention FIRE, learning rate = initial dt; `steps` steps, then the "
        "polish of the last and lowest structure",
    ),
    "basin_hopping": Method(
        "Basin hopping (paper)",
        "tab:green",
        "greedy; Gaussian perturbations; Adam lr 1e-2 descents; budget = `steps` "
        "evaluations, then the polish of the current and lowest structure",
    ),
    "ase_fire": Method(
        "ASE FIRE",
        "tab:purple",
        "ase.optimize.FIRE to fmax 1e-3 (stops when converged) within `steps` force "
        "calls; then the polish of the lowest structure",
    ),
    "ase_basin_hopping": Method(
        "ASE BasinHopping",
        "tab:brown",
        "ase.optimize.basin.BasinHopping, FIRE quenches to fmax 1e-3, hops until "
        "`steps` force calls are spent; then the polish of the lowest structure",
    ),
}
#: The method ids in table order.
METHOD_IDS = tuple(METHODS)

#: The paper's Table 2 systems: the default of ``learn2hop benchmark``.
DEFAULT_SYSTEMS = ("lj13", "lj75", "au55", "si64")
#: A start reaches the global minimum within this relative energy (SPEC 6).
GLOBAL_MINIMUM_TOLERANCE = 1e-3

#: Paper Table 2: mean and minimum energy over 150 starts after 50000 steps
#: (reduced units for LJ, eV otherwise), per method; "esmc" and "ga" are the
#: paper's learned optimizers. The Si64 Adam minimum is printed as -60.08 in the
#: paper (above its own mean, so a typo); it is kept as printed.
PAPER_TABLE_2 = {
    "lj13": {
        "global_minimum": -44.33,
        "min": {
            "adam": -44.33,
            "fire": -44.33,
            "basin_hopping": -44.33,
            "esmc": -44.33,
            "ga": -44.33,
        },
        "mean": {
            "adam": -40.58,
            "fire": -40.45,
            "basin_hopping": -43.49,
            "esmc": -44.26,
            "ga": -44.31,
        },
    },
    "lj75": {
        "global_minimum": -397.49,
        "min": {
            "adam": -390.34,
            "fire": -389.12,
            "basin_hopping": -392.16,
            "esmc": -396.24,
            "ga": -396.28,
        },
        "mean": {
            "adam": -380.52,
            "fire": -380.23,
            "basin_hopping": -381.49,
            "esmc": -390.33,
            "ga": -390.92,
        },
    },
    "au55": {
        "global_minimum": -181.89,
        "min": {
            "adam": -180.94,
            "fire": -181.75,
            "basin_hopping": -181.89,
            "esmc": -181.89,
            "ga": -181.89,
        },
        "mean": {
            "adam": -179.94,
            "fire": -180.94,
            "basin_hopping": -181.38,
            "esmc": -181.51,
            "ga": -181.61,
        },
    },
    "si64": {
        "global_minimum": -277.22,
        "min": {
            "adam": -60.08,
            "fire": -261.44,
            "basin_hopping": -261.64,
            "esmc": -262.95,
            "ga": -264.17,
        },
        "mean": {
            "adam": -256.83,
            "fire": -257.01,
            "basin_hopping": -259.14,
            "esmc": -260.14,
            "ga": -261.81,
        },
    },
}
PAPER_STEPS = 50000
PAPER_STARTS = 150

#: ASE BasinHopping temperature kT per potential (energy units). LJ: 0.8 epsilon
#: (SPEC 6). Gupta and Stillinger-Weber: the same fraction of the binding energy
#: per atom (LJ13 binds 3.4 epsilon per atom, Au55 3.3 eV, diamond Si 4.3 eV).
ASE_BASIN_HOPPING_TEMPERATURE = {"lj": 0.8, "gupta": 0.8, "sw": 1.0}
#: ASE BasinHopping displacement ``dr``, in units of the potential's length scale
#: (0.4 in LJ units, SPEC 6; 1.18 Å for gold).
ASE_BASIN_HOPPING_STEP = 0.4
#: Force criterion of ASE's FIRE, alone and inside BasinHopping (SPEC 6).
ASE_FMAX = 1e-3
#: Paper basin hopping runs about 10 local descents per search (50000 steps,
#: 5000 per descent); shorter budgets keep 10 descents.
BASIN_HOPPING_DESCENTS_PER_SEARCH = 10


# --------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------


@dataclasses.dataclass
class VariantResult:
    """One setting of one method (e.g. Adam at learning rate 0.005).

    Attributes:
        setting: the setting, e.g. ``{"learning_rate": 0.005}``.
        energies: ``[n_starts]`` lowest energy reached per start, after the polish
            (energy units of the potential).
        energy_evaluations: ``[n_starts]`` energy-and-force evaluations used per
            start, polish included.
        first_hit_evaluations: ``[n_starts]`` evaluations used when the search
            first came within tolerance of the global minimum; -1 if never (or
            unknown).
        wall_time_s: seconds for the whole batch of starts.
        seconds_to_first_hit: ``[n_starts]`` seconds to first reach the global
            minimum (ASE: measured per start; batched JAX methods: the batch's
            wall time shared out per start and evaluation); NaN if never.
        positions: ``[n_starts, n_atoms, 3]`` the structures of ``energies``.
        record_steps: ``[n_records]`` steps at which energies were recorded.
        energy_records: ``[n_starts, n_records]`` energy of the current structure
            at ``record_steps`` (Figure 6); None if not recorded.
        extra: anything else worth keeping in the JSON (JSON-serializable).
    """

    setting: dict
    energies: np.ndarray
    energy_evaluations: np.ndarray
    first_hit_evaluations: np.ndarray
    wall_time_s: float
    seconds_to_first_hit: np.ndarray
    positions: np.ndarray | None = None
    record_steps: np.ndarray | None = None
    energy_records: np.ndarray | None = None
    extra: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class MethodResult:
    """All settings of one method on one system; ``best`` is the reported one.

    Attributes:
        method: key of `METHODS`.
        status: ``"ok"``, or ``"skipped"`` with ``reason``.
        variants: one `VariantResult` per setting.
        best_index: the variant with the lowest mean energy.
        notes: how this method was run and charged.
        figure_data: arrays for Figure 6 (learned optimizer only).
    """

    method: str
    status: str = "ok"
    reason: str = ""
    variants: list[VariantResult] = dataclasses.field(default_factory=list)
    best_index: int = 0
    notes: str = ""
    figure_data: dict = dataclasses.field(default_factory=dict)

    @property
    def best(self) -> VariantResult | None:
        return self.variants[self.best_index] if self.variants else None


@dataclasses.dataclass
class SystemResult:
    """Every method's result on one system."""

    name: str
    n_atoms: int
    potential: str
    global_minimum: float | None
    n_starts: int
    steps: int
    group: str = ""
    methods: dict[str, MethodResult] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class BenchmarkSettings:
    """What to run (see ``learn2hop benchmark --help``).

    Attributes:
        systems: system names (``lj13``, ``lj10-100``, ``au55``, ``si64``,
            ``Ag35Au3``, ``AgAu38`` for a composition scan, ...).
        methods: keys of `METHODS`.
        starts: random starts per system.
        steps: step budget per start.
        seed: seed of the starting structures (and of the random searches).
        ase_starts: starts for ASE's FIRE and BasinHopping (the first ones).
        weights: weight file or shipped name; None picks the shipped weights that
            fit each system.
        learning_rates: Adam and FIRE learning rates.
        step_sizes: basin-hopping perturbation sizes.
        descent_steps: Adam steps per basin-hopping descent; None for
            ``min(5000, steps // 10)``.
        compositions: for composition scans, the values of m; None for all.
    """

    systems: tuple[str, ...] = DEFAULT_SYSTEMS
    methods: tuple[str, ...] = METHOD_IDS
    starts: int = PAPER_STARTS
    steps: int = PAPER_STEPS
    seed: int = 0
    ase_starts: int = 10
    weights: str | None = None
    learning_rates: tuple[float, ...] = descent.BASELINE_LEARNING_RATES
    step_sizes: tuple[float, ...] = BASIN_HOPPING_STEP_SIZES
    descent_steps: int | None = None
    compositions: tuple[int, ...] | None = None


def summarize(energies: np.ndarray, global_minimum: float | None) -> dict:
    """Mean, minimum and global-minimum hits of per-start energies.

    Args:
        energies: ``[n_starts]`` lowest energy per start; non-finite entries are
            failed starts, left out of the mean and counted in ``failed``.
        global_minimum: known global-minimum energy, or None.

    Returns:
        ``{"mean", "min", "median", "max", "n_starts", "failed",
        "global_minimum_hits"}`` (hits None where the global minimum is unknown).
    """
    energies = np.asarray(energies, dtype=float)
    finite = energies[np.isfinite(energies)]
    hits = None
    if global_minimum is not None:
        hits = int(np.sum(reaches_global_minimum(finite, global_minimum)))
    return {
        "mean": float(finite.mean()) if finite.size else math.nan,
        "min": float(finite.min()) if finite.size else math.nan,
        "median": float(np.median(finite)) if finite.size else math.nan,
        "max": float(finite.max()) if finite.size else math.nan,
        "n_starts": int(energies.size),
        "failed": int(energies.size - finite.size),
        "global_minimum_hits": hits,
    }


def global_minimum_threshold(
    global_minimum: float | None, tolerance: float = GLOBAL_MINIMUM_TOLERANCE
) -> float:
    """Highest energy that counts as the global minimum, ``tolerance`` relative
    above it (-inf when unknown)."""
    if global_minimum is None:
        return -math.inf
    return global_minimum + tolerance * abs(global_minimum)


def reaches_global_minimum(energies, global_minimum: float | None) -> np.ndarray:
    """True where an energy is within 1e-3 relative of the global minimum (all
    False when it is unknown)."""
    return np.asarray(energies) <= global_minimum_threshold(global_minimum)


class BenchmarkRun(NamedTuple):
    """A benchmark's results and whether it ran to the end."""

    settings: BenchmarkSettings
    systems: list[SystemResult]
    complete: bool
    wall_time_s: float


def system_heading(result: SystemResult) -> str:
    """One line naming the system and how it was run (tables and figures)."""
    minimum = (
        "unknown" if result.global_minimum is None else f"{result.global_minimum:.4f}"
    )
    return (
        f"{result.name} ({result.n_atoms} atoms, {result.potential}; global minimum "
        f"{minimum}; {result.n_starts} starts, {result.steps} steps)"
    )


# --------------------------------------------------------------------------
# System names: sweeps and composition scans
# --------------------------------------------------------------------------


def expand_system_names(
    names: Sequence[str], compositions: Sequence[int] | None = None
) -> list[tuple[str, str, int | None]]:
    """Expands sweeps and composition scans into single systems.

    - ``ljA-B`` or ``ljA-B:STEP``: Lennard-Jones clusters of A to B atoms;
    - ``AgAu38`` (two elements, then a size): the composition scan
      ``Ag(38-m)Au(m)`` for m = 0..38 (or ``compositions``; 0 and 38 are always
      included, the excess energy needs them);
    - anything else: one system (``lj13``, ``au55``, ``si64``, ``Ag35Au3``).

    Returns:
        ``[(system name, group, m)]``: group is ``""`` for single systems, the
        sweep's or scan's name otherwise; m the count of the second element in
        a scan (None elsewhere).
    """
    expanded = []
    for name in names:
        if match := re.fullmatch(r"lj(\d+)-(\d+)(?::(\d+))?", name.lower()):
            first, last, stride = match.groups()
            for size in range(int(first), int(last) + 1, int(stride or 1)):
                expanded.append((f"lj{size}", name, None))
        elif match := re.fullmatch(r"([A-Z][a-z]?)([A-Z][a-z]?)(\d+)", name):
            first, second, total = match.groups()
            total = int(total)
            counts = set(range(total + 1) if compositions is None else compositions)
            counts = sorted(m for m in counts | {0, total} if 0 <= m <= total)
            for m in counts:
                expanded.append((f"{first}{total - m}{second}{m}", name, m))
        else:
            expanded.append((name, "", None))
    return expanded


def build_system(name: str) -> systems.System:
    """`systems.system_from_name`, keeping the requested name (``Ag38Au0``), so
    that every system of a scan has its own name."""
    system = systems.system_from_name(name)
    return system if system.name == name.lower() else system._replace(name=name)


def composition_count(name: str) -> int:
    """m of a composition-scan member ``A(N-m)B(m)`` (``Pd26Pt12`` -> 12)."""
    return int(re.fullmatch(r"\D+\d+\D+(\d+)", name).group(1))

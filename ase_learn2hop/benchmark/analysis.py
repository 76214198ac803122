"""Numbers behind the benchmark's figures, pure NumPy (no Matplotlib).

- `lower_convex_hull`, `excess_energies`, `excess_energies_by_method`: the
  excess energy of a bimetallic composition scan and its convex hull (paper
  Figure 7);
- `size_sweep_data`: mean and minimum energy against Lennard-Jones size (Figure 4);
- `composition_data`: a composition scan's excess energies per method.
"""

from __future__ import annotations

import re

import numpy as np

from ase_learn2hop import systems
from ase_learn2hop.benchmark.protocol import (
    METHODS,
    SystemResult,
    composition_count,
    summarize,
)


def lower_convex_hull(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Indices of the points on the lower convex hull, by increasing ``x``
    (Andrew's monotone chain). Non-finite points are left out."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    order = [i for i in np.lexsort((y, x)) if np.isfinite(x[i]) and np.isfinite(y[i])]
    hull: list[int] = []
    for i in order:
        if hull and x[hull[-1]] == x[i]:
            continue
        while len(hull) >= 2:
            a, b = hull[-2], hull[-1]
            cross = (x[b] - x[a]) * (y[i] - y[a]) - (y[b] - y[a]) * (x[i] - x[a])
            if cross > 0:
                break
            hull.pop()
        hull.append(i)
    return np.asarray(hull, dtype=int)


def excess_energies(
    counts: np.ndarray, energies: np.ndarray, n_atoms: int
) -> np.ndarray:
    """Excess energy of A(N-m)B(m) clusters (paper Figure 7):
    ``E(m) - (N - m)/N E(0) - m/N E(N)``, with the pure clusters E(0), E(N).

    Args:
        counts: ``[k]`` values of m, including 0 and N.
        energies: ``[k]`` energies (eV).
        n_atoms: N.
    """
    counts = np.asarray(counts, dtype=float)
    energies = np.asarray(energies, dtype=float)
    pure_first = energies[counts == 0][0]
    pure_second = energies[counts == n_atoms][0]
    return (
        energies
        - (n_atoms - counts) / n_atoms * pure_first
        - counts / n_atoms * pure_second
    )


def size_sweep_data(results: list[SystemResult]):
    results = sorted(results, key=lambda r: r.n_atoms)
    sizes = np.array([r.n_atoms for r in results])
    minima = systems.lennard_jones_global_minima()
    global_minima = np.array([minima.get(int(n), np.nan) for n in sizes])
    means, lowest = {}, {}
    for method in METHODS:
        label = METHODS[method].label
        for i, result in enumerate(results):
            method_result = result.methods.get(method)
            if method_result is None or method_result.status != "ok":
                continue
            summary = summarize(method_result.best.energies, None)
            means.setdefault(label, np.full(len(sizes), np.nan))[i] = summary["mean"]
            lowest.setdefault(label, np.full(len(sizes), np.nan))[i] = summary["min"]
    trained = set()
    for result in results:
        learned = result.methods.get("learned")
        if learned is not None and learned.status == "ok":
            for name in learned.best.extra.get("trained_on", []):
                if match := re.fullmatch(r"lj(\d+)", name):
                    trained.add(int(match.group(1)))
    return sizes, global_minima, means, lowest, sorted(trained)


def composition_data(group: str, results: list[SystemResult]):
    match = re.fullmatch(r"([A-Z][a-z]?)([A-Z][a-z]?)(\d+)", group)
    first, second, total = match.groups()
    total = int(total)
    counts = np.array([composition_count(result.name) for result in results])
    if not ({0, total} <= set(counts.tolist())):
        return None
    lowest = {}
    for method in METHODS:
        label = METHODS[method].label
        values = np.full(len(results), np.nan)
        for i, result in enumerate(results):
            method_result = result.methods.get(method)
            if method_result is not None and method_result.status == "ok":
                values[i] = summarize(method_result.best.energies, None)["min"]
        if np.isfinite(values).any():
            lowest[label] = values
    if not lowest:
        return None
    return (
        counts,
        excess_energies_by_method(counts, lowest, total),
        (
            first,
            second,
            total,
        ),
    )


def excess_energies_by_method(
    counts: np.ndarray, lowest: dict[str, np.ndarray], n_atoms: int
) -> dict[str, np.ndarray]:
    """`excess_energies` of each method's lowest minima ``{label: [k]}``, with one
    reference for every method: the lowest pure-cluster energy any method found."""
    reference = np.nanmin(np.vstack(list(lowest.values())), axis=0)
    pure = np.isin(counts, [0, n_atoms])
    return {
        label: excess_energies(counts, np.where(pure, reference, values), n_atoms)
        for label, values in lowest.items()
    }

"""Order statistics of runs that may not finish: times to a threshold with
censoring (a run that never reached it within its budget counts as +inf),
their quantiles, and bootstrap intervals of median ratios. Used by the
time-to-minimum benchmark (`time_to_minimum`)."""

from __future__ import annotations

import math

import numpy as np

from ase_learn2hop.benchmark.time_to_minimum_methods import RunTrace


def time_to_threshold(
    trace: RunTrace, threshold: float, seconds: float, force_calls: int
) -> tuple[float, float]:
    """``(force calls, seconds)`` when the run first reached ``threshold``, or
    ``(inf, inf)`` when it did not within both budgets (censored)."""
    for calls, elapsed, energy in trace.improvements:
        if energy <= threshold:
            if calls > force_calls or elapsed > seconds:
                break
            return float(calls), float(elapsed)
    return math.inf, math.inf


def censored_quantile(values, q: float) -> float:
    """The ``q`` quantile (linear interpolation between order statistics) of
    values where +inf stands for a censored run: +inf as soon as it depends on a
    censored value."""
    ordered = np.sort(np.asarray(values, dtype=float))
    if ordered.size == 0:
        return math.nan
    position = q * (ordered.size - 1)
    low, high = math.floor(position), math.ceil(position)
    fraction = position - low
    if fraction == 0.0 or ordered[low] == ordered[high]:
        return float(ordered[low])
    if not np.isfinite(ordered[high]):
        return math.inf
    return float(ordered[low] + fraction * (ordered[high] - ordered[low]))


def quartiles(values) -> tuple[float, float, float]:
    """``(median, q1, q3)`` with censoring (`censored_quantile`)."""
    return tuple(censored_quantile(values, q) for q in (0.5, 0.25, 0.75))


#: Bootstrap resamples of the median ratios in the report, and their seed.
BOOTSTRAP_RESAMPLES = 4000
BOOTSTRAP_SEED = 0


def median_ratio(values, reference, resamples: int = BOOTSTRAP_RESAMPLES, seed=None):
    """``(ratio, low, high)``: median of ``values`` over median of
    ``reference`` (censored runs +inf, `censored_quantile`) and its 95%
    percentile-bootstrap interval, each sample resampled with replacement on
    its own. A censored median makes the ratio +inf (0 when only the
    reference's is; NaN when both are); among the resampled ratios, both
    censored counts as +inf."""
    values = np.asarray(values, dtype=float)
    reference = np.asarray(reference, dtype=float)
    rng = np.random.default_rng(BOOTSTRAP_SEED if seed is None else seed)

    def ratio(a, b):
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.float64(censored_quantile(a, 0.5)) / censored_quantile(b, 0.5)

    ratios = np.array(
        [
            ratio(
                rng.choice(values, values.size), rng.choice(reference, reference.size)
            )
            for _ in range(resamples)
        ]
    )
    # Both censored (NaN) counts as +inf: it only widens the upper end. No
    # interpolation between order statistics, which may be infinite.
    ratios = np.where(np.isnan(ratios), np.inf, ratios)
    low, high = np.quantile(ratios, [0.025, 0.975], method="inverted_cdf")
    return float(ratio(values, reference)), float(low), float(high)

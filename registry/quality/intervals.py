"""How sure a metric computed on a finite set of rows is: the interval methods mlgate uses.

    method              for                               why this one
    Wilson              accuracy (a proportion)           good coverage near 0 and 1, closed form
    normal, mean        log loss, MAE, MSE                a mean of per-row losses; CLT
    DeLong              ROC AUC, and two AUCs paired      the Mann-Whitney U statistic's
                                                          variance from per-row placements;
                                                          O(n log n), no resampling
    row bootstrap       anything written as a function    no formula needed; paired for free
                        of sums over rows (F1, ECE, R²)   when two models share the resamples

The bootstrap never loops in Python over resamples. A metric hands over per-row `columns`
(n, c) whose column sums determine it; a resample of the rows is a vector of counts
(how often each row was drawn, summing to n), so the resampled sums are one matrix
product, counts (B, n) @ columns (n, c). Two shortcuts keep that product small:

- when many rows are alike (a confusion-matrix cell, a correct/incorrect flag) `groups`
  names them, and the counts of the G distinct kinds are drawn from a multinomial: the
  same distribution as drawing rows, at B × G instead of B × n;
- otherwise, past MAX_UNITS rows, rows are dealt at random into MAX_UNITS groups of
  equal size (±1 row) and groups are resampled instead of rows. The resampled column
  sums keep the row bootstrap's mean and covariance (a group's sums are a sum of its
  rows'), which is what a smooth statistic of sums depends on at this size; the cost
  stops growing with n. Up to MAX_UNITS rows it is the row bootstrap exactly.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = [
    "delong",
    "delong_paired",
    "mean_interval",
    "normal_quantile",
    "percentile_interval",
    "resampled_sums",
    "wilson",
]

MAX_UNITS = 2000
"""Rows, or groups of rows, that a bootstrap without `groups` resamples (docstring)."""
_BLOCK_ELEMENTS = 1 << 21
"""Resample in blocks of about this many (resample, unit) counts: bounded memory."""


def normal_quantile(confidence: float) -> float:
    """z such that a standard normal lies within ±z with probability `confidence`."""
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    from scipy.stats import norm

    return float(norm.ppf(0.5 + confidence / 2.0))


def wilson(successes: int, n: int, confidence: float) -> tuple[float, float]:
    """Wilson score interval of a proportion (scipy's `binomtest(...).proportion_ci`
    method="wilson", in closed form). Unlike p ± z·SE it stays inside [0, 1] and does
    not collapse to a point when every row is right."""
    z = normal_quantile(confidence)
    p = successes / n
    denominator = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def mean_interval(values: np.ndarray, confidence: float) -> tuple[float, float]:
    """mean ± z·sd/√n: the CLT interval of a mean of per-row values (losses, errors)."""
    z = normal_quantile(confidence)
    centre = float(values.mean())
    half = z * float(values.std(ddof=1)) / math.sqrt(len(values))
    return centre - half, centre + half


def _components(positive: np.ndarray, negative: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """DeLong's placement values: for each positive, the share of negatives it outranks;
    for each negative, the share of positives that outrank it (ties count one half).
    Ranks in the pooled sample minus ranks within the own class count the other class
    below, which is the whole trick (Sun & Xu 2014)."""
    from scipy.stats import rankdata

    m, k = len(positive), len(negative)
    pooled = rankdata(np.concatenate([positive, negative]))
    above_negatives = (pooled[:m] - rankdata(positive)) / k
    below_positives = 1.0 - (pooled[m:] - rankdata(negative)) / m
    return above_negatives, below_positives


def delong(
    is_positive: np.ndarray, score: np.ndarray, confidence: float
) -> tuple[float, float, float]:
    """ROC AUC with DeLong's interval, (auc, lower, upper) clipped to [0, 1].

    Needs at least two rows of each class. At AUC 0 or 1 the variance is 0 and the
    interval is the point: no discordant pair was seen, and DeLong has nothing to add.
    """
    v10, v01 = _components(score[is_positive], score[~is_positive])
    auc = float(v10.mean())
    se = math.sqrt(v10.var(ddof=1) / len(v10) + v01.var(ddof=1) / len(v01))
    z = normal_quantile(confidence)
    return auc, max(0.0, auc - z * se), min(1.0, auc + z * se)


def delong_paired(
    is_positive: np.ndarray, first: np.ndarray, second: np.ndarray, confidence: float
) -> tuple[float, float, float]:
    """AUC(second) − AUC(first) on the same rows with DeLong's paired interval.

    The difference of the two models' placement values per row carries their
    correlation, so its variance is that of one AUC computed from the differences.
    """
    a10, a01 = _components(first[is_positive], first[~is_positive])
    b10, b01 = _components(second[is_positive], second[~is_positive])
    d10, d01 = b10 - a10, b01 - a01
    difference = float(d10.mean())
    se = math.sqrt(d10.var(ddof=1) / len(d10) + d01.var(ddof=1) / len(d01))
    z = normal_quantile(confidence)
    return difference, difference - z * se, difference + z * se


def resampled_sums(
    columns: np.ndarray,
    resamples: int,
    rng: np.random.Generator,
    groups: np.ndarray | None = None,
) -> np.ndarray:
    """Column sums of `resamples` bootstrap resamples of the rows of `columns` (n, c):
    shape (B, c).

    `groups` (n,) are codes such that rows with equal codes have equal columns; given,
    the group counts are drawn from a multinomial instead of drawing rows.
    """
    n = len(columns)
    values = np.asarray(columns, dtype=np.float64)
    if groups is not None:
        _, first, counts = np.unique(groups, return_index=True, return_counts=True)
        drawn = rng.multinomial(n, counts / n, size=resamples)
        return drawn.astype(np.float64) @ values[first]
    if n > MAX_UNITS:
        starts = np.arange(MAX_UNITS) * n // MAX_UNITS
        values = np.add.reduceat(values[rng.permutation(n)], starts, axis=0)
    units = len(values)
    block = max(1, _BLOCK_ELEMENTS // units)
    sums = np.empty((resamples, values.shape[1]))
    for start in range(0, resamples, block):
        size = min(block, resamples - start)
        drawn = rng.integers(0, units, size=(size, units), dtype=np.int64)
        # Unit u of resample b lands in bin b·units + u: one bincount gives every count.
        drawn += (np.arange(size, dtype=np.int64) * units)[:, None]
        counts = np.bincount(drawn.ravel(), minlength=size * units).reshape(size, units)
        sums[start : start + size] = counts.astype(np.float64) @ values
    return sums


def percentile_interval(samples: np.ndarray, confidence: float) -> tuple[float, float] | None:
    """The central `confidence` range of the finite bootstrap samples; None if there are
    none (every resample left the metric undefined)."""
    finite = samples[np.isfinite(samples)]
    if not len(finite):
        return None
    tail = (1.0 - confidence) / 2.0
    lower, upper = np.quantile(finite, [tail, 1.0 - tail])
    return float(lower), float(upper)

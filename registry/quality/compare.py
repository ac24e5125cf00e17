"""Champion against challenger on the same labelled rows: how much better, and how sure.

Two models judged on the same rows share the rows' difficulty, so the difference of
their metrics varies far less than either metric does; comparing two separate intervals
would throw that away. Every metric therefore gets a paired interval of the gain:

- ROC AUC: DeLong's paired variance (the per-row placement values of both models,
  differenced), a normal interval. Microseconds where a bootstrap re-sorts n rows per
  resample.
- everything else: a paired bootstrap. Each metric is a function of column sums over
  rows (`row_sums`); both models' columns are resampled together, so each resample
  draws the same rows for both, and the percentile interval of the gains is reported.
  Where both models' rows fall into few distinct kinds (accuracy, F1: the joint cell of
  label, champion's class and challenger's class) the resample is one multinomial draw
  of those cells' counts; otherwise rows (past 2000 rows, random groups of rows) are
  drawn (`intervals.resampled_sums`).

`gain` > 0 means the challenger is better, whichever way the metric points.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

from registry.errors import BadRequest
from registry.quality.intervals import (
    delong_paired,
    normal_quantile,
    percentile_interval,
    resampled_sums,
)
from registry.quality.metrics import HIGHER_IS_BETTER, METRICS
from registry.quality.problem import Predictions
from registry.quality.row_sums import auc_inputs, row_sums

__all__ = ["Comparison", "compare"]

_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class Comparison:
    """The challenger's gain over the champion on one metric, with its interval."""

    metric: str
    champion: float
    challenger: float
    gain: float
    """challenger − champion where higher is better, champion − challenger otherwise."""
    lower: float
    upper: float
    n: int
    higher_is_better: bool
    method: str

    def to_json(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "champion": self.champion,
            "challenger": self.challenger,
            "gain": self.gain,
            "lower": self.lower,
            "upper": self.upper,
            "n": self.n,
            "higher_is_better": self.higher_is_better,
            "method": self.method,
        }


def compare(
    metric: str,
    labels: np.ndarray,
    champion: Predictions,
    challenger: Predictions,
    *,
    classes: int | None = None,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> Comparison:
    """The challenger's gain over the champion on `metric`, on the same labelled rows.

    BadRequest if the metric is not one of the task's, the predictions do not line up
    with the labels, or the metric cannot be computed for either model's output.
    """
    from sklearn.metrics import roc_auc_score

    truth = np.asarray(labels)
    n = len(truth)
    _check(metric, truth, champion, challenger, n_resamples, confidence)
    higher = HIGHER_IS_BETTER[metric]
    if metric == "roc_auc":
        inputs = [auc_inputs(p, truth) for p in (champion, challenger)]
        first, second = _computable(metric, inputs)
        _, low, high = delong_paired(first[0], first[1], second[1], confidence)
        old, new = (float(roc_auc_score(truth, x[1])) for x in (first, second))
        method = "paired DeLong (normal interval)"
        return Comparison(metric, old, new, new - old, low, high, n, higher, method)
    rows = [row_sums(metric, p, truth, classes) for p in (champion, challenger)]
    a, b = _computable(metric, rows)
    width = a.columns.shape[1]
    columns = np.hstack([a.columns, b.columns])
    groups = None
    if a.groups is not None and b.groups is not None:
        groups = a.groups.astype(np.int64) * (int(b.groups.max()) + 1) + b.groups
    sums = resampled_sums(columns, n_resamples, np.random.default_rng(seed), groups)
    with np.errstate(invalid="ignore"):  # an undefined resample (R² of equal labels) is NaN
        gains = b.statistic(sums[:, width:]) - a.statistic(sums[:, :width])
    sign = 1.0 if higher else -1.0
    gain = sign * (b.value - a.value)
    bounds = percentile_interval(sign * gains, confidence)
    if bounds is None:
        raise BadRequest(f"{metric} is undefined in every resample of these {n} rows")
    lower, upper = min(bounds[0], gain), max(bounds[1], gain)
    method = f"paired bootstrap ({n_resamples} resamples, percentile interval)"
    return Comparison(metric, a.value, b.value, gain, lower, upper, n, higher, method)


def _check(
    metric: str,
    truth: np.ndarray,
    champion: Predictions,
    challenger: Predictions,
    n_resamples: int,
    confidence: float,
) -> None:
    if champion.task != challenger.task:
        raise BadRequest(
            f"the champion is a {champion.task} model and the challenger a "
            f"{challenger.task} model; they cannot be compared on one metric"
        )
    names = METRICS[champion.task]
    if metric not in names:
        raise BadRequest(
            f"{metric!r} is not a metric of a {champion.task} model; one of {', '.join(names)}"
        )
    if truth.ndim != 1 or not champion.rows == challenger.rows == len(truth):
        raise BadRequest(
            f"{len(truth)} labels, {champion.rows} champion and {challenger.rows} challenger "
            "predictions: they must be the same rows"
        )
    if len(truth) < 2:
        raise BadRequest(f"{len(truth)} labelled rows; a comparison needs at least 2")
    if n_resamples < 1:
        raise BadRequest(f"n_resamples must be at least 1, got {n_resamples}")
    try:
        normal_quantile(confidence)
    except ValueError as error:
        raise BadRequest(str(error)) from None


def _computable(metric: str, results: Sequence[_T | str]) -> tuple[_T, _T]:
    found: list[_T] = []
    for who, result in zip(("champion", "challenger"), results, strict=True):
        if isinstance(result, str):
            raise BadRequest(f"{metric} cannot be computed for the {who}: {result}")
        found.append(result)
    return found[0], found[1]

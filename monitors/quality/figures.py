"""Quality figures from buckets: per bucket, and over the newest rows (the rolling window).

- **Realised**: the metrics of the task on labelled predictions, with intervals
  (`registry.quality.metrics.score`). A bucket is *judgeable* once at least
  `min_coverage` of its sampled predictions are labelled (early labels can be biased:
  the first chargebacks are not a random sample); the rolling window pools the newest
  labelled rows of judgeable buckets, newest first, up to `window_rows`, and is *judged*
  only with at least `min_labels` of them, so 40 labels never raise an alarm.
- **Estimated**: confidence-based estimates (`monitors.quality.estimate`) on the newest
  `window_rows` predictions, labelled or not, once there are `min_rows`.

Every figure is computed on at most `window_rows` (or one bucket's sample) rows: its cost
does not grow with traffic.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from monitors.quality.buckets import Bucket
from monitors.quality.estimate import estimate
from registry.quality.calibration import Calibration, calibrated_proba
from registry.quality.metrics import PRIMARY, Figure, Scores, score
from registry.quality.problem import Predictions, Problem, read_predictions

__all__ = [
    "QualityThresholds",
    "Rolling",
    "bucket_summary",
    "rolling_estimated",
    "rolling_realised",
]


@dataclass(frozen=True)
class QualityThresholds:
    metric: str | None = None
    """The metric decisions are made on (default: accuracy, or MAE for regression)."""
    tolerance: float = 0.02
    """How far below the baseline counts as a fall, for metrics in [0, 1] (accuracy, AUC,
    F1, R²): 0.02 is two points of accuracy."""
    relative_tolerance: float = 0.1
    """The same for errors (MAE, RMSE, log loss, calibration error), as a share of the
    baseline's value: 0.1 is 10 % more error."""
    min_labels: int = 200
    min_coverage: float = 0.1
    window_rows: int = 2000
    min_rows: int = 200
    consecutive: int = 2

    def metric_for(self, problem: Problem) -> str:
        return self.metric or PRIMARY[problem.task]


@dataclass(frozen=True)
class Rolling:
    """A figure over the newest rows: what it is, on how many rows, from when to when."""

    scores: Scores | None
    rows: int
    start_us: int | None
    end_us: int | None
    judged: bool
    why: str
    coverage: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "scores": None if self.scores is None else self.scores.to_json(),
            "rows": self.rows,
            "window": {"start_us": self.start_us, "end_us": self.end_us},
            "judged": self.judged,
            "why": self.why,
            "coverage": self.coverage,
        }


def usable_labels(problem: Problem, labels: np.ndarray) -> np.ndarray:
    """Which labels the problem can score: class indices of a classifier, any finite value
    of a regressor. The rest are counted by the caller, never scored."""
    finite = np.isfinite(labels)
    if not problem.classifier:
        return finite
    whole = finite & (labels == np.round(np.where(finite, labels, 0)))
    return whole & (labels >= 0) & (labels < (problem.classes or 2))


def bucket_summary(
    bucket: Bucket,
    bucket_s: int,
    problem: Problem | None,
    calibration: Calibration | None,
    thresholds: QualityThresholds,
) -> dict[str, Any]:
    """One bucket's counts and its primary metric, realised and estimated."""
    labelled = bucket.labelled
    summary: dict[str, Any] = {
        "start_s": bucket.start_s,
        "end_s": bucket.start_s + bucket_s,
        "seen": bucket.seen,
        "sampled": bucket.rows,
        "labelled": int(labelled.sum()),
        "coverage": float(labelled.mean()) if bucket.rows else 0.0,
        "realised": None,
        "estimated": None,
    }
    if problem is None or not bucket.rows:
        return summary
    metric = thresholds.metric_for(problem)
    predictions = read_predictions(problem, bucket.output)
    usable = labelled & usable_labels(problem, bucket.label)
    if usable.sum() >= 2:
        found = score(
            predictions.take(np.flatnonzero(usable)),
            _labels(problem, bucket.label[usable]),
            classes=problem.classes,
        )
        figure = found.figures.get(metric)
        summary["realised"] = None if figure is None else figure.to_json()
    if calibration is not None:
        guess = _estimate(predictions, calibration)
        figure = None if guess is None else guess.figures.get(metric)
        summary["estimated"] = None if figure is None else figure.to_json()
    return summary


def rolling_realised(
    buckets: Sequence[Bucket], problem: Problem, thresholds: QualityThresholds
) -> tuple[Rolling, int]:
    """The newest labelled rows of judgeable buckets (newest first); and how many labels
    in them could not be scored (not a class index, say)."""
    outputs, labels, stamps, unusable, skipped = [], [], [], 0, 0
    taken = 0
    for bucket in buckets:
        labelled = bucket.labelled
        if not labelled.any():
            continue
        if labelled.mean() < thresholds.min_coverage:
            skipped += 1
            continue
        usable = labelled & usable_labels(problem, bucket.label)
        unusable += int(labelled.sum() - usable.sum())
        index = np.flatnonzero(usable)
        index = index[np.argsort(-bucket.ts_us[index], kind="stable")]
        index = index[: thresholds.window_rows - taken]
        outputs.append(bucket.output[index])
        labels.append(bucket.label[index])
        stamps.append(bucket.ts_us[index])
        taken += len(index)
        if taken >= thresholds.window_rows:
            break
    if not taken:
        why = "no labels have come back for this version's predictions yet"
        if skipped:
            why = (
                f"{skipped} bucket(s) have labels, but under {thresholds.min_coverage:.0%} "
                "of their predictions (MLGATE_QUALITY_MIN_COVERAGE)"
            )
        return Rolling(None, 0, None, None, False, why), unusable
    truth = _labels(problem, np.concatenate(labels))
    ts = np.concatenate(stamps)
    predictions = read_predictions(problem, np.concatenate(outputs))
    scores = score(predictions, truth, classes=problem.classes)
    judged = taken >= thresholds.min_labels
    why = "" if judged else f"{taken} labelled rows; a judgement needs {thresholds.min_labels}"
    coverage = _coverage(buckets, int(ts.min()))
    rolling = Rolling(scores, taken, int(ts.min()), int(ts.max()), judged, why, coverage)
    return rolling, unusable


def rolling_estimated(
    buckets: Sequence[Bucket],
    problem: Problem,
    calibration: Calibration | None,
    thresholds: QualityThresholds,
) -> Rolling:
    """Confidence-based estimates on the newest predictions, labelled or not."""
    if not problem.classifier:
        return Rolling(None, 0, None, None, False, "no estimate for regression models")
    if calibration is None:
        return Rolling(
            None,
            0,
            None,
            None,
            False,
            (
                "no calibration: register labelled evaluation data (evaluation=, --label) to "
                "estimate quality before labels arrive"
            ),
        )
    outputs, stamps, taken = [], [], 0
    for bucket in buckets:
        index = np.argsort(-bucket.ts_us, kind="stable")[: thresholds.window_rows - taken]
        outputs.append(bucket.output[index])
        stamps.append(bucket.ts_us[index])
        taken += len(index)
        if taken >= thresholds.window_rows:
            break
    if not taken:
        return Rolling(None, 0, None, None, False, "no predictions read yet")
    predictions = read_predictions(problem, np.concatenate(outputs))
    scores = _estimate(predictions, calibration)
    ts = np.concatenate(stamps)
    if scores is None:
        why = "the output has no probabilities and no calibration maps it to some"
        return Rolling(None, taken, int(ts.min()), int(ts.max()), False, why)
    judged = taken >= thresholds.min_rows
    why = "" if judged else f"{taken} predictions; an estimate is judged on {thresholds.min_rows}"
    return Rolling(scores, taken, int(ts.min()), int(ts.max()), judged, why)


def _estimate(predictions: Predictions, calibration: Calibration) -> Scores | None:
    proba = calibrated_proba(calibration, predictions)
    return None if proba is None else estimate(predictions, proba)


def _labels(problem: Problem, labels: np.ndarray) -> np.ndarray:
    return labels.astype(np.int64) if problem.classifier else labels.astype(np.float64)


def _coverage(buckets: Sequence[Bucket], since_us: int) -> float:
    """Labelled share of the sampled predictions made since `since_us`."""
    rows = labelled = 0
    for bucket in buckets:
        recent = bucket.ts_us >= since_us
        rows += int(recent.sum())
        labelled += int((recent & bucket.labelled).sum())
    return labelled / rows if rows else 0.0


@dataclass(frozen=True)
class Verdict:
    """A figure held against the baseline: significantly worse, or not."""

    worse: bool
    bound: float
    """The baseline minus the tolerance (plus, for errors): what the interval must clear."""
    text: str

    def to_json(self) -> dict[str, Any]:
        return {"worse": self.worse, "bound": self.bound, "text": self.text}


RELATIVE_METRICS = ("mae", "rmse", "log_loss", "calibration_error")
"""Errors on the target's own scale: their tolerance is a share of the baseline."""


def judge(
    metric: str,
    figure: Figure,
    baseline: Figure,
    *,
    tolerance: float,
    relative_tolerance: float,
    what: str = "realised",
) -> Verdict:
    """Worse when the difference from the baseline is past the tolerance with 95 % confidence.

    The baseline is an estimate too (on the evaluation rows registered with the version),
    so the interval of the difference combines both figures' intervals (their half-widths
    in quadrature): a baseline measured on few rows needs a larger fall to be sure of it.
    """
    margin = relative_tolerance * abs(baseline.value) if metric in RELATIVE_METRICS else tolerance
    spread = math.hypot((figure.upper - figure.lower) / 2, (baseline.upper - baseline.lower) / 2)
    shown = f"{what} {metric} {figure.value:.3f} [{figure.lower:.3f}, {figure.upper:.3f}]"
    if figure.higher_is_better:
        bound = baseline.value - margin
        worse = figure.value + spread < bound
        side = "below" if worse else "not surely below"
    else:
        bound = baseline.value + margin
        worse = figure.value - spread > bound
        side = "above" if worse else "not surely above"
    text = (
        f"{shown} on {figure.n} rows is {side} the baseline {baseline.value:.3f} "
        f"[{baseline.lower:.3f}, {baseline.upper:.3f}] "
        f"{'-' if figure.higher_is_better else '+'} {margin:.3f} (±{spread:.3f} for both)"
    )
    return Verdict(worse, bound, text)

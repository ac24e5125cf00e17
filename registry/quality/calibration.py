"""Calibration of a classifier's outputs, fitted at registration, for estimated quality.

Label-free estimates (monitors/quality/estimate.py) read a row's probabilities as the
chance of each outcome, which is only fair if they are calibrated. NannyML's recipe
(`nannyml/calibration.py`), followed here on the labelled evaluation rows, which must
not be the training rows (a calibrator fitted on them learns the model's overconfidence
as truth):

1. Skip if the labels hold one class, or AUROC > 0.999 (nothing left to correct, and
   isotonic steps would only add noise).
2. StratifiedShuffleSplit(n_splits=10, test_size=0.1, random_state=seed): fit
   IsotonicRegression(out_of_bounds="clip") on each train fold, predict its test fold,
   and pool the test folds. Calibrate only if the pooled ECE (NannyML's: 10 equal-count
   bins of the sorted probabilities) drops; then refit on every row.
3. Multiclass: one-vs-rest per class, each class with its own gate; applied rows are
   renormalised to sum to 1.

A binary *score* output has no probabilities at all, so its isotonic map score →
P(y=1) is always fitted (when both classes are present); the pooled out-of-fold ECE is
still reported as `ece_after`.

The fit is stored as JSON, never as a pickle: per class, isotonic's `X_thresholds_` and
`y_thresholds_`. IsotonicRegression.predict interpolates linearly between them and clips
outside, which is exactly `np.interp`, so applying needs no scikit-learn object.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from registry.errors import BadRequest
from registry.quality.problem import Predictions

__all__ = ["Calibration", "calibrated_proba", "fit_calibration"]

SPLITS = 10
TEST_SHARE = 0.1
ECE_BINS = 10
SEPARATED_AUROC = 0.999
_MIN_ROWS = 2 * ECE_BINS  # a pooled test set of fewer rows cannot fill 10 bins of 2

Curve = tuple[tuple[float, ...], tuple[float, ...]]


@dataclass(frozen=True)
class Calibration:
    """How to turn a version's raw outputs into calibrated class probabilities."""

    applied: bool
    """False: the raw probabilities are used as they are."""
    method: str
    """"isotonic" or "none"."""
    classes: int
    curves: tuple[Curve, ...]
    """Per class (binary: one, for P(y=1)): isotonic (X_thresholds_, y_thresholds_);
    empty for a class whose gate kept its raw probabilities."""
    ece_before: float | None
    """Pooled out-of-fold ECE of the raw probabilities (multiclass: mean over classes)."""
    ece_after: float | None
    """The same for the isotonic candidate, whether or not it was applied."""
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {
            "applied": self.applied,
            "method": self.method,
            "classes": self.classes,
            "curves": [[list(x), list(y)] for x, y in self.curves],
            "ece_before": self.ece_before,
            "ece_after": self.ece_after,
            "reason": self.reason,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Calibration:
        def maybe(key: str) -> float | None:
            return None if data.get(key) is None else float(data[key])

        curves = tuple(
            (tuple(float(v) for v in x), tuple(float(v) for v in y)) for x, y in data["curves"]
        )
        return cls(
            applied=bool(data["applied"]),
            method=str(data["method"]),
            classes=int(data["classes"]),
            curves=curves,
            ece_before=maybe("ece_before"),
            ece_after=maybe("ece_after"),
            reason=str(data["reason"]),
        )


def fit_calibration(predictions: Predictions, labels: np.ndarray, *, seed: int = 0) -> Calibration:
    """Decide on and fit the calibration of a classifier's outputs (module docstring)."""
    truth = np.asarray(labels)
    if predictions.task == "regression":
        return _none(0, "a regressor's output has no probabilities to calibrate")
    if predictions.proba is None and predictions.score is None:
        return _none(2, "a labels output has no probabilities or scores to calibrate")
    if predictions.proba is None:
        assert predictions.score is not None
        return _score_calibration(predictions.score, truth, seed)
    proba = predictions.proba
    k = proba.shape[1]
    if not np.isfinite(proba).all():
        return _none(k, f"{int((~np.isfinite(proba)).any(axis=1).sum())} rows hold NaN or inf")
    columns = [1] if predictions.task == "binary" else list(range(k))
    curves: list[Curve] = []
    befores: list[float] = []
    afters: list[float] = []
    notes: list[str] = []
    for column in columns:
        applied, before, after, why, curve = _gate(proba[:, column], truth == column, seed)
        curves.append(curve if applied else ((), ()))
        if before is not None and after is not None:
            befores.append(before)
            afters.append(after)
        notes.append(why if len(columns) == 1 else f"class {column}: {why}")
    applied_any = any(thresholds for thresholds, _ in curves)
    return Calibration(
        applied=applied_any,
        method="isotonic" if applied_any else "none",
        classes=k,
        curves=tuple(curves) if applied_any else (),
        ece_before=float(np.mean(befores)) if befores else None,
        ece_after=float(np.mean(afters)) if afters else None,
        reason="; ".join(notes),
    )


def calibrated_proba(calibration: Calibration, predictions: Predictions) -> np.ndarray | None:
    """(n, k) calibrated class probabilities; None where the output has none (labels, a
    score without a fitted calibration, a regressor)."""
    if predictions.task == "regression":
        return None
    if predictions.proba is None:
        if predictions.score is None or not calibration.applied:
            return None
        positive = _apply(calibration.curves[0], predictions.score)
        return np.stack([1.0 - positive, positive], axis=1)
    proba = predictions.proba
    if not calibration.applied:
        return proba
    if proba.shape[1] != calibration.classes:
        raise BadRequest(
            f"the output has {proba.shape[1]} classes; the calibration was fitted for "
            f"{calibration.classes}"
        )
    if predictions.task == "binary":
        positive = _apply(calibration.curves[0], proba[:, 1])
        return np.stack([1.0 - positive, positive], axis=1)
    calibrated = np.stack(
        [
            _apply(curve, proba[:, c]) if curve[0] else proba[:, c]
            for c, curve in enumerate(calibration.curves)
        ],
        axis=1,
    )
    totals = calibrated.sum(axis=1, keepdims=True)
    # Every class's curve can map a row to 0; such a row keeps its raw probabilities.
    return np.where(totals > 0, calibrated / np.where(totals > 0, totals, 1.0), proba)


def _apply(curve: Curve, values: np.ndarray) -> np.ndarray:
    return np.interp(values, np.asarray(curve[0]), np.asarray(curve[1]))


def _none(classes: int, reason: str) -> Calibration:
    return Calibration(False, "none", classes, (), None, None, reason)


def _fit(values: np.ndarray, outcome: np.ndarray) -> Curve:
    from sklearn.isotonic import IsotonicRegression

    isotonic = IsotonicRegression(out_of_bounds="clip").fit(values, outcome.astype(np.float64))
    return tuple(map(float, isotonic.X_thresholds_)), tuple(map(float, isotonic.y_thresholds_))


def _gate(
    values: np.ndarray, outcome: np.ndarray, seed: int
) -> tuple[bool, float | None, float | None, str, Curve]:
    """(apply?, ECE before, ECE after, why, curve fitted on all rows) for one class."""
    from sklearn.metrics import roc_auc_score

    positives = int(outcome.sum())
    if positives in (0, len(outcome)):
        return False, None, None, "kept: the labels hold one class only", ((), ())
    auroc = float(roc_auc_score(outcome, values))
    if auroc > SEPARATED_AUROC:
        return False, None, None, f"kept: AUROC {auroc:.4f} > {SEPARATED_AUROC}", ((), ())
    pooled = _out_of_fold(values, outcome, seed)
    if pooled is None:
        return False, None, None, _too_few(len(outcome), positives), ((), ())
    raw, candidate, pooled_outcome = pooled
    before = _equal_count_ece(pooled_outcome, raw)
    after = _equal_count_ece(pooled_outcome, candidate)
    if after >= before:
        return False, before, after, f"kept: isotonic ECE {after:.4f} ≥ raw {before:.4f}", ((), ())
    curve = _fit(values, outcome)
    return True, before, after, f"isotonic: ECE {before:.4f} → {after:.4f}", curve


def _score_calibration(score: np.ndarray, truth: np.ndarray, seed: int) -> Calibration:
    if not np.isfinite(score).all():
        return _none(2, f"{int((~np.isfinite(score)).sum())} scores are NaN or inf")
    outcome = truth == 1
    if int(outcome.sum()) in (0, len(outcome)):
        return _none(2, "a score output needs both classes in the labels to become probabilities")
    pooled = _out_of_fold(score, outcome, seed)
    after = None if pooled is None else _equal_count_ece(pooled[2], pooled[1])
    reason = "isotonic: a score output has no probabilities until it is mapped to P(y=1)"
    if after is not None:
        reason += f"; out-of-fold ECE {after:.4f}"
    return Calibration(True, "isotonic", 2, (_fit(score, outcome),), None, after, reason)


def _out_of_fold(
    values: np.ndarray, outcome: np.ndarray, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """Pooled test folds: (raw values, isotonic predictions, outcomes); None if too few rows."""
    from sklearn.model_selection import StratifiedShuffleSplit

    positives = int(outcome.sum())
    if len(outcome) < _MIN_ROWS or min(positives, len(outcome) - positives) < 2:
        return None
    splits = StratifiedShuffleSplit(n_splits=SPLITS, test_size=TEST_SHARE, random_state=seed)
    raw, candidate, pooled_outcome = [], [], []
    for train, test in splits.split(values, outcome):
        curve = _fit(values[train], outcome[train])
        raw.append(values[test])
        candidate.append(_apply(curve, values[test]))
        pooled_outcome.append(outcome[test])
    return np.concatenate(raw), np.concatenate(candidate), np.concatenate(pooled_outcome)


def _equal_count_ece(outcome: np.ndarray, values: np.ndarray) -> float:
    """NannyML's ECE: sort by probability, 10 bins of equal count, Σ n_b/n |p̄_b − ȳ_b|."""
    order = np.argsort(values, kind="stable")
    gaps = [
        abs(float(values[part].mean()) - float(outcome[part].mean())) * len(part)
        for part in np.array_split(order, ECE_BINS)
    ]
    return sum(gaps) / len(values)


def _too_few(rows: int, positives: int) -> str:
    minority = min(positives, rows - positives)
    return (
        f"kept: {rows} rows ({minority} in the smaller class) are too few to test "
        f"calibration out of fold (need {_MIN_ROWS}, and 2 of each class)"
    )

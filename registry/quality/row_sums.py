"""Each metric but ROC AUC as a function of column sums of per-row terms.

Accuracy is the sum of a correct/incorrect column over n; log loss, MAE and MSE are sums
of per-row losses over n; F1 is 2·TP / (predicted + actual) from three indicator columns
per class; the ECE is Σ_b |Σ_{i in b} (y_i − p_i)| / n from one column per bin; R² is
1 − Σe² / (Σc² − (Σc)²/n) from centred labels c. Written this way a bootstrap resample is
a vector of row counts, and the resampled metric is one matrix product away
(`intervals.resampled_sums`); two models resampled together are a paired bootstrap.

`value` still comes from scikit-learn, so it is the number people check; the columns
reproduce it to rounding (the tests say so). A metric that cannot be computed here is
returned as a string saying why, for `Scores.missing` or a 400.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from registry.quality.problem import Predictions

__all__ = ["ECE_BINS", "RowSums", "auc_inputs", "row_sums"]

ECE_BINS = 10
_SUM_TOLERANCE = 1e-3  # float32 softmax rows miss 1 by ~1e-7; sklearn warns past ~1.5e-8
_ROW_SUM_METRICS = {
    "binary": ("accuracy", "log_loss", "f1", "calibration_error"),
    "multiclass": ("accuracy", "macro_f1", "log_loss"),
    "regression": ("mae", "rmse", "r2"),
}


@dataclass(frozen=True, slots=True)
class RowSums:
    """A metric as a function of column sums of per-row terms (see the module docstring)."""

    value: float
    """The metric on all rows, from scikit-learn."""
    columns: np.ndarray
    """(n, c) per-row terms."""
    statistic: Callable[[np.ndarray], np.ndarray]
    """(..., c) column sums over n rows → (...) the metric."""
    groups: np.ndarray | None = None
    """(n,) codes; rows with equal codes have equal columns (multinomial resampling)."""


def auc_inputs(predictions: Predictions, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray] | str:
    """(is_positive, ranking score) for ROC AUC, or why it cannot be computed here."""
    if predictions.task != "binary":
        return f"roc_auc is a binary metric; this is a {predictions.task} model"
    if predictions.score is not None:
        ranking = predictions.score
    elif predictions.proba is not None:
        ranking = predictions.proba[:, 1]
    else:
        return "a labels output does not rank rows: no ROC AUC without scores or probabilities"
    if not np.isfinite(ranking).all():
        return f"{int((~np.isfinite(ranking)).sum())} scores are NaN or inf"
    positive = truth == 1
    positives = int(positive.sum())
    if positives in (0, len(truth)):
        return f"ROC AUC needs both classes; every label here is {int(truth[0])}"
    if min(positives, len(truth) - positives) < 2:
        return "ROC AUC needs at least 2 rows of each class for an interval"
    return positive, ranking


def row_sums(
    name: str, predictions: Predictions, truth: np.ndarray, classes: int | None = None
) -> RowSums | str:
    """Metric `name` as RowSums, or why it cannot be computed on these predictions."""
    from sklearn.metrics import accuracy_score, f1_score, log_loss

    if name not in _ROW_SUM_METRICS[predictions.task]:
        raise ValueError(f"{name!r} is not a row-sum metric of a {predictions.task} model")
    n = len(truth)
    if predictions.task == "regression":
        return _regression(name, predictions.label, truth)
    label = predictions.label
    k = _classes(predictions, truth, classes)
    if name == "accuracy":
        correct = label == truth
        value = float(accuracy_score(truth, label))
        return RowSums(value, correct[:, None].astype(np.float64), lambda s: s[..., 0] / n, correct)
    if name in ("f1", "macro_f1"):
        if label.min() < 0 or label.max() >= k:
            return f"predicted classes outside 0..{k - 1}"
        present = np.flatnonzero(np.bincount(truth, minlength=k) + np.bincount(label, minlength=k))
        if name == "f1":
            if 1 not in present:
                return "F1 is undefined: no positive label and no positive prediction"
            present = np.array([1])
            value = float(f1_score(truth, label, zero_division=0.0))
        else:
            value = float(f1_score(truth, label, average="macro", zero_division=0.0))
        # Per class: [true positive, predicted as it, labelled as it]; F1 = 2·TP / (P̂ + P).
        terms = [
            np.stack([(label == c) & (truth == c), label == c, truth == c], 1) for c in present
        ]
        return RowSums(value, np.hstack(terms).astype(np.float64), _mean_f1, truth * k + label)
    proba = _probabilities(predictions, k)
    if isinstance(proba, str):
        return proba
    if name == "log_loss":
        eps = np.finfo(np.float64).eps  # sklearn's clipping, so the mean is its value
        losses = -np.log(np.clip(proba[np.arange(n), truth], eps, 1 - eps))
        value = float(log_loss(truth, proba, labels=np.arange(k)))
        return RowSums(value, losses[:, None], lambda s: s[..., 0] / n)
    # calibration_error: bins as sklearn's calibration_curve(strategy="uniform") cuts them
    positive = proba[:, 1]
    edges = np.linspace(0.0, 1.0, ECE_BINS + 1)[1:-1]
    bins = np.searchsorted(edges, positive)
    gaps = np.zeros((n, ECE_BINS))
    gaps[np.arange(n), bins] = truth - positive
    return RowSums(float(np.abs(gaps.sum(axis=0)).sum() / n), gaps, lambda s: np.abs(s).sum(-1) / n)


def _classes(predictions: Predictions, truth: np.ndarray, classes: int | None) -> int:
    if classes:
        return classes
    if predictions.proba is not None:
        return int(predictions.proba.shape[1])
    return max(2, int(max(truth.max(), predictions.label.max())) + 1)


def _mean_f1(sums: np.ndarray) -> np.ndarray:
    true_positive, predicted, actual = sums[..., 0::3], sums[..., 1::3], sums[..., 2::3]
    total = predicted + actual
    safe = np.where(total > 0, total, 1.0)
    # A class absent from a resample is 0/0; sklearn's zero_division=0.0 makes it 0.
    return np.where(total > 0, 2 * true_positive / safe, 0.0).mean(axis=-1)


def _regression(name: str, prediction: np.ndarray, truth: np.ndarray) -> RowSums | str:
    from sklearn.metrics import mean_absolute_error, r2_score, root_mean_squared_error

    if not np.isfinite(prediction).all():
        return f"{int((~np.isfinite(prediction)).sum())} predictions are NaN or inf"
    n, errors = len(truth), truth - prediction
    if name == "mae":
        value = float(mean_absolute_error(truth, prediction))
        return RowSums(value, np.abs(errors)[:, None], lambda s: s[..., 0] / n)
    if name == "rmse":
        value = float(root_mean_squared_error(truth, prediction))
        return RowSums(value, (errors**2)[:, None], lambda s: np.sqrt(s[..., 0] / n))
    if np.ptp(truth) == 0:
        return f"R² is undefined: every label is {truth[0]:g}"
    # Centred on the mean first: Σ(y−c)² − (Σ(y−c))²/n is exact for any c, and
    # centring keeps the subtraction from cancelling away large labels' digits.
    centred = truth - truth.mean()
    columns = np.stack([centred, centred**2, errors**2], axis=1)

    def r2(sums: np.ndarray) -> np.ndarray:
        total = sums[..., 1] - sums[..., 0] ** 2 / n
        with np.errstate(divide="ignore", invalid="ignore"):  # all-equal resample: dropped
            return 1.0 - sums[..., 2] / total

    return RowSums(float(r2_score(truth, prediction)), columns, r2)


def _probabilities(predictions: Predictions, k: int) -> np.ndarray | str:
    """The output's class probabilities, rows renormalised, or why there are none."""
    proba = predictions.proba
    if proba is None:
        kind = "score" if predictions.score is not None else "labels"
        return f"a {kind} output has no probabilities"
    if proba.shape[1] != k:
        return f"the output has {proba.shape[1]} probability columns for {k} classes"
    bad = ~np.isfinite(proba).all(axis=1)
    if bad.any():
        return f"{int(bad.sum())} rows of probabilities hold NaN or inf"
    if proba.min() < 0 or proba.max() > 1:
        return "the probabilities are not all in [0, 1]"
    sums = proba.sum(axis=1)
    if np.abs(sums - 1).max() > _SUM_TOLERANCE:
        return f"rows of probabilities sum to {sums.min():.4g}..{sums.max():.4g}, not 1"
    return proba / sums[:, None]

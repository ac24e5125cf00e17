"""Realised quality: a version's metrics on labelled rows, each with an interval.

    task        metric              value (scikit-learn)      interval (95 % by default)
    binary      accuracy            accuracy_score            Wilson
                roc_auc             roc_auc_score             DeLong
                log_loss            log_loss                  normal, mean of per-row losses
                f1                  f1_score                  bootstrap of confusion cells,
                                                              2000 resamples
                calibration_error   10 equal-width bins of    row bootstrap, 200 resamples
                                    P(y=1): Σ n_b/n·|ȳ_b−p̄_b| of at most 2000 row groups
    multiclass  accuracy, macro_f1 (macro over the classes present in labels or
                predictions, as f1_score does), log_loss
    regression  mae                 mean_absolute_error       normal, mean of |error|
                rmse                root_mean_squared_error   √ of the MSE's normal bounds
                r2                  r2_score                  as calibration_error

Every metric but ROC AUC is a function of sums of per-row columns (`RowSums`): that is
what lets `intervals.resampled_sums` resample it in one matrix product and lets
`compare` pair two models on the same resamples. The values still come from
scikit-learn, so they are the numbers people check them against.

A metric that cannot be computed (ROC AUC with one class, log loss without probabilities,
fewer than two rows, a prediction that is NaN) lands in `Scores.missing` with the reason,
never as an exception or a NaN. Bootstrap intervals are widened to include the value if
they miss it: the ECE's bootstrap distribution sits above the plug-in value (the ECE is
biased upwards on finite rows), and a reader should never see a value outside its own
interval. Realised metrics use the raw outputs, never calibrated ones (NannyML #98).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from registry.quality.intervals import (
    delong,
    mean_interval,
    normal_quantile,
    percentile_interval,
    resampled_sums,
    wilson,
)
from registry.quality.problem import Predictions
from registry.quality.row_sums import auc_inputs, row_sums

__all__ = [
    "HIGHER_IS_BETTER",
    "METRICS",
    "PRIMARY",
    "Figure",
    "Scores",
    "score",
]

METRICS: dict[str, tuple[str, ...]] = {
    "binary": ("accuracy", "roc_auc", "log_loss", "f1", "calibration_error"),
    "multiclass": ("accuracy", "macro_f1", "log_loss"),
    "regression": ("mae", "rmse", "r2"),
}
PRIMARY = {"binary": "roc_auc", "multiclass": "accuracy", "regression": "mae"}
HIGHER_IS_BETTER: dict[str, bool] = {
    "accuracy": True,
    "roc_auc": True,
    "log_loss": False,
    "f1": True,
    "macro_f1": True,
    "calibration_error": False,
    "mae": False,
    "rmse": False,
    "r2": True,
}
BOOTSTRAP_RESAMPLES = 200
"""Row bootstraps (ECE, R²): a 95 % percentile interval good to about ±10 % of its width,
at B × n work. Cell bootstraps (F1) cost B × cells, so they take CELL_RESAMPLES."""
CELL_RESAMPLES = 2000


@dataclass(frozen=True, slots=True)
class Figure:
    """One metric: its value on n rows and the interval around it."""

    value: float
    lower: float
    upper: float
    n: int
    higher_is_better: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "value": self.value,
            "lower": self.lower,
            "upper": self.upper,
            "n": self.n,
            "higher_is_better": self.higher_is_better,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Figure:
        return cls(
            float(data["value"]),
            float(data["lower"]),
            float(data["upper"]),
            int(data["n"]),
            bool(data["higher_is_better"]),
        )


@dataclass(frozen=True, slots=True)
class Scores:
    """Metrics by name, and for each one that could not be computed, why not."""

    figures: dict[str, Figure]
    missing: dict[str, str]

    def to_json(self) -> dict[str, Any]:
        return {
            "figures": {name: figure.to_json() for name, figure in self.figures.items()},
            "missing": dict(self.missing),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Scores:
        figures = {str(k): Figure.from_json(v) for k, v in data.get("figures", {}).items()}
        return cls(figures, {str(k): str(v) for k, v in data.get("missing", {}).items()})


def score(
    predictions: Predictions,
    labels: np.ndarray,
    *,
    classes: int | None = None,
    confidence: float = 0.95,
    seed: int = 0,
) -> Scores:
    """The task's metrics (METRICS) on labelled rows, with `confidence` intervals.

    `labels` are already checked (`Problem.check_labels`): 1-D, aligned with the rows.
    Bootstrap intervals are seeded by `seed`, so the same rows give the same Scores.
    """
    normal_quantile(confidence)  # a bad confidence is the caller's bug: fail loudly
    truth = np.asarray(labels)
    names = METRICS[predictions.task]
    n = len(truth)
    if n < 2:
        why = f"{n} labelled row{'' if n == 1 else 's'}; an interval needs at least 2"
        return Scores({}, dict.fromkeys(names, why))
    figures: dict[str, Figure] = {}
    missing: dict[str, str] = {}
    for name in names:
        result = _figure(name, predictions, truth, classes, confidence, seed)
        if isinstance(result, str):
            missing[name] = result
        elif not all(np.isfinite([result.value, result.lower, result.upper])):
            missing[name] = f"{name} is not a finite number on these rows"
        else:
            figures[name] = result
    return Scores(figures, missing)


def _figure(
    name: str,
    predictions: Predictions,
    truth: np.ndarray,
    classes: int | None,
    confidence: float,
    seed: int,
) -> Figure | str:
    from sklearn.metrics import roc_auc_score

    n, higher = len(truth), HIGHER_IS_BETTER[name]
    if name == "roc_auc":
        inputs = auc_inputs(predictions, truth)
        if isinstance(inputs, str):
            return inputs
        _, lower, upper = delong(*inputs, confidence)
        return Figure(float(roc_auc_score(truth, inputs[1])), lower, upper, n, higher)
    rows = row_sums(name, predictions, truth, classes)
    if isinstance(rows, str):
        return rows
    if name == "accuracy":
        lower, upper = wilson(int(rows.columns[:, 0].sum()), n, confidence)
    elif name in ("log_loss", "mae"):
        lower, upper = mean_interval(rows.columns[:, 0], confidence)
        lower = max(0.0, lower)
    elif name == "rmse":
        low_mse, high_mse = mean_interval(rows.columns[:, 0], confidence)
        lower, upper = float(np.sqrt(max(0.0, low_mse))), float(np.sqrt(high_mse))
    else:  # f1, macro_f1, calibration_error, r2
        rng = np.random.default_rng(seed)
        resamples = BOOTSTRAP_RESAMPLES if rows.groups is None else CELL_RESAMPLES
        sums = resampled_sums(rows.columns, resamples, rng, rows.groups)
        bounds = percentile_interval(rows.statistic(sums), confidence)
        if bounds is None:
            return f"{name}: every bootstrap resample left it undefined"
        lower, upper = min(bounds[0], rows.value), max(bounds[1], rows.value)
    return Figure(rows.value, lower, upper, n, higher)

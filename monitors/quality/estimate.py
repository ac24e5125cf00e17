"""Estimated quality before labels arrive: confidence-based performance estimation (CBPE).

If a classifier's calibrated probabilities are right, each unlabelled row is a known
lottery: the predicted class is correct with probability q = P(y = ŷ). Expected
confusion-matrix cells are then sums of probabilities, and the metrics follow
(NannyML's CBPE, `nannyml/performance_estimation/confidence_based/metrics.py`):

- accuracy: mean q.
- binary ROC AUC: rows sorted by the raw score, descending; the cumulative sum of
  calibrated P(y=1) is the expected true positives at each cut, the cumulative sum of
  1 − P(y=1) the expected false positives; the area under that expected ROC curve
  (`sklearn.metrics.auc`). Tied raw scores are one cut, as roc_curve makes them.
- F1: TP / (TP + ½(FP + FN)) from expected cells; TP = Σ p over rows predicted
  positive, FP = Σ (1 − p) over them, FN = Σ p over rows predicted negative. Multiclass:
  the macro mean of each class's one-vs-rest F1.

Intervals answer "where will the realised metric of this window fall once its labels
arrive, if the probabilities are calibrated?". Realised accuracy is then a
Poisson-binomial count over n: variance Σ q(1 − q), a normal interval. For AUC and F1
there is no closed form, so labels are drawn from the calibrated probabilities
(SIMULATIONS times, seeded) and the realised metric is computed for each draw, against
the same raw scores and predicted classes: the percentile interval of those. It is the
sampling spread of one window, not the error of the calibrator.

Assumptions, and the blind spot. The calibration fitted at registration must still hold:
P(y | output) unchanged. Covariate shift (inputs moving, even into the region where the
model is unsure) keeps it, and the estimate follows the realised metric there. Concept
drift (the relation between inputs and labels changing) breaks it invisibly: the model
is as confident as before, so the estimate stays flat while the realised metric falls.
Only labels (realised quality) can see that. Shift into regions absent from the
calibration data leans on isotonic's clipped ends. Regression has no estimate: a
regressor's output carries no confidence (NannyML's DLE needs a second model).
"""

from __future__ import annotations

import math

import numpy as np

from registry.quality.intervals import normal_quantile, percentile_interval
from registry.quality.metrics import HIGHER_IS_BETTER, METRICS, Figure, Scores
from registry.quality.problem import Predictions

__all__ = ["SIMULATIONS", "estimate"]

SIMULATIONS = 200
"""Label draws behind the AUC and F1 intervals: ±10 % on a 95 % interval's width."""
_BLOCK_ELEMENTS = 1 << 21  # (draw, row) pairs at once: bounded memory on big windows
_NOT_ESTIMATED = "not estimated: CBPE estimates accuracy, ROC AUC and F1"
_REGRESSION = "no estimate for regression: the model's confidence is not in its output"


def estimate(
    predictions: Predictions,
    calibrated: np.ndarray | None,
    *,
    confidence: float = 0.95,
    seed: int = 0,
) -> Scores:
    """Expected metrics of unlabelled rows from calibrated probabilities (module docstring).

    `calibrated` is `registry.quality.calibration.calibrated_proba(...)` for these rows:
    (n, k) class probabilities, or None where the output has none.
    """
    z = normal_quantile(confidence)
    names = METRICS[predictions.task]
    if predictions.task == "regression":
        return Scores({}, dict.fromkeys(names, _REGRESSION))
    problem = _unusable(predictions, calibrated)
    if problem:
        return Scores({}, dict.fromkeys(names, problem))
    assert calibrated is not None
    n, label = predictions.rows, predictions.label
    correct = calibrated[np.arange(n), label]
    accuracy = float(correct.mean())
    half = z * math.sqrt(float((correct * (1.0 - correct)).sum())) / n
    figures = {"accuracy": _figure("accuracy", accuracy, accuracy - half, accuracy + half, n)}
    missing = {name: _NOT_ESTIMATED for name in names if name in ("log_loss", "calibration_error")}
    draws = _draws(calibrated, SIMULATIONS, np.random.default_rng(seed))
    if predictions.task == "binary":
        positive = calibrated[:, 1]
        raw = predictions.score if predictions.score is not None else positive
        expected_auc = _expected_auc(raw, positive)
        if expected_auc is None:
            missing["roc_auc"] = "every calibrated probability is 0 or every one is 1"
        else:
            simulated = _simulated_auc(raw, draws)
            figures["roc_auc"] = _bounded("roc_auc", expected_auc, simulated, n, confidence)
        expected_f1 = _expected_f1(calibrated, label, [1])
        if math.isnan(expected_f1):
            missing["f1"] = "F1 is undefined: no row predicted positive, none likely positive"
        else:
            simulated = _simulated_f1(draws, label, [1])
            figures["f1"] = _bounded("f1", expected_f1, simulated, n, confidence)
    else:
        classes = list(range(calibrated.shape[1]))
        expected_f1 = _expected_f1(calibrated, label, classes)
        simulated = _simulated_f1(draws, label, classes)
        figures["macro_f1"] = _bounded("macro_f1", expected_f1, simulated, n, confidence)
    ordered = {name: figures[name] for name in names if name in figures}
    return Scores(ordered, missing)


def _unusable(predictions: Predictions, calibrated: np.ndarray | None) -> str:
    if calibrated is None:
        return (
            "no probabilities to estimate from (a labels output, or a score output "
            "without a fitted calibration)"
        )
    if calibrated.ndim != 2 or calibrated.shape[0] != predictions.rows:
        shape = list(calibrated.shape)
        return f"calibrated probabilities of shape {shape} for {predictions.rows} rows"
    if predictions.rows < 2:
        return f"{predictions.rows} rows; an estimate needs at least 2"
    if not np.isfinite(calibrated).all():
        return "some calibrated probabilities are NaN or inf"
    if predictions.label.min() < 0 or predictions.label.max() >= calibrated.shape[1]:
        return f"predicted classes outside 0..{calibrated.shape[1] - 1}"
    return ""


def _figure(name: str, value: float, lower: float, upper: float, n: int) -> Figure:
    return Figure(value, max(0.0, lower), min(1.0, upper), n, HIGHER_IS_BETTER[name])


def _bounded(name: str, value: float, simulated: np.ndarray, n: int, confidence: float) -> Figure:
    bounds = percentile_interval(simulated, confidence) or (value, value)
    # The expected metric is a ratio of expectations, not the mean of the simulated
    # ratios; on small windows the two can differ, and the value must sit inside.
    return _figure(name, value, min(bounds[0], value), max(bounds[1], value), n)


def _expected_auc(raw: np.ndarray, positive: np.ndarray) -> float | None:
    from sklearn.metrics import auc

    order = np.argsort(-raw, kind="stable")
    # cumsum of non-negative terms never decreases in floating point: auc() needs
    # monotone x, which rank − cumsum(p) (NannyML's form) can break by one ulp.
    true_positives = np.cumsum(positive[order])
    false_positives = np.cumsum(1.0 - positive[order])
    if true_positives[-1] <= 0 or false_positives[-1] <= 0:
        return None
    cuts = np.r_[np.flatnonzero(np.diff(raw[order])), len(raw) - 1]  # last row of each tie
    tpr = np.r_[0.0, true_positives[cuts] / true_positives[-1]]
    fpr = np.r_[0.0, false_positives[cuts] / false_positives[-1]]
    return float(auc(fpr, tpr))


def _expected_f1(proba: np.ndarray, label: np.ndarray, classes: list[int]) -> float:
    """Mean one-vs-rest F1 from expected cells over `classes`; 0/0 classes left out."""
    scores = []
    for c in classes:
        chosen = label == c
        true_positive = proba[chosen, c].sum()
        false_positive = (1.0 - proba[chosen, c]).sum()
        false_negative = proba[~chosen, c].sum()
        denominator = true_positive + 0.5 * (false_positive + false_negative)
        if denominator > 0:
            scores.append(true_positive / denominator)
    return float(np.mean(scores)) if scores else math.nan


def _draws(proba: np.ndarray, simulations: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Labels drawn from the calibrated probabilities: blocks of (draws, n) classes.

    One uniform per (draw, row); its class is how many of the row's cumulative
    probabilities it reaches, counted one class boundary at a time (a reduction over a
    short trailing axis is several times slower)."""
    n, k = proba.shape
    boundaries = np.cumsum(proba[:, :-1], axis=1, dtype=np.float32).T  # (k − 1, n)
    dtype = np.int8 if k <= np.iinfo(np.int8).max else np.int32
    block = max(1, _BLOCK_ELEMENTS // n)
    blocks = []
    for start in range(0, simulations, block):
        uniform = rng.random((min(block, simulations - start), n), dtype=np.float32)
        drawn = np.zeros(uniform.shape, dtype=dtype)
        for boundary in boundaries:
            drawn += uniform >= boundary
        blocks.append(drawn)
    return blocks


def _simulated_auc(raw: np.ndarray, draws: list[np.ndarray]) -> np.ndarray:
    """Realised AUC per draw: Mann-Whitney from the ranks of the raw scores."""
    from scipy.stats import rankdata

    ranks = rankdata(raw)
    results = []
    for labels in draws:
        positive = labels.astype(np.float64)
        count = positive.sum(axis=1)
        rank_sum = positive @ ranks
        with np.errstate(divide="ignore", invalid="ignore"):  # one-class draws: dropped
            results.append((rank_sum - count * (count + 1) / 2) / (count * (len(raw) - count)))
    return np.concatenate(results)


def _simulated_f1(draws: list[np.ndarray], label: np.ndarray, classes: list[int]) -> np.ndarray:
    """Realised (macro) F1 per draw against the fixed predicted classes; as f1_score does,
    a class neither drawn nor predicted is left out of the mean."""
    results = []
    for labels in draws:
        f1_sum, counted = np.zeros(len(labels)), np.zeros(len(labels))
        for c in classes:
            actual = labels == c
            true_positive = actual[:, label == c].sum(axis=1)
            total = actual.sum(axis=1) + int((label == c).sum())
            f1_sum += np.where(total > 0, 2 * true_positive / np.maximum(total, 1), 0.0)
            counted += total > 0
        with np.errstate(invalid="ignore"):  # F1 of one class, none drawn nor predicted
            results.append(f1_sum / counted)
    return np.concatenate(results)

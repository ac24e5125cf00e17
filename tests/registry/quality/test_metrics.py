"""Realised metrics: values as scikit-learn gives them, intervals that cover, edge cases
that land in `missing` with a reason instead of raising or returning NaN."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import binomtest, norm
from sklearn.calibration import calibration_curve
from sklearn.metrics import (
    accuracy_score,
    f1_score,
    log_loss,
    mean_absolute_error,
    r2_score,
    roc_auc_score,
    root_mean_squared_error,
)

from registry.quality.intervals import wilson
from registry.quality.metrics import METRICS, PRIMARY, Figure, Scores, score
from registry.quality.problem import Predictions


def binary(proba_positive: np.ndarray, threshold: float = 0.5) -> Predictions:
    label = (proba_positive >= threshold).astype(np.int64)
    proba = np.stack([1.0 - proba_positive, proba_positive], axis=1)
    return Predictions("binary", label, proba, proba_positive)


def binary_rows(n: int, seed: int = 0) -> tuple[Predictions, np.ndarray]:
    rng = np.random.default_rng(seed)
    signal = rng.normal(0, 1, n)
    truth = (rng.random(n) < 1 / (1 + np.exp(-2 * signal))).astype(np.int64)
    return binary(1 / (1 + np.exp(-1.5 * signal))), truth


def multiclass_rows(n: int, seed: int = 0) -> tuple[Predictions, np.ndarray]:
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, 3, n)
    logits = rng.normal(0, 1, (n, 3))
    logits[np.arange(n), truth] += 1.2
    proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return Predictions("multiclass", proba.argmax(axis=1), proba, None), truth


def regression_rows(n: int, seed: int = 0) -> tuple[Predictions, np.ndarray]:
    rng = np.random.default_rng(seed)
    truth = rng.normal(10, 3, n)
    return Predictions("regression", truth + rng.normal(0, 1, n), None, None), truth


def test_binary_values_are_sklearns() -> None:
    predictions, truth = binary_rows(2000)
    assert predictions.proba is not None
    figures = score(predictions, truth).figures
    assert list(figures) == list(METRICS["binary"])
    assert figures["accuracy"].value == accuracy_score(truth, predictions.label)
    assert figures["roc_auc"].value == roc_auc_score(truth, predictions.proba[:, 1])
    assert figures["log_loss"].value == pytest.approx(log_loss(truth, predictions.proba))
    assert figures["f1"].value == f1_score(truth, predictions.label)
    positive = predictions.proba[:, 1]
    observed, expected = calibration_curve(truth, positive, n_bins=10)
    bins = np.searchsorted(np.linspace(0, 1, 11)[1:-1], positive)
    counts = np.bincount(bins, minlength=10)
    ece = float((counts[counts > 0] * np.abs(observed - expected)).sum() / len(truth))
    assert figures["calibration_error"].value == pytest.approx(ece)
    for figure in figures.values():
        assert figure.lower <= figure.value <= figure.upper
        assert figure.n == len(truth)


def test_multiclass_and_regression_values_are_sklearns() -> None:
    predictions, truth = multiclass_rows(1500)
    figures = score(predictions, truth, classes=3).figures
    assert figures["accuracy"].value == accuracy_score(truth, predictions.label)
    assert figures["macro_f1"].value == f1_score(truth, predictions.label, average="macro")
    assert figures["log_loss"].value == pytest.approx(log_loss(truth, predictions.proba))
    predictions, truth = regression_rows(1500)
    figures = score(predictions, truth).figures
    assert figures["mae"].value == mean_absolute_error(truth, predictions.label)
    assert figures["rmse"].value == root_mean_squared_error(truth, predictions.label)
    assert figures["r2"].value == r2_score(truth, predictions.label)
    assert not figures["mae"].higher_is_better
    assert figures["r2"].higher_is_better
    for figure in figures.values():
        assert figure.lower <= figure.value <= figure.upper
    assert all(PRIMARY[task] in names for task, names in METRICS.items())


def test_wilson_is_scipys() -> None:
    for successes, n in [(0, 10), (7, 10), (10, 10), (812, 1000)]:
        interval = binomtest(successes, n).proportion_ci(0.95, method="wilson")
        assert wilson(successes, n, 0.95) == pytest.approx((interval.low, interval.high))


def coverage(draws: int, draw: object) -> float:
    assert callable(draw)
    return float(np.mean([draw(np.random.default_rng(seed)) for seed in range(draws)]))


def test_accuracy_auc_and_mae_intervals_cover_the_truth() -> None:
    def accuracy_covered(rng: np.random.Generator) -> bool:
        truth = rng.integers(0, 2, 150)
        right = rng.random(150) < 0.8  # true accuracy 0.8
        predictions = Predictions("binary", np.where(right, truth, 1 - truth), None, None)
        figure = score(predictions, truth).figures["accuracy"]
        return figure.lower <= 0.8 <= figure.upper

    separation = 1.0  # positives' scores N(1, 1), negatives' N(0, 1): AUC Φ(1/√2)
    true_auc = float(norm.cdf(separation / math.sqrt(2)))

    def auc_covered(rng: np.random.Generator) -> bool:
        truth = (rng.random(200) < 0.3).astype(np.int64)
        scores = rng.normal(0, 1, 200) + separation * truth
        predictions = Predictions("binary", (scores > 0.5).astype(np.int64), None, scores)
        figure = score(predictions, truth).figures["roc_auc"]
        return figure.lower <= true_auc <= figure.upper

    def mae_covered(rng: np.random.Generator) -> bool:
        truth = rng.normal(0, 1, 100)
        predictions = Predictions("regression", truth + rng.normal(0, 1, 100), None, None)
        figure = score(predictions, truth).figures["mae"]
        return figure.lower <= math.sqrt(2 / math.pi) <= figure.upper  # E|N(0, 1)|

    for covered in (accuracy_covered, auc_covered, mae_covered):
        assert 0.90 <= coverage(200, covered) <= 0.99, covered.__name__


def test_a_score_output_has_auc_but_no_probability_metrics() -> None:
    rng = np.random.default_rng(3)
    truth = rng.integers(0, 2, 500)
    raw = rng.normal(0, 1, 500) + 2.0 * truth
    predictions = Predictions("binary", (raw >= 1.0).astype(np.int64), None, raw)
    scores = score(predictions, truth)
    assert scores.figures["roc_auc"].value == roc_auc_score(truth, raw)
    assert set(scores.figures) == {"accuracy", "roc_auc", "f1"}
    assert "score output has no probabilities" in scores.missing["log_loss"]
    assert set(scores.missing) == {"log_loss", "calibration_error"}


def test_a_labels_output_has_only_label_metrics() -> None:
    truth = np.array([0, 1, 2, 2, 1, 0, 2, 1])
    predictions = Predictions("multiclass", np.array([0, 1, 2, 1, 1, 0, 2, 2]), None, None)
    scores = score(predictions, truth, classes=3)
    assert set(scores.figures) == {"accuracy", "macro_f1"}
    assert "labels output" in scores.missing["log_loss"]
    binary_labels = Predictions("binary", truth.clip(0, 1), None, None)
    assert "does not rank rows" in score(binary_labels, truth.clip(0, 1)).missing["roc_auc"]


def test_one_class_present() -> None:
    truth = np.ones(50, dtype=np.int64)
    proba = np.linspace(0.05, 0.95, 50)
    scores = score(binary(proba), truth)
    assert "both classes" in scores.missing["roc_auc"]
    assert scores.figures["accuracy"].value == np.mean(proba >= 0.5)
    assert scores.figures["log_loss"].value == pytest.approx(
        log_loss(truth, binary(proba).proba, labels=[0, 1])
    )
    all_negative = score(binary(np.full(20, 0.1)), np.zeros(20, dtype=np.int64))
    assert "no positive label and no positive prediction" in all_negative.missing["f1"]
    constant = score(Predictions("regression", np.arange(5.0), None, None), np.full(5, 2.0))
    assert "every label is 2" in constant.missing["r2"]
    assert set(constant.figures) == {"mae", "rmse"}


@pytest.mark.parametrize("rows", [0, 1])
def test_fewer_than_two_rows_is_all_missing(rows: int) -> None:
    predictions = binary(np.full(rows, 0.7))
    scores = score(predictions, np.ones(rows, dtype=np.int64))
    assert scores.figures == {}
    assert set(scores.missing) == set(METRICS["binary"])
    assert "at least 2" in scores.missing["accuracy"]


def test_all_correct_and_perfect_ranking() -> None:
    truth = np.array([0, 1] * 50)
    proba = np.where(truth == 1, 0.9, 0.1)
    figures = score(binary(proba), truth).figures
    accuracy = figures["accuracy"]
    assert accuracy.value == 1.0
    assert accuracy.upper == 1.0
    assert 0.95 < accuracy.lower < 1.0
    assert (figures["roc_auc"].value, figures["roc_auc"].lower) == (1.0, 1.0)
    assert figures["f1"].value == 1.0


def test_bad_outputs_are_missing_not_nan() -> None:
    proba = np.full(10, 0.6)
    proba[3] = np.nan
    truth = np.array([0, 1] * 5)
    scores = score(binary(proba), truth)
    assert "NaN or inf" in scores.missing["log_loss"]
    assert "NaN" in scores.missing["roc_auc"]
    unnormalised = Predictions("multiclass", np.zeros(4, np.int64), np.full((4, 3), 0.5), None)
    found = score(unnormalised, np.array([0, 1, 2, 0]), classes=3).missing["log_loss"]
    assert "sum to" in found
    regression = Predictions("regression", np.array([1.0, np.inf, 2.0]), None, None)
    assert set(score(regression, np.array([1.0, 2.0, 3.0])).missing) == {"mae", "rmse", "r2"}
    for figure in scores.figures.values():
        assert np.isfinite([figure.value, figure.lower, figure.upper]).all()


def test_float32_probabilities_are_accepted_without_warnings() -> None:
    predictions, truth = multiclass_rows(300, seed=5)
    assert predictions.proba is not None
    rounded = predictions.proba.astype(np.float32).astype(np.float64)  # rows miss 1 by ~1e-7
    found = score(Predictions("multiclass", predictions.label, rounded, None), truth)
    assert found.figures["log_loss"].value == pytest.approx(
        log_loss(truth, predictions.proba), rel=1e-5
    )


def test_seeded_and_json_round_trip() -> None:
    predictions, truth = binary_rows(400, seed=2)
    first, again = score(predictions, truth, seed=7), score(predictions, truth, seed=7)
    assert first == again
    assert Scores.from_json(first.to_json()) == first
    figure = first.figures["f1"]
    assert Figure.from_json(figure.to_json()) == figure
    narrower = score(predictions, truth, confidence=0.5).figures["accuracy"]
    assert narrower.upper - narrower.lower < first.figures["accuracy"].upper - (
        first.figures["accuracy"].lower
    )
    with pytest.raises(ValueError, match="confidence"):
        score(predictions, truth, confidence=1.5)

"""CBPE against a known truth: labels drawn from a logistic model, a fitted classifier,
a calibration fitted on separate labelled rows, then windows whose inputs shift (the
estimate must follow the realised metric) and a window whose concept drifts (it must
not: that is the documented blind spot)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, auc, f1_score, roc_auc_score

from monitors.quality.estimate import estimate
from registry.quality.calibration import calibrated_proba, fit_calibration
from registry.quality.metrics import METRICS
from registry.quality.problem import Predictions

WEIGHTS = np.array([2.0, -1.0, 0.5, 0.0, 0.0])
BIAS = -0.3
WINDOW = 5000


def sigmoid(values: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-values))


def draw(
    rng: np.random.Generator,
    n: int,
    spread: np.ndarray | None = None,
    weights: np.ndarray = WEIGHTS,
) -> tuple[np.ndarray, np.ndarray]:
    features = rng.normal(0, 1, (n, 5)) * (1.0 if spread is None else spread)
    return features, (rng.random(n) < sigmoid(features @ weights + BIAS)).astype(np.int64)


def read(model: LogisticRegression, features: np.ndarray, output: str = "proba") -> Predictions:
    """The model's probabilities, or a deliberately uncalibrated score: 3·logit + 1,
    thresholded at 1 (the same decisions, no probabilities until calibrated)."""
    log_odds = model.decision_function(features)
    if output == "score":
        raw = 3.0 * log_odds + 1.0
        return Predictions("binary", (raw >= 1.0).astype(np.int64), None, raw)
    positive = sigmoid(log_odds)
    proba = np.stack([1.0 - positive, positive], axis=1)
    return Predictions("binary", (positive >= 0.5).astype(np.int64), proba, positive)


# Covariate shift that moves rows towards the decision boundary (x1 squeezed), that
# moves two strong features, and that moves only a feature the truth ignores.
SHIFTS = [
    np.ones(5),
    np.array([0.3, 1, 1, 1, 1]),
    np.array([0.4, 0.5, 1, 1, 1]),
    np.array([1, 1, 1, 3, 1]),
]


@pytest.mark.parametrize("output", ["proba", "score"])
def test_binary_estimate_follows_covariate_shift(output: str) -> None:
    rng = np.random.default_rng(11)
    model = LogisticRegression().fit(*draw(rng, 20_000))
    features, truth = draw(rng, 20_000)  # labelled evaluation rows, not the training ones
    calibration = fit_calibration(read(model, features, output), truth)
    assert calibration.applied or output == "proba"  # a score always needs the map
    inside, errors = 0, []
    for window, spread in enumerate(SHIFTS * 2):
        features, truth = draw(rng, WINDOW, spread)
        predictions = read(model, features, output)
        figures = estimate(predictions, calibrated_proba(calibration, predictions)).figures
        realised = {
            "accuracy": accuracy_score(truth, predictions.label),
            "roc_auc": roc_auc_score(truth, predictions.score),
            "f1": f1_score(truth, predictions.label),
        }
        for name, value in realised.items():
            assert abs(figures[name].value - value) < (0.02 if name == "accuracy" else 0.03), (
                window,
                name,
            )
        accuracy = figures["accuracy"]
        errors.append(accuracy.value - realised["accuracy"])
        inside += accuracy.lower <= realised["accuracy"] <= accuracy.upper
    assert inside >= 6  # of 8: the interval is a window's spread, not the calibrator's error
    assert abs(np.mean(errors)) < 0.01


def test_concept_drift_is_invisible_to_the_estimate() -> None:
    rng = np.random.default_rng(12)
    model = LogisticRegression().fit(*draw(rng, 20_000))
    features, truth = draw(rng, 20_000)
    calibration = fit_calibration(read(model, features), truth)
    before_features, before_truth = draw(rng, WINDOW)
    flipped = WEIGHTS * np.array([1, -1, 1, 1, 1])  # x2's effect turns round
    after_features, after_truth = draw(rng, WINDOW, weights=flipped)
    results = []
    for features, truth in ((before_features, before_truth), (after_features, after_truth)):
        predictions = read(model, features)
        found = estimate(predictions, calibrated_proba(calibration, predictions))
        results.append((found.figures["accuracy"], accuracy_score(truth, predictions.label)))
    (estimated_before, realised_before), (estimated_after, realised_after) = results
    assert realised_before - realised_after > 0.08  # the model really got worse
    assert abs(estimated_after.value - estimated_before.value) < 0.02  # and CBPE saw nothing
    assert estimated_after.lower > realised_after


def test_three_classes() -> None:
    rng = np.random.default_rng(13)
    weights = rng.normal(0, 1.2, (5, 3))

    def three(n: int, spread: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
        features = rng.normal(0, 1, (n, 5)) * spread
        logits = features @ weights
        proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
        return features, (rng.random((n, 1)) > proba.cumsum(axis=1)).sum(axis=1)

    model = LogisticRegression().fit(*three(20_000))

    def read3(features: np.ndarray) -> Predictions:
        proba = model.predict_proba(features)
        return Predictions("multiclass", proba.argmax(axis=1), proba, None)

    features, truth = three(20_000)
    calibration = fit_calibration(read3(features), truth)
    for spread in (1.0, 0.5, 0.3):  # inputs crowding towards the boundaries
        features, truth = three(WINDOW, spread)
        predictions = read3(features)
        found = estimate(predictions, calibrated_proba(calibration, predictions))
        assert set(found.figures) == {"accuracy", "macro_f1"}
        assert "not estimated" in found.missing["log_loss"]
        realised = accuracy_score(truth, predictions.label)
        assert abs(found.figures["accuracy"].value - realised) < 0.02, spread
        macro = f1_score(truth, predictions.label, average="macro")
        assert abs(found.figures["macro_f1"].value - macro) < 0.03, spread


def test_accuracy_interval_covers_windows_drawn_from_the_probabilities() -> None:
    rng = np.random.default_rng(14)
    positive = sigmoid(rng.normal(0, 2, 400))
    predictions = read_probabilities(positive)
    assert predictions.proba is not None
    accuracy = estimate(predictions, predictions.proba).figures["accuracy"]
    outcomes = rng.random((1000, 400)) < positive
    realised = (outcomes == predictions.label.astype(bool)).mean(axis=1)
    covered = np.mean((accuracy.lower <= realised) & (realised <= accuracy.upper))
    assert 0.92 <= covered <= 0.98


def read_probabilities(positive: np.ndarray) -> Predictions:
    proba = np.stack([1.0 - positive, positive], axis=1)
    return Predictions("binary", (positive >= 0.5).astype(np.int64), proba, positive)


def test_expected_auc_is_nannymls_and_ignores_the_order_of_ties() -> None:
    rng = np.random.default_rng(15)
    raw = rng.normal(0, 1, 300)
    calibrated = sigmoid(1.3 * raw)
    predictions = Predictions("binary", (raw > 0).astype(np.int64), None, raw)
    proba = np.stack([1.0 - calibrated, calibrated], axis=1)
    # NannyML's estimate_roc_auc (0.13), without its rounding to 5 decimals.
    order = np.argsort(raw)[::-1]
    true_positives = np.cumsum(calibrated[order])
    false_positives = 1 + np.arange(300) - true_positives
    nannyml = auc(
        np.r_[0, false_positives] / false_positives[-1],
        np.r_[0, true_positives] / true_positives[-1],
    )
    assert estimate(predictions, proba).figures["roc_auc"].value == pytest.approx(nannyml)
    tied = np.round(raw)  # five distinct scores: the order inside a tie must not matter
    shuffled = rng.permutation(300)
    one = estimate(Predictions("binary", predictions.label, None, tied), proba)
    other = estimate(
        Predictions("binary", predictions.label[shuffled], None, tied[shuffled]),
        proba[shuffled],
    )
    assert one.figures["roc_auc"].value == pytest.approx(other.figures["roc_auc"].value)


def test_nothing_to_estimate() -> None:
    regression = Predictions("regression", np.arange(4.0), None, None)
    found = estimate(regression, None)
    assert found.figures == {}
    assert set(found.missing) == set(METRICS["regression"])
    assert "confidence is not in its output" in found.missing["mae"]
    labels_only = Predictions("binary", np.array([0, 1, 1]), None, None)
    assert "no probabilities" in estimate(labels_only, None).missing["accuracy"]
    single = read_probabilities(np.array([0.7]))
    assert single.proba is not None
    assert "at least 2" in estimate(single, single.proba).missing["accuracy"]
    certain = read_probabilities(np.array([1.0, 1.0, 1.0]))
    assert certain.proba is not None
    found = estimate(certain, certain.proba)
    assert found.figures["accuracy"].value == 1.0
    assert "roc_auc" in found.missing
    assert found.figures["f1"].value == 1.0

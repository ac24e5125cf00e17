"""Calibration: NannyML's gate, isotonic applied with np.interp exactly as scikit-learn
predicts it, JSON that round-trips, and the outputs that have nothing to calibrate."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.isotonic import IsotonicRegression

from registry.errors import BadRequest
from registry.quality.calibration import Calibration, calibrated_proba, fit_calibration
from registry.quality.problem import Predictions


def sigmoid(values: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-values))


def binary(positive: np.ndarray) -> Predictions:
    proba = np.stack([1.0 - positive, positive], axis=1)
    return Predictions("binary", (positive >= 0.5).astype(np.int64), proba, positive)


def logistic_rows(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(true log-odds, labels drawn from them)."""
    rng = np.random.default_rng(seed)
    log_odds = rng.normal(0, 1.5, n)
    return log_odds, (rng.random(n) < sigmoid(log_odds)).astype(np.int64)


def test_calibrated_probabilities_are_kept() -> None:
    log_odds, truth = logistic_rows(5000)
    calibration = fit_calibration(binary(sigmoid(log_odds)), truth)
    assert not calibration.applied
    assert calibration.method == "none"
    assert calibration.ece_before is not None
    assert calibration.ece_after is not None
    assert calibration.ece_after >= calibration.ece_before
    assert calibration.reason.startswith("kept: isotonic ECE")
    predictions = binary(sigmoid(log_odds))
    assert calibrated_proba(calibration, predictions) is predictions.proba


def test_overconfident_probabilities_are_calibrated_as_isotonic_would() -> None:
    log_odds, truth = logistic_rows(5000, seed=1)
    predictions = binary(sigmoid(3.0 * log_odds))  # three times too sure
    calibration = fit_calibration(predictions, truth)
    assert calibration.applied
    assert calibration.method == "isotonic"
    assert calibration.ece_before is not None
    assert calibration.ece_after is not None
    assert calibration.ece_after < calibration.ece_before / 3
    assert predictions.proba is not None
    isotonic = IsotonicRegression(out_of_bounds="clip").fit(predictions.proba[:, 1], truth)
    fresh, _ = logistic_rows(1000, seed=2)
    window = binary(sigmoid(3.0 * np.r_[fresh, -40.0, 40.0]))  # and beyond the fitted range
    calibrated = calibrated_proba(calibration, window)
    assert calibrated is not None
    assert window.proba is not None
    np.testing.assert_allclose(calibrated[:, 1], isotonic.predict(window.proba[:, 1]))
    np.testing.assert_allclose(calibrated.sum(axis=1), 1.0)
    stored = Calibration.from_json(json.loads(json.dumps(calibration.to_json())))
    assert stored == calibration
    np.testing.assert_array_equal(calibrated_proba(stored, window), calibrated)
    assert fit_calibration(predictions, truth, seed=0) == calibration


def test_nothing_to_correct() -> None:
    log_odds, truth = logistic_rows(500)
    one_class = fit_calibration(binary(sigmoid(log_odds)), np.ones(500, dtype=np.int64))
    assert not one_class.applied
    assert "one class" in one_class.reason
    separated = fit_calibration(binary(np.where(truth == 1, 0.7, 0.4)), truth)
    assert not separated.applied
    assert "AUROC 1.0000 > 0.999" in separated.reason
    tiny = fit_calibration(binary(sigmoid(log_odds[:12])), truth[:12])
    assert not tiny.applied
    assert "too few" in tiny.reason


def test_a_score_output_is_always_mapped_to_probabilities() -> None:
    log_odds, truth = logistic_rows(3000, seed=3)
    raw = 5.0 * log_odds + 2.0  # a ranking score, not a probability
    predictions = Predictions("binary", (raw >= 0).astype(np.int64), None, raw)
    calibration = fit_calibration(predictions, truth)
    assert calibration.applied
    assert "score output" in calibration.reason
    assert calibration.ece_before is None
    assert calibration.ece_after is not None
    calibrated = calibrated_proba(calibration, predictions)
    assert calibrated is not None
    assert calibrated.shape == (3000, 2)
    assert calibrated.min() >= 0
    assert calibrated.max() <= 1
    # The map recovers the true probabilities it was fitted to.
    assert np.abs(calibrated[:, 1] - sigmoid(log_odds)).mean() < 0.05
    few = fit_calibration(predictions.take(np.arange(8)), truth[:8])
    assert few.applied == (0 < truth[:8].sum() < 8)
    one_class = fit_calibration(predictions, np.zeros(3000, dtype=np.int64))
    assert not one_class.applied
    assert calibrated_proba(one_class, predictions) is None


def test_multiclass_is_one_vs_rest_with_its_own_gates() -> None:
    rng = np.random.default_rng(4)
    logits = rng.normal(0, 1.5, (6000, 3))
    true_proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    truth = (rng.random((6000, 1)) > true_proba.cumsum(axis=1)).sum(axis=1)
    sharpened = np.exp(2.5 * logits)
    proba = sharpened / sharpened.sum(axis=1, keepdims=True)
    predictions = Predictions("multiclass", proba.argmax(axis=1), proba, None)
    calibration = fit_calibration(predictions, truth, seed=1)
    assert calibration.applied
    assert calibration.classes == 3
    assert len(calibration.curves) == 3
    assert [f"class {c}: isotonic" in calibration.reason for c in range(3)] == [True] * 3
    calibrated = calibrated_proba(calibration, predictions)
    assert calibrated is not None
    np.testing.assert_allclose(calibrated.sum(axis=1), 1.0)
    assert np.abs(calibrated - true_proba).mean() < np.abs(proba - true_proba).mean() / 2
    with pytest.raises(BadRequest, match="fitted for 3"):
        calibrated_proba(calibration, Predictions("multiclass", truth, proba[:, :2], None))


def test_outputs_without_probabilities() -> None:
    labels_only = Predictions("binary", np.array([0, 1, 1, 0]), None, None)
    calibration = fit_calibration(labels_only, np.array([0, 1, 0, 0]))
    assert not calibration.applied
    assert "labels output" in calibration.reason
    assert calibrated_proba(calibration, labels_only) is None
    regression = Predictions("regression", np.array([1.0, 2.0]), None, None)
    assert not fit_calibration(regression, np.array([1.0, 2.5])).applied
    assert calibrated_proba(calibration, regression) is None

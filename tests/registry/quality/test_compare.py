"""Champion against challenger: sklearn's values, the gain's sign, paired intervals that
cover the true gain, and a 400 for what cannot be compared."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import norm
from sklearn.metrics import f1_score, log_loss, mean_absolute_error, r2_score, roc_auc_score

from registry.errors import BadRequest
from registry.quality.compare import Comparison, compare
from registry.quality.metrics import METRICS
from registry.quality.problem import Predictions


def binary(positive: np.ndarray) -> Predictions:
    proba = np.stack([1.0 - positive, positive], axis=1)
    return Predictions("binary", (positive >= 0.5).astype(np.int64), proba, positive)


def two_binary_models(n: int, seed: int = 0) -> tuple[np.ndarray, Predictions, Predictions]:
    """A weaker champion and a stronger challenger, both seeing the same hard rows."""
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, 2, n)
    shared = rng.normal(0, 1, n)  # each row's difficulty, common to both models
    signal = 2.0 * truth - 1.0
    champion = 1 / (1 + np.exp(-(1.0 * signal + shared + 0.8 * rng.normal(0, 1, n))))
    challenger = 1 / (1 + np.exp(-(1.4 * signal + shared + 0.8 * rng.normal(0, 1, n))))
    return truth, binary(champion), binary(challenger)


def test_values_and_gain_direction() -> None:
    truth, champion, challenger = two_binary_models(3000)
    assert champion.proba is not None
    assert challenger.proba is not None
    auc = compare("roc_auc", truth, champion, challenger)
    assert auc.champion == roc_auc_score(truth, champion.proba[:, 1])
    assert auc.challenger == roc_auc_score(truth, challenger.proba[:, 1])
    assert auc.gain == pytest.approx(auc.challenger - auc.champion)
    assert 0 < auc.lower < auc.gain < auc.upper
    assert "DeLong" in auc.method
    loss = compare("log_loss", truth, champion, challenger)
    assert loss.champion == pytest.approx(log_loss(truth, champion.proba))
    assert not loss.higher_is_better
    assert loss.gain == pytest.approx(loss.champion - loss.challenger)
    assert loss.lower > 0
    f1 = compare("f1", truth, champion, challenger)
    assert f1.challenger == f1_score(truth, challenger.label)
    assert f1.lower > 0
    assert "paired bootstrap" in f1.method
    assert compare("accuracy", truth, challenger, champion).upper < 0  # roles swapped


def test_all_metrics_of_every_task_run() -> None:
    truth, champion, challenger = two_binary_models(500, seed=1)
    for metric in METRICS["binary"]:
        found = compare(metric, truth, champion, challenger, n_resamples=200)
        assert found.lower <= found.gain <= found.upper, metric
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 3, 400)
    logits = rng.normal(0, 1, (400, 3))
    logits[np.arange(400), labels] += 1.0
    proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    three = Predictions("multiclass", proba.argmax(axis=1), proba, None)
    flat = Predictions("multiclass", np.zeros(400, np.int64), np.full((400, 3), 1 / 3), None)
    macro = compare("macro_f1", labels, flat, three, classes=3, n_resamples=200)
    assert macro.champion == f1_score(labels, flat.label, average="macro")
    assert macro.lower > 0
    values = rng.normal(0, 2, 400)
    near = Predictions("regression", values + rng.normal(0, 1, 400), None, None)
    far = Predictions("regression", values + rng.normal(0, 2, 400), None, None)
    r2 = compare("r2", values, far, near, n_resamples=200)
    assert r2.challenger == r2_score(values, near.label)
    assert r2.lower > 0
    mae = compare("mae", values, far, near, n_resamples=200)
    assert mae.champion == mean_absolute_error(values, far.label)
    assert mae.gain > 0


def test_a_model_against_itself_gains_nothing() -> None:
    truth, champion, _ = two_binary_models(300)
    for metric in ("accuracy", "roc_auc", "calibration_error"):
        found = compare(metric, truth, champion, champion)
        assert (found.gain, found.lower, found.upper) == (0.0, 0.0, 0.0), metric


def test_paired_intervals_cover_the_true_gain() -> None:
    """Scores of both models are N(d·y, 1) with shared noise: true AUCs Φ(d/√2)."""
    true_gain = float(norm.cdf(1.2 / math.sqrt(2)) - norm.cdf(0.9 / math.sqrt(2)))

    def auc_covered(seed: int) -> bool:
        rng = np.random.default_rng(seed)
        truth = (rng.random(300) < 0.4).astype(np.int64)
        shared, own = rng.normal(0, 1, 300), rng.normal(0, 1, (2, 300))
        # Noise 0.8·shared + 0.6·own has variance 1: the AUC formula still holds.
        first = 0.9 * truth + 0.8 * shared + 0.6 * own[0]
        second = 1.2 * truth + 0.8 * shared + 0.6 * own[1]
        old = Predictions("binary", (first > 0.5).astype(np.int64), None, first)
        new = Predictions("binary", (second > 0.5).astype(np.int64), None, second)
        found = compare("roc_auc", truth, old, new)
        return found.lower <= true_gain <= found.upper

    def accuracy_covered(seed: int) -> bool:
        rng = np.random.default_rng(seed)
        truth = rng.integers(0, 2, 300)
        easy = rng.random(300) < 0.6  # right for both; elsewhere 50 % against 70 %
        first = easy | (rng.random(300) < 0.5)
        second = easy | (rng.random(300) < 0.7)
        old = Predictions("binary", np.where(first, truth, 1 - truth), None, None)
        new = Predictions("binary", np.where(second, truth, 1 - truth), None, None)
        found = compare("accuracy", truth, old, new, n_resamples=400, seed=seed)
        return found.lower <= 0.4 * 0.2 <= found.upper

    assert 0.90 <= np.mean([auc_covered(seed) for seed in range(200)]) <= 0.99
    assert 0.88 <= np.mean([accuracy_covered(seed) for seed in range(150)]) <= 0.99


def test_what_cannot_be_compared_is_a_bad_request() -> None:
    truth, champion, challenger = two_binary_models(100)
    score_only = Predictions("binary", champion.label, None, champion.score)
    with pytest.raises(BadRequest, match="log_loss cannot be computed for the champion"):
        compare("log_loss", truth, score_only, challenger)
    labels_only = Predictions("binary", challenger.label, None, None)
    with pytest.raises(BadRequest, match="for the challenger: a labels output"):
        compare("roc_auc", truth, champion, labels_only)
    with pytest.raises(BadRequest, match="not a metric of a binary model"):
        compare("mae", truth, champion, challenger)
    with pytest.raises(BadRequest, match="same rows"):
        compare("accuracy", truth[:50], champion, challenger)
    regression = Predictions("regression", truth.astype(np.float64), None, None)
    with pytest.raises(BadRequest, match="binary model and the challenger a regression"):
        compare("accuracy", truth, champion, regression)
    with pytest.raises(BadRequest, match="both classes"):
        compare("roc_auc", np.ones(100, np.int64), champion, challenger)
    with pytest.raises(BadRequest, match="at least 2"):
        compare("accuracy", truth[:1], champion.take(np.arange(1)), challenger.take(np.arange(1)))


def test_seeded_and_json() -> None:
    truth, champion, challenger = two_binary_models(200)
    first = compare("f1", truth, champion, challenger, seed=3)
    assert first == compare("f1", truth, champion, challenger, seed=3)
    document = first.to_json()
    assert document["metric"] == "f1"
    assert Comparison(**document) == first

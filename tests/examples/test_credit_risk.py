from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from examples.credit_risk.data import (
    FEATURES,
    LABEL,
    Drift,
    default_probability,
    generate,
    source_uri,
)
from examples.credit_risk.model import build_model
from examples.credit_risk.train import auc, train
from exporters import export
from registry import Registry, TrainingContext
from registry.training import EpochListener


def test_the_generator_is_seedable_and_tabular() -> None:
    first, again, other = generate(500, seed=1), generate(500, seed=1), generate(500, seed=2)
    assert list(first.columns) == [*FEATURES, LABEL]
    assert len(FEATURES) >= 12
    assert first.equals(again)
    assert not first.equals(other)
    assert first[FEATURES].dtypes.unique().tolist() == [np.dtype(np.float32)]
    assert set(first[LABEL].unique()) <= {0, 1}
    with pytest.raises(ValueError, match="rows"):
        generate(0)


def test_the_ground_truth_moves_the_way_lending_sense_says() -> None:
    base = generate(2000, seed=3)
    riskier = base.copy()
    riskier["late_payments_90d"] += 2
    assert (default_probability(riskier) > default_probability(base)).all()
    richer = base.copy()
    richer["income"] *= 2
    assert (default_probability(richer) < default_probability(base)).all()


def test_drift_moves_the_population_and_the_concept() -> None:
    base = generate(5000, seed=4)
    drifted = generate(5000, seed=4, drift=Drift.recession())
    assert drifted["income"].median() < 0.8 * base["income"].median()
    assert drifted["credit_utilization"].mean() > base["credit_utilization"].mean() + 0.1
    assert drifted[LABEL].mean() > base[LABEL].mean()
    assert (default_probability(base, concept_shift=1.0) != default_probability(base)).any()
    assert source_uri(10, 1) == "generated://examples.credit_risk?rows=10&seed=1"
    assert "income_factor=0.7" in source_uri(10, 1, Drift.recession())


def test_training_learns_close_to_the_truth() -> None:
    data = generate(6000, seed=5)
    result = train(data, {"epochs": 6}, seed=5, source="test://credit")
    metrics = {k: m.value for k, m in result.metrics.items()}
    truth_auc = auc(data[LABEL].to_numpy(), default_probability(data))
    assert metrics["auc"] > 0.65
    assert metrics["auc"] > truth_auc - 0.06
    assert {d.name for d in result.datasets} == {"train", "valid"}
    assert (result.params["epochs"], result.params["seed"]) == (6, 5)
    assert result.datasets[0].source == "test://credit#train"


def test_auc_edge_cases() -> None:
    assert auc(np.array([0, 1]), np.array([0.1, 0.9])) == 1.0
    assert auc(np.array([0, 1]), np.array([0.5, 0.5])) == 0.5
    assert np.isnan(auc(np.array([1, 1]), np.array([0.1, 0.9])))


def test_the_network_scripts_rather_than_falling_back_to_a_trace(tmp_path: Path) -> None:
    registry = Registry(home=tmp_path)
    version = registry.register(
        build_model(), "net", torch.randn(4, 14), factory="examples.credit_risk.model:build_model"
    )
    result = export(registry, version.ref, "torchscript")
    assert result.artifact.details["method"] == "script", result.artifact.details.get(
        "script_error"
    )
    registry.close()


def retraining_context(data: pd.DataFrame, listener: EpochListener | None) -> TrainingContext:
    """A retraining task's context: the window's features with their label column."""
    return TrainingContext(
        window=data.rename(columns={LABEL: "label"}),
        label_columns=("label",),
        reference=None,
        parent="credit-risk:1",
        task_id=7,
        seed=5,
        listener=listener,
    )


def test_the_trainer_reports_each_epoch_through_its_context() -> None:
    data = generate(3000, seed=5)
    heard: list[tuple[int, int | None, dict[str, float]]] = []
    reported = train(
        data,
        {"epochs": 5},
        seed=5,
        context=retraining_context(data, lambda e, t, m: heard.append((e, t, dict(m)))),
    )
    assert [(epoch, total) for epoch, total, _ in heard] == [(i, 5) for i in range(1, 6)]
    losses = [metrics["loss"] for _, _, metrics in heard]
    assert all(0 < loss < 1 for loss in losses)  # a mean binary cross-entropy
    assert losses[-1] < losses[0]  # it learns
    # Nobody listening: the same training, told to no one.
    quiet = train(data, {"epochs": 5}, seed=5, context=retraining_context(data, None))
    assert quiet.metrics["auc"].value == reported.metrics["auc"].value


def test_a_failing_listener_never_stops_the_training(caplog: pytest.LogCaptureFixture) -> None:
    def broken(_epoch: int, _total: int | None, _metrics: Mapping[str, float]) -> None:
        raise RuntimeError("the display broke")

    data = generate(1000, seed=6)
    with caplog.at_level(logging.WARNING, logger="mlgate.retrainer"):
        result = train(data, {"epochs": 2}, seed=6, context=retraining_context(data, broken))
    quiet = train(data, {"epochs": 2}, seed=6, context=retraining_context(data, None))
    assert result.metrics["auc"].value == quiet.metrics["auc"].value  # trained all the same
    failures = [r for r in caplog.records if "the progress listener failed" in r.getMessage()]
    assert len(failures) == 2  # once per epoch, with its traceback
    assert failures[0].exc_info is not None

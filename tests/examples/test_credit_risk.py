from __future__ import annotations

from pathlib import Path

import numpy as np
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
from registry import Registry


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

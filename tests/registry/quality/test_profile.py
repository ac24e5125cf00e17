"""The quality profile fixed at registration: problem, baseline, calibration, importances;
and candidates that stay out of `@latest` until promoted."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch

from examples.scenarios.data import FEATURES, LABEL, generate
from examples.scenarios.train import TRAINER, train
from exporters import export
from exporters.imports import import_file
from registry import Registry
from registry.errors import Conflict, InvalidModelInput
from registry.quality.metrics import score
from registry.quality.problem import read_predictions
from registry.quality.profile import QualityProfile, QualitySpec, read_evaluation, read_profile
from tests.fixtures import make_mlp, onnx_file


def profile_of(registry: Registry, ref: str) -> QualityProfile:
    artifact = registry.get(ref).artifact("quality")
    assert artifact is not None
    return read_profile(registry.open_artifact(artifact))


def test_a_trained_version_carries_its_baseline_calibration_and_importances(
    sqlite_registry: Registry,
) -> None:
    result = train(generate("binary", 4000, seed=1), {"task": "binary", "epochs": 6}, seed=0)
    version = result.register(sqlite_registry, "sensor", trainer=TRAINER)
    assert version.problem is not None
    assert (version.problem.task, version.problem.output_kind) == ("binary", "probabilities")
    assert version.problem.source == "declared"
    artifact = version.artifact("quality")
    assert artifact is not None
    folder = sqlite_registry.open_artifact(artifact)
    profile = read_profile(folder)
    assert profile.evaluation_rows == 1000  # the trainer's validation split
    assert profile.baseline is not None
    # The baseline is what scoring the stored evaluation rows gives: reproducible.
    evaluation = read_evaluation(folder)
    assert evaluation is not None
    again = score(
        read_predictions(version.problem, evaluation.outputs["prediction"]),
        evaluation.labels,
        classes=2,
    )
    assert again.figures["roc_auc"].value == pytest.approx(
        profile.baseline.figures["roc_auc"].value
    )
    auc = profile.baseline.figures["roc_auc"]
    assert auc.lower < auc.value < auc.upper
    assert profile.calibration is not None
    # The truth uses s0..s4; s5..s11 are noise: the importances say so.
    assert profile.importance is not None
    shares = profile.importance.features
    assert sum(shares.values()) == pytest.approx(1.0)
    assert set(list(shares)[:4]) == {"s0", "s1", "s2", "s3"}
    assert sum(shares[f"s{i}"] for i in range(5, 12)) < 0.25  # seven noise channels


def test_an_onnx_file_alone_gets_a_profile_from_its_evaluation_data(
    sqlite_registry: Registry, tmp_path: Path
) -> None:
    result = train(
        generate("multiclass", 3000, seed=1), {"task": "multiclass", "epochs": 4}, seed=0
    )
    path = onnx_file(
        tmp_path / "m.onnx", model=result.model, features=12, names=("features", "proba")
    )
    bare = import_file(sqlite_registry, "bare", path, feature_names=FEATURES)
    assert bare.version.problem is None  # three float columns and nothing says what they are
    assert "declare it at registration" in bare.version.problem_reason
    labelled = import_file(
        sqlite_registry,
        "bare",
        path,
        feature_names=FEATURES,
        reference=generate("multiclass", 2000, seed=2)[FEATURES],
        quality=QualitySpec(evaluation=generate("multiclass", 1000, seed=3), label=LABEL),
    )
    problem = labelled.version.problem
    assert problem is not None
    assert (problem.task, problem.output_kind, problem.classes) == (
        "multiclass",
        "probabilities",
        3,
    )
    assert problem.source == "inferred"
    assert labelled.version.lineage["trainer"] is None


def test_a_labelled_reference_gives_a_holdout_and_says_so(sqlite_registry: Registry) -> None:
    data = generate("regression", 1000, seed=4)
    reference = data[[*FEATURES, LABEL]]
    result = train(data, {"task": "regression", "epochs": 2}, seed=0)
    version = sqlite_registry.register(
        result.model,
        "reg",
        result.example_inputs,
        feature_names=FEATURES,
        reference=reference,
        label=LABEL,
    )
    assert version.problem is not None
    assert version.problem.task == "regression"  # inferred from labels that are not whole
    profile = profile_of(sqlite_registry, version.ref)
    assert profile.evaluation_source == "reference holdout"
    assert profile.evaluation_rows == 300
    assert version.lineage["reference"]["rows"] == 700


def test_bad_quality_declarations_are_refused_before_anything_is_written(
    sqlite_registry: Registry,
) -> None:
    frame = pd.DataFrame(np.random.default_rng(0).standard_normal((50, 6)), columns=list("abcdef"))
    cases: list[tuple[dict[str, Any], str]] = [
        ({"task": "binary", "evaluation": frame}, "no label column None"),
        ({"task": "binary", "evaluation": frame.assign(y=2), "label": "y"}, "not class indices"),
        ({"task": "ranking"}, "task must be one of"),
        ({"output_kind": "logits"}, "need task= to be given"),
        ({"task": "binary", "evaluation": (frame, np.zeros(3))}, "50 rows but 3 labels"),
    ]
    for options, message in cases:
        with pytest.raises(InvalidModelInput, match=message):
            sqlite_registry.register(
                make_mlp(), "bad", torch.randn(4, 6), feature_names=list("abcdef"), **options
            )
    assert sqlite_registry.models() == []


def test_a_candidate_is_never_latest_until_promoted_and_a_declined_one_stays_out(
    sqlite_registry: Registry,
) -> None:
    first = sqlite_registry.register(make_mlp(), "m", torch.randn(4, 6))
    assert export(sqlite_registry, first.ref, "onnx").passed
    candidate = sqlite_registry.register(make_mlp(seed=1), "m", torch.randn(4, 6), candidate=True)
    assert candidate.status == "candidate"
    assert export(sqlite_registry, candidate.ref, "onnx").passed
    assert sqlite_registry.get("m:2").status == "candidate"  # passing the gate keeps it one
    assert sqlite_registry.get("m@latest").version == 1
    declined = sqlite_registry.decline("m:2")
    assert declined.status == "declined"
    assert sqlite_registry.get("m@latest").version == 1
    with pytest.raises(Conflict, match="not a candidate"):
        sqlite_registry.decline("m:1")
    # A person may still promote it: it then becomes an ordinary, ready version.
    sqlite_registry.set_alias("m", "production", 2, reason="a person's choice")
    assert sqlite_registry.get("m:2").status == "ready"
    assert sqlite_registry.get("m@latest").version == 2

"""The registry API. Every test here runs against SQLite and against a real PostgreSQL."""

from __future__ import annotations

import itertools
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch

from registry import Dataset, Metric, ModelVersion, Registry
from registry.errors import (
    AliasNotFound,
    AliasUnchanged,
    BadRequest,
    InvalidModelInput,
    InvalidName,
    ModelNotFound,
    NotServable,
    VersionNotFound,
)
from registry.store import StagedArtifact
from tests.fixtures import TwoInputs, make_mlp

FEATURES = [f"f{i}" for i in range(6)]


def _register(
    registry: Registry, name: str = "churn", seed: int = 0, **options: Any
) -> ModelVersion:
    torch.manual_seed(seed)
    frame = pd.DataFrame(np.random.default_rng(seed).standard_normal((300, 6)), columns=FEATURES)
    train = Dataset.from_frame(frame, name="train", source="s3://bucket/train.parquet")
    valid = Dataset.from_frame(
        frame.iloc[:50], name="valid", source="s3://bucket/valid.parquet", role="validation"
    )
    arguments: dict[str, object] = {
        "feature_names": FEATURES,
        "reference": frame.astype(np.float32),
        "datasets": [train, valid],
        "trainer": "tests.fixtures:make_mlp",
        "params": {"hidden": 16, "lr": 0.01},
        "metrics": {"auc": Metric(0.81, dataset="valid")},
        "factory": "tests.fixtures:make_mlp",
    }
    return registry.register(
        make_mlp(seed=seed), name, torch.randn(8, 6), **{**arguments, **options}
    )


def _mark_ready(registry: Registry, ref: str) -> None:
    """Attach a passing export the way the exporters do (tested for real in tests/exporters)."""
    with registry.stage() as folder:
        (folder / "model.onnx").write_bytes(ref.encode())
        staged = registry.commit_artifact(folder, "onnx", status="passed", parity={"passed": True})
    registry.add_artifact(ref, staged)


def test_versions_are_integers_that_grow_per_model(registry: Registry) -> None:
    assert _register(registry).ref == "churn:1"
    assert _register(registry, seed=1).ref == "churn:2"
    assert _register(registry, name="fraud").ref == "fraud:1"
    assert [v.version for v in registry.versions("churn")] == [1, 2]
    assert registry.get("churn").version == 2


def test_a_version_records_its_lineage(registry: Registry) -> None:
    version = _register(registry)
    lineage = version.lineage
    assert [d["name"] for d in lineage["datasets"]] == ["train", "valid"]
    assert len(lineage["datasets"][0]["digest"]) == 64
    assert lineage["datasets"][0]["source"] == "s3://bucket/train.parquet"
    assert lineage["trainer"] == "tests.fixtures:make_mlp"
    assert lineage["params"] == {"hidden": 16, "lr": 0.01}
    assert lineage["metrics"] == {"auc": {"value": 0.81, "dataset": "valid"}}
    assert lineage["factory"]["entrypoint"] == "tests.fixtures:make_mlp"
    assert lineage["environment"]["torch"].startswith("2.")
    assert lineage["parent"] is None
    assert version.task_id is None
    # The tests live in this project's git work tree (when it is one).
    if lineage["code"] is not None:
        assert len(lineage["code"]["commit"]) == 40
        assert isinstance(lineage["code"]["dirty"], bool)
    assert lineage["reference"]["rows"] == 300
    assert version.signature.feature_names == {"x": FEATURES}
    assert [a.kind for a in version.artifacts] == ["source", "reference", "quality"]
    assert version.status == "registered"


def test_parent_and_task_are_recorded_and_walkable(registry: Registry) -> None:
    _register(registry)
    child = _register(registry, seed=1, parent="churn:1", task_id="task-7")
    assert child.parent == "churn:1"
    assert child.task_id == "task-7"
    grandchild = _register(registry, seed=2, parent="churn:2")
    lineage = registry.lineage(grandchild.ref)
    assert [a["ref"] for a in lineage["ancestors"]] == ["churn:2", "churn:1"]
    assert lineage["ancestors"][0]["task_id"] == "task-7"


def test_lineage_answers_what_a_dataset_produced(registry: Registry) -> None:
    first = _register(registry)
    digest = first.lineage["datasets"][0]["digest"]
    _register(registry, name="fraud")
    _register(registry, seed=5)
    assert registry.versions_trained_on(digest) == ["churn:1", "fraud:1"]


def test_unknown_model_version_or_alias(registry: Registry) -> None:
    _register(registry)
    with pytest.raises(ModelNotFound, match="'nope' is not registered") as caught:
        registry.get("nope")
    assert caught.value.status_code == 404
    with pytest.raises(VersionNotFound, match=r"no version 9 \(newest: 1\)"):
        registry.get("churn:9")
    with pytest.raises(AliasNotFound, match="no alias 'production'"):
        registry.get("churn@production")
    with pytest.raises(VersionNotFound, match="no ready version"):
        registry.get("churn@latest")
    with pytest.raises(ModelNotFound):
        registry.set_alias("nope", "production", 1, reason="x")
    with pytest.raises(VersionNotFound):
        registry.set_alias("churn", "production", 5, reason="x")


def test_aliases_move_with_an_audit_log(registry: Registry) -> None:
    _register(registry)
    _register(registry, seed=1)
    _mark_ready(registry, "churn:1")
    _mark_ready(registry, "churn:2")
    first = registry.set_alias("churn", "production", 1, reason="first launch", actor="ana")
    assert (first.from_version, first.to_version, first.actor) == (None, 1, "ana")
    registry.set_alias("churn", "production", 2, reason="better auc", actor="bo")
    registry.set_alias("churn", "staging", 1, reason="shadow", actor="bo")
    assert registry.get("churn@production").version == 2
    assert registry.get("churn:2").aliases == ("production",)
    history = registry.alias_history("churn", "production")
    assert [(e.from_version, e.to_version, e.actor, e.reason) for e in history] == [
        (None, 1, "ana", "first launch"),
        (1, 2, "bo", "better auc"),
    ]
    assert history[0].at <= history[1].at
    assert len(registry.alias_history("churn")) == 3
    assert registry.models()[0].aliases == {"production": 2, "staging": 1}


def test_latest_means_the_newest_ready_version(registry: Registry) -> None:
    _register(registry)
    _register(registry, seed=1)
    _mark_ready(registry, "churn:1")
    assert registry.get("churn@latest").version == 1
    assert registry.get("churn").version == 2
    _mark_ready(registry, "churn:2")
    assert registry.get("churn@latest").version == 2
    summary = registry.models()[0]
    assert (summary.versions, summary.latest_version, summary.latest_ready) == (2, 2, 2)


def test_moving_an_alias_to_where_it_points_is_refused(registry: Registry) -> None:
    _register(registry)
    _mark_ready(registry, "churn:1")
    registry.set_alias("churn", "production", 1, reason="launch")
    with pytest.raises(AliasUnchanged, match="already points to churn:1") as caught:
        registry.set_alias("churn", "production", 1, reason="again")
    assert caught.value.status_code == 409
    assert len(registry.alias_history("churn")) == 1


@pytest.mark.parametrize("alias", ["latest", "../x", "", "v2", "x" * 65, "Prod"])
def test_invalid_aliases_write_nothing(registry: Registry, alias: str) -> None:
    _register(registry)
    _mark_ready(registry, "churn:1")
    with pytest.raises(InvalidName):
        registry.set_alias("churn", alias, 1, reason="x")
    assert registry.alias_history("churn") == []


def test_a_reason_is_required(registry: Registry) -> None:
    _register(registry)
    _mark_ready(registry, "churn:1")
    with pytest.raises(BadRequest, match="reason is required"):
        registry.set_alias("churn", "production", 1, reason="  ")


def test_a_version_nothing_passed_for_cannot_be_promoted(registry: Registry) -> None:
    _register(registry)
    with pytest.raises(NotServable, match="nothing exported yet"):
        registry.set_alias("churn", "production", 1, reason="launch")
    with registry.stage() as folder:
        (folder / "model.onnx").write_bytes(b"bad")
        staged = registry.commit_artifact(folder, "onnx", status="failed", parity={"passed": False})
    registry.add_artifact("churn:1", staged)
    with pytest.raises(NotServable, match="onnx: failed"):
        registry.set_alias("churn", "production", 1, reason="launch")
    with pytest.raises(NotServable, match="failed the parity gate"):
        registry.open_servable("churn:1", "onnx")
    assert registry.get("churn:1").status == "registered"


@pytest.mark.parametrize("name", ["../x", "", "x" * 65, "a b"])
def test_invalid_model_names_write_nothing(registry: Registry, name: str, tmp_path: Path) -> None:
    with pytest.raises(InvalidName):
        _register(registry, name=name)
    assert registry.models() == []
    assert not (tmp_path / "home" / "artifacts").exists()


@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        ({"metrics": {"auc": 0.9}}, "must say which dataset"),
        ({"metrics": {"auc": Metric(0.9, "test")}}, "not one of the version's datasets"),
        ({"params": {"fn": object()}}, "JSON values"),
        ({"parent": "churn:7"}, "no version 7"),
        ({"trainer": "tests.fixtures:missing"}, "has no attribute"),
        ({"feature_names": ["a", "b"]}, "6 features but 2"),
    ],
)
def test_bad_registrations_write_nothing(
    registry: Registry, options: dict[str, Any], fragment: str, tmp_path: Path
) -> None:
    _register(registry)
    stored = sorted((tmp_path / "home" / "artifacts").rglob("*"))
    with pytest.raises((InvalidModelInput, VersionNotFound), match=fragment):
        _register(registry, seed=1, **options)
    assert [v.version for v in registry.versions("churn")] == [1]
    assert sorted((tmp_path / "home" / "artifacts").rglob("*")) == stored


def test_a_model_class_in_main_is_registered_without_a_factory(registry: Registry) -> None:
    model = make_mlp()
    type(model).__module__  # noqa: B018 - the class lives in tests.fixtures
    version = registry.register(model, "nofactory", torch.randn(2, 6))
    assert version.lineage["factory"]["entrypoint"] == "tests.fixtures:TabularMLP"

    class Local(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x * 2

    local = registry.register(Local(), "local", torch.randn(2, 3))
    assert local.lineage["factory"]["entrypoint"] is None
    assert "Local" in local.lineage["factory"]["error"]


def test_models_with_several_named_inputs_and_outputs(registry: Registry) -> None:
    examples = {"numeric": torch.randn(4, 4), "counts": torch.randint(0, 5, (4, 3))}
    version = registry.register(
        TwoInputs(),
        "two",
        examples,
        output_names=["score", "label"],
        reference={k: v.numpy() for k, v in examples.items()},
    )
    assert version.signature.input_names == ["numeric", "counts"]
    assert [o.describe() for o in version.signature.outputs] == [
        "score: float32[batch, 1]",
        "label: int64[batch]",
    ]
    reference = version.artifact("reference")
    assert reference is not None
    assert reference.details["rows"] == 4


def test_staged_artifacts_attach_to_versions(registry: Registry) -> None:
    _register(registry)
    with registry.stage() as folder:
        (folder / "model.pt").write_bytes(b"ts")
        staged = registry.commit_artifact(
            folder, "torchscript", status="passed", details={"method": "script"}
        )
    assert isinstance(staged, StagedArtifact)
    info = registry.add_artifact("churn:1", staged)
    assert info.servable
    version, artifact, path = registry.open_servable("churn", "torchscript")
    assert version.status == "ready"
    assert (path / "model.pt").read_bytes() == b"ts"
    assert artifact.details == {"method": "script"}


def test_concurrent_alias_moves_keep_one_consistent_history(
    registry_url: str, tmp_path: Path
) -> None:
    """Writers racing to create and move one alias: no database error, an unbroken chain."""
    setup = Registry(url=registry_url, home=tmp_path / "home")
    for seed in range(3):
        _register(setup, seed=seed)
        _mark_ready(setup, f"churn:{seed + 1}")
    clients = [Registry(url=registry_url, home=tmp_path / "home") for _ in range(6)]

    def move(index: int) -> str:
        try:
            clients[index].set_alias("churn", "production", index % 3 + 1, reason=f"writer {index}")
        except AliasUnchanged:
            return "unchanged"
        return "moved"

    try:
        with ThreadPoolExecutor(max_workers=6) as pool:
            outcomes = list(pool.map(move, range(6)))
        history = setup.alias_history("churn", "production")
        assert len(history) == outcomes.count("moved") >= 1
        assert history[0].from_version is None
        for before, after in itertools.pairwise(history):
            assert after.from_version == before.to_version
        assert setup.get("churn@production").version == history[-1].to_version
    finally:
        for client in [setup, *clients]:
            client.close()


def test_a_failed_re_export_does_not_take_away_a_passed_artifact(registry: Registry) -> None:
    _register(registry)
    _mark_ready(registry, "churn:1")
    registry.set_alias("churn", "production", 1, reason="launch")
    with registry.stage() as folder:
        (folder / "model.onnx").write_bytes(b"stricter tolerances, failed")
        staged = registry.commit_artifact(folder, "onnx", status="failed", parity={"passed": False})
    registry.add_artifact("churn:1", staged)
    version = registry.get("churn@production")
    newest, servable = version.artifact("onnx"), version.servable_artifact("onnx")
    assert newest is not None
    assert servable is not None
    assert newest.status == "failed"
    assert servable.status == "passed"
    _, artifact, path = registry.open_servable("churn@production", "onnx")
    assert artifact == servable
    assert (path / "model.onnx").read_bytes() == b"churn:1"
    assert version.status == "ready"

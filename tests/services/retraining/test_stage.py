"""A candidate's canary stage, advanced by the retraining worker: promoted on enough live
rows, rejected when a gateway rolled the canary back, left for a person otherwise."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from monitors.log.inference_log import InferenceLog, LogSettings
from monitors.settings import MonitorSettings
from monitors.tasks.store import TaskStore
from registry.store import Registry
from services.retraining.stage import CanaryStage
from tests.fixtures import ready_version


@pytest.fixture
def setup(sqlite_registry: Registry, tmp_path: Path) -> tuple[CanaryStage, TaskStore, int]:
    registry = sqlite_registry
    serving, candidate = ready_version(registry, 0), ready_version(registry, 1, candidate=True)
    registry.set_alias("churn", "production", serving, reason="first")
    settings = MonitorSettings(
        home=tmp_path, retrain_stage="canary", retrain_stage_rows=50, retrain_stage_weight=0.2
    )
    tasks = TaskStore(registry.db, cooldown_s=0, min_rows=0)
    opened = tasks.open("churn", serving, "realised_drop", evidence={}, source="test", actor="t")
    assert opened.task is not None
    task_id = opened.task.id
    tasks.transition(task_id, "running", reason="claimed", actor="w")
    task = tasks.transition(
        task_id, "candidate", reason="won", actor="w", candidate_version=candidate
    )
    stage = CanaryStage(registry, tasks, settings, alias="production", worker="w")
    staged = stage.start(task, candidate, "won offline")
    assert staged.outcome["stage"]["state"] == "running"
    return stage, tasks, task_id


def _log_rows(stage: CanaryStage, version: int, rows: int) -> None:
    log = InferenceLog(LogSettings(directory=stage.settings.log_path(), max_rows_per_s=1e9))
    log.start()
    signature = stage.registry.get(f"churn:{version}").signature
    x = np.zeros((rows, 6), np.float32)
    log.record("churn", version, signature, "r", {"x": x}, {"output": x[:, :1]}, 0.001)
    log.close(10)


def test_enough_live_rows_complete_the_canary_and_promote_the_candidate(
    setup: tuple[CanaryStage, TaskStore, int],
) -> None:
    stage, _, task_id = setup
    assert stage.advance() == []  # no live rows yet: it keeps running
    _log_rows(stage, 2, 60)
    [moved] = stage.advance()
    assert (moved.id, moved.status) == (task_id, "promoted")
    assert moved.outcome["stage"]["state"] == "completed"
    assert moved.outcome["stage"]["rows"] == 60
    assert stage.registry.get("churn@production").version == 2
    assert stage.advance() == []


def test_a_rolled_back_canary_rejects_the_candidate(
    setup: tuple[CanaryStage, TaskStore, int],
) -> None:
    stage, _, _ = setup
    stage.registry.canaries.end(
        "churn", "production", "rolled_back", reason="errors: 40/100", evidence={"rule": "errors"}
    )
    [moved] = stage.advance()
    assert (moved.status, moved.outcome["stage"]["evidence"]) == ("rejected", {"rule": "errors"})
    assert stage.registry.get("churn:2").status == "declined"
    assert stage.registry.get("churn@production").version == 1


def test_a_canary_without_enough_rows_in_time_is_left_for_a_person(
    setup: tuple[CanaryStage, TaskStore, int],
) -> None:
    stage, _, _ = setup
    stage.settings = stage.settings.model_copy(update={"retrain_stage_timeout_s": 0.001})
    [moved] = stage.advance()
    assert (moved.status, moved.outcome["stage"]["state"]) == ("candidate", "stopped")
    assert stage.registry.canaries.of("churn")[0].status == "stopped"
    assert stage.advance() == []  # a person approves or rejects it from here

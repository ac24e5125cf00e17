"""A candidate's shadow stage, advanced by the retraining worker from the paired rows in the
inference log: promoted when no slower and of no worse quality, rejected when slower, left
for a person when its shadow is cleared or the rows do not come."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from monitors.log.inference_log import InferenceLog, LogSettings
from monitors.settings import MonitorSettings
from monitors.tasks.store import TaskStore
from registry.store import Registry
from services.retraining.shadow_stage import ShadowStage
from tests.fixtures import ready_version


@pytest.fixture
def stage(sqlite_registry: Registry, tmp_path: Path) -> ShadowStage:
    registry = sqlite_registry
    serving, candidate = ready_version(registry, 0), ready_version(registry, 1, candidate=True)
    registry.set_alias("churn", "production", serving, reason="first")
    settings = MonitorSettings(home=tmp_path, retrain_stage="shadow", retrain_stage_rows=40)
    tasks = TaskStore(registry.db, cooldown_s=0, min_rows=0)
    opened = tasks.open("churn", serving, "realised_drop", evidence={}, source="t", actor="t")
    assert opened.task is not None
    tasks.transition(opened.task.id, "running", reason="claimed", actor="w")
    task = tasks.transition(
        opened.task.id, "candidate", reason="won", actor="w", candidate_version=candidate
    )
    made = ShadowStage(registry, tasks, settings, alias="production", worker="w")
    staged = made.start(task, candidate, "won offline")
    assert staged.outcome["stage"]["kind"] == "shadow"
    assert registry.shadows.of("churn")[0].version == candidate
    return made


def _pairs(stage: ShadowStage, rows: int, candidate_latency_s: float) -> None:
    log = InferenceLog(LogSettings(directory=stage.settings.log_path(), max_rows_per_s=1e9))
    log.start()
    x = np.zeros((1, 6), np.float32)
    for version, latency in ((1, 0.002), (2, candidate_latency_s)):
        signature = stage.registry.get(f"churn:{version}").signature
        for i in range(rows):
            out = {"output": np.full((1, 1), version, np.float32)}
            log.record("churn", version, signature, f"r{i}", {"x": x}, out, latency)
    log.close(10)


def test_enough_paired_rows_no_slower_promote_the_candidate(stage: ShadowStage) -> None:
    assert stage.advance() == []  # nothing paired yet
    _pairs(stage, 50, 0.002)
    [moved] = stage.advance()
    assert moved.status == "promoted"
    evidence = moved.outcome["stage"]
    assert (evidence["state"], evidence["paired"]) == ("completed", 50)
    assert evidence["agreement"]["kind"] == "differences"
    assert stage.registry.get("churn@production").version == 2
    assert stage.registry.shadows.of("churn") == []


def test_a_slower_candidate_is_rejected_and_declined(stage: ShadowStage) -> None:
    _pairs(stage, 50, 0.2)
    [moved] = stage.advance()
    assert moved.status == "rejected"
    assert moved.outcome["stage"]["verdict"].startswith("latency: p99 200.0 ms")
    assert stage.registry.get("churn:2").status == "declined"
    assert stage.registry.get("churn@production").version == 1
    assert stage.registry.shadows.of("churn") == []


def test_a_cleared_shadow_or_no_rows_in_time_leave_it_to_a_person(stage: ShadowStage) -> None:
    stage.settings = stage.settings.model_copy(update={"retrain_stage_timeout_s": 0.001})
    [moved] = stage.advance()
    assert (moved.status, moved.outcome["stage"]["state"]) == ("candidate", "stopped")
    assert stage.registry.shadows.of("churn") == []
    assert stage.advance() == []

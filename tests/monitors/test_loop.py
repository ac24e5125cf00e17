"""A monitoring round acts on evidence of harm only for a version that answers traffic: a
shadow's evidence is recorded as a finding, and no retraining task is opened for it."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitors.loop import Monitor
from monitors.quality.policy import Decision, DecisionPolicy
from monitors.settings import MonitorSettings
from registry.store import Registry
from tests.fixtures import ready_version


def test_a_shadows_harm_is_a_finding_and_the_served_versions_a_task(
    sqlite_registry: Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry = sqlite_registry
    serving, shadow = ready_version(registry, 0), ready_version(registry, 1)
    registry.set_alias("churn", "production", serving, reason="first")
    registry.shadows.set("churn", "production", shadow, 0.5, reason="try")
    harm = Decision("task", "quality", "quality fell: 0.71 → 0.62", {"metric": "roc_auc"})
    monkeypatch.setattr(DecisionPolicy, "decide", lambda *_args, **_kw: harm)
    monitor = Monitor(registry, MonitorSettings(home=tmp_path, task_cooldown_s=0))

    shadowed = monitor.round("churn", shadow)
    assert shadowed.task is None
    decision = shadowed.quality.result["decision"]
    assert (decision["outcome"], decision["rule"], decision["shadow"]) == (
        "finding",
        "quality",
        True,
    )
    assert monitor.tasks.list(model="churn") == []

    served = monitor.round("churn", serving)
    assert served.task is not None
    assert served.task.action == "created"
    assert [t.serving_version for t in monitor.tasks.list(model="churn")] == [serving]

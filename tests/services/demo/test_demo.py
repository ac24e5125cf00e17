"""`mlgate demo`: the whole loop, shortened (less training data and traffic), end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from monitors.tasks.store import TaskStore
from registry import Registry
from services.cli.entry import app

pytestmark = pytest.mark.slow

STEPS = [
    "train → register → export → promote",
    "serve",
    "in-distribution traffic",
    "harmless drift: a finding",
    "harmful drift: quality falls, one task",
    "retrained, gated, judged, promoted",
    "served by v2: quality recovers",
]


def test_the_demo_runs_the_whole_loop(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        ["--home", str(tmp_path), "demo", "--rows", "6000", "--loop-rows", "1200", "--json"],
    )
    assert result.exit_code == 0, (result.stdout, result.stderr, result.exception)
    outcome = json.loads(result.stdout)
    assert [s["name"] for s in outcome["steps"]] == STEPS
    assert all(s["seconds"] >= 0 for s in outcome["steps"])
    assert outcome["serving"] == "credit-risk:2"
    assert "<html" in Path(outcome["report"]).read_text()[:5000].lower()
    lineage = json.loads(Path(outcome["lineage"]).read_text())
    assert lineage["parent"] == "credit-risk:1"

    registry = Registry(home=tmp_path)
    try:
        v2 = registry.get("credit-risk@production")
        assert v2.version == 2
        assert v2.parent == "credit-risk:1"
        assert v2.task_id == "1"
        assert v2.servable_artifact("onnx") is not None
        history = registry.alias_history("credit-risk", "production")
        assert [(e.from_version, e.to_version) for e in history] == [(None, 1), (1, 2)]
        # One task, opened by the harm and not by the harmless drift before it.
        tasks = TaskStore(registry.db).list(model="credit-risk")
        assert [(t.reason, t.status) for t in tasks] == [("realised_drop", "promoted")]
        # Through a canary first: promoted on its live rows, the alias moved by completing it.
        stage = tasks[0].outcome["stage"]
        assert (stage["kind"], stage["state"]) == ("canary", "completed")
        assert stage["rows"] >= 300
        [canary] = registry.canaries.of("credit-risk")
        assert (canary.version, canary.status) == (2, "completed")
        assert history[-1].reason.startswith("canary completed:")
        finding = next(s for s in outcome["steps"] if s["name"] == "harmless drift: a finding")
        assert "a finding, not a task" in finding["figure"]
    finally:
        registry.close()


def test_the_demo_table_names_every_step_and_the_files(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["--home", str(tmp_path), "demo", "--rows", "6000", "--loop-rows", "1200"]
    )
    assert result.exit_code == 0, (result.stdout, result.stderr, result.exception)
    text = " ".join(result.stdout.split())
    for step in ("in-distribution traffic", "a finding", "quality falls", "quality recovers"):
        assert step in text
    assert "drift report:" in text
    assert "lineage of credit-risk:2:" in text
    assert "credit-risk:2 is credit-risk@production" in text

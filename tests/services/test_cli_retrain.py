"""`mlgate retrain`: one task, a worker, and what is refused."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from typer.testing import CliRunner, Result

from monitors.tasks import TaskStore
from registry import Registry
from services.cli import app
from tests.fixtures import make_mlp


def mlgate(home: Path, *args: str, code: int = 0) -> Result:
    result = CliRunner().invoke(app, ["--home", str(home), *args])
    assert result.exit_code == code, (result.stdout, result.stderr, result.exception)
    return result


def test_retrain_runs_a_task_and_a_worker_drains_the_queue(tmp_path: Path) -> None:
    home = tmp_path / "home"
    registry = Registry(home=home)
    # No trainer entrypoint recorded: the task fails, and says why, and nothing changes.
    registry.register(make_mlp(), "mlp", torch.randn(2, 6))
    store = TaskStore(registry.db)
    for reason in ("data_drift", "manual"):
        store.open("mlp", 1, reason, evidence={}, source="test", actor="t")
    registry.close()

    done = json.loads(mlgate(home, "retrain", "1", "--json").stdout)
    assert done["status"] == "failed"
    assert "records no trainer entrypoint" in done["error"]
    again = mlgate(home, "retrain", "1", code=1)
    assert "task 1 is failed, not open" in again.stderr
    worked = mlgate(home, "retrain", "--worker", "--once").stdout
    assert "task 2 failed" in worked
    assert mlgate(home, "retrain", "--worker", "--once").stdout == ""


def test_retrain_needs_a_task_or_worker(tmp_path: Path) -> None:
    assert "give a TASK_ID or --worker" in mlgate(tmp_path, "retrain", code=1).stderr
    both = mlgate(tmp_path, "retrain", "3", "--worker", code=1)
    assert "not both" in both.stderr
    assert "no retraining task 3" in mlgate(tmp_path, "retrain", "3", code=1).stderr

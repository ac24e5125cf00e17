"""`mlgate retrain`: one task, a worker, and what is refused."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from typer.testing import CliRunner, Result

from monitors.tasks.store import TaskStore
from registry import Registry
from services.cli.entry import app
from tests.fixtures import make_mlp


def mlgate(home: Path, *args: str, code: int = 0) -> Result:
    result = CliRunner().invoke(app, ["--home", str(home), *args])
    assert result.exit_code == code, (result.stdout, result.stderr, result.exception)
    return result


def test_retrain_runs_a_task_and_a_worker_drains_the_queue(tmp_path: Path) -> None:
    home = tmp_path / "home"
    registry = Registry(home=home)
    # No trainer entrypoint recorded: the task needs one, says why and what to do, with no
    # traceback, and nothing changes.
    registry.register(make_mlp(), "mlp", torch.randn(2, 6))
    store = TaskStore(registry.db)
    for reason in ("realised_drop", "manual"):
        store.open("mlp", 1, reason, evidence={}, source="test", actor="t")
    registry.close()

    retrained = mlgate(home, "retrain", "1", "--json")
    assert retrained.stderr == ""  # no progress: --json, and stderr is not a terminal here
    done = json.loads(retrained.stdout)
    assert done["status"] == "needs-trainer"
    message = done["events"][-1]["reason"]
    assert "records no trainer entrypoint" in message
    assert "register it with --task" in message  # its task is unknown too
    again = mlgate(home, "retrain", "1", code=1)
    assert "task 1 is needs-trainer, not open" in again.stderr
    worker = mlgate(home, "retrain", "--worker", "--once")
    assert "task 2 needs-trainer: mlp:1 records no trainer entrypoint" in worker.stdout
    # The task's stages were told to the display, which draws only in a terminal.
    assert worker.stderr == "retraining worker: looking for open tasks every 5 s\n"
    assert mlgate(home, "retrain", "--worker", "--once").stdout == ""
    judged = mlgate(home, "retrain", "2", "--candidate", "7", code=1)
    assert "model 'mlp' has no version 7" in judged.stderr


def test_retrain_needs_a_task_or_worker(tmp_path: Path) -> None:
    assert "give a TASK_ID or --worker" in mlgate(tmp_path, "retrain", code=1).stderr
    both = mlgate(tmp_path, "retrain", "3", "--worker", code=1)
    assert "not both" in both.stderr
    assert "no retraining task 3" in mlgate(tmp_path, "retrain", "3", code=1).stderr

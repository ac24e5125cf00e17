"""`mlgate tasks`: list, open (the same path as the monitor), show, reject, approve errors."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
import torch
from typer.testing import CliRunner, Result

from registry import Registry
from services.cli.entry import app
from tests.fixtures import make_mlp


@pytest.fixture
def home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    registry = Registry(home=home)
    registry.register(make_mlp(), "mlp", torch.randn(4, 6))
    registry.close()
    return home


def mlgate(home: Path, *args: str, code: int = 0) -> Result:
    result = CliRunner().invoke(app, ["--home", str(home), *args])
    assert result.exit_code == code, (result.stdout, result.stderr, result.exception)
    return result


def test_a_person_opens_lists_shows_and_rejects_a_task(home: Path) -> None:
    assert "Retraining tasks" in mlgate(home, "tasks").stdout
    opened = json.loads(mlgate(home, "tasks", "open", "mlp", "--version", "1", "--reason",
                               "label shift reported by the risk team", "--evidence",
                               '{"ticket": "RISK-12"}', "--json").stdout)  # fmt: skip
    assert opened["action"] == "created"
    task = opened["task"]
    assert task["source"] == "cli"
    assert task["evidence"] == {"ticket": "RISK-12", "opened_by": "cli"}
    again = mlgate(home, "tasks", "open", "mlp", "--version", "1", "--reason",
                   "label shift reported by the risk team").stdout  # fmt: skip
    assert again.startswith("duplicate: task 1 is already open")
    listed = json.loads(mlgate(home, "tasks", "--json").stdout)["tasks"]
    assert [(t["id"], t["duplicate_count"]) for t in listed] == [(1, 1)]
    assert "label shift" in " ".join(mlgate(home, "tasks").stdout.split())
    shown = json.loads(mlgate(home, "tasks", "show", "1").stdout)
    assert shown["events"][0]["to"] == "open"
    assert "task 1 rejected" in mlgate(home, "tasks", "reject", "1", "--reason", "dup").stdout
    assert json.loads(mlgate(home, "tasks", "--status", "rejected", "--json").stdout)["tasks"]


def test_task_errors_name_what_is_wrong(home: Path) -> None:
    assert "nope" in mlgate(home, "tasks", "open", "nope", "--reason", "x", code=1).stderr
    assert "no retraining task 5" in mlgate(home, "tasks", "show", "5", code=1).stderr
    bad = mlgate(home, "tasks", "open", "mlp", "--version", "1", "--reason", "x",
                 "--evidence", "[1]", code=1)  # fmt: skip
    assert "--evidence must be a JSON object" in bad.stderr
    mlgate(home, "tasks", "open", "mlp", "--version", "1", "--reason", "x")
    refused = mlgate(home, "tasks", "approve", "1", "--reason", "ok", code=1)
    assert "is open, not candidate" in refused.stderr
    assert "unknown task status" in mlgate(home, "tasks", "--status", "done", code=1).stderr


class Receiver(BaseHTTPRequestHandler):
    received: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Receiver.received.append({"body": json.loads(body), "key": self.headers["Idempotency-Key"]})
        self.send_response(204)
        self.end_headers()

    def log_message(self, *_args: Any) -> None:
        pass


def test_the_task_webhook_hears_of_tasks_opened_by_hand(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = HTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        monkeypatch.setenv("MLGATE_TASK_WEBHOOK_URL", f"http://127.0.0.1:{server.server_port}/hook")
        mlgate(home, "tasks", "open", "mlp", "--version", "1", "--reason", "by hand")
        mlgate(home, "tasks", "reject", "1", "--reason", "changed my mind")
    finally:
        server.shutdown()
        server.server_close()
    events = [(r["body"]["event"], r["body"]["task"]["status"]) for r in Receiver.received]
    assert events == [("task.opened", "open"), ("task.updated", "rejected")]
    assert Receiver.received[0]["key"].endswith("-task.opened-open-0")

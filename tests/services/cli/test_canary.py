"""`mlgate canary` over a real registry: start, show, roll back, start again and complete
(the alias moves, audited), and what each wrong request gets."""

from __future__ import annotations

import json
from pathlib import Path

from tests.services.cli.test_cli import _register
from tests.services.conftest import Run


def test_start_show_roll_back_and_complete_a_canary(mlgate: Run, files: dict[str, Path]) -> None:
    for _ in range(2):
        _register(mlgate, files)
    for version in ("1", "2"):
        mlgate("export", f"churn:{version}", "--format", "onnx")
    mlgate("promote", "churn", "1", "--alias", "production", "--reason", "first")

    started = json.loads(
        mlgate("canary", "churn", "2", "--weight", "0.05", "--reason", "try", "--json").stdout
    )
    assert (started["version"], started["weight"], started["status"]) == (2, 0.05, "running")
    assert "churn:2 on 5% of @production, running since" in mlgate("canary", "churn").stdout

    for args, code, message in [
        (["canary", "churn", "2"], 1, "a reason is required"),
        (["canary", "churn", "2", "--weight", "1", "--reason", "x"], 2, "above 0 and below 1"),
        (["canary", "churn", "1", "--reason", "x"], 1, "what 'production' points to"),
        (["canary", "churn", "--promote"], 1, "a reason is required"),
        (["canary", "churn", "2", "--promote", "--reason", "x"], 1, "give no VERSION"),
        (["canary", "churn", "--alias", "staging", "--rollback", "--reason", "x"], 1, "no running"),
    ]:
        failed = mlgate(*args, code=code)
        assert message in failed.stderr, (args, failed.stderr)

    rolled = mlgate("canary", "churn", "--rollback", "--reason", "not yet").stdout
    assert "rolled back: not yet" in rolled
    mlgate("canary", "churn", "2", "--weight", "0.5", "--reason", "again")
    done = json.loads(
        mlgate("canary", "churn", "--promote", "--reason", "it held", "--json").stdout
    )
    assert (done["canary"]["status"], done["alias_event"]["to_version"]) == ("completed", 2)
    shown = json.loads(mlgate("show", "churn@production", "--json").stdout)
    assert shown["ref"] == "churn:2"
    assert [c["status"] for c in json.loads(mlgate("canary", "churn", "--json").stdout)] == [
        "completed",
        "rolled_back",
    ]

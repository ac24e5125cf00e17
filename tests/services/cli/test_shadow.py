"""`mlgate shadow` over a real registry: set, show, replace and stop a shadow, and what
each wrong request gets (one line, the right exit status)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.services.cli.test_cli import _register
from tests.services.conftest import Run


def test_set_show_and_stop_a_shadow(mlgate: Run, files: dict[str, Path]) -> None:
    for _ in range(2):
        _register(mlgate, files)
    mlgate("export", "churn:1", "--format", "onnx")
    mlgate("export", "churn:2", "--format", "onnx")
    mlgate("promote", "churn", "1", "--alias", "production", "--reason", "first")

    set_ = json.loads(
        mlgate("shadow", "churn", "2", "--rate", "0.1", "--reason", "try v2", "--json").stdout
    )
    assert (set_["alias"], set_["version"], set_["rate"], set_["reason"]) == (
        "production",
        2,
        0.1,
        "try v2",
    )
    shown = mlgate("shadow", "churn").stdout
    assert "churn@production: churn:2 in shadow on 10% of requests" in shown
    assert json.loads(mlgate("shadow", "churn", "--json").stdout)[0]["version"] == 2

    for args, code, message in [
        (["shadow", "churn", "2"], 1, "a reason is required"),
        (["shadow", "churn", "1", "--reason", "x"], 1, "what 'production' points to"),
        (["shadow", "churn", "2", "--rate", "0", "--reason", "x"], 2, "above 0 and at most 1"),
        (["shadow", "churn", "2", "--alias", "staging", "--reason", "x"], 1, "no alias 'staging'"),
        (["shadow", "churn", "7", "--reason", "x"], 1, "no version 7"),
        (["shadow", "nope", "1", "--reason", "x"], 1, "nope"),
        (["shadow", "churn", "2", "--off"], 1, "give no VERSION"),
    ]:
        failed = mlgate(*args, code=code)
        assert message in failed.stderr, (args, failed.stderr)
        assert failed.stderr.count("\n") == 1

    assert "no shadow" in mlgate("shadow", "churn", "--off").stdout
    assert "churn: no shadow" in mlgate("shadow", "churn").stdout
    assert "has no shadow" in mlgate("shadow", "churn", "--off", code=1).stderr

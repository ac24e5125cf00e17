"""What every command shares: version and task numbers, and errors as one line (issue 15)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer

from registry.names import MAX_ID
from registry.store import Registry
from services.cli.common import id_number
from tests.services.cli.test_cli import _register
from tests.services.conftest import Run

TOO_BIG = str(MAX_ID + 1)


@pytest.mark.parametrize("text", ["1", "007", str(MAX_ID), " 12 "])
def test_id_number_takes_ascii_digits_within_the_database_range(text: str) -> None:
    assert id_number(text) == int(text)


@pytest.mark.parametrize("text", ["0", "-1", "³", "٣", "1e3", "", "9" * 5000, TOO_BIG])
def test_id_number_refuses_the_rest_naming_the_rule(text: str) -> None:
    with pytest.raises(typer.BadParameter, match="positive integer in ASCII digits"):
        id_number(text)


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["show", "churn:³"], 1, "version '³' is not a positive integer"),
        (["show", "churn:٣"], 1, "version '٣' is not a positive integer"),
        (["show", f"churn:{TOO_BIG}"], 1, "is not a positive integer in ASCII digits"),
        (["promote", "churn", TOO_BIG, "--alias", "staging", "--reason", "x"], 2, "ASCII"),
        (["promote", "churn", "³", "--alias", "staging", "--reason", "x"], 2, "ASCII"),
        (["drift", "churn", "--version", TOO_BIG], 2, "ASCII"),
        (["quality", "churn", "--version", "٣"], 2, "ASCII"),
        (["tasks", "show", TOO_BIG], 2, "ASCII"),
        (["tasks", "approve", "³", "--reason", "x"], 2, "ASCII"),
        (["retrain", TOO_BIG], 2, "ASCII"),
    ],
)
def test_numbers_out_of_range_are_an_error_not_a_traceback(
    mlgate: Run, files: dict[str, Path], args: list[str], code: int, message: str
) -> None:
    _register(mlgate, files)
    result = mlgate(*args, code=code)
    assert isinstance(result.exception, SystemExit)  # not an exception escaping the command
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert message in lines[0]


def test_a_usage_error_with_json_is_the_envelope(mlgate: Run) -> None:
    result = mlgate("promote", "churn", "³", "--reason", "x", "--json", code=2)
    assert "positive integer in ASCII digits" in json.loads(result.stdout)["error"]


def test_an_unknown_command_is_one_line_pointing_at_help(mlgate: Run) -> None:
    result = mlgate("promot", code=2)
    assert result.stderr.strip() == (
        "error: No such command 'promot'. Did you mean 'promote'? (see `root --help`)"
    )


@pytest.fixture
def broken_listing(monkeypatch: pytest.MonkeyPatch) -> None:
    """The registry fails with something that is not the project's own error."""

    def fail(self: Registry, *args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Registry, "models", fail)


@pytest.mark.usefixtures("broken_listing")
def test_an_unexpected_error_is_one_line_naming_its_type(mlgate: Run) -> None:
    result = mlgate("models", code=1)
    assert isinstance(result.exception, SystemExit)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("error: unexpected OSError: [Errno 28] No space left on device")
    assert "MLGATE_DEBUG=1" in lines[0]


@pytest.mark.usefixtures("broken_listing")
def test_an_unexpected_error_as_json_is_the_envelope(mlgate: Run) -> None:
    result = mlgate("models", "--json", code=1)
    assert json.loads(result.stdout)["error"].startswith("unexpected OSError")


@pytest.mark.usefixtures("broken_listing")
def test_mlgate_debug_lets_the_traceback_through(
    mlgate: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLGATE_DEBUG", "1")
    result = mlgate("models", code=1)
    assert isinstance(result.exception, OSError)

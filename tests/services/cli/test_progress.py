"""The progress display of `mlgate retrain`: drawn in a terminal, nothing anywhere else.

The display is fed here as the retrainer feeds it (its stages, then the trainer's epochs);
tests/services/retraining/test_retrainer.py drives it with a real retraining task.
"""

from __future__ import annotations

import re
from io import StringIO

from rich.console import Console

from monitors.tasks.store import Task, TaskStore
from registry import Registry
from services.cli.progress import RetrainDisplay

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def a_task(registry: Registry) -> Task:
    opened = TaskStore(registry.db).open(
        "credit-risk", 3, "realised_drop", evidence={}, source="test", actor="test"
    )
    assert opened.task is not None
    return opened.task


def feed(display: RetrainDisplay, task: Task) -> None:
    """What a retraining task tells its display, in order."""
    with display:
        display.stage(task, "claim")
        display.stage(task, "window")
        display.stage(task, "train")
        for epoch in range(1, 4):
            display.epoch(epoch, 3, {"loss": 0.5 / epoch})
        display.stage(task, "register")
        display.stage(task, "gate")
        display.stage(task, "judge")
        display.stage(task, "promote")


def test_a_terminal_shows_each_stage_and_each_epoch_with_its_loss(
    sqlite_registry: Registry,
) -> None:
    screen = StringIO()
    task = a_task(sqlite_registry)
    feed(RetrainDisplay(Console(file=screen, force_terminal=True, width=160)), task)
    text = ANSI.sub("", screen.getvalue())
    title = f"task {task.id} (credit-risk:3)"
    for stage in (
        "claimed",
        "reading the labelled window",
        "training",
        "registering the candidate",
        "exporting it through the parity gate",
        "judging it against the serving version",
        "promoting it",
    ):
        assert f"{title}: {stage}" in text
    for count, loss in (("1/3", "0.5000"), ("2/3", "0.2500"), ("3/3", "0.1667")):
        assert re.search(rf"epoch\s+[━╺╸]*\s*{count}\s+loss {loss}", text), (count, text)
    # Transient: the last thing written erases the display, leaving no stale line.
    assert screen.getvalue().endswith("\x1b[2K")


def test_epochs_without_a_total_or_metrics_are_counted(sqlite_registry: Registry) -> None:
    screen = StringIO()
    task = a_task(sqlite_registry)
    with RetrainDisplay(Console(file=screen, force_terminal=True, width=160)) as display:
        display.stage(task, "train")
        display.epoch(7, None, {})
    assert re.search(r"epoch\s+7\b", ANSI.sub("", screen.getvalue()))


def test_nothing_is_written_where_stderr_is_not_a_terminal(sqlite_registry: Registry) -> None:
    task = a_task(sqlite_registry)
    piped = StringIO()
    feed(RetrainDisplay(Console(file=piped)), task)  # a pipe, a file, CI, a test runner
    assert piped.getvalue() == ""
    with_json = StringIO()
    feed(RetrainDisplay(Console(file=with_json, force_terminal=True), enabled=False), task)
    assert with_json.getvalue() == ""  # --json: a terminal, but the output is for a program

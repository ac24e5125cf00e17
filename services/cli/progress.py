"""Progress on stderr for the long commands: `mlgate retrain` (a task's stages, its epochs as
a bar with the trainer's reported loss), each `mlgate monitor` cycle (the versions
checked) and `mlgate predict` (the share of the file done, rows and rows per second).

Only in a terminal (rich's `Console.is_terminal`): piped, in CI, in tests and with `--json`
nothing is written. The display is transient (gone when the task or cycle ends, leaving the
command's one-line result), and it is refreshed on every change rather than only by rich's
timer, so each stage and epoch is drawn even when it lasts less than a refresh.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from types import TracebackType
from typing import Any

from rich.console import Console, RenderableType
from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    Task,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.text import Text

__all__ = ["STAGES", "RetrainDisplay", "ScoreDisplay", "monitor_cycle"]

STAGES = {
    "claim": "claimed",
    "window": "reading the labelled window",
    "train": "training",
    "register": "registering the candidate",
    "gate": "exporting it through the parity gate",
    "judge": "judging it against the serving version",
    "promote": "promoting it",
}
"""What each stage a `RetrainProgress` hears (services/retraining/candidate.py) is called here."""


class _BarWhenCounted(ProgressColumn):
    """A bar for a row with a total (the epochs), nothing for a stage's row."""

    def __init__(self) -> None:
        super().__init__()
        self._bar = BarColumn(bar_width=24)

    def render(self, task: Task) -> RenderableType:
        return self._bar.render(task) if task.total is not None else Text("")


def _progress(console: Console) -> Progress:
    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        _BarWhenCounted(),
        TextColumn("{task.fields[count]}"),
        TextColumn("{task.fields[figures]}"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    )


class RetrainDisplay:
    """A `RetrainProgress` drawn on `console` while a task runs; `finish()` (or leaving the
    `with` block) clears it before the next task. Inert unless `console` is a terminal."""

    def __init__(self, console: Console, *, enabled: bool = True) -> None:
        self.console = console
        self.enabled = enabled and console.is_terminal
        self._bar: Progress | None = None
        self._stage_row: TaskID | None = None
        self._epoch_row: TaskID | None = None

    def __enter__(self) -> RetrainDisplay:
        return self

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _error: BaseException | None,
        _traceback: TracebackType | None,
    ) -> None:
        self.finish()

    def stage(self, task: Any, stage: str) -> None:
        bar = self._started()
        if bar is None or self._stage_row is None:
            return
        if stage != "train" and self._epoch_row is not None:
            bar.remove_task(self._epoch_row)  # training is over: its bar goes
            self._epoch_row = None
        title = f"task {task.id} ({task.model}:{task.serving_version})"
        bar.update(self._stage_row, description=f"{title}: {STAGES.get(stage, stage)}")
        bar.refresh()

    def epoch(self, epoch: int, total: int | None, metrics: Mapping[str, float]) -> None:
        bar = self._started()
        if bar is None:
            return
        count = f"{epoch}/{total}" if total is not None else f"{epoch}"
        figures = " ".join(f"{name} {value:.4f}" for name, value in metrics.items())
        if self._epoch_row is None:
            self._epoch_row = bar.add_task("  epoch", total=total, count="", figures="")
        bar.update(self._epoch_row, completed=epoch, total=total, count=count, figures=figures)
        bar.refresh()

    def finish(self) -> None:
        """Clear the display (the task is done); the next task starts a new one."""
        if self._bar is not None:
            self._bar.stop()
        self._bar = self._stage_row = self._epoch_row = None

    def _started(self) -> Progress | None:
        if not self.enabled:
            return None
        if self._bar is None:
            self._bar = _progress(self.console)
            self._bar.start()
            self._stage_row = self._bar.add_task("retraining", total=None, count="", figures="")
        return self._bar


def monitor_cycle(checker: Any, console: Console) -> list[Any]:
    """One round over every version `checker` (a `monitors.loop.Monitor`) would check, with a
    bar of the versions checked when `console` is a terminal; its `Round`s."""
    targets = checker.targets()
    if not console.is_terminal or not targets:
        return list(checker.run_once(targets))
    done: list[Any] = []
    with _progress(console) as bar:
        row = bar.add_task("monitoring", total=len(targets), count="", figures="")
        for index, (model, version) in enumerate(targets):
            bar.update(
                row,
                description=f"monitoring {model}:{version}",
                completed=index,
                count=f"{index}/{len(targets)} versions",
            )
            bar.refresh()
            done.extend(checker.run_once([(model, version)]))
        bar.update(row, completed=len(targets), count=f"{len(targets)}/{len(targets)} versions")
        bar.refresh()
    return done


class ScoreDisplay:
    """A bar for `mlgate predict`, called with (rows read, share of the file done) after each
    chunk. Inert unless `console` is a terminal."""

    def __init__(self, console: Console, title: str, *, enabled: bool = True) -> None:
        self._bar: Progress | None = None
        self._row: TaskID | None = None
        if enabled and console.is_terminal:
            self._bar = _progress(console)
            self._row = self._bar.add_task(title, total=1.0, count="", figures="")
        self._started = time.perf_counter()

    def __enter__(self) -> ScoreDisplay:
        if self._bar is not None:
            self._bar.start()
        return self

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _error: BaseException | None,
        _traceback: TracebackType | None,
    ) -> None:
        if self._bar is not None:
            self._bar.stop()

    def __call__(self, rows: int, share: float) -> None:
        if self._bar is None or self._row is None:
            return
        rate = rows / max(time.perf_counter() - self._started, 1e-9)
        self._bar.update(
            self._row, completed=share, count=f"{rows:,} rows", figures=f"{rate:,.0f} rows/s"
        )
        self._bar.refresh()

"""What every `mlgate` command shares: the typer app, consoles, progress, JSON and errors.

Errors: any `MlgateError` prints `error: <message>` on stderr (or `{"error": ...}` on
stdout with `--json`) and exits with status 1; usage errors exit with 2.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from registry.errors import MlgateError

__all__ = [
    "CliState",
    "ExportFormat",
    "JsonOption",
    "TraceMethod",
    "app",
    "emit_json",
    "err",
    "key_values",
    "out",
    "progress",
    "reports_errors",
]

app = typer.Typer(
    help="mlgate: register, export (behind a parity gate), promote and inspect models.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
out = Console()
err = Console(stderr=True)

STAGES = {
    "signature": "reading the model's signature",
    "source": "storing the model files",
    "reference": "computing outputs on the reference sample",
    "database": "recording the version",
    "load": "loading the registered model",
    "export": "exporting",
    "parity": "running the parity gate",
    "store": "storing the artifact",
    "train": "training",
    "data": "generating data",
}

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]


class ExportFormat(StrEnum):
    onnx = "onnx"
    torchscript = "torchscript"


class TraceMethod(StrEnum):
    auto = "auto"
    script = "script"
    trace = "trace"


@dataclass
class CliState:
    home: Path | None = None
    registry_url: str | None = None
    opened: list[Any] = field(default_factory=list)

    def registry(self) -> Any:
        from registry import Registry

        registry = Registry(url=self.registry_url, home=self.home)
        self.opened.append(registry)
        return registry

    def close(self) -> None:
        """Close the registries the command opened, when it is done (their connections:
        SQLite folds its write-ahead log back into the database file on the last close)."""
        while self.opened:
            self.opened.pop().close()

    def monitor_settings(self, registry: Any) -> Any:
        """`MLGATE_*` monitoring settings, at the registry's home (or --home)."""
        from monitors.settings import MonitorSettings

        home = self.home if self.home is not None else registry.settings.home
        return MonitorSettings().model_copy(update={"home": Path(home)})


@app.callback()
def _options(
    ctx: typer.Context,
    home: Annotated[
        Path | None,
        typer.Option("--home", help="Registry home (default: $MLGATE_HOME or ./.mlgate)."),
    ] = None,
    registry_url: Annotated[
        str | None,
        typer.Option(
            "--registry-url",
            help="SQLAlchemy URL (default: $MLGATE_REGISTRY_URL or SQLite in home).",
        ),
    ] = None,
) -> None:
    ctx.obj = state = CliState(home, registry_url)
    ctx.call_on_close(state.close)


@contextmanager
def progress(title: str) -> Iterator[Any]:
    """A spinner naming the current stage, on stderr, gone when done."""
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=err,
        transient=True,
    ) as bar:
        task = bar.add_task(title, total=None)

        def step(stage: str) -> None:
            bar.update(task, description=f"{title}: {STAGES.get(stage, stage)}")

        yield step


def key_values(items: list[str] | tuple[str, ...], option: str) -> dict[str, Any]:
    """`KEY=VALUE` options: each value as JSON when it parses (numbers, lists), else text."""
    from registry.errors import BadRequest

    parsed: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise BadRequest(f"{option} {item!r}: expected KEY=VALUE")
        try:
            parsed[key] = json.loads(text)
        except json.JSONDecodeError:
            parsed[key] = text
    return parsed


def emit_json(data: Any) -> None:
    out.out(json.dumps(data, indent=2, default=str), highlight=False)


def reports_errors(command: Callable[..., None]) -> Callable[..., None]:
    """Turn an `MlgateError` into one clear line (or `{"error": ...}`) and exit status 1."""

    @functools.wraps(command)
    def run(*args: Any, **kwargs: Any) -> None:
        try:
            command(*args, **kwargs)
        except MlgateError as exc:
            if kwargs.get("as_json"):
                out.out(json.dumps({"error": exc.message}), highlight=False)
            else:
                err.print(f"[red]error:[/] {escape(exc.message)}", highlight=False, soft_wrap=True)
            raise typer.Exit(1) from None

    return run

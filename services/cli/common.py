"""What every `mlgate` command shares: the typer app, consoles, progress, JSON and errors.

Errors: any `MlgateError` prints `error: <message>` on stderr (or `{"error": ...}` on
stdout with `--json`) and exits with status 1; usage errors are one line too and exit with 2
(`OneLineErrors`). Any other exception
(a bug, or a library failing) is one line too, naming its type; `MLGATE_DEBUG=1` shows its
traceback instead.
"""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from typer.exceptions import TyperException

from registry.errors import MlgateError
from registry.names import ID_RULE, positive_id_text

__all__ = [
    "CliState",
    "ExportFormat",
    "JsonOption",
    "TraceMethod",
    "app",
    "emit_json",
    "err",
    "id_number",
    "key_values",
    "out",
    "progress",
    "rate",
    "reports_errors",
    "share",
    "weight_share",
]


class OneLineErrors(typer.core.TyperGroup):
    """Usage errors (a bad option, a number out of range) as one line too: `error: …` on
    stderr, or `{"error": …}` on stdout when `--json` was given; exit status 2, as click's."""

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        windows_expand_args: bool = True,
        **extra: Any,
    ) -> Any:
        run = functools.partial(
            super().main, args, prog_name, complete_var, False, windows_expand_args, **extra
        )
        if not standalone_mode:
            return run()
        try:
            done = run()
        except TyperException as exc:  # typer's own click: usage and parameter errors
            # NOTE: `mlgate` alone raises NoArgsIsHelpError, whose message is the help.
            if type(exc).__name__ == "NoArgsIsHelpError":
                err.print(exc.format_message(), highlight=False, markup=False)
                raise SystemExit(2) from None
            context = getattr(exc, "ctx", None)
            hint = f" (see `{context.command_path} --help`)" if context is not None else ""
            wants_json = "--json" in (sys.argv[1:] if args is None else list(args))
            _report(f"{exc.format_message()}{hint}", as_json=wants_json)
            raise SystemExit(getattr(exc, "exit_code", 2)) from None
        except typer.Abort:
            err.print("aborted")
            raise SystemExit(1) from None
        raise SystemExit(done if isinstance(done, int) else 0)


app = typer.Typer(
    cls=OneLineErrors,
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
    """A spinner naming the current stage, on stderr, gone when done; only in a terminal
    (piped or captured, rich would still write a blank line when it stops)."""
    if not err.is_terminal:
        yield lambda _stage: None
        return
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


def id_number(text: str) -> int:
    """A version or task number on the command line (typer's `parser=`): ASCII digits from
    1 to the databases' 64-bit limit, else a usage error naming the rule."""
    value = positive_id_text(text.strip())
    if value is None:
        raise typer.BadParameter(f"{text[:40]!r} is not {ID_RULE}")
    return value


def share(text: str) -> float:
    """A share from 0 to 1 on the command line (typer's `parser=`)."""
    return _share(text, 0 <= float(text) <= 1 if _number(text) else False, "between 0 and 1")


def rate(text: str) -> float:
    """A share above 0 and at most 1 (a share of requests that must be some)."""
    ok = 0 < float(text) <= 1 if _number(text) else False
    return _share(text, ok, "above 0 and at most 1")


def weight_share(text: str) -> float:
    """A share above 0 and below 1 (a split that leaves some traffic on each side)."""
    return _share(text, 0 < float(text) < 1 if _number(text) else False, "above 0 and below 1")


def _number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _share(text: str, within: bool, rule: str) -> float:
    if not _number(text):
        raise typer.BadParameter(f"{text!r} is not a number")
    if not within:
        raise typer.BadParameter(f"{text} is not a share {rule}")
    return float(text)


def reports_errors(command: Callable[..., None]) -> Callable[..., None]:
    """Turn an error into one clear line (or `{"error": ...}`) and exit status 1: an
    `MlgateError` as its message; anything else (not click's own exits and usage errors)
    with its type named, unless MLGATE_DEBUG is set, which lets the traceback through."""

    @functools.wraps(command)
    def run(*args: Any, **kwargs: Any) -> None:
        try:
            command(*args, **kwargs)
        except MlgateError as exc:
            _report(exc.message, as_json=bool(kwargs.get("as_json")))
            raise typer.Exit(1) from None
        except (TyperException, typer.Exit, typer.Abort):
            raise
        except Exception as exc:
            if os.environ.get("MLGATE_DEBUG"):
                raise
            message = f"unexpected {type(exc).__name__}: {exc} (MLGATE_DEBUG=1 shows where)"
            _report(message, as_json=bool(kwargs.get("as_json")))
            raise typer.Exit(1) from None

    return run


def _report(message: str, *, as_json: bool) -> None:
    if as_json:
        out.out(json.dumps({"error": message}), highlight=False)
    else:
        err.print(f"[red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)

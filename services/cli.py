"""The `mlgate` command line. Each command is a thin shell over the registry and exporters.

Errors: any `MlgateError` prints `error: <message>` on stderr (or `{"error": ...}` on
stdout with `--json`) and exits with status 1; usage errors exit with 2.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from registry.errors import MlgateError

__all__ = ["app", "main"]

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

    def registry(self) -> Any:
        from registry import Registry

        return Registry(url=self.registry_url, home=self.home)


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
    ctx.obj = CliState(home, registry_url)


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


@app.command()
@reports_errors
def register(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Model name: lowercase letters, digits, . _ -")],
    factory: Annotated[
        str | None, typer.Option(help="'module:function' that builds the nn.Module.")
    ] = None,
    weights: Annotated[
        Path | None, typer.Option(help="State dict file (torch.save(model.state_dict())).")
    ] = None,
    kwargs: Annotated[str, typer.Option(help="JSON keyword arguments for the factory.")] = "{}",
    onnx: Annotated[
        Path | None, typer.Option(help="Register an existing .onnx file instead.")
    ] = None,
    torchscript: Annotated[
        Path | None, typer.Option(help="Register an existing TorchScript file instead.")
    ] = None,
    input_specs: Annotated[
        list[str] | None,
        typer.Option("--input", help="NAME:DTYPE:SHAPE, e.g. x:float32:-1,14 (repeat)."),
    ] = None,
    outputs: Annotated[
        list[str] | None, typer.Option("--output", help="Output name (repeat).")
    ] = None,
    features: Annotated[
        str | None, typer.Option(help="Comma-separated feature names of the 2-D input.")
    ] = None,
    reference: Annotated[
        Path | None, typer.Option(help="Training inputs (.csv/.parquet) to keep as reference.")
    ] = None,
    dataset: Annotated[
        list[str] | None, typer.Option(help="NAME=FILE: a training dataset (repeat).")
    ] = None,
    eval_dataset: Annotated[
        list[str] | None, typer.Option(help="NAME=FILE: an evaluation dataset.")
    ] = None,
    trainer: Annotated[
        str | None, typer.Option(help="Trainer entrypoint 'module:function'.")
    ] = None,
    param: Annotated[
        list[str] | None, typer.Option(help="KEY=VALUE hyperparameter (repeat).")
    ] = None,
    metric: Annotated[list[str] | None, typer.Option(help="NAME=VALUE@DATASET (repeat).")] = None,
    description: Annotated[str, typer.Option(help="Free text.")] = "",
    as_json: JsonOption = False,
) -> None:
    """Register a model: a factory plus a state dict, or an existing ONNX/TorchScript file."""
    from services import cli_register

    registry = ctx.obj.registry()
    with progress(f"registering {name}") as step:
        version = cli_register.register(
            registry,
            name,
            step,
            factory=factory,
            weights=weights,
            kwargs=kwargs,
            onnx=onnx,
            torchscript=torchscript,
            input_specs=input_specs or [],
            outputs=outputs,
            features=features,
            reference=reference,
            datasets=dataset or [],
            eval_datasets=eval_dataset or [],
            trainer=trainer,
            params=param or [],
            metrics=metric or [],
            description=description,
        )
    lineage = registry.lineage(version.ref)
    if as_json:
        emit_json(lineage)
        return
    out.print(f"registered [bold]{version.ref}[/]")
    _print_exports(lineage)


@app.command("export")
@reports_errors
def export_command(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="NAME, NAME:VERSION or NAME@ALIAS")],
    fmt: Annotated[
        list[ExportFormat],
        typer.Option("--format", "-f", help="onnx or torchscript (repeat for both)."),
    ] = [  # noqa: B006 - typer reads the default, never mutates it
        ExportFormat.onnx
    ],
    rtol: Annotated[
        float | None, typer.Option(help="Relative tolerance for every float output.")
    ] = None,
    atol: Annotated[
        float | None, typer.Option(help="Absolute tolerance for every float output.")
    ] = None,
    method: Annotated[
        TraceMethod, typer.Option(help="TorchScript: script, trace, or auto (script, else trace).")
    ] = TraceMethod.auto,
    seed: Annotated[int, typer.Option(help="Seed of the gate's random inputs.")] = 0,
    as_json: JsonOption = False,
) -> None:
    """Export a version and run the parity gate; exits 1 if the gate refuses the artifact."""
    from exporters import export

    registry = ctx.obj.registry()
    results = []
    for one in dict.fromkeys(fmt):
        with progress(f"{ref} → {one.value}") as step:
            results.append(
                export(
                    registry,
                    ref,
                    one.value,
                    rtol=rtol,
                    atol=atol,
                    method=method.value,
                    seed=seed,
                    progress=step,
                )
            )
    payload = [{"ref": r.version.ref, **r.artifact.to_json()} for r in results]
    if as_json:
        emit_json(payload)
    else:
        from services.render import export_lines

        for artifact in payload:
            for line in export_lines(artifact, prefix=f"{artifact['ref']} "):
                out.print(line)
    if not all(r.passed for r in results):
        raise typer.Exit(1)


@app.command()
@reports_errors
def promote(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Model name.")],
    version: Annotated[int, typer.Argument(help="Version number to point the alias at.")],
    alias: Annotated[str, typer.Option(help="Alias to move.")] = "production",
    reason: Annotated[str, typer.Option(help="Why: recorded in the audit log.")] = ...,  # type: ignore[assignment]
    by: Annotated[
        str | None, typer.Option(help="Who (default: $MLGATE_USER or login@host).")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Point an alias at a version whose export passed the parity gate."""
    registry = ctx.obj.registry()
    event = registry.set_alias(name, alias, version, reason=reason, actor=by)
    if as_json:
        emit_json(
            {
                "model": event.model,
                "alias": event.alias,
                "from_version": event.from_version,
                "to_version": event.to_version,
                "at": event.at.isoformat(),
                "actor": event.actor,
                "reason": event.reason,
            }
        )
        return
    was = f"from {event.from_version} " if event.from_version is not None else ""
    out.print(f"{name}@{alias}: {was}→ {event.to_version} ({event.reason})")


@app.command()
@reports_errors
def models(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """List registered models, their newest versions and aliases."""
    from services.render import models_table

    summaries = ctx.obj.registry().models()
    if as_json:
        emit_json(
            [
                {
                    "name": m.name,
                    "versions": m.versions,
                    "latest_version": m.latest_version,
                    "latest_ready": m.latest_ready,
                    "aliases": m.aliases,
                    "created_at": m.created_at.isoformat(),
                }
                for m in summaries
            ]
        )
        return
    if not summaries:
        out.print("no models registered yet: try `mlgate demo`")
        return
    out.print(models_table(summaries))


@app.command()
@reports_errors
def show(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="NAME, NAME:VERSION or NAME@ALIAS")],
    as_json: JsonOption = False,
) -> None:
    """Show a version's lineage as a tree: data, code, params, metrics, parents, artifacts."""
    from services.render import lineage_tree

    registry = ctx.obj.registry()
    lineage = registry.lineage(ref)
    history = registry.alias_history(lineage["ref"].partition(":")[0])
    if as_json:
        lineage["alias_history"] = [
            {
                "alias": e.alias,
                "from_version": e.from_version,
                "to_version": e.to_version,
                "at": e.at.isoformat(),
                "actor": e.actor,
                "reason": e.reason,
            }
            for e in history
        ]
        emit_json(lineage)
        return
    out.print(lineage_tree(lineage, history))


@app.command()
@reports_errors
def demo(
    ctx: typer.Context,
    rows: Annotated[int, typer.Option(min=100, help="Rows of generated training data.")] = 20_000,
    seed: Annotated[int, typer.Option(help="Seed for data and training.")] = 7,
    name: Annotated[str, typer.Option(help="Model name.")] = "credit-risk",
    as_json: JsonOption = False,
) -> None:
    """Train the credit-risk example, register it, export it through the gate, promote it."""
    from services.demo import run_demo
    from services.render import lineage_tree

    registry = ctx.obj.registry()
    with progress("demo") as step:
        outcome = run_demo(registry, rows=rows, seed=seed, name=name, progress=step, log=err.print)
    if as_json:
        emit_json(outcome)
        return
    lineage = registry.lineage(outcome["ref"])
    out.print(lineage_tree(lineage, registry.alias_history(name)))
    out.print(
        f"[bold green]{outcome['ref']}[/] is {name}@production · took {outcome['seconds']:.1f}s"
    )


def _print_exports(lineage: dict[str, Any]) -> None:
    from services.render import export_lines

    for artifact in lineage["artifacts"]:
        if artifact["kind"] in ("onnx", "torchscript"):
            for line in export_lines(artifact, prefix="  "):
                out.print(line)


def main() -> None:
    """Console entry point (`mlgate`)."""
    app(prog_name="mlgate")

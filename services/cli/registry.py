"""`mlgate register | export | promote | models | show`: the registry and the exporters."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from services.cli.common import (
    ExportFormat,
    JsonOption,
    TraceMethod,
    app,
    emit_json,
    id_number,
    out,
    progress,
    reports_errors,
)

__all__ = ["export_command", "models", "promote", "register", "show"]


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
    task: Annotated[
        str | None,
        typer.Option(help="binary, multiclass or regression (inferred where unambiguous)."),
    ] = None,
    output_kind: Annotated[
        str | None,
        typer.Option(help="probabilities, logits, score, labels (classifiers) or values."),
    ] = None,
    threshold: Annotated[
        float | None, typer.Option(help="Binary: the decision threshold (default 0.5).")
    ] = None,
    classes: Annotated[
        int | None, typer.Option(min=2, help="Multiclass labels output: how many classes.")
    ] = None,
    label: Annotated[
        str | None,
        typer.Option(
            help="The label column of --eval-dataset (or of --reference, which then gives a "
            "holdout): the quality baseline and calibration are computed on it."
        ),
    ] = None,
    parent: Annotated[
        str | None, typer.Option(help="The version this one was retrained from (NAME:V).")
    ] = None,
    candidate: Annotated[
        bool,
        typer.Option(
            "--candidate", help="A candidate: never @latest until promoted (or judged by a task)."
        ),
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Register a model: a factory plus a state dict, or an existing ONNX/TorchScript file."""
    from services.cli import register as registering

    registry = ctx.obj.registry()
    with progress(f"registering {name}") as step:
        version = registering.register(
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
            quality={
                "task": task,
                "output_kind": output_kind,
                "threshold": threshold,
                "classes": classes,
            },
            label=label,
            parent=parent,
            candidate=candidate,
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
        from services.cli.render import export_lines

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
    version: Annotated[
        int, typer.Argument(parser=id_number, help="Version number to point the alias at.")
    ],
    alias: Annotated[str, typer.Option(help="Alias to move.")] = "production",
    reason: Annotated[str, typer.Option(help="Why: recorded in the audit log.")] = ...,  # type: ignore[assignment]
    by: Annotated[
        str | None, typer.Option(help="Who (default: $MLGATE_USER or login@host).")
    ] = None,
    max_batch_size: Annotated[int | None, typer.Option(help="Serving: rows per batch.")] = None,
    max_queue_delay_ms: Annotated[
        float | None, typer.Option(help="Serving: hard cap on waiting for a fuller batch.")
    ] = None,
    slo_ms: Annotated[
        float | None,
        typer.Option(help="Serving: latency target; requests that would miss it are shed."),
    ] = None,
    max_queue: Annotated[int | None, typer.Option(help="Serving: queue bound in rows.")] = None,
    max_inflight: Annotated[
        int | None, typer.Option(help="Serving: batches running at once.")
    ] = None,
    runtime: Annotated[
        str | None, typer.Option(help="Serving: onnx, torchscript, triton or auto.")
    ] = None,
    device: Annotated[str | None, typer.Option(help="Serving: cpu, cuda or auto.")] = None,
    triton_url: Annotated[
        str | None,
        typer.Option(help="Serving, runtime triton: the Triton server's gRPC host:port."),
    ] = None,
    triton_model: Annotated[
        str | None,
        typer.Option(help="Serving, runtime triton: the model's name on Triton (default NAME)."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Point an alias at a version whose export passed the parity gate.

    Serving options are stored with the version; a running gateway applies them within a
    second or two. Given for a version the alias already points to, they only update it.
    """
    from registry.errors import AliasUnchanged
    from services.gateway.deployment import parse_overrides

    settings = {
        key: value
        for key, value in {
            "max_batch_size": max_batch_size,
            "max_queue_delay_ms": max_queue_delay_ms,
            "slo_ms": slo_ms,
            "max_queue": max_queue,
            "max_inflight": max_inflight,
            "runtime": runtime,
            "device": device,
            "triton_url": triton_url,
            "triton_model": triton_model,
        }.items()
        if value is not None
    }
    overrides = parse_overrides(settings)
    registry = ctx.obj.registry()
    try:
        event = registry.set_alias(name, alias, version, reason=reason, actor=by)
    except AliasUnchanged:
        if not overrides:
            raise
        event = None
    if overrides:
        stored = registry.serving_config(f"{name}:{version}")
        registry.set_serving_config(f"{name}:{version}", {**stored, **overrides}, actor=by)
    if event is None:
        message = f"{name}@{alias} already points to {version}; serving settings updated"
        emit_json({"serving": overrides, "message": message}) if as_json else out.print(message)
        return
    if as_json:
        emit_json(event.to_json())
        return
    was = f"from {event.from_version} " if event.from_version is not None else ""
    out.print(f"{name}@{alias}: {was}→ {event.to_version} ({event.reason})")


@app.command()
@reports_errors
def models(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """List registered models, their newest versions and aliases."""
    from services.cli.render import models_table

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
    """Show a version's lineage as a tree: data, code, params, metrics, quality (task,
    baseline, calibration, importances), parents, artifacts."""
    from registry.quality.profile import read_profile
    from services.cli.render import lineage_tree

    registry = ctx.obj.registry()
    lineage = registry.lineage(ref)
    version = registry.get(lineage["ref"])
    quality = version.artifact("quality")
    if quality is not None:
        lineage["quality"] = read_profile(registry.open_artifact(quality)).to_json()
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


def _print_exports(lineage: dict[str, Any]) -> None:
    from services.cli.render import export_lines

    for artifact in lineage["artifacts"]:
        if artifact["kind"] in ("onnx", "torchscript"):
            for line in export_lines(artifact, prefix="  "):
                out.print(line)

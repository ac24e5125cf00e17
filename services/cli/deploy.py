"""`mlgate triton-repo | bento`: gate-passed versions written for another serving engine.

Both take their batching from the same place the gateway does (`Deployment.resolve`: the
version's stored serving config over `MLGATE_*` defaults), so a version is batched alike
whichever engine serves it.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from services.cli.common import JsonOption, app, emit_json, err, out, progress, reports_errors

if TYPE_CHECKING:
    from exporters.deploy_common import ServingSettings, SettingsFor
    from registry.records import ModelVersion
    from registry.store import Registry

__all__ = ["bento", "gateway_settings_for", "triton_repo"]


class TritonFormat(StrEnum):
    auto = "auto"
    onnx = "onnx"
    torchscript = "torchscript"


class InstanceKind(StrEnum):
    cpu = "cpu"
    gpu = "gpu"


ForceOption = Annotated[
    bool,
    typer.Option("--force", help="Write into a non-empty OUT, replacing only what this writes."),
]


def gateway_settings_for(registry: Registry) -> SettingsFor:
    """Each version's batching as the gateway would serve it (stored config over MLGATE_*)."""
    from exporters.deploy_common import ServingSettings
    from services.gateway.deployment import Deployment
    from services.gateway.settings import GatewaySettings

    defaults = GatewaySettings()

    def settings_for(version: ModelVersion) -> ServingSettings:
        deployment = Deployment.resolve(defaults, registry.serving_config(version.ref))
        return ServingSettings(
            max_batch_size=deployment.max_batch_size,
            max_queue_delay_ms=deployment.max_queue_delay_ms,
            max_queue=deployment.max_queue,
            slo_ms=deployment.slo_ms,
            intra_op_threads=deployment.intra_op_threads,
        )

    return settings_for


@app.command("triton-repo")
@reports_errors
def triton_repo(
    ctx: typer.Context,
    target: Annotated[
        Path, typer.Argument(metavar="OUT", help="Repository folder (new or empty).")
    ],
    refs: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="NAME",
            help="NAME (newest version), NAME:VERSION or NAME@ALIAS. None: every version a "
            "serving alias points to.",
        ),
    ] = None,
    fmt: Annotated[
        TritonFormat,
        typer.Option(
            "--format", "-f", help="auto: ONNX unless most versions have only TorchScript."
        ),
    ] = TritonFormat.auto,
    instance_kind: Annotated[
        InstanceKind, typer.Option(help="Triton instance_group kind: KIND_CPU or KIND_GPU.")
    ] = InstanceKind.cpu,
    instances: Annotated[int, typer.Option(min=1, help="Instances of each model.")] = 1,
    alias: Annotated[
        list[str] | None,
        typer.Option(
            help="Serving alias, when no NAME is given (repeat; default MLGATE_SERVE_ALIASES)."
        ),
    ] = None,
    force: ForceOption = False,
    as_json: JsonOption = False,
) -> None:
    """Write a Triton model repository (config.pbtxt + ONNX or TorchScript per version)."""
    from exporters.triton_repo import write_triton_repository
    from services.gateway.settings import GatewaySettings

    registry = ctx.obj.registry()
    aliases = alias or GatewaySettings().serve_aliases
    with progress(f"writing a Triton repository in {target}"):
        written = write_triton_repository(
            registry,
            refs or [],
            target,
            fmt=fmt.value,
            instance_kind=instance_kind.value,
            instance_count=instances,
            force=force,
            aliases=aliases,
            serving=gateway_settings_for(registry),
        )
    if as_json:
        emit_json(written.to_json())
        return
    for reason in written.skipped:
        err.print(f"[yellow]skipped[/] {reason}", highlight=False, soft_wrap=True)
    for model in written.models:
        versions = ", ".join(
            f"{n} ({'folder' if model.layout[n] == 'directory' else 'file'})"
            for n in sorted(model.versions)
        )
        out.print(
            f"{model.name}: versions {versions} · {model.fmt} ({model.backend} backend) · "
            f"max_batch_size {model.settings.max_batch_size}, queue delay "
            f"{model.settings.max_queue_delay_ms:g} ms",
            highlight=False,
            soft_wrap=True,
        )
    out.print(
        f"serve it with: tritonserver --model-repository={target.absolute()}",
        highlight=False,
        soft_wrap=True,
    )


@app.command()
@reports_errors
def bento(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(metavar="NAME", help="NAME, NAME:VERSION or NAME@ALIAS")],
    target: Annotated[Path, typer.Argument(metavar="OUT", help="Service folder (new or empty).")],
    force: ForceOption = False,
    as_json: JsonOption = False,
) -> None:
    """Write a BentoML service (service.py, bentofile.yaml, the ONNX files) for a version."""
    from exporters.bento import write_bento

    registry = ctx.obj.registry()
    version = registry.get(ref)
    with progress(f"writing a BentoML service for {version.ref} in {target}"):
        written = write_bento(
            registry,
            version.ref,
            target,
            settings=gateway_settings_for(registry)(version),
            force=force,
        )
    if as_json:
        emit_json(written.to_json())
        return
    out.print(
        f"{written.ref} → {target}: {written.service}, POST /predict. {written.batching}",
        highlight=False,
        soft_wrap=True,
    )
    out.print(
        f"build it with: cd {target} && bentoml build  (see {target / 'README.txt'})",
        highlight=False,
        soft_wrap=True,
    )

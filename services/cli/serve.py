"""`mlgate serve | demo`: the gateway, and the whole loop on the demo model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from services.cli.common import JsonOption, app, emit_json, err, out, progress, reports_errors

if TYPE_CHECKING:
    from services.gateway.settings import GatewaySettings

__all__ = ["DEFAULT_GRPC_PORT", "demo", "serve_grpc_port"]


def _worker_env(state: Any, settings: GatewaySettings, workers: int) -> dict[str, str]:
    """What each worker process must read from its environment to match this command."""
    import os

    from services.gateway.workers import plan_inflight, plan_threads

    threads = plan_threads(workers, settings.intra_op_threads)
    env = {
        "MLGATE_HOST": settings.host,
        "MLGATE_PORT": str(settings.port),
        "MLGATE_SERVE_ALIASES": ",".join(settings.serve_aliases),
        "MLGATE_INTRA_OP_THREADS": str(threads),
        "MLGATE_MAX_INFLIGHT": str(plan_inflight(workers, threads, settings.max_inflight)),
    }
    if settings.grpc_port is None:
        os.environ.pop("MLGATE_GRPC_PORT", None)
    else:
        env["MLGATE_GRPC_PORT"] = str(settings.grpc_port)
    if state.home is not None:
        env["MLGATE_HOME"] = str(state.home)
    if state.registry_url is not None:
        env["MLGATE_REGISTRY_URL"] = state.registry_url
    return env


DEFAULT_GRPC_PORT = 8001  # Triton's


def serve_grpc_port(settings: GatewaySettings, flag: int | None, *, no_grpc: bool) -> int | None:
    """The port `mlgate serve` serves gRPC on: --no-grpc, else --grpc-port, else
    MLGATE_GRPC_PORT, else 8001; 0 means off (here, unlike the setting, where 0 asks for
    a free port: a command line wants a port it can print and clients can find)."""
    if no_grpc:
        return None
    if flag is not None:
        port = flag
    elif "grpc_port" in settings.model_fields_set and settings.grpc_port is not None:
        port = settings.grpc_port
    else:
        port = DEFAULT_GRPC_PORT
    return port or None


@app.command()
@reports_errors
def demo(
    ctx: typer.Context,
    rows: Annotated[int, typer.Option(min=100, help="Rows of generated training data.")] = 20_000,
    seed: Annotated[int, typer.Option(help="Seed for data and training.")] = 7,
    name: Annotated[str, typer.Option(help="Model name.")] = "credit-risk",
    loop_rows: Annotated[
        int, typer.Option(min=600, help="Requests per traffic phase of the loop.")
    ] = 3000,
    as_json: JsonOption = False,
) -> None:
    """The whole loop: train, register, gate, serve; a harmless drift (a finding) and a
    harmful one (quality falls, a task); retrain, judge, promote; quality recovers."""
    import time

    from rich.table import Table

    from services.demo.loop import LoopStep, run_loop
    from services.demo.register import run_demo

    state = ctx.obj
    registry = state.registry()
    started = time.perf_counter()
    with progress("demo") as step:
        outcome = run_demo(registry, rows=rows, seed=seed, name=name, progress=step, log=err.print)
    first = LoopStep(
        "train → register → export → promote",
        round(time.perf_counter() - started, 1),
        f"{outcome['ref']} AUC {outcome['metrics']['auc']:.3f}; ONNX, TorchScript passed the gate",
    )
    err.print(f"[green]✓[/] {first.name}: {first.figure}")
    loop = run_loop(
        state.home or registry.settings.home,
        state.registry_url,
        name,
        seed=seed,
        rows=loop_rows,
        log=lambda s: err.print(f"[green]✓[/] {s.name} ({s.seconds:.1f} s): {s.figure}"),
    )
    steps = [first, *loop]
    served = registry.get(f"{name}@production")
    lineage = Path(registry.settings.home) / "reports" / f"lineage-{name}-v{served.version}.json"
    lineage.parent.mkdir(parents=True, exist_ok=True)
    lineage.write_text(json.dumps(registry.lineage(served.ref), indent=2, default=str))
    report = next(s.details["report"] for s in steps if "report" in s.details)
    if as_json:
        emit_json(
            {
                **outcome,
                "steps": [s.__dict__ for s in steps],
                "serving": served.ref,
                "report": report,
                "lineage": str(lineage),
            }
        )
        return
    table = Table(title=f"mlgate demo: the whole loop on {name}")
    for column in ("step", "seconds", "key figure"):
        table.add_column(column)
    for s in steps:
        table.add_row(s.name, f"{s.seconds:.1f}", s.figure)
    out.print(table)
    total = sum(s.seconds for s in steps)
    out.print(f"drift report: {report}")
    out.print(f"lineage of {served.ref}: {lineage} (or `mlgate show {name}@production`)")
    out.print(f"[bold green]{served.ref}[/] is {name}@production · the loop took {total:.0f} s")


@app.command()
@reports_errors
def serve(
    ctx: typer.Context,
    host: Annotated[str | None, typer.Option(help="Address to bind (default 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default 8000).")] = None,
    alias: Annotated[
        list[str] | None,
        typer.Option(help="Serve the versions this alias points to (repeat; default production)."),
    ] = None,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "info",
    grpc_port: Annotated[
        int | None,
        typer.Option(
            min=0,
            max=65535,
            help=f"gRPC port (Triton's GRPCInferenceService; default {DEFAULT_GRPC_PORT}, "
            "or MLGATE_GRPC_PORT; 0 turns gRPC off).",
        ),
    ] = None,
    no_grpc: Annotated[bool, typer.Option("--no-grpc", help="Serve HTTP only.")] = False,
    workers: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Gateway processes on the port (default MLGATE_WORKERS, else one per core).",
        ),
    ] = None,
) -> None:
    """Serve the aliased versions over the Open Inference Protocol (HTTP and gRPC), with
    batching."""
    from services.gateway.settings import GatewaySettings
    from services.gateway.workers import cores, run_workers

    overrides: dict[str, Any] = {"host": host, "port": port, "serve_aliases": alias or None}
    given: dict[str, Any] = {k: v for k, v in overrides.items() if v is not None}
    settings = GatewaySettings(**given)  # the environment fills in the rest
    settings = settings.model_copy(
        update={"grpc_port": serve_grpc_port(settings, grpc_port, no_grpc=no_grpc)}
    )
    count = workers or settings.workers or cores()
    grpc = (
        "no gRPC" if settings.grpc_port is None else f"gRPC on {settings.host}:{settings.grpc_port}"
    )
    err.print(
        f"mlgate serving {', '.join(settings.serve_aliases)} on "
        f"http://{settings.host}:{settings.port} and {grpc}, "
        f"{count} worker{'s' if count > 1 else ''}"
    )
    if count > 1:
        run_workers(
            count,
            host=settings.host,
            port=settings.port,
            env=_worker_env(ctx.obj, settings, count),
            log_level=log_level,
        )
        return
    # Imported here: with several workers this process only supervises (each worker, a
    # spawned process, imports the gateway itself), so it starts them without waiting.
    import uvicorn

    from services.gateway.app import create_app
    from services.gateway.door import DoorProtocol

    application = create_app(settings, registry=ctx.obj.registry())
    uvicorn.run(
        application,
        host=settings.host,
        port=settings.port,
        loop="uvloop",
        http=DoorProtocol,
        log_level=log_level,
        access_log=False,
        timeout_graceful_shutdown=10,
    )

"""`mlgate serve | demo`: the gateway, and the whole loop on the demo model."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from services.cli_common import JsonOption, app, emit_json, err, out, progress, reports_errors

__all__ = ["demo"]


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
) -> None:
    """Serve the aliased versions over the Open Inference Protocol (HTTP), with batching."""
    import uvicorn

    from services.gateway.app import create_app
    from services.gateway.settings import GatewaySettings

    overrides: dict[str, Any] = {"host": host, "port": port, "serve_aliases": alias or None}
    given: dict[str, Any] = {k: v for k, v in overrides.items() if v is not None}
    settings = GatewaySettings(**given)  # the environment fills in the rest
    application = create_app(settings, registry=ctx.obj.registry())
    err.print(
        f"mlgate serving {', '.join(settings.serve_aliases)} on http://{settings.host}:{settings.port}"
    )
    uvicorn.run(
        application,
        host=settings.host,
        port=settings.port,
        loop="uvloop",
        http="httptools",
        log_level=log_level,
        access_log=False,
        timeout_graceful_shutdown=10,
    )

"""`mlgate serve | demo`: the gateway, and the whole loop on the demo model."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from services.cli_common import JsonOption, app, emit_json, err, out, progress, reports_errors

__all__ = ["demo"]


@app.command()
@reports_errors
def demo(
    ctx: typer.Context,
    rows: Annotated[int, typer.Option(min=100, help="Rows of generated training data.")] = 20_000,
    seed: Annotated[int, typer.Option(help="Seed for data and training.")] = 7,
    name: Annotated[str, typer.Option(help="Model name.")] = "credit-risk",
    requests: Annotated[int, typer.Option(min=0, help="Requests to send (0: no traffic).")] = 2000,
    concurrency: Annotated[int, typer.Option(min=1, help="Concurrent clients.")] = 16,
    as_json: JsonOption = False,
) -> None:
    """Train, register, export through the gate, promote, then serve and send traffic."""
    from services.demo import demo_traffic, run_demo
    from services.render import lineage_tree

    state = ctx.obj
    registry = state.registry()
    with progress("demo") as step:
        outcome = run_demo(registry, rows=rows, seed=seed, name=name, progress=step, log=err.print)
    if not as_json:
        out.print(lineage_tree(registry.lineage(outcome["ref"]), registry.alias_history(name)))
    if requests:
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=err,
            transient=True,
        ) as bar:
            task = bar.add_task(f"{requests} requests, {concurrency} at a time", total=requests)
            outcome["traffic"] = demo_traffic(
                state.home,
                state.registry_url,
                name,
                requests=requests,
                concurrency=concurrency,
                seed=seed,
                advance=lambda: bar.advance(task),
            )
    if as_json:
        emit_json(outcome)
        return
    if requests:
        traffic = outcome["traffic"]
        out.print(
            f"served {traffic['requests']} requests ({traffic['concurrency']} concurrent clients): "
            f"p50 {traffic['p50_ms']:.2f} ms, p99 {traffic['p99_ms']:.2f} ms, "
            f"{traffic['throughput_rps']:.0f} req/s, mean batch size {traffic['mean_batch_size']} "
            f"(batches by dispatch reason: {traffic['batch_reasons']}), "
            f"statuses {traffic['statuses']}"
        )
        if traffic["mean_batch_size"] == 1.0:
            out.print(
                "  every request ran at once: this model computes faster than a hop to a "
                "worker thread, so nothing was worth waiting for (see docs/gateway.md; "
                "`make bench` shows batching on a compute-bound model)"
            )
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

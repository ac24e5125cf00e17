"""`mlgate retrain TASK_ID | --worker`: run the retrainer on a task, or loop as a worker."""

from __future__ import annotations

import os
import socket
import time
from typing import Annotated, Any

import typer

from services.cli_common import JsonOption, app, emit_json, err, out, reports_errors

__all__ = ["retrain"]


def _line(task: Any) -> str:
    outcome = task.outcome
    if task.status == "failed":
        return f"task {task.id} failed: {task.error}"
    figures = ""
    if "metric" in outcome:
        figures = (
            f": {outcome['metric']} {outcome['candidate']:.4f} (v{task.candidate_version}) vs "
            f"{outcome['serving']:.4f} (v{task.serving_version}) on {outcome['rows']} held-out rows"
        )
    return f"task {task.id} {task.status}{figures}"


@app.command()
@reports_errors
def retrain(
    ctx: typer.Context,
    task_id: Annotated[int | None, typer.Argument(min=1, help="An open task to retrain.")] = None,
    worker: Annotated[
        bool, typer.Option("--worker", help="Claim and retrain open tasks, in a loop.")
    ] = False,
    once: Annotated[
        bool, typer.Option("--once", help="With --worker: stop when none is open.")
    ] = False,
    interval: Annotated[float, typer.Option(min=0.1, help="Seconds between looks.")] = 5.0,
    margin: Annotated[
        float | None,
        typer.Option(
            help="How much better a candidate must be to be promoted alone "
            "(default $MLGATE_RETRAIN_MARGIN, 0.01)."
        ),
    ] = None,
    no_auto_promote: Annotated[
        bool, typer.Option("--no-auto-promote", help="Leave every candidate for approval.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Retrain a drifted model from its task: train, register, gate, compare, promote."""
    from registry.errors import BadRequest
    from services.retrainer import Retrainer, RetrainSettings

    if (task_id is None) == (not worker):
        raise BadRequest("give a TASK_ID or --worker (not both)")
    state = ctx.obj
    registry = state.registry()
    settings = state.monitor_settings(registry)
    retrainer = Retrainer(
        registry,
        settings,
        settings=RetrainSettings.from_monitor(
            settings,
            **({} if margin is None else {"margin": margin}),
            **({"auto_promote": False} if no_auto_promote else {}),
        ),
        worker=f"{socket.gethostname()}:{os.getpid()}",  # unique: workers run side by side
    )
    if task_id is not None:
        done = retrainer.run(task_id)
        if as_json:
            emit_json(done.to_json())
        else:
            out.print(_line(done))
        return
    err.print(f"retraining worker: looking for open tasks every {interval:g} s")
    while True:
        task = retrainer.run_next()
        if task is not None:
            out.print(_line(task))
            continue
        if once:
            return
        time.sleep(interval)

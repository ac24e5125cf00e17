"""`mlgate retrain TASK_ID | --worker`: run the retrainer on a task, or loop as a worker."""

from __future__ import annotations

import os
import socket
import time
from typing import Annotated, Any

import typer

from services.cli.common import JsonOption, app, emit_json, err, id_number, out, reports_errors

__all__ = ["retrain"]


def _line(task: Any) -> str:
    outcome = task.outcome
    if task.status in ("failed", "needs-trainer"):
        return f"task {task.id} {task.status}: {task.error or _last_reason(task)}"
    if task.status == "open" and outcome.get("waiting"):
        retry = outcome["retry_after"]
        return f"task {task.id} open again: {outcome['waiting']} (retry after {retry})"
    window = outcome.get("window")
    figures = ""
    if isinstance(window, dict) and "metric" in window:
        figures = (
            f": {window['metric']} {window['challenger']:.4f} (v{task.candidate_version}) vs "
            f"{window['champion']:.4f} (v{task.serving_version}) on {window['n']} held-out "
            f"window rows, gain {window['gain']:+.4f} "
            f"[{window['lower']:+.4f}, {window['upper']:+.4f}]"
        )
    return f"task {task.id} {task.status}{figures}"


def _last_reason(task: Any) -> str:
    return task.events[-1].reason if task.events else ""


@app.command()
@reports_errors
def retrain(
    ctx: typer.Context,
    task_id: Annotated[
        int | None, typer.Argument(parser=id_number, help="An open task to retrain.")
    ] = None,
    candidate: Annotated[
        int | None,
        typer.Option(
            parser=id_number,
            help="Judge this version (registered by a person with --parent) for a "
            "needs-trainer task, instead of training.",
        ),
    ] = None,
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
    """Retrain a model from its task: train on the task's window, register a candidate,
    gate it, judge it against the serving version, promote it on evidence. In a terminal,
    stderr shows the task's stage and the trainer's epochs as they happen."""
    from registry.errors import BadRequest
    from services.cli.progress import RetrainDisplay
    from services.retraining.retrainer import Retrainer, RetrainSettings

    if (task_id is None) == (not worker):
        raise BadRequest("give a TASK_ID or --worker (not both)")
    if candidate is not None and task_id is None:
        raise BadRequest("--candidate judges a version for one TASK_ID")
    state = ctx.obj
    registry = state.registry()
    settings = state.monitor_settings(registry)
    display = RetrainDisplay(err, enabled=not as_json)  # in a terminal only
    retrainer = Retrainer(
        registry,
        settings,
        settings=RetrainSettings.from_monitor(
            settings,
            **({} if margin is None else {"margin": margin}),
            **({"auto_promote": False} if no_auto_promote else {}),
        ),
        worker=f"{socket.gethostname()}:{os.getpid()}",  # unique: workers run side by side
        progress=display,
    )
    if task_id is not None:
        with display:
            done = retrainer.run(task_id, candidate=candidate)
        if as_json:
            emit_json(done.to_json())
        else:
            out.print(_line(done))
        return
    err.print(f"retraining worker: looking for open tasks every {interval:g} s")
    while True:
        with display:  # each task's progress, cleared before its line is printed
            task = retrainer.run_next()
        if task is not None:
            out.print(_line(task))
            continue
        if once:
            return
        time.sleep(interval)

"""`mlgate tasks ...`: retraining tasks for people: list, show, open, approve, reject."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.table import Table

from services.cli.common import JsonOption, app, emit_json, err, id_number, out, reports_errors

__all__ = ["tasks_app"]

tasks_app = typer.Typer(
    help="Retraining tasks: opened when drift is confirmed, or by a person.",
    no_args_is_help=False,
    invoke_without_command=True,
)
app.add_typer(tasks_app, name="tasks")


def _store(state: Any) -> tuple[Any, Any]:
    from monitors.tasks.store import task_store

    registry = state.registry()
    return registry, task_store(registry, state.monitor_settings(registry))


def _announce(task: Any, event: str) -> None:
    """Tell MLGATE_TASK_WEBHOOK_URL, if set, and wait for the delivery (or its retries)."""
    from monitors.settings import MonitorSettings
    from monitors.tasks.webhook import TaskNotifier

    url = MonitorSettings().task_webhook_url
    if url is None or task is None:
        return
    notifier = TaskNotifier(url)
    notifier.notify(task, event)
    if not notifier.close(60) or notifier.stats().failed:
        err.print(f"warning: the task webhook {url} did not accept the notification")


@tasks_app.callback()
@reports_errors
def tasks(
    ctx: typer.Context,
    model: Annotated[str | None, typer.Option(help="Only this model's tasks.")] = None,
    status: Annotated[
        str | None,
        typer.Option(help="Only tasks in this status (open, running, candidate, ...)."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """List retraining tasks, newest first (or run a subcommand)."""
    if ctx.invoked_subcommand is not None:
        return
    _, store = _store(ctx.obj)
    found = store.list(model=model, status=status)
    if as_json:
        emit_json({"tasks": [t.to_json() for t in found]})
        return
    table = Table(title="Retraining tasks")
    for column in ("id", "model", "reason", "status", "dups", "share", "opened"):
        table.add_column(column, overflow="fold")
    for task in found:
        share = task.evidence.get("drift_share")
        status = task.status
        if task.candidate_version is not None:
            status += f" (v{task.candidate_version})"
        table.add_row(
            str(task.id),
            f"{task.model}:{task.serving_version}",
            task.reason,
            status,
            str(task.duplicate_count),
            "-" if share is None else f"{share:.2f}",
            task.created_at.strftime("%Y-%m-%d %H:%M"),
        )
    out.print(table)


@tasks_app.command("show")
@reports_errors
def show(ctx: typer.Context, task_id: Annotated[int, typer.Argument(parser=id_number)]) -> None:
    """One task as JSON: evidence, window, outcome and every status change."""
    _, store = _store(ctx.obj)
    emit_json(store.get(task_id).to_json())


@tasks_app.command("open")
@reports_errors
def open_task(
    ctx: typer.Context,
    model: Annotated[str, typer.Argument(help="Model name.")],
    reason: Annotated[str, typer.Option(help="Why it needs retraining (kept in the audit).")],
    version: Annotated[
        int | None, typer.Option(parser=id_number, help="Serving version (default: @latest).")
    ] = None,
    evidence: Annotated[
        str | None, typer.Option(help="Evidence as a JSON object (links, figures).")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Open a retraining task by hand (the same path the monitor and Alertmanager use)."""
    from registry.errors import BadRequest

    registry, store = _store(ctx.obj)
    target = registry.get(f"{model}@latest" if version is None else f"{model}:{version}")
    try:
        details = json.loads(evidence) if evidence else {}
    except json.JSONDecodeError as exc:
        raise BadRequest(f"--evidence is not valid JSON: {exc}") from None
    if not isinstance(details, dict):
        raise BadRequest("--evidence must be a JSON object")
    outcome = store.open(
        model,
        target.version,
        reason,
        evidence={**details, "opened_by": "cli"},
        source="cli",
        actor=registry.actor(),
    )
    _announce(outcome.task, "task.opened" if outcome.action == "created" else "task.updated")
    if as_json:
        emit_json({"action": outcome.action, "why": outcome.why,
                   "task": outcome.task.to_json() if outcome.task else None})  # fmt: skip
        return
    out.print(f"{outcome.action}: {outcome.why}")


@tasks_app.command("approve")
@reports_errors
def approve(
    ctx: typer.Context,
    task_id: Annotated[int, typer.Argument(parser=id_number)],
    reason: Annotated[str, typer.Option(help="Why (kept in the audit log).")],
    alias: Annotated[str, typer.Option(help="The alias to move.")] = "production",
) -> None:
    """Promote a candidate task's version: move the alias to it."""
    from monitors.tasks.decisions import approve_task

    registry, store = _store(ctx.obj)
    task = approve_task(store, registry, task_id, alias=alias, reason=reason,
                        actor=registry.actor())  # fmt: skip
    _announce(task, "task.updated")
    out.print(f"task {task.id} promoted: {alias} → {task.model}:{task.candidate_version}")


@tasks_app.command("reject")
@reports_errors
def reject(
    ctx: typer.Context,
    task_id: Annotated[int, typer.Argument(parser=id_number)],
    reason: Annotated[str, typer.Option(help="Why (kept in the audit log).")],
) -> None:
    """Reject an open or candidate task."""
    from monitors.tasks.decisions import reject_task

    registry, store = _store(ctx.obj)
    task = reject_task(store, task_id, reason=reason, actor=registry.actor())
    _announce(task, "task.updated")
    out.print(f"task {task.id} rejected")

"""`mlgate drift | monitor`: drift results, and the drift monitor as its own process."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer

from services.cli.common import JsonOption, app, emit_json, err, id_number, out, reports_errors

__all__ = ["drift", "monitor"]


def _monitor(state: Any, registry: Any) -> Any:
    from monitors.monitor import DriftMonitor

    return DriftMonitor(registry, state.monitor_settings(registry))


def _decision(registry: Any, model: str, version: int) -> str | None:
    """The decision policy's latest word on this version's drift (a finding, or a task)."""
    from monitors.quality.store import QualityStore

    latest = QualityStore(registry.db).latest(model, version)
    decision = (latest.result.get("decision") if latest is not None else None) or {}
    if decision.get("outcome") in ("finding", "task"):
        return f"{decision['outcome']} ({decision.get('rule')}): {decision.get('summary')}"
    return None


@app.command()
@reports_errors
def drift(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Model name.")],
    version: Annotated[
        int | None,
        typer.Option(
            parser=id_number, help="Version (default: the newest checked, or logged, one)."
        ),
    ] = None,
    check: Annotated[
        bool,
        typer.Option(
            "--check",
            help="Run a check now on the rows logged since the previous one (any number).",
        ),
    ] = False,
    report: Annotated[
        Path | None, typer.Option(help="Write the Evidently HTML report of the check here.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Show the latest drift check of a model (or run one), optionally as an HTML report."""
    from registry.errors import NotFound
    from services.cli.render import drift_table

    registry = ctx.obj.registry()
    monitor = _monitor(ctx.obj, registry)
    if check:
        registry.get(name if version is None else f"{name}:{version}")  # 404s
        logged = [v for m, v in monitor.targets() if m == name]
        if version is None and not logged:
            raise NotFound(f"no rows of {name} are in {monitor.settings.log_path()}")
        target = version or max(logged)
        result = monitor.check(name, target, force=True)
        if result is None:
            raise NotFound(f"no rows of {name}:{target} were logged since the previous check")
    else:
        registry.get(name if version is None else f"{name}:{version}")
        result = monitor.store.latest(name, version)
        if result is None:
            raise NotFound(
                f"no drift check is stored for {name}; run `mlgate drift {name} --check`, or "
                "let the gateway's monitor (or `mlgate monitor`) run one"
            )
    if report is not None:
        rendered = monitor.report(result)
        report.parent.mkdir(parents=True, exist_ok=True)
        report.write_bytes(rendered.read_bytes())
    decision = _decision(registry, result.model, result.version)
    if as_json:
        emit_json(
            {**result.to_json(), "decision": decision, "report": str(report) if report else None}
        )
        return
    out.print(drift_table(result.to_json()))
    if decision is not None:
        out.print(f"decision: {decision}", highlight=False)
    if report is not None:
        out.print(f"report: {report}")


@app.command()
@reports_errors
def monitor(
    ctx: typer.Context,
    once: Annotated[bool, typer.Option("--once", help="One round of checks, then exit.")] = False,
    interval: Annotated[
        float | None,
        typer.Option(min=0.1, help="Seconds between rounds (default $MLGATE_DRIFT_INTERVAL_S)."),
    ] = None,
) -> None:
    """Run monitoring rounds over every replica's inference log: drift and data quality,
    quality from labels and estimates, and the decision policy (gateways set
    MLGATE_DRIFT_MONITOR=external and publish what this stores). In a terminal, stderr
    shows each round's progress through the versions."""
    from monitors.loop import Monitor
    from services.cli.progress import monitor_cycle

    registry = ctx.obj.registry()
    checker = Monitor(registry, ctx.obj.monitor_settings(registry))
    pause = interval or checker.settings.drift_interval_s
    err.print(f"monitoring {checker.settings.log_path()} every {pause:g} s")
    while True:
        for done in monitor_cycle(checker, err):  # a bar of the versions, in a terminal
            drift = done.drift
            decision = done.quality.result.get("decision") or {}
            shown = (
                ""
                if drift is None
                else (
                    f" · drift check {drift.id}: {drift.rows} rows, share {drift.share:.2f}"
                    f"{' DRIFT' if drift.detected else ''}"
                )
            )
            out.print(
                f"{done.model}:{done.version} quality {done.quality.status}{shown} · "
                f"{decision.get('outcome')}: {decision.get('summary')}",
                highlight=False,
            )
        if once:
            return
        time.sleep(pause)

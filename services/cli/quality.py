"""`mlgate quality | policy`: a version's quality from labels and estimates, and the
thresholds the decision policy applies to it."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from services.cli.common import (
    JsonOption,
    app,
    emit_json,
    id_number,
    key_values,
    out,
    reports_errors,
)

__all__ = ["policy", "quality"]


@app.command()
@reports_errors
def quality(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Model name.")],
    version: Annotated[
        int | None,
        typer.Option(parser=id_number, help="Version (default: the newest evaluated one)."),
    ] = None,
    check: Annotated[
        bool,
        typer.Option(
            "--check",
            help="Run a monitoring round for the version now (predictions, labels, drift, "
            "the decision) instead of showing the latest stored one.",
        ),
    ] = False,
    history: Annotated[
        int, typer.Option(min=0, max=1000, help="Also list this many older evaluations.")
    ] = 0,
    as_json: JsonOption = False,
) -> None:
    """Show a model's realised and estimated quality against its baseline, label coverage
    and delay, per-bucket figures, and what the decision policy made of them."""
    from monitors.quality.store import QualityStore
    from registry.errors import NotFound
    from services.cli.render_quality import figure_text, quality_view

    registry = ctx.obj.registry()
    target = registry.get(name if version is None else f"{name}:{version}")  # 404s
    store = QualityStore(registry.db)
    if check:
        from monitors.loop import Monitor

        chosen = version or _served_or_newest(registry, name)
        monitor = Monitor(registry, ctx.obj.monitor_settings(registry))
        found = [monitor.round(name, chosen).quality]
        found += store.history(name, chosen, limit=history + 1)[1:]
    else:
        found = store.history(name, version, limit=history + 1)
    if not found:
        raise NotFound(
            f"no quality evaluation is stored for {target.name}; run `mlgate quality {name} "
            "--check`, or let the gateway's monitor (or `mlgate monitor`) run one"
        )
    if as_json:
        latest = found[0].to_json()
        latest["history"] = [c.to_json() for c in found[1:]]
        emit_json(latest)
        return
    out.print(quality_view(found[0].to_json()))
    for older in found[1:]:
        result = older.result
        out.print(
            f"  {older.checked_at.isoformat()[:19]} · {older.status} · realised "
            f"{figure_text((result.get('realised') or {}).get('figure'))} · decision "
            f"{(result.get('decision') or {}).get('outcome')}"
        )


@app.command()
@reports_errors
def policy(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Model name.")],
    version: Annotated[
        int | None, typer.Option(parser=id_number, help="One version (default: the whole model).")
    ] = None,
    set_values: Annotated[
        list[str] | None,
        typer.Option("--set", help="KEY=VALUE: override a threshold (repeat)."),
    ] = None,
    unset: Annotated[
        list[str] | None, typer.Option("--unset", help="KEY: back to the default (repeat).")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Show or change the decision policy's thresholds for a model or one version (tolerance,
    minimum labels, drift importance, a retraining schedule, data-quality limits)."""

    from monitors.quality.policy_store import KEYS, PolicyStore, effective_limits
    from services.cli.render_quality import policy_table

    registry = ctx.obj.registry()
    registry.get(name if version is None else f"{name}:{version}")  # 404s
    store = PolicyStore(registry.db)
    changes = key_values(list(set_values or []), "--set")
    if changes or unset:
        store.update(
            name, version, set_values=changes, unset=tuple(unset or ()), actor=registry.actor()
        )
    overrides = store.overrides(name, version)
    settings = ctx.obj.monitor_settings(registry)
    limits = effective_limits(settings, overrides)
    effective = {key: getattr(settings, field) for key, (_, field) in KEYS.items()}
    effective.update(overrides)
    if as_json:
        emit_json(
            {
                "model": name,
                "version": version,
                "effective": effective,
                "overrides": overrides,
                "quality_metric": limits.quality.metric,
            }
        )
        return
    out.print(policy_table(effective, overrides))


def _served_or_newest(registry: Any, name: str) -> int:
    """The version `production` points to, else the newest one."""
    from registry.errors import NotFound

    try:
        return int(registry.get(f"{name}@production").version)
    except NotFound:
        return int(registry.get(name).version)

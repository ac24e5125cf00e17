"""`mlgate canary`: give a version a share of an alias's traffic, read how it goes, complete
it (the alias moves to it) or roll it back."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from services.cli.common import (
    JsonOption,
    app,
    emit_json,
    id_number,
    out,
    reports_errors,
    weight_share,
)

__all__ = ["canary"]


@app.command()
@reports_errors
def canary(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Model name.")],
    version: Annotated[
        int | None, typer.Argument(parser=id_number, help="The version to give a share.")
    ] = None,
    alias: Annotated[str, typer.Option(help="The alias whose traffic is split.")] = "production",
    weight: Annotated[
        float,
        typer.Option(parser=weight_share, metavar="SHARE", help="Share of requests it answers."),
    ] = 0.05,
    reason: Annotated[str | None, typer.Option(help="Why (required to change anything).")] = None,
    promote: Annotated[
        bool, typer.Option("--promote", help="Complete it: the alias moves to the canary.")
    ] = False,
    rollback: Annotated[
        bool, typer.Option("--rollback", help="Roll it back: all traffic to the alias's version.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Give VERSION a share (WEIGHT) of the traffic ALIAS routes, in every gateway serving
    it: the same route key (X-Route-Key) always reaches the same version, requests without
    one are split at random, every answer names its version. A gateway rolls the canary
    back by itself when it answers worse (errors, p99 latency, quality). Without VERSION:
    the alias's running canary and its history."""
    from registry.errors import BadRequest

    canaries = ctx.obj.registry().canaries
    if promote or rollback:
        if version is not None or (promote and rollback):
            raise BadRequest("--promote or --rollback acts on the running canary: give no VERSION")
        if reason is None:
            raise BadRequest("a reason is required; say why with --reason")
        if promote:
            done, event = canaries.complete(name, alias, reason=reason)
            if as_json:
                emit_json({"canary": done.to_json(), "alias_event": event.to_json()})
            else:
                out.print(f"{name}@{alias} now points to {name}:{done.version} (canary completed)")
            return
        ended = canaries.end(name, alias, "rolled_back", reason=reason)
        emit_json(ended.to_json()) if as_json else out.print(_line(ended))
        return
    if version is None:
        found = [c for c in canaries.of(name) if c.alias == alias]
        if as_json:
            emit_json([c.to_json() for c in found])
            return
        for item in found:
            out.print(_line(item))
        if not found:
            out.print(f"{name}@{alias}: no canary")
        return
    if reason is None:
        raise BadRequest("a reason is required to start a canary; say why with --reason")
    started = canaries.start(name, alias, version, weight, reason=reason)
    emit_json(started.to_json()) if as_json else out.print(_line(started))


def _line(item: Any) -> str:
    head = f"canary {item.id}: {item.model}:{item.version} on {item.weight:.0%} of @{item.alias}"
    if item.status == "running":
        return f"{head}, running since {item.started_at:%Y-%m-%d %H:%M} ({item.reason})"
    return f"{head}, {item.status.replace('_', ' ')}: {item.ended_reason}"

"""`mlgate shadow` (run a version on a copy of an alias's traffic) and `mlgate compare` (how
two versions agree on the requests both answered, from the inference log)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from services.cli.common import JsonOption, app, emit_json, id_number, out, rate, reports_errors

__all__ = ["compare", "shadow"]


@app.command()
@reports_errors
def shadow(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Model name.")],
    version: Annotated[
        int | None, typer.Argument(parser=id_number, help="The version to run in shadow.")
    ] = None,
    alias: Annotated[str, typer.Option(help="The alias whose traffic is copied.")] = "production",
    rate: Annotated[
        float, typer.Option(parser=rate, metavar="SHARE", help="Share of requests copied.")
    ] = 1.0,
    reason: Annotated[str | None, typer.Option(help="Why (required to set one).")] = None,
    off: Annotated[bool, typer.Option("--off", help="Stop the alias's shadow.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Run VERSION on a copy of the traffic ALIAS answers: gateways serving the alias mirror
    RATE of its requests to it, off the request path, and log both answers under one request
    id; callers only ever get the alias's answer. Without VERSION: show the model's shadows."""
    from registry.errors import BadRequest

    shadows = ctx.obj.registry().shadows
    if off:
        if version is not None:
            raise BadRequest("--off stops the alias's shadow: give no VERSION")
        shadows.clear(name, alias)
        emit_json({"cleared": alias}) if as_json else out.print(f"{name}@{alias}: no shadow")
        return
    if version is None:
        found = shadows.of(name)
        if as_json:
            emit_json([s.to_json() for s in found])
            return
        for rule in found:
            out.print(_line(rule))
        if not found:
            out.print(f"{name}: no shadow")
        return
    if reason is None:
        raise BadRequest("a reason is required to set a shadow; say why with --reason")
    rule = shadows.set(name, alias, version, rate, reason=reason)
    emit_json(rule.to_json()) if as_json else out.print(_line(rule))


def _line(rule: Any) -> str:
    return (
        f"{rule.model}@{rule.alias}: {rule.model}:{rule.version} in shadow on {rule.rate:.0%} of "
        f"requests (set by {rule.actor}: {rule.reason})"
    )


@app.command()
@reports_errors
def compare(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Model name.")],
    first: Annotated[int, typer.Argument(parser=id_number, help="A version.")],
    second: Annotated[int, typer.Argument(parser=id_number, help="Another version.")],
    last: Annotated[
        int, typer.Option(min=1, max=1_000_000, help="Rows of each version's log to pair.")
    ] = 10_000,
    as_json: JsonOption = False,
) -> None:
    """How two versions agree on the requests both answered (a shadow and the version it
    shadows): equal decisions with their interval and confusion for a classifier, the
    absolute difference for a regression; each one's latency and latest quality."""
    from monitors.quality.agreement import compare_versions

    state = ctx.obj
    registry = state.registry()
    log_dir = state.monitor_settings(registry).log_path()
    report = compare_versions(registry, log_dir, name, first, second, last=last)
    if as_json:
        emit_json(report)
        return
    out.print(_comparison(report))


def _comparison(report: dict[str, Any]) -> str:
    first, second = (str(v) for v in report["versions"])
    lines = [
        f"{report['model']}: v{first} ({report['rows'][first]:,} rows logged) vs v{second} "
        f"({report['rows'][second]:,}); {report['paired']:,} requests answered by both"
    ]
    agreement = report["agreement"]
    if agreement is None:
        lines.append("nothing to compare yet: no request id was logged for both")
    elif agreement["kind"] == "decisions":
        low, high = agreement["interval"]
        lines.append(
            f"same decision on {agreement['same_decision']:.2%} [{low:.2%}, {high:.2%}]; "
            f"confusion (rows v{first}, columns v{second}) over classes {agreement['classes']}: "
            f"{agreement['confusion']}"
        )
    else:
        lines.append(
            f"absolute difference: mean {agreement['mean_abs_difference']:.4g}, p99 "
            f"{agreement['p99_abs_difference']:.4g}, max {agreement['max_abs_difference']:.4g}"
        )
    for version in (first, second):
        latency = report["latency_ms"][version]
        quality = report["quality"][version]
        timing = (
            "-" if latency is None else f"p50 {latency['p50']:.2f} ms, p99 {latency['p99']:.2f} ms"
        )
        figure = (
            "no evaluation yet" if quality is None else f"{quality['status']} ({quality['metric']})"
        )
        lines.append(f"v{version}: {timing}; quality {figure}")
    return "\n".join(lines)

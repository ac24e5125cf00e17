"""How the CLI shows quality to a person: the latest evaluation, its buckets, the policy."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from rich.console import Group
from rich.markup import escape
from rich.table import Table

__all__ = ["delay_quantile", "figure_text", "policy_table", "profile_lines", "quality_view"]

_STATUS = {
    "degraded": "[bold red]degraded[/]",
    "holding": "[green]holding[/]",
    "insufficient": "[yellow]not enough labels[/]",
    "no-baseline": "[yellow]no baseline[/]",
    "unknown": "[yellow]unknown task[/]",
}


def figure_text(figure: Mapping[str, Any] | None) -> str:
    if not figure:
        return "-"
    return f"{figure['value']:.4f} [{figure['lower']:.4f}, {figure['upper']:.4f}] n={figure['n']}"


def delay_quantile(delay: Mapping[str, Any], q: float) -> str:
    """A quantile of the label-delay histogram, as Prometheus's histogram_quantile reads it."""
    counts = list(delay.get("counts") or [])
    bounds = [b for b in delay.get("le") or [] if b != "+Inf"]
    total = sum(counts)
    if not total:
        return "-"
    rank, running, lower = q * total, 0, 0.0
    for bound, count in zip([*bounds, None], counts, strict=False):
        if running + count >= rank:
            if bound is None:
                return f"> {_seconds(lower)}"
            share = (rank - running) / count if count else 0.0
            return _seconds(lower + (float(bound) - lower) * share)
        running += count
        lower = float(bound) if bound is not None else lower
    return "-"


def quality_view(check: Mapping[str, Any], limit: int = 12) -> Group:
    """`mlgate quality`: the headline, the figures, the decision, then the buckets."""
    status = _STATUS.get(check["status"], check["status"])
    problem = check.get("problem") or {}
    what = f"{problem.get('task')} · {problem.get('output_kind')}" if problem else "task unknown"
    lines = [
        f"[bold]{escape(check['model'])}:{check['version']}[/] · {status} · "
        f"{escape(what)} · evaluated {check['checked_at'][:19]}"
    ]
    if not problem:
        lines.append(escape(check.get("reason") or ""))
        return Group(*lines)
    metric = check.get("metric")
    realised = check.get("realised") or {}
    estimated = check.get("estimated") or {}
    lines.append(
        escape(
            f"baseline {metric}: {figure_text(check.get('baseline'))}"
            + (f" ({check['baseline_reason']})" if check.get("baseline_reason") else "")
        )
    )
    lines.append(
        escape(
            f"realised {metric}: {figure_text(realised.get('figure'))}"
            f"{_coverage(realised)}{_why(realised)}"
        )
    )
    lines.append(
        escape(f"estimated {metric}: {figure_text(estimated.get('figure'))}{_why(estimated)}")
    )
    for part in (realised, estimated):
        verdict = part.get("verdict")
        if verdict:
            lines.append(
                ("[red]" if verdict["worse"] else "[green]") + escape(verdict["text"]) + "[/]"
            )
    labels = check.get("labels") or {}
    delay = labels.get("delay") or {}
    lines.append(
        escape(
            f"labels: {labels.get('joined', 0)} joined, {labels.get('unusable', 0)} unusable · "
            f"delay p50 {delay_quantile(delay, 0.5)}, p90 {delay_quantile(delay, 0.9)}"
        )
    )
    decision = check.get("decision") or {}
    if decision:
        marks = {"task": "[bold red]task[/]", "finding": "[yellow]finding[/]"}
        mark = marks.get(str(decision.get("outcome")), "[green]ok[/]")
        task = decision.get("task") or {}
        tail = f" → task {task['id']} ({task['action']})" if task.get("id") else ""
        lines.append(f"decision: {mark} · {escape(decision.get('summary', ''))}{escape(tail)}")
    return Group(*lines, _buckets(check.get("buckets") or [], metric, limit))


def _buckets(buckets: list[Mapping[str, Any]], metric: str | None, limit: int) -> Table:
    table = Table(title="buckets (by prediction time, UTC, newest first)")
    for column in (
        "from",
        "predictions",
        "sampled",
        "labelled",
        "coverage",
        f"realised {metric}",
        f"estimated {metric}",
    ):
        table.add_column(column)
    for bucket in buckets[:limit]:
        table.add_row(
            datetime.fromtimestamp(bucket["start_s"], UTC).strftime("%m-%d %H:%M:%S"),
            str(bucket["seen"]),
            str(bucket["sampled"]),
            str(bucket["labelled"]),
            f"{bucket['coverage']:.0%}",
            escape(_compact(bucket.get("realised"))),
            escape(_compact(bucket.get("estimated"))),
        )
    if len(buckets) > limit:
        table.caption = f"{len(buckets) - limit} older buckets in --json"
    return table


def profile_lines(profile: Mapping[str, Any]) -> list[str]:
    """`mlgate show`: what the version knows of its own quality, one line each."""
    problem = profile.get("problem")
    if not problem:
        return [f"[yellow]task unknown[/]: {escape(profile.get('problem_reason') or '')}"]
    lines = [
        escape(
            f"{problem['task']} · {problem['output_kind']} in {problem['output']!r}"
            f" · {problem['source']}"
        )
    ]
    baseline = profile.get("baseline")
    evaluation = profile.get("evaluation") or {}
    if baseline:
        shown = ", ".join(
            f"{name} {f['value']:.4f} [{f['lower']:.4f}, {f['upper']:.4f}]"
            for name, f in (baseline.get("figures") or {}).items()
        )
        lines.append(
            escape(f"baseline on {evaluation.get('rows')} {evaluation.get('source')} rows: {shown}")
        )
    else:
        lines.append(f"[yellow]no baseline[/]: {escape(profile.get('baseline_reason') or '')}")
    calibration = profile.get("calibration")
    if calibration:
        lines.append(escape(f"calibration: {calibration.get('reason')}"))
    importance = profile.get("importance")
    if importance:
        top = list((importance.get("features") or {}).items())[:5]
        lines.append(escape("importance: " + ", ".join(f"{k} {v:.0%}" for k, v in top)))
    else:
        lines.append(f"[dim]no importances: {escape(profile.get('importance_reason') or '')}[/]")
    return lines


def policy_table(effective: Mapping[str, Any], overrides: Mapping[str, Any]) -> Table:
    table = Table(title="decision policy")
    for column in ("setting", "value", "from"):
        table.add_column(column)
    for key, value in effective.items():
        table.add_row(key, escape(str(value)), "override" if key in overrides else "default")
    return table


def _compact(figure: Mapping[str, Any] | None) -> str:
    if not figure:
        return "-"
    return f"{figure['value']:.3f} [{figure['lower']:.3f}, {figure['upper']:.3f}]"


def _coverage(held: Mapping[str, Any]) -> str:
    coverage = held.get("coverage")
    return "" if coverage is None else f" · coverage {coverage:.0%}"


def _why(held: Mapping[str, Any]) -> str:
    return f" ({held['why']})" if held.get("why") else ""


def _seconds(value: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if value >= size:
            return f"{value / size:.1f} {unit}"
    return f"{value:.1f} s"

"""The decision policy: evidence of harm opens a retraining task; drift alone is a finding.

After each round, for each version, the first rule that holds decides (in this order):

1. `data_quality` (task, for a person): the latest drift window breached a data-quality
   check (refused rows, a feature gone constant, most values out of range). Broken data
   comes first: retraining on it would learn the breakage, so the retrainer leaves these
   tasks for a person.
2. `realised_drop` (task): the realised metric over the newest labelled rows is
   significantly worse than the baseline: its whole interval is past the baseline by the
   tolerance, in `consecutive` evaluations in a row, on at least `min_labels` labels.
3. `estimated_drop` (task): while the labels are not in (realised quality not judged),
   the estimated metric is significantly worse in the same sense.
4. drift that persists: the same input features drifted in each of the last
   `alert_consecutive_checks` drift checks (or the dataset-level rule held in each:
   the drifted share reached `MLGATE_DRIFT_SHARE`, or a feature named in
   `MLGATE_ALERT_FEATURE_THRESHOLDS` passed its threshold). Then:
   - measured quality judged and holding → **finding** (kept, shown, not a task);
   - else estimated quality judged and holding → **finding**;
   - else, if the drifted features hold `drift_importance` of the model's importance →
     `important_drift` (task): no quality figure can say whether it matters, and it
     is on what the model uses;
   - else → **finding**.
5. `schedule` (task): `schedule_s` has passed since the model's last task (or, without
   one, since the version was registered), for teams that retrain on a calendar.

A task's window is the run of rows that showed the harm: for a fall, the newest buckets
whose figure is nearer the fallen level than the baseline, back to the first that is not;
for drift, the run of drifted checks; for a schedule, the last `schedule_s`. The retrainer
trains on that window's labelled rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from monitors.drift.alert_policy import AlertPolicy
from monitors.drift.check_store import DriftCheck
from monitors.drift.result import DriftResult
from monitors.quality.store import QualityCheck
from registry.quality.importance import Importance

__all__ = ["Decision", "DecisionPolicy", "PolicyLimits", "drift_impact"]

TOP_FEATURES = 5
_MIN_BUCKET_ROWS = 30  # a bucket with fewer labelled rows neither extends a fall nor ends it


@dataclass(frozen=True)
class PolicyLimits:
    consecutive: int = 2
    """Evaluations in a row with a significant fall before a task opens."""
    drift_consecutive: int = 3
    drift_importance: float = 0.5
    """Share of the model's importance on drifted features that counts as severe."""
    feature_thresholds: dict[str, float] = field(default_factory=dict)
    schedule_s: float | None = None


@dataclass(frozen=True)
class Decision:
    outcome: str
    """`task`, `finding` or `ok`."""
    rule: str | None
    summary: str
    evidence: dict[str, Any] = field(default_factory=dict)
    window_start: datetime | None = None
    window_end: datetime | None = None
    rows: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "outcome": self.outcome,
            "rule": self.rule,
            "summary": self.summary,
            "window": {
                "start": None if self.window_start is None else self.window_start.isoformat(),
                "end": None if self.window_end is None else self.window_end.isoformat(),
                "rows": self.rows,
            },
            "evidence": self.evidence,
        }


def drift_impact(
    check: DriftCheck, importance: Importance | None
) -> tuple[float | None, list[dict[str, Any]]]:
    """The share of the model's importance on the check's drifted features, and the top
    features by drift × importance (None without importances)."""
    result = DriftResult.from_json(check.result)
    inputs = [f for f in result.features if f.role != "prediction" and f.computed]
    weights = {} if importance is None else importance.features
    ranked = sorted(inputs, key=lambda f: (-weights.get(f.column, 0.0) * f.severity, f.column))
    top = [
        {
            "feature": f.column,
            "importance": weights.get(f.column),
            "severity": round(f.severity, 4),
            "score": f.score,
            "method": f.method,
            "drifted": f.drifted,
        }
        for f in ranked[:TOP_FEATURES]
    ]
    if importance is None:
        return None, top
    return sum(weights.get(f.column, 0.0) for f in inputs if f.drifted), top


class DecisionPolicy:
    def __init__(self, limits: PolicyLimits) -> None:
        self.limits = limits
        self.alerts = AlertPolicy(limits.drift_consecutive, dict(limits.feature_thresholds))

    def decide(
        self,
        check: QualityCheck,
        drift: Sequence[DriftCheck],
        importance: Importance | None,
        *,
        registered_at: datetime,
        last_task_at: datetime | None,
        now: datetime | None = None,
    ) -> Decision:
        now = now or datetime.now(UTC)
        result = {**check.result, "metric": check.metric}
        context = self._context(check, drift, importance)
        latest = drift[0] if drift else None
        breaches = _breaches(latest)
        if breaches:
            assert latest is not None
            summary = f"data quality breached: {breaches[0]['message']}"
            return Decision(
                "task",
                "data_quality",
                summary,
                {**context, "breaches": breaches},
                latest.window_start,
                latest.window_end,
                latest.rows,
            )
        for rule, part in (("realised_drop", "realised"), ("estimated_drop", "estimated")):
            held = result.get(part) or {}
            verdict = held.get("verdict") or {}
            if part == "estimated" and (result.get("realised") or {}).get("judged"):
                break  # labels are in: the measured figure decides, not the estimate
            streak = int((result.get("streaks") or {}).get(part, 0))
            if verdict.get("worse") and streak >= self.limits.consecutive:
                start, end, rows = _fall_window(result, part, held)
                summary = f"{verdict['text']}, {streak} evaluations in a row"
                return Decision("task", rule, summary, context, start, end, rows)
        confirmed = self._drift(drift, importance)
        if confirmed is not None:
            return self._judge_drift(result, confirmed, context)
        if self.limits.schedule_s:
            since = last_task_at or registered_at
            if now - since >= timedelta(seconds=self.limits.schedule_s):
                summary = (
                    f"scheduled: {self.limits.schedule_s:g} s since "
                    f"{'the last task' if last_task_at else 'registration'}"
                )
                start = now - timedelta(seconds=self.limits.schedule_s)
                return Decision("task", "schedule", summary, context, start, now, None)
        return Decision("ok", None, "no evidence of harm", context)

    # ---------------------------------------------------------------- drift

    def _drift(
        self, drift: Sequence[DriftCheck], importance: Importance | None
    ) -> dict[str, Any] | None:
        """Drift that persists: features drifted in each of the last `drift_consecutive`
        checks (noise flags a feature now and then, not every time), or the dataset-level
        rule (`AlertPolicy`: the share, or a named feature past its threshold)."""
        confirmation = self.alerts.confirm(drift)
        run = list(drift[: self.limits.drift_consecutive])
        persistent: list[str] = []
        if len(run) == self.limits.drift_consecutive:
            drifted = [_drifted(c) for c in run]
            persistent = [f for f in drifted[0] if all(f in d for d in drifted[1:])]
        if confirmation is None and not persistent:
            return None
        checks = list(confirmation.checks) if confirmation is not None else list(reversed(run))
        latest = checks[-1]
        names = persistent or _drifted(latest)
        weights = None if importance is None else importance.features
        impact = None if weights is None else sum(weights.get(f, 0.0) for f in names)
        result = DriftResult.from_json(latest.result)
        return {
            "important": impact is not None and impact >= self.limits.drift_importance,
            "impact": impact,
            "share": result.share,
            "dataset_drift": confirmation is not None,
            "drifted": names,
            "top_features": drift_impact(latest, importance)[1],
            "checks": [c.id for c in checks],
            "window_start": checks[0].window_start,
            "window_end": latest.window_end,
            "rows": sum(c.rows for c in checks),
            "prediction_drift": result.prediction_drift,
        }

    def _judge_drift(
        self, result: dict[str, Any], drift: dict[str, Any], context: dict[str, Any]
    ) -> Decision:
        names = ", ".join(drift["drifted"][:TOP_FEATURES]) or "the predictions"
        more = len(drift["drifted"]) - TOP_FEATURES
        what = f"{len(drift['drifted'])} feature(s) drifted ({names}{', ...' if more > 0 else ''})"
        if drift["impact"] is not None:
            what += f", holding {drift['impact']:.0%} of the model's importance"
        evidence = {
            **context,
            "drift": {k: v for k, v in drift.items() if k not in ("window_start", "window_end")},
        }
        window = (drift["window_start"], drift["window_end"], drift["rows"])
        for part, word in (("realised", "measured"), ("estimated", "estimated")):
            held = result.get(part) or {}
            verdict = held.get("verdict")
            if held.get("judged") and verdict is not None and not verdict["worse"]:
                figure = held["figure"]
                summary = (
                    f"{what}; the model's {word} {result.get('metric') or 'quality'} "
                    f"holds at {figure['value']:.3f} [{figure['lower']:.3f}, "
                    f"{figure['upper']:.3f}]: a finding, not a task"
                )
                return Decision("finding", "drift", summary, evidence, *window)
        if drift["important"]:
            summary = f"{what}, and no quality figure can judge it yet"
            return Decision("task", "important_drift", summary, evidence, *window)
        summary = f"{what}; no quality figure yet, and not on what the model mostly uses: a finding"
        return Decision("finding", "drift", summary, evidence, *window)

    # ---------------------------------------------------------------- evidence

    def _context(
        self, check: QualityCheck, drift: Sequence[DriftCheck], importance: Importance | None
    ) -> dict[str, Any]:
        """What every decision carries: the figures with intervals, counts, top features."""
        result = {**check.result, "metric": check.metric}
        latest = drift[0] if drift else None
        context: dict[str, Any] = {
            "metric": check.metric,
            "baseline": result.get("baseline"),
            "realised": _brief(result.get("realised")),
            "estimated": _brief(result.get("estimated")),
            "labels": {
                "joined": (result.get("labels") or {}).get("joined"),
                "in_window": (result.get("realised") or {}).get("rows"),
                "coverage": (result.get("realised") or {}).get("coverage"),
            },
            "quality_check_time": check.checked_at.isoformat(),
            "serving_version": check.version,
        }
        if latest is not None:
            context["top_features"] = drift_impact(latest, importance)[1]
            context["drift_check"] = latest.id
            context["report"] = f"/monitoring/models/{check.model}/drift/report?check={latest.id}"
        return context


def _drifted(check: DriftCheck) -> list[str]:
    """The check's drifted input features, most severe first."""
    result = DriftResult.from_json(check.result)
    found = [f for f in result.features if f.drifted and f.role != "prediction"]
    return [f.column for f in sorted(found, key=lambda f: (-f.severity, f.column))]


def _brief(held: dict[str, Any] | None) -> dict[str, Any] | None:
    if not held:
        return None
    return {
        "figure": held.get("figure"),
        "rows": held.get("rows"),
        "judged": held.get("judged"),
        "why": held.get("why"),
        "verdict": held.get("verdict"),
    }


def _breaches(latest: DriftCheck | None) -> list[dict[str, Any]]:
    if latest is None:
        return []
    quality = latest.result.get("data_quality") or {}
    return list(quality.get("breaches") or [])


def _fall_window(
    result: dict[str, Any], part: str, held: dict[str, Any]
) -> tuple[datetime | None, datetime | None, int]:
    """The newest buckets that look like the fall, back to the first that does not.

    A bucket looks like the fall when its figure is nearer the fallen level (the rolling
    figure that was judged worse) than the baseline: past their midpoint. A bucket merely
    past the tolerance would pull in the rows from before a change that were a little
    worse for another reason (harmless drift, say), and the retrainer would learn from them.
    """
    fallen = float(held["figure"]["value"])
    baseline = float((result.get("baseline") or {}).get("value", held["verdict"]["bound"]))
    bound = (fallen + baseline) / 2
    higher = bool((held.get("figure") or {}).get("higher_is_better", True))
    run: list[dict[str, Any]] = []
    for bucket in result.get("buckets") or []:  # newest first
        figure = bucket.get(part)
        if figure is None or figure["n"] < _MIN_BUCKET_ROWS:
            if run:
                break
            continue
        past = figure["value"] < bound if higher else figure["value"] > bound
        if not past:
            break
        run.append(bucket)
    if run:
        start = datetime.fromtimestamp(run[-1]["start_s"], UTC)
        end = datetime.fromtimestamp(run[0]["end_s"], UTC)
        rows = sum(int(b["labelled"] if part == "realised" else b["sampled"]) for b in run)
        return start, end, rows
    window = held.get("window") or {}
    start_us, end_us = window.get("start_us"), window.get("end_us")
    return (
        None if start_us is None else datetime.fromtimestamp(start_us / 1e6, UTC),
        None if end_us is None else datetime.fromtimestamp(end_us / 1e6 + 1e-6, UTC),
        int(held.get("rows") or 0),
    )

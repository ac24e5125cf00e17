"""One monitoring round over every version: drift, data quality, quality, and the decision.

The same class runs inside the gateway (in a worker thread) and as `mlgate monitor`. For
each (model, version) a round:

1. runs a drift check on the rows logged since the previous one, with the window's data
   quality beside it (`DriftMonitor`), when enough rows arrived;
2. evaluates quality: predictions and labels into buckets, realised and estimated
   figures against the baseline (`QualityMonitor`);
3. asks the decision policy (`quality/policy.py`) whether the evidence shows harm: a
   task is opened through `TaskStore.open` (idempotent, deduplicated, cooled down), a
   finding is recorded with its explanation;
4. stores the evaluation with its decision (`quality_checks`).

One failing version does not stop the others; its error is logged and the next round
tries again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from monitors.drift.check_store import DriftCheck
from monitors.monitor import DriftMonitor
from monitors.quality.monitor import QualityMonitor, QualitySettings
from monitors.quality.policy import Decision, DecisionPolicy
from monitors.quality.policy_store import Limits, PolicyStore, effective_limits
from monitors.quality.store import QualityCheck, QualityStore
from monitors.settings import MonitorSettings
from monitors.tasks.store import OpenOutcome, TaskStore, task_store
from registry.store import Registry

__all__ = ["Monitor", "Round", "quality_settings"]

log = logging.getLogger("mlgate.monitors")
QUALITY_RULES = ("realised_drop", "estimated_drop", "schedule")
"""Rules whose statistics are their own guard: the drift minimum-rows rule does not apply."""


@dataclass(frozen=True)
class Round:
    model: str
    version: int
    drift: DriftCheck | None
    quality: QualityCheck
    task: OpenOutcome | None


class Monitor:
    def __init__(
        self,
        registry: Registry,
        settings: MonitorSettings,
        *,
        drift: DriftMonitor | None = None,
        tasks: TaskStore | None = None,
        on_task: Callable[[OpenOutcome], None] | None = None,
    ) -> None:
        self.registry = registry
        self.settings = settings
        self.policies = PolicyStore(registry.db)
        self.drift = drift or DriftMonitor(registry, settings, limits=self.limits)
        self.quality = QualityMonitor(registry, quality_settings(settings))
        self.store: QualityStore = self.quality.store
        self.tasks = tasks or task_store(registry, settings)
        self._on_task = on_task

    def limits(self, model: str, version: int) -> Limits:
        return effective_limits(self.settings, self.policies.overrides(model, version))

    def targets(self) -> list[tuple[str, int]]:
        return self.drift.targets()

    def run_once(self, targets: Iterable[tuple[str, int]] | None = None) -> list[Round]:
        done = []
        for model, version in self.targets() if targets is None else targets:
            try:
                done.append(self.round(model, version))
            except Exception:
                log.exception("monitoring round of %s:%s failed", model, version)
        return done

    def round(self, model: str, version: int, *, now: datetime | None = None) -> Round:
        now = now or datetime.now(UTC)
        limits = self.limits(model, version)
        drift = self.drift.try_check(model, version)
        record = self.registry.get(f"{model}:{version}")
        check = self.quality.evaluate(
            model, version, thresholds=limits.quality, record=record, now=now
        )
        profile = self.quality.profile(model, version)
        decision = DecisionPolicy(limits.policy).decide(
            check,
            self.drift.store.history(model, version, limit=100),
            None if profile is None else profile.importance,
            registered_at=record.created_at,
            last_task_at=self.tasks.last_opened(model),
            now=now,
        )
        shadowing = not record.aliases and any(
            s.version == version for s in self.registry.shadows.of(model)
        )
        act = decision.outcome == "task" and not shadowing
        opened = self._act(model, version, decision) if act else None
        document = decision.to_json()
        if decision.outcome == "task" and shadowing:
            # A shadow answers nobody: its evidence is compared, not acted on.
            document["outcome"], document["shadow"] = "finding", True
        if opened is not None:
            document["task"] = {
                "action": opened.action,
                "id": None if opened.task is None else opened.task.id,
                "why": opened.why,
            }
        stored = self.store.add(check.with_result(decision=document))
        return Round(model, version, drift, stored, opened)

    def _act(self, model: str, version: int, decision: Decision) -> OpenOutcome:
        assert decision.rule is not None
        outcome = self.tasks.open(
            model,
            version,
            decision.rule,
            evidence={"rule": decision.rule, "summary": decision.summary, **decision.evidence},
            source="monitor",
            actor="mlgate monitor",
            window_start=decision.window_start,
            window_end=decision.window_end,
            rows=decision.rows,
            enforce_min_rows=decision.rule not in QUALITY_RULES,
        )
        log.info("%s:%s %s: %s (%s)", model, version, decision.rule, decision.summary, outcome.why)
        if self._on_task is not None and outcome.action != "refused":
            self._on_task(outcome)
        return outcome


def quality_settings(settings: MonitorSettings) -> QualitySettings:
    """The quality monitor's settings from the `MLGATE_QUALITY_*` ones."""
    return QualitySettings(
        folder=settings.quality_path(),
        log_dir=settings.log_path(),
        flush_interval_s=settings.log_flush_interval_s,
        bucket_s=settings.quality_bucket_s,
        bucket_rows=settings.quality_bucket_rows,
        horizon_s=settings.quality_horizon_s,
        thresholds=effective_limits(settings, {}).quality,
    )

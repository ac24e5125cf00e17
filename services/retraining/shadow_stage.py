"""The live stage of a retrained candidate as a shadow: a copy of live traffic before the
promotion.

With `MLGATE_RETRAIN_STAGE=shadow`, a candidate that won the offline comparison becomes the
shadow of the served alias (`registry/shadows.py`): every gateway mirrors
`MLGATE_RETRAIN_STAGE_WEIGHT` of the alias's requests to it, off the request path, and logs
both answers under one request id. The task stays a `candidate`, with the stage in its
outcome. Once `MLGATE_RETRAIN_STAGE_ROWS` rows are paired in the log
(`monitors/quality/agreement.py`), the worker judges the live evidence with the rules a
gateway judges a canary by:

- latency: the candidate's p99 above 1.5 × the serving version's plus 5 ms → `rejected`;
- quality: both evaluated on labels and the candidate's interval wholly on the worse side
  → `rejected`;
- otherwise the alias moves to the candidate (audited) and the task is `promoted`, with the
  agreement, latency and quality of both on it.

The shadow is cleared either way. A shadow a person cleared or replaced, or not enough
paired rows within `MLGATE_RETRAIN_STAGE_TIMEOUT_S`, leaves the candidate for a person.
"""

from __future__ import annotations

import contextlib
import logging
import time
from datetime import UTC, datetime
from typing import Any

from monitors.quality.agreement import compare_versions, slower, worse_quality
from monitors.tasks.records import Task
from registry.errors import NotFound
from services.retraining.stage import LiveStage

__all__ = ["ShadowStage"]

log = logging.getLogger("mlgate.retrainer")


class ShadowStage(LiveStage):
    kind = "shadow"

    def start(self, task: Task, version: int, why: str) -> Task:
        """Make the candidate the alias's shadow; the task stays a candidate, in stage."""
        rule = self.registry.shadows.set(
            task.model,
            self.alias,
            version,
            self.settings.retrain_stage_weight,
            reason=f"retraining task {task.id}: {why}",
        )
        stage = {
            "kind": "shadow",
            "version": version,
            "rate": rule.rate,
            "rows_needed": self.settings.retrain_stage_rows,
            "started_at": datetime.now(UTC).isoformat(),
            "state": "running",
        }
        log.info("task %s: %s:%s shadows @%s", task.id, task.model, version, self.alias)
        return self.tasks.note(task.id, outcome={"stage": stage})

    def _advance(self, task: Task, stage: dict[str, Any]) -> Task | None:
        version = int(stage["version"])
        rules = {s.alias: s for s in self.registry.shadows.of(task.model)}
        if rules.get(self.alias) is None or rules[self.alias].version != version:
            return self._left(task, stage, "the shadow was cleared or replaced")
        serving = self.registry.get(f"{task.model}@{self.alias}").version
        report = compare_versions(
            self.registry, self.settings.log_path(), task.model, serving, version, last=100_000
        )
        evidence = {
            **stage,
            "paired": report["paired"],
            "agreement": report["agreement"],
            "latency_ms": report["latency_ms"],
            "quality": report["quality"],
        }
        if report["paired"] < self.settings.retrain_stage_rows:
            started = datetime.fromisoformat(stage["started_at"]).timestamp()
            if time.time() - started > self.settings.retrain_stage_timeout_s:
                self._clear(task.model)
                return self._left(task, evidence, f"only {report['paired']} paired rows")
            return None
        ours, theirs = (report["latency_ms"][str(v)] for v in (version, serving))
        verdict = slower(ours["p99"] / 1000, theirs["p99"] / 1000)
        verdict = verdict or worse_quality(
            (report["quality"][str(version)] or {}).get("realised"),
            (report["quality"][str(serving)] or {}).get("realised"),
        )
        self._clear(task.model)
        if verdict is not None:
            self._decline(f"{task.model}:{version}")
            return self.tasks.transition(
                task.id,
                "rejected",
                reason=f"worse in its shadow stage: {verdict}",
                actor=self.worker,
                outcome={"stage": {**evidence, "state": "rejected", "verdict": verdict}},
            )
        self.registry.set_alias(
            task.model,
            self.alias,
            version,
            reason=f"retraining task {task.id}: {report['paired']} paired live rows in shadow",
            actor=self.worker,
        )
        return self._promoted(
            task, {**evidence, "state": "completed"}, f"{report['paired']} paired live rows"
        )

    def _clear(self, model: str) -> None:
        with contextlib.suppress(NotFound):  # a person cleared it meanwhile
            self.registry.shadows.clear(model, self.alias)

    def _left(self, task: Task, stage: dict[str, Any], why: str) -> Task:
        return self.tasks.note(
            task.id, outcome={"stage": {**stage, "state": "stopped", "why": why}}
        )

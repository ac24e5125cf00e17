"""The live stage of a retrained candidate: a canary before the promotion.

With `MLGATE_RETRAIN_STAGE=canary`, a candidate that won the offline comparison is not
promoted at once. It becomes the canary of the served alias (`registry/canaries.py`):
every gateway gives it `MLGATE_RETRAIN_STAGE_WEIGHT` of the alias's requests and rolls it
back by itself when it answers worse (`services/gateway/canary_judge.py`). The task stays a
`candidate`, its outcome holding the stage. The retraining worker then advances it:

- rolled back by a gateway (or a person): the task is `rejected` and the candidate declined,
  with the canary's evidence on the task;
- `MLGATE_RETRAIN_STAGE_ROWS` rows answered by the canary (as the inference log holds them)
  while it kept running: the canary is completed (the alias moves to it, audited) and the
  task `promoted`, with the live evidence;
- completed by a person: `promoted`; stopped, or not enough rows within
  `MLGATE_RETRAIN_STAGE_TIMEOUT_S`: the canary is stopped and the candidate left for a person
  (no data is no evidence).
"""

from __future__ import annotations

import logging
import time
from datetime import UTC
from typing import Any

from monitors.log.reader import read_log
from monitors.settings import MonitorSettings
from monitors.tasks.records import Task
from monitors.tasks.store import TaskStore
from registry.canaries import Canary
from registry.store import Registry

__all__ = ["CanaryStage", "LiveStage"]

log = logging.getLogger("mlgate.retrainer")


class LiveStage:
    """What both live stages share: where they act, and the worker's pass over the tasks in
    a stage of their `kind` (the `stage` in a candidate task's outcome)."""

    kind = ""

    def __init__(
        self,
        registry: Registry,
        tasks: TaskStore,
        settings: MonitorSettings,
        *,
        alias: str,
        worker: str,
    ) -> None:
        self.registry = registry
        self.tasks = tasks
        self.settings = settings
        self.alias = alias
        self.worker = worker

    def start(self, task: Task, version: int, why: str) -> Task:
        raise NotImplementedError

    def advance(self) -> list[Task]:
        """Move every task in a running stage of this kind that can move; those that did."""
        moved = []
        for task in self.tasks.list(status="candidate", limit=1000):
            stage = task.outcome.get("stage")
            if (
                isinstance(stage, dict)
                and stage.get("kind") == self.kind
                and stage.get("state") == "running"
            ):
                done = self._advance(task, stage)
                if done is not None:
                    moved.append(done)
        return moved

    def _advance(self, task: Task, stage: dict[str, Any]) -> Task | None:
        raise NotImplementedError

    def _promoted(self, task: Task, evidence: dict[str, Any], why: str) -> Task:
        return self.tasks.transition(
            task.id,
            "promoted",
            reason=f"promoted after its live stage: {why}",
            actor=self.worker,
            outcome={"stage": evidence},
        )

    def _decline(self, ref: str) -> None:
        """Decline a retrained candidate (a version a person registered stays as it is)."""
        if self.registry.get(ref).status == "candidate":
            self.registry.decline(ref)


class CanaryStage(LiveStage):
    kind = "canary"

    def start(self, task: Task, version: int, why: str) -> Task:
        """Make the candidate the alias's canary; the task stays a candidate, in stage."""
        canary = self.registry.canaries.start(
            task.model,
            self.alias,
            version,
            self.settings.retrain_stage_weight,
            reason=f"retraining task {task.id}: {why}",
        )
        stage = {
            "kind": "canary",
            "canary": canary.id,
            "weight": canary.weight,
            "rows_needed": self.settings.retrain_stage_rows,
            "started_at": canary.started_at.isoformat(),
            "state": "running",
        }
        log.info("task %s: %s:%s is a canary of @%s", task.id, task.model, version, self.alias)
        return self.tasks.note(task.id, outcome={"stage": stage})

    def _advance(self, task: Task, stage: dict[str, Any]) -> Task | None:
        found = [c for c in self.registry.canaries.of(task.model) if c.id == stage["canary"]]
        if not found:
            return None
        canary = found[0]
        evidence = {**stage, "state": canary.status, "evidence": canary.evidence}
        if canary.status == "rolled_back":
            self._decline(f"{task.model}:{canary.version}")
            return self.tasks.transition(
                task.id,
                "rejected",
                reason=f"canary rolled back: {canary.ended_reason}",
                actor=self.worker,
                outcome={"stage": evidence},
            )
        if canary.status == "completed":
            return self._promoted(task, evidence, f"canary completed by {canary.ended_by}")
        if canary.status == "stopped":
            return self.tasks.note(task.id, outcome={"stage": evidence})
        rows = self._rows(task.model, canary)
        if rows >= self.settings.retrain_stage_rows:
            self.registry.canaries.complete(
                task.model,
                canary.alias,
                reason=f"retraining task {task.id}: {rows} live rows, not rolled back",
            )
            return self._promoted(
                task, {**evidence, "state": "completed", "rows": rows}, f"{rows} live rows"
            )
        age = time.time() - canary.started_at.timestamp()
        if age > self.settings.retrain_stage_timeout_s:
            self.registry.canaries.end(
                task.model,
                canary.alias,
                "stopped",
                reason=f"only {rows} live rows in {age:.0f} s: a person decides",
                canary_id=canary.id,
            )
            return self.tasks.note(
                task.id, outcome={"stage": {**evidence, "state": "stopped", "rows": rows}}
            )
        return None

    def _rows(self, model: str, canary: Canary) -> int:
        start = canary.started_at.astimezone(UTC)
        return read_log(
            self.settings.log_path(), model, canary.version, start=start, inputs=False
        ).rows

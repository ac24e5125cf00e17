"""The retrainer: a claimed task in, a verified and judged candidate out, promoted on evidence.

For one running task:

1. the serving version must know its problem (task, output kind) and record a trainer
   entrypoint; without a trainer the task becomes `needs-trainer`, saying so, for a person
   to retrain elsewhere and register the result with its parent (`mlgate register
   --parent ... --candidate`, then `mlgate retrain TASK --candidate V` judges it);
2. the labelled rows of the task's window (the rows that showed the harm, from its start
   to now: inference log joined with feedback) are read; with fewer than
   `min_labelled_rows` the task goes back to `open` and is tried again after
   `label_wait_s` (labels often come days later), and fails once the label horizon has
   passed;
3. a seeded `holdout_fraction` is held back; the trainer gets the rest in a
   `TrainingContext` with the serving version's reference data, its params and a seed;
4. the result is registered as a **candidate** (never `@latest` until promoted), child of
   the serving version, with the task id and the digests of the data it used; the task
   names it at once, whatever happens next;
5. it is exported to ONNX through the parity gate (a refused artifact fails the task and
   declines the candidate);
6. it is judged against the serving version (`judge.py`): paired intervals of the
   gain on the held-out window rows and on the original evaluation data; promoted (the
   alias moves, audited, and running gateways hot-swap), declined, or left to a person.

Expected failures (no trainer, no labels, a refused export) end the task with a one-line
reason and no traceback; a trainer that raises keeps its traceback in the log.

`progress` (a `RetrainProgress`: `mlgate retrain`'s display in a terminal) hears each stage
(claim, window, train with the trainer's epochs, register, gate, judge, promote).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from monitors.quality.feedback import FeedbackStore
from monitors.quality.labelled_window import labelled_window
from monitors.quality.policy_store import PolicyStore, effective_limits
from monitors.settings import MonitorSettings
from monitors.tasks.records import Task
from monitors.tasks.store import TaskStore, task_store
from registry.errors import MlgateError
from registry.quality.profile import Evaluation, read_evaluation
from registry.records import ModelVersion
from registry.store import Registry
from services.retraining.candidate import Candidates, RetrainProgress, Stop, tell_stage
from services.retraining.judge import Judgement, judge_candidate
from services.retraining.shadow_stage import ShadowStage
from services.retraining.stage import CanaryStage

__all__ = ["RetrainProgress", "RetrainSettings", "Retrainer"]

log = logging.getLogger("mlgate.retrainer")


@dataclass(frozen=True)
class RetrainSettings:
    holdout_fraction: float = 0.3
    min_labelled_rows: int = 200
    margin: float = 0.01
    """How much better (in the task's primary metric) a candidate must be, surely."""
    max_forgetting: float = 0.05
    auto_promote: bool = True
    alias: str = "production"
    seed: int = 0
    label_wait_s: float = 300.0
    horizon_s: float = 3 * 86400.0
    params: Mapping[str, Any] = field(default_factory=dict)
    """Over the serving version's recorded params (e.g. more epochs for the retrain)."""

    @classmethod
    def from_monitor(cls, settings: MonitorSettings, **overrides: Any) -> RetrainSettings:
        """The `MLGATE_RETRAIN_*` settings."""
        values: dict[str, Any] = {
            "holdout_fraction": settings.retrain_holdout_fraction,
            "min_labelled_rows": settings.retrain_min_labelled_rows,
            "margin": settings.retrain_margin,
            "max_forgetting": settings.retrain_max_forgetting,
            "auto_promote": settings.retrain_auto_promote,
            "label_wait_s": settings.retrain_label_wait_s,
            "horizon_s": settings.quality_horizon_s,
            **overrides,
        }
        return cls(**values)


class Retrainer:
    def __init__(
        self,
        registry: Registry,
        monitor_settings: MonitorSettings,
        *,
        settings: RetrainSettings | None = None,
        worker: str = "mlgate-retrainer",
        announce: Callable[[Task], None] | None = None,
        progress: RetrainProgress | None = None,
    ) -> None:
        self.registry = registry
        self.monitor_settings = monitor_settings
        self.settings = settings or RetrainSettings.from_monitor(monitor_settings)
        self.tasks: TaskStore = task_store(registry, monitor_settings)
        self.feedback = FeedbackStore(registry.db)
        self.policies = PolicyStore(registry.db)
        self.worker = worker
        self._announce = announce
        self.progress = progress
        self.candidates = Candidates(
            registry, self.tasks, self.settings.seed, self.settings.params, progress
        )
        where = {"alias": self.settings.alias, "worker": worker}
        self.stages: dict[str, CanaryStage | ShadowStage] = {
            "canary": CanaryStage(registry, self.tasks, monitor_settings, **where),
            "shadow": ShadowStage(registry, self.tasks, monitor_settings, **where),
        }

    def run_next(self) -> Task | None:
        """Move candidates in their live stage; then claim the oldest open task this worker
        may take and retrain it. None if none was open."""
        for stage in self.stages.values():
            for moved in stage.advance():
                self._tell(moved)
        task = self.tasks.claim(self.worker)
        if task is None:
            return None
        self._tell(task)
        tell_stage(self.progress, task, "claim")
        return self._retrain(task)

    def run(self, task_id: int, *, candidate: int | None = None) -> Task:
        """Retrain one open task, or (`candidate`) judge a version a person registered for a
        `needs-trainer` task. Claimed here, so no worker takes it meanwhile."""
        expect = "needs-trainer" if candidate is not None else "open"
        if candidate is not None:  # a version that does not exist is refused before a claim
            self.registry.get(f"{self.tasks.get(task_id).model}:{candidate}")
        task = self.tasks.transition(
            task_id,
            "running",
            actor=self.worker,
            expect=expect,
            reason=f"claimed by {self.worker}"
            + ("" if candidate is None else f" to judge version {candidate}"),
        )
        self._tell(task)
        tell_stage(self.progress, task, "claim")
        return self._retrain(task, candidate)

    def _retrain(self, task: Task, candidate_version: int | None = None) -> Task:
        started = time.perf_counter()
        try:
            candidate, judgement, facts = self._work(task, candidate_version)
        except Stop as stop:
            log.warning("retraining task %s: %s", task.id, stop.message)
            return self._stop(task, stop, started)
        except Exception as exc:
            log.exception("retraining task %s failed", task.id)
            return self._stop(task, Stop("failed", f"retraining failed: {_brief(exc)}"), started)
        outcome = {
            **facts,
            **judgement.to_json(),
            "seconds": round(time.perf_counter() - started, 2),
        }
        judged = self.tasks.transition(
            task.id,
            "candidate",
            reason=f"{candidate.ref}: {judgement.reason}",
            actor=self.worker,
            candidate_version=candidate.version,
            outcome=outcome,
        )
        self._tell(judged)
        return self._decide(judged, candidate, judgement)

    def _decide(self, task: Task, candidate: ModelVersion, judgement: Judgement) -> Task:
        live = self.stages.get(self.monitor_settings.retrain_stage)
        if judgement.verdict == "promote" and self.settings.auto_promote and live is not None:
            return self._tell(live.start(task, candidate.version, judgement.reason))
        if judgement.verdict == "promote" and self.settings.auto_promote:
            tell_stage(self.progress, task, "promote")
            self.registry.set_alias(
                task.model,
                self.settings.alias,
                candidate.version,
                reason=f"retraining task {task.id}: {judgement.reason}",
                actor=self.worker,
            )
            promoted = self.tasks.transition(
                task.id,
                "promoted",
                reason=f"promoted automatically: {judgement.reason}",
                actor=self.worker,
            )
            return self._tell(promoted)
        if judgement.verdict == "decline":
            self._decline(candidate)
            rejected = self.tasks.transition(
                task.id, "rejected", reason=f"declined: {judgement.reason}", actor=self.worker
            )
            return self._tell(rejected)
        return task  # a person decides (mlgate tasks approve|reject)

    def _stop(self, task: Task, stop: Stop, started: float) -> Task:
        seconds = round(time.perf_counter() - started, 2)
        latest = self.tasks.get(task.id)
        if latest.candidate_version is not None and stop.status == "failed":
            self._decline(self.registry.get(f"{task.model}:{latest.candidate_version}"))
        outcome: dict[str, Any] = {"seconds": seconds}
        if stop.status == "open":
            retry = datetime.now(UTC) + timedelta(seconds=self.settings.label_wait_s)
            outcome.update(retry_after=retry.isoformat(), waiting=stop.message)
        ended = self.tasks.transition(
            task.id,
            stop.status,
            reason=stop.message,
            actor=self.worker,
            outcome=outcome,
            error=stop.message if stop.status == "failed" else None,
        )
        return self._tell(ended)

    def _decline(self, candidate: ModelVersion) -> None:
        if candidate.status in ("candidate", "declined"):
            self.registry.decline(candidate.ref)

    # ---------------------------------------------------------------- the work

    def _work(
        self, task: Task, candidate_version: int | None
    ) -> tuple[ModelVersion, Judgement, dict[str, Any]]:
        serving = self.registry.get(f"{task.model}:{task.serving_version}")
        problem = serving.problem
        if candidate_version is None:
            self.candidates.trainer(task, serving)  # no trainer: a person retrains; say so first
        if problem is None:
            raise Stop(
                "failed",
                (
                    f"{serving.ref}'s task is unknown, so no candidate can be judged against it "
                    f"({serving.problem_reason})"
                ),
            )
        # From where the harm began to now: rows after the evidence's end were served by
        # the same version in the same changed world, and make the training set larger.
        tell_stage(self.progress, task, "window")
        window = labelled_window(
            self.monitor_settings.log_path(),
            self.feedback,
            task.model,
            task.serving_version,
            start=task.window_start,
        )
        if window.labelled_rows < self.settings.min_labelled_rows:
            self._wait_for_labels(task, window.labelled_rows, window.logged_rows)
        rng = np.random.default_rng(self.settings.seed + task.id)
        order = rng.permutation(window.labelled_rows)
        held = np.sort(order[: max(1, int(len(order) * self.settings.holdout_fraction))])
        kept = np.sort(order[len(held) :])
        if candidate_version is None:
            candidate = self.candidates.train(task, serving, problem, window, held, kept)
        else:
            candidate = self.candidates.person(task, serving, candidate_version)
        inputs, _ = window.tensors()
        limits = effective_limits(self.monitor_settings, self.policies.overrides(*_key(task)))
        tell_stage(self.progress, task, "judge")
        judgement = judge_candidate(
            self.registry,
            serving,
            candidate,
            problem,
            window_inputs={name: array[held] for name, array in inputs.items()},
            window_labels=window.labels[held],
            evaluation=self._evaluation(serving),
            metric=limits.quality.metric,
            margin=self.settings.margin,
            max_forgetting=self.settings.max_forgetting,
            seed=self.settings.seed,
        )
        facts = {
            "candidate_version": candidate.version,
            "rows": len(held),
            "trained_on": len(kept) if candidate_version is None else None,
            "labelled_rows": window.labelled_rows,
            "logged_rows": window.logged_rows,
            "unmatched_ids": window.unmatched_ids,
            "task_window": {
                "start": None if task.window_start is None else task.window_start.isoformat(),
                "end": None if task.window_end is None else task.window_end.isoformat(),
            },
        }
        return candidate, judgement, facts

    def _wait_for_labels(self, task: Task, labelled: int, logged: int) -> None:
        needed = self.settings.min_labelled_rows
        what = (
            f"the task's window has {labelled} labelled rows of {logged} logged; "
            f"retraining needs {needed}"
        )
        since = task.window_end or task.created_at
        if datetime.now(UTC) - since > timedelta(seconds=self.settings.horizon_s):
            raise Stop("failed", f"{what}, and the label horizon has passed")
        raise Stop("open", f"waiting for labels: {what}")

    def _evaluation(self, version: ModelVersion) -> Evaluation | None:
        artifact = version.artifact("quality")
        if artifact is None:
            return None
        return read_evaluation(self.registry.open_artifact(artifact))

    def _tell(self, task: Task) -> Task:
        if self._announce is not None:
            self._announce(task)
        return task


def _key(task: Task) -> tuple[str, int]:
    return task.model, task.serving_version


def _brief(exc: BaseException) -> str:
    text = str(exc) if isinstance(exc, MlgateError) else f"{type(exc).__name__}: {exc}"
    return " ".join(text.split())[:500]

"""Where a retraining task's candidate comes from: the recorded trainer on the task's
window, or a version a person trained elsewhere.

`Candidates.train` runs the serving version's trainer entrypoint on the window's labelled
rows (minus the held-out ones) and registers the result as a candidate child (never
`@latest` until promoted), named on the task at once, then gates its ONNX export.
`Candidates.person` takes a version a person registered with `--parent` for a
`needs-trainer` task. Without a usable trainer, `trainer` stops the task as
`needs-trainer` with what to do. Every expected stop is a `Stop` (a one-line reason, no
traceback).

A `RetrainProgress` (the CLI's display, in a terminal) hears each stage of a task and the
epochs the trainer reports through `TrainingContext.progress`; without one, nothing is told.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Mapping
from typing import Any, Protocol

import numpy as np

from exporters import export
from monitors.tasks.records import Task
from monitors.tasks.store import TaskStore
from registry.entrypoints import resolve_entrypoint
from registry.errors import MlgateError
from registry.lineage import Dataset
from registry.quality.problem import Problem
from registry.records import ModelVersion
from registry.reference import REFERENCE_FILE, read_reference
from registry.store import Registry
from registry.training import TrainingContext, TrainingResult

__all__ = ["Candidates", "RetrainProgress", "Stop", "tell_stage"]

log = logging.getLogger("mlgate.retrainer")


class RetrainProgress(Protocol):
    """Hears a retraining task's stages and its trainer's epochs (a display)."""

    def stage(self, task: Task, stage: str) -> None:
        """`task` entered `stage`: claim, window, train, register, gate, judge or promote."""

    def epoch(self, epoch: int, total: int | None, metrics: Mapping[str, float]) -> None:
        """The trainer reported `epoch` (from 1) of `total`, with its metrics (e.g. loss)."""


def tell_stage(progress: RetrainProgress | None, task: Task, stage: str) -> None:
    """Tell `progress` (if any) of a stage; a display that fails never fails the task."""
    if progress is None:
        return
    try:
        progress.stage(task, stage)
    except Exception:  # a progress display must not fail a retraining task
        log.warning("task %s: the progress display failed", task.id, exc_info=True)


class Stop(MlgateError):
    """The task ends (or waits) for a reason a person reads, not a bug: no traceback."""

    def __init__(self, status: str, message: str) -> None:
        super().__init__(message)
        self.status = status


class Candidates:
    def __init__(
        self,
        registry: Registry,
        tasks: TaskStore,
        seed: int,
        params: Mapping[str, Any],
        progress: RetrainProgress | None = None,
    ) -> None:
        self.registry = registry
        self.tasks = tasks
        self.seed = seed
        self.params = params
        self.progress = progress

    def train(
        self,
        task: Task,
        serving: ModelVersion,
        problem: Problem,
        window: Any,
        held: np.ndarray,
        kept: np.ndarray,
    ) -> ModelVersion:
        entrypoint, trainer = self.trainer(task, serving)
        frame = window.frame.reset_index(drop=True)
        recorded = serving.lineage.get("params", {})
        params = {**{k: v for k, v in recorded.items() if k != "seed"}, **self.params}
        context = TrainingContext(
            window=frame.iloc[kept].reset_index(drop=True),
            label_columns=window.label_columns,
            reference=self._reference(serving),
            parent=serving.ref,
            task_id=task.id,
            seed=self.seed,
            params=params,
            listener=None if self.progress is None else self.progress.epoch,
        )
        tell_stage(self.progress, task, "train")
        result: TrainingResult = trainer(context.window, params, seed=self.seed, context=context)
        tell_stage(self.progress, task, "register")
        holdout = frame.iloc[held]
        result.datasets = [
            *result.datasets,
            Dataset.from_frame(
                holdout[[c for c in holdout.columns if c not in ("ts", "replica")]],
                name="holdout",
                source=f"retraining-task://{task.id}#holdout",
                role="evaluation",
            ),
        ]
        inherited = {} if result.task is not None else _declared(problem)
        candidate = result.register(
            self.registry,
            task.model,
            trainer=entrypoint,
            parent=serving.ref,
            task_id=str(task.id),
            candidate=True,
            **inherited,
        )
        self.tasks.note(task.id, candidate_version=candidate.version)
        tell_stage(self.progress, task, "gate")
        gate = export(self.registry, candidate.ref, "onnx")
        if not gate.passed:
            raise Stop("failed", f"{candidate.ref}'s ONNX export failed the parity gate")
        return self.registry.get(candidate.ref)

    def trainer(self, task: Task, serving: ModelVersion) -> tuple[str, Any]:
        """The serving version's trainer entrypoint, or `needs-trainer` saying what to do."""
        entrypoint = serving.lineage.get("trainer")
        unknown = (
            ""
            if serving.problem is not None
            else (
                f" (and register it with --task: {serving.ref}'s task is unknown, so no candidate "
                "can be judged against it until a version declares it)"
            )
        )
        if not entrypoint:
            raise Stop(
                "needs-trainer",
                (
                    f"{serving.ref} records no trainer entrypoint, so mlgate cannot retrain it: "
                    f"retrain it elsewhere on the task's window, register the result with "
                    f"--parent {serving.ref} --candidate, and run `mlgate retrain {task.id} "
                    f"--candidate VERSION` to judge it{unknown}"
                ),
            )
        trainer = resolve_entrypoint(entrypoint, "trainer entrypoint")
        if "context" not in inspect.signature(trainer).parameters:
            raise Stop(
                "needs-trainer",
                (
                    f"the trainer {entrypoint} takes no `context` argument, so it cannot be "
                    "handed a retraining window (see registry/training.py)"
                ),
            )
        return entrypoint, trainer

    def person(self, task: Task, serving: ModelVersion, version: int) -> ModelVersion:
        candidate = self.registry.get(f"{task.model}:{version}")
        self.tasks.note(task.id, candidate_version=candidate.version)
        if candidate.parent != serving.ref:
            raise Stop(
                "failed",
                (
                    f"{candidate.ref}'s parent is {candidate.parent}, not the serving version "
                    f"{serving.ref}; register it with --parent {serving.ref}"
                ),
            )
        if candidate.servable_artifact("onnx") is None:
            tell_stage(self.progress, task, "gate")
            gate = export(self.registry, candidate.ref, "onnx")
            if not gate.passed:
                raise Stop("failed", f"{candidate.ref}'s ONNX export failed the parity gate")
        return self.registry.get(candidate.ref)

    def _reference(self, version: ModelVersion) -> Any:
        artifact = version.artifact("reference")
        if artifact is None:
            return None
        return read_reference(self.registry.open_artifact(artifact) / REFERENCE_FILE).frame


def _declared(problem: Problem) -> dict[str, Any]:
    """The serving version's problem, for a candidate whose trainer did not declare one."""
    return {
        "task": problem.task,
        "output_kind": problem.output_kind,
        "threshold": problem.threshold,
        "classes": problem.classes if problem.output_kind == "labels" else None,
        "quality_output": problem.output,
    }

"""The retrainer: a claimed task in, a verified and (maybe) promoted version out.

For one running task:

1. the trainer entrypoint recorded in the serving version's lineage is imported;
2. the drifted window's logged rows that have ground truth (feedback joined to the
   inference log, from the task's window start on) are split, seeded: `holdout_fraction`
   kept back for the comparison, the rest handed to the trainer in a `TrainingContext`
   with the serving version's reference data, its params and a seed;
3. the result is registered as a child version: parent = the serving version, task id,
   and the digests of the data it used (the trainer's datasets plus the held-out rows);
4. it is exported through the parity gate (a refused artifact fails the task);
5. both versions' gate-passed ONNX artifacts predict the held-out rows: AUC for a binary
   label and one output column, otherwise negative mean squared error (higher is better);
6. the policy: better by at least `margin` → the alias moves to it (audited) and the task
   is promoted, which running gateways hot-swap at their next poll (a gateway that is down
   serves it when it starts: the alias is in the registry); worse than the serving
   version → rejected; in between → left as a candidate for a person to approve.

Any failure (a trainer that raises, too few labels, a refused export) marks the task
failed with the error; the serving version and its alias are never touched.
"""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.stats import rankdata

from exporters import export
from exporters.runners import onnx_predictor
from monitors.feedback import FeedbackStore
from monitors.labelled_window import labelled_window
from monitors.monitor import task_store
from monitors.settings import MonitorSettings
from monitors.task_records import Task
from monitors.tasks import TaskStore
from registry.entrypoints import resolve_entrypoint
from registry.errors import BadRequest, MlgateError
from registry.lineage import Dataset
from registry.records import ModelVersion
from registry.reference import REFERENCE_FILE, read_reference
from registry.store import Registry
from registry.training import TrainingContext, TrainingResult

__all__ = ["RetrainSettings", "Retrainer"]

log = logging.getLogger("mlgate.retrainer")


@dataclass(frozen=True)
class RetrainSettings:
    holdout_fraction: float = 0.3
    min_labelled_rows: int = 200
    margin: float = 0.01
    """How much better (in the metric's units) a candidate must be to be promoted alone."""
    auto_promote: bool = True
    alias: str = "production"
    seed: int = 0
    params: Mapping[str, Any] = field(default_factory=dict)
    """Over the serving version's recorded params (e.g. more epochs for the retrain)."""

    @classmethod
    def from_monitor(cls, settings: MonitorSettings, **overrides: Any) -> RetrainSettings:
        """The `MLGATE_RETRAIN_*` settings."""
        values: dict[str, Any] = {
            "holdout_fraction": settings.retrain_holdout_fraction,
            "min_labelled_rows": settings.retrain_min_labelled_rows,
            "margin": settings.retrain_margin,
            "auto_promote": settings.retrain_auto_promote,
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
    ) -> None:
        self.registry = registry
        self.monitor_settings = monitor_settings
        self.settings = settings or RetrainSettings.from_monitor(monitor_settings)
        self.tasks: TaskStore = task_store(registry, monitor_settings)
        self.feedback = FeedbackStore(registry.db)
        self.worker = worker
        self._announce = announce

    def run_next(self) -> Task | None:
        """Claim the oldest open task and retrain it; None if no task is open."""
        task = self.tasks.claim(self.worker)
        if task is None:
            return None
        self._tell(task)
        return self._retrain(task)

    def run(self, task_id: int) -> Task:
        """Retrain one open task (claimed here, so no worker takes it meanwhile)."""
        task = self.tasks.transition(
            task_id, "running", reason=f"claimed by {self.worker}", actor=self.worker,
            expect="open",
        )  # fmt: skip
        self._tell(task)
        return self._retrain(task)

    def _retrain(self, task: Task) -> Task:
        started = time.perf_counter()
        try:
            candidate, evaluation = self._train(task)
        except Exception as exc:
            log.exception("retraining task %s failed", task.id)
            failed = self.tasks.transition(
                task.id,
                "failed",
                reason=f"retraining failed: {_brief(exc)}",
                actor=self.worker,
                error=_brief(exc),
                outcome={"seconds": round(time.perf_counter() - started, 2)},
            )
            return self._tell(failed)
        evaluation["seconds"] = round(time.perf_counter() - started, 2)
        judged = self.tasks.transition(
            task.id,
            "candidate",
            reason=(
                f"{candidate.ref} passed the gate; {evaluation['metric']} "
                f"{evaluation['candidate']:.4f} vs {evaluation['serving']:.4f} on "
                f"{evaluation['rows']} held-out rows"
            ),
            actor=self.worker,
            candidate_version=candidate.version,
            outcome=evaluation,
        )
        self._tell(judged)
        return self._decide(judged, candidate, evaluation)

    def _decide(self, task: Task, candidate: ModelVersion, evaluation: Mapping[str, Any]) -> Task:
        gain = evaluation["candidate"] - evaluation["serving"]
        if gain >= self.settings.margin and self.settings.auto_promote:
            why = f"better by {gain:.4f} {evaluation['metric']} (margin {self.settings.margin})"
            self.registry.set_alias(
                task.model,
                self.settings.alias,
                candidate.version,
                reason=f"retraining task {task.id}: {why}",
                actor=self.worker,
            )
            promoted = self.tasks.transition(
                task.id, "promoted", reason=f"promoted automatically: {why}", actor=self.worker
            )
            return self._tell(promoted)
        if gain < 0:
            rejected = self.tasks.transition(
                task.id,
                "rejected",
                reason=f"not promoted: worse than the serving version by {-gain:.4f} "
                f"{evaluation['metric']}",
                actor=self.worker,
            )
            return self._tell(rejected)
        return task  # within the margin: a person decides (approve or reject)

    # ---------------------------------------------------------------- the work

    def _train(self, task: Task) -> tuple[ModelVersion, dict[str, Any]]:
        serving = self.registry.get(f"{task.model}:{task.serving_version}")
        entrypoint = serving.lineage.get("trainer")
        if not entrypoint:
            raise BadRequest(f"{serving.ref} records no trainer entrypoint; it cannot be retrained")
        trainer = resolve_entrypoint(entrypoint, "trainer entrypoint")
        if "context" not in inspect.signature(trainer).parameters:
            raise BadRequest(
                f"the trainer {entrypoint} takes no `context` argument, so it cannot be "
                "handed a retraining window (see registry/training.py)"
            )
        window = labelled_window(
            self.monitor_settings.log_path(),
            self.feedback,
            task.model,
            task.serving_version,
            start=task.window_start,
        )
        if window.labelled_rows < self.settings.min_labelled_rows:
            raise BadRequest(
                f"the window has {window.labelled_rows} labelled rows of "
                f"{window.logged_rows} logged; retraining needs {self.settings.min_labelled_rows}"
            )
        rng = np.random.default_rng(self.settings.seed + task.id)
        order = rng.permutation(window.labelled_rows)
        held = np.sort(order[: max(1, int(len(order) * self.settings.holdout_fraction))])
        kept = np.sort(order[len(held) :])
        frame = window.frame.reset_index(drop=True)
        recorded = serving.lineage.get("params", {})
        params = {**{k: v for k, v in recorded.items() if k != "seed"}, **self.settings.params}
        context = TrainingContext(
            window=frame.iloc[kept].reset_index(drop=True),
            label_columns=window.label_columns,
            reference=self._reference(serving),
            parent=serving.ref,
            task_id=task.id,
            seed=self.settings.seed,
            params=params,
        )
        result: TrainingResult = trainer(
            context.window, params, seed=self.settings.seed, context=context
        )
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
        candidate = result.register(
            self.registry,
            task.model,
            trainer=entrypoint,
            parent=serving.ref,
            task_id=str(task.id),
        )
        gate = export(self.registry, candidate.ref, "onnx")
        if not gate.passed:
            raise BadRequest(f"{candidate.ref}'s ONNX export failed the parity gate")
        inputs, _ = window.tensors()
        held_inputs = {name: array[held] for name, array in inputs.items()}
        labels = window.labels[held]
        evaluation = {
            **_compare(
                self._predict(serving, held_inputs), self._predict(candidate, held_inputs), labels
            ),
            "rows": len(held),
            "trained_on": len(kept),
            "labelled_rows": window.labelled_rows,
            "logged_rows": window.logged_rows,
            "unmatched_ids": window.unmatched_ids,
            "candidate_version": candidate.version,
        }
        return candidate, evaluation

    def _predict(self, version: ModelVersion, inputs: Mapping[str, np.ndarray]) -> np.ndarray:
        _, _, folder = self.registry.open_servable(version.ref, "onnx")
        predict = onnx_predictor(folder / "model.onnx", version.signature.output_names)
        first = version.signature.output_names[0]
        return np.asarray(predict(inputs)[first])

    def _reference(self, version: ModelVersion) -> Any:
        artifact = version.artifact("reference")
        if artifact is None:
            return None
        return read_reference(self.registry.open_artifact(artifact) / REFERENCE_FILE).frame

    def _tell(self, task: Task) -> Task:
        if self._announce is not None:
            self._announce(task)
        return task


def _compare(serving: np.ndarray, candidate: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
    """Both versions scored on the same held-out labels; higher is better."""
    single = serving.ndim == 1 or serving.shape[1] == 1
    binary = labels.ndim == 1 and set(np.unique(labels).tolist()) <= {0, 1}
    if single and binary and len(np.unique(labels)) == 2:
        return {
            "metric": "auc",
            "serving": _auc(labels, serving.reshape(-1)),
            "candidate": _auc(labels, candidate.reshape(-1)),
        }
    target = labels.reshape(serving.shape) if labels.size == serving.size else labels
    return {
        "metric": "neg_mse",
        "serving": -float(np.mean((serving - target) ** 2)),
        "candidate": -float(np.mean((candidate - target) ** 2)),
    }


def _auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve: the Mann-Whitney U statistic, ties counted half."""
    positive = labels.astype(bool)
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    ranks = rankdata(scores)
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _brief(exc: BaseException) -> str:
    text = str(exc) if isinstance(exc, MlgateError) else f"{type(exc).__name__}: {exc}"
    return " ".join(text.split())[:500]

"""The retrainer on the credit-risk example: a drifted, labelled window in, a verdict out."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from io import StringIO
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from rich.console import Console

from examples.credit_risk.data import FEATURES, LABEL, Drift, generate, source_uri
from examples.credit_risk.train import TRAINER
from examples.scenarios.data import FEATURES as SCENARIO_FEATURES
from examples.scenarios.data import Shift
from examples.scenarios.data import generate as generate_scenario
from examples.scenarios.train import TRAINER as SCENARIO_TRAINER
from examples.scenarios.train import train as scenario_train
from exporters import export
from exporters.imports import import_file
from exporters.runners import onnx_predictor
from monitors.log.inference_log import InferenceLog, LogSettings
from monitors.quality.feedback import FeedbackStore
from monitors.quality.feedback_body import FeedbackItem
from monitors.settings import MonitorSettings
from monitors.tasks.store import Task, TaskStore
from registry import Registry
from registry.entrypoints import resolve_entrypoint
from registry.quality.profile import QualitySpec
from services.cli.progress import RetrainDisplay
from services.retraining.retrainer import Retrainer, RetrainProgress, RetrainSettings
from tests.fixtures import onnx_file

pytestmark = pytest.mark.slow
FAST = {"epochs": 4, "hidden": 16}
RETRAIN = {"epochs": 40, "batch_size": 64, "hidden": 16}  # a small window: more passes


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Registry]:
    """credit-risk:1, trained on the usual population, exported and in production."""
    registry = Registry(home=tmp_path / "home")
    trainer = resolve_entrypoint(TRAINER, "trainer")
    version = trainer(generate(4000, seed=1), FAST, seed=1, source=source_uri(4000, 1)).register(
        registry, "credit-risk", trainer=TRAINER
    )
    assert export(registry, version.ref, "onnx").passed
    registry.set_alias("credit-risk", "production", 1, reason="test")
    yield registry
    registry.close()


def traffic_with_labels(registry: Registry, rows: int, drift: Drift, seed: int) -> datetime:
    """Log `rows` answered requests as the gateway would, then post their ground truth."""
    model = "credit-risk"
    started = datetime.now(UTC) - timedelta(seconds=1)
    version = registry.get(f"{model}:1")
    _, _, folder = registry.open_servable(f"{model}:1", "onnx")
    data = generate(rows, seed=seed, drift=drift)
    x = data[FEATURES].to_numpy(np.float32)
    y = onnx_predictor(folder / "model.onnx")({"features": x})["default_probability"]
    log = InferenceLog(
        LogSettings(directory=registry.settings.home / "inference_log", max_rows_per_s=1e9)
    )
    log.start()
    for i in range(rows):
        row = {"features": x[i : i + 1]}
        log.record(
            model,
            1,
            version.signature,
            f"r{seed}-{i}",
            row,
            {"default_probability": y[i : i + 1]},
            0.001,
        )
    log.close(30)
    labels = [FeedbackItem(f"r{seed}-{i}", int(v)) for i, v in enumerate(data[LABEL])]
    FeedbackStore(registry.db).add(model, labels)
    return started


def open_task(registry: Registry, window_start: datetime) -> int:
    opened = TaskStore(registry.db).open(
        "credit-risk",
        1,
        "data_drift",
        evidence={"drift_share": 0.6},
        source="test",
        actor="test",
        window_start=window_start,
        window_end=datetime.now(UTC),
        rows=2000,
    )
    assert opened.task is not None
    return opened.task.id


def retrainer(
    registry: Registry, progress: RetrainProgress | None = None, **overrides: Any
) -> Retrainer:
    monitor = MonitorSettings(home=registry.settings.home)
    values: dict[str, Any] = {"params": RETRAIN, **overrides}
    return Retrainer(
        registry,
        monitor,
        settings=RetrainSettings(**values),
        worker="test-worker",
        progress=progress,
    )


class Heard:
    """A `RetrainProgress` that keeps what it is told and passes it on to a display."""

    def __init__(self, display: RetrainProgress) -> None:
        self.display = display
        self.stages: list[tuple[int, str]] = []
        self.epochs: list[tuple[int, int | None, dict[str, float]]] = []

    def stage(self, task: Task, stage: str) -> None:
        self.stages.append((task.id, stage))
        self.display.stage(task, stage)

    def epoch(self, epoch: int, total: int | None, metrics: Mapping[str, float]) -> None:
        self.epochs.append((epoch, total, dict(metrics)))
        self.display.epoch(epoch, total, metrics)


def test_a_better_candidate_is_registered_gated_judged_and_promoted(served: Registry) -> None:
    # The rules changed: high credit utilisation now lowers the risk.
    start = traffic_with_labels(served, 2500, Drift(concept_shift=-6.0), seed=2)
    task_id = open_task(served, start)
    screen = StringIO()
    display = RetrainDisplay(Console(file=screen, force_terminal=True, width=160))
    heard = Heard(display)
    with display:
        task = retrainer(served, heard).run(task_id)
    assert task.status == "promoted", task.outcome
    # What the display heard: every stage in order, and each epoch the trainer reported.
    stages = ["claim", "window", "train", "register", "gate", "judge", "promote"]
    assert heard.stages == [(task_id, stage) for stage in stages]
    epochs = RETRAIN["epochs"]
    assert [(e, total) for e, total, _ in heard.epochs] == [
        (i, epochs) for i in range(1, epochs + 1)
    ]
    assert all(0 < metrics["loss"] < 1 for _, _, metrics in heard.epochs)
    shown = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", screen.getvalue())
    assert f"task {task_id} (credit-risk:1): training" in shown
    assert f"{epochs}/{epochs} loss {heard.epochs[-1][2]['loss']:.4f}" in shown
    assert f"task {task_id} (credit-risk:1): promoting it" in shown
    outcome = task.outcome
    window = outcome["window"]
    assert window["metric"] == "roc_auc"  # the binary task's primary metric
    assert window["challenger"] > window["champion"] + 0.01
    assert window["lower"] > 0  # the paired interval of the gain agrees
    assert outcome["verdict"] == "promote"
    # The original evaluation rows (registered with v1) were compared too; v1 itself fell
    # on the window, so its old labels are stale and doing worse on them is expected.
    assert outcome["evaluation"]["n"] > 0
    assert outcome["evaluation_stale"] is True
    assert outcome["labelled_rows"] == 2500
    assert outcome["rows"] + outcome["trained_on"] == 2500
    assert [e.to_status for e in task.events] == ["open", "running", "candidate", "promoted"]
    candidate = served.get("credit-risk:2")
    assert candidate.status == "ready"  # a candidate until promoted, now an ordinary version
    assert candidate.parent == "credit-risk:1"
    assert candidate.task_id == str(task_id)
    assert candidate.problem is not None
    assert candidate.problem.task == "binary"
    assert served.lineage("credit-risk:2")["task_id"] == str(task_id)
    assert candidate.lineage["trainer"] == TRAINER
    roles = {d["name"]: d["role"] for d in candidate.lineage["datasets"]}
    assert roles["holdout"] == "evaluation"
    assert candidate.servable_artifact("onnx") is not None  # it passed the gate
    history = served.alias_history("credit-risk", "production")
    assert history[-1].to_version == 2
    assert f"retraining task {task_id}" in history[-1].reason


def test_a_worse_candidate_is_declined_named_and_never_latest(served: Registry) -> None:
    start = traffic_with_labels(served, 1500, Drift(), seed=3)
    task_id = open_task(served, start)
    task = retrainer(served, params={"epochs": 0}).run(task_id)  # an untrained network
    assert task.status == "rejected", task.to_json()
    assert task.outcome["verdict"] == "decline"
    assert task.outcome["window"]["gain"] < 0
    assert task.candidate_version == 2
    assert served.get("credit-risk:2").status == "declined"
    assert served.get("credit-risk@latest").version == 1  # the declined one is never @latest
    assert served.get("credit-risk@production").version == 1
    summary = next(m for m in served.models() if m.name == "credit-risk")
    assert (summary.latest_version, summary.latest_ready) == (2, 1)


def test_a_trainer_that_raises_fails_the_task_and_touches_nothing(served: Registry) -> None:
    start = traffic_with_labels(served, 600, Drift(), seed=4)
    task_id = open_task(served, start)
    task = retrainer(served, params={"hidden": -3}).run(task_id)
    assert task.status == "failed"
    assert task.error is not None
    assert "retraining failed" in task.events[-1].reason
    assert served.get("credit-risk@production").version == 1
    assert [v.version for v in served.versions("credit-risk")] == [1]


def test_too_few_labels_send_the_task_back_to_wait_for_them(served: Registry) -> None:
    start = traffic_with_labels(served, 50, Drift(), seed=5)
    task_id = open_task(served, start)
    worker = retrainer(served, label_wait_s=3600)
    task = worker.run(task_id)
    assert task.status == "open"
    assert "50 labelled rows" in task.outcome["waiting"]
    assert worker.run_next() is None  # not before its retry time
    later = datetime.now(UTC) + timedelta(hours=2)
    again = TaskStore(served.db).claim("test-worker", now=later)
    assert again is not None
    assert again.id == task_id


def test_labels_that_never_come_fail_the_task_after_the_horizon(served: Registry) -> None:
    start = traffic_with_labels(served, 50, Drift(), seed=6)
    task_id = open_task(served, start)
    task = retrainer(served, horizon_s=0.001).run(task_id)
    assert task.status == "failed"
    assert "label horizon has passed" in (task.error or "")


def test_a_worker_skips_data_quality_tasks_they_are_for_a_person(served: Registry) -> None:
    TaskStore(served.db).open(
        "credit-risk", 1, "data_quality", evidence={}, source="test", actor="test"
    )
    assert retrainer(served).run_next() is None


def test_a_version_without_a_trainer_needs_one_and_a_persons_candidate_is_judged(
    served: Registry, tmp_path: Path
) -> None:
    # A binary model that arrives as an ONNX file alone: no trainer recorded.
    trained = scenario_train(generate_scenario("binary", 3000, seed=1), {"epochs": 6}, seed=0)
    path = onnx_file(
        tmp_path / "model.onnx", model=trained.model, features=12, names=("features", "prediction")
    )
    imported = import_file(
        served,
        "onnx-only",
        path,
        feature_names=SCENARIO_FEATURES,
        reference=generate_scenario("binary", 2000, seed=2)[SCENARIO_FEATURES],
        quality=QualitySpec(evaluation=generate_scenario("binary", 1500, seed=3), label="y"),
    )
    assert imported.passed
    assert imported.version.problem is not None
    assert imported.version.lineage["trainer"] is None
    served.set_alias("onnx-only", "production", 1, reason="test")
    changed = generate_scenario("binary", 1500, seed=4, shift=Shift(concept=True))
    start = log_with_labels(served, "onnx-only", changed, seed=4)
    opened = TaskStore(served.db).open(
        "onnx-only",
        1,
        "realised_drop",
        evidence={},
        source="test",
        actor="test",
        window_start=start,
        window_end=datetime.now(UTC),
    )
    assert opened.task is not None
    task = retrainer(served).run(opened.task.id)
    assert task.status == "needs-trainer"
    assert task.error is None
    message = task.events[-1].reason
    assert "records no trainer entrypoint" in message
    assert "--candidate" in message
    # A person retrains elsewhere (here: the example trainer on the changed world) and
    # registers the result as a candidate child; the retrainer judges it on the window.
    result = scenario_train(
        generate_scenario("binary", 3000, seed=5, shift=Shift(concept=True)), {}, seed=1
    )
    person = result.register(
        served, "onnx-only", trainer=SCENARIO_TRAINER, parent="onnx-only:1", candidate=True
    )
    assert served.get("onnx-only@latest").version == 1  # a candidate is never @latest
    judged = retrainer(served).run(opened.task.id, candidate=person.version)
    assert judged.status == "promoted", judged.outcome["reason"]
    assert judged.outcome["evaluation_stale"] is True  # v1 fell: its old labels are stale
    assert judged.candidate_version == person.version
    assert served.get("onnx-only@production").version == person.version
    assert served.get("onnx-only@latest").version == person.version


def log_with_labels(registry: Registry, model: str, frame: pd.DataFrame, seed: int) -> datetime:
    """Log the rows as answered by the served version, then post their labels."""
    started = datetime.now(UTC) - timedelta(seconds=1)
    version = registry.get(f"{model}:1")
    _, _, folder = registry.open_servable(version.ref, "onnx")
    x = frame[SCENARIO_FEATURES].to_numpy(np.float32)
    output = version.signature.output_names[0]
    y = onnx_predictor(folder / "model.onnx")({"features": x})[output]
    log = InferenceLog(
        LogSettings(directory=registry.settings.home / "inference_log", max_rows_per_s=1e9)
    )
    log.start()
    for i in range(len(frame)):
        log.record(
            model,
            1,
            version.signature,
            f"s{seed}-{i}",
            {"features": x[i : i + 1]},
            {output: y[i : i + 1]},
            0.001,
        )
    log.close(30)
    labels = [FeedbackItem(f"s{seed}-{i}", int(v)) for i, v in enumerate(frame["y"])]
    FeedbackStore(registry.db).add(model, labels)
    return started

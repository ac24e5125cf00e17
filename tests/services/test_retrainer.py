"""The retrainer on the credit-risk example: a drifted, labelled window in, a verdict out."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from examples.credit_risk.data import FEATURES, LABEL, Drift, generate, source_uri
from examples.credit_risk.train import TRAINER
from exporters import export
from exporters.runners import onnx_predictor
from monitors.feedback import FeedbackStore
from monitors.feedback_body import FeedbackItem
from monitors.inference_log import InferenceLog, LogSettings
from monitors.settings import MonitorSettings
from monitors.tasks import TaskStore
from registry import Registry
from registry.entrypoints import resolve_entrypoint
from services.retrainer import Retrainer, RetrainSettings

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
    started = datetime.now(UTC) - timedelta(seconds=1)
    version = registry.get("credit-risk:1")
    _, _, folder = registry.open_servable("credit-risk:1", "onnx")
    data = generate(rows, seed=seed, drift=drift)
    x = data[FEATURES].to_numpy(np.float32)
    y = onnx_predictor(folder / "model.onnx")({"features": x})["default_probability"]
    log = InferenceLog(
        LogSettings(directory=registry.settings.home / "inference_log", max_rows_per_s=1e9)
    )
    log.start()
    for i in range(rows):
        row = {"features": x[i : i + 1]}
        log.record("credit-risk", 1, version.signature, f"r{seed}-{i}", row,
                   {"default_probability": y[i : i + 1]}, 0.001)  # fmt: skip
    log.close(30)
    labels = [FeedbackItem(f"r{seed}-{i}", int(v)) for i, v in enumerate(data[LABEL])]
    FeedbackStore(registry.db).add("credit-risk", labels)
    return started


def open_task(registry: Registry, window_start: datetime) -> int:
    opened = TaskStore(registry.db).open(
        "credit-risk", 1, "data_drift", evidence={"drift_share": 0.6}, source="test",
        actor="test", window_start=window_start, window_end=datetime.now(UTC), rows=2000,
    )  # fmt: skip
    assert opened.task is not None
    return opened.task.id


def retrainer(registry: Registry, **overrides: Any) -> Retrainer:
    monitor = MonitorSettings(home=registry.settings.home)
    values: dict[str, Any] = {"params": RETRAIN, **overrides}
    return Retrainer(registry, monitor, settings=RetrainSettings(**values), worker="test-worker")


def test_a_better_candidate_is_registered_gated_and_promoted(served: Registry) -> None:
    # The rules changed: high credit utilisation now lowers the risk.
    start = traffic_with_labels(served, 2500, Drift(concept_shift=-6.0), seed=2)
    task_id = open_task(served, start)
    started = time.perf_counter()
    task = retrainer(served).run(task_id)
    assert task.status == "promoted", task.outcome
    assert time.perf_counter() - started < 120
    outcome = task.outcome
    assert outcome["metric"] == "auc"
    assert outcome["candidate"] > outcome["serving"] + 0.01
    assert outcome["labelled_rows"] == 2500
    assert outcome["rows"] + outcome["trained_on"] == 2500
    assert [e.to_status for e in task.events] == ["open", "running", "candidate", "promoted"]
    candidate = served.get("credit-risk:2")
    assert candidate.parent == "credit-risk:1"
    assert candidate.task_id == str(task_id)
    assert served.lineage("credit-risk:2")["task_id"] == str(task_id)
    assert candidate.lineage["trainer"] == TRAINER
    roles = {d["name"]: d["role"] for d in candidate.lineage["datasets"]}
    assert roles["holdout"] == "evaluation"
    assert candidate.servable_artifact("onnx") is not None  # it passed the gate
    history = served.alias_history("credit-risk", "production")
    assert history[-1].to_version == 2
    assert f"retraining task {task_id}" in history[-1].reason


def test_a_worse_candidate_is_not_promoted(served: Registry) -> None:
    start = traffic_with_labels(served, 1500, Drift(), seed=3)
    task_id = open_task(served, start)
    task = retrainer(served, params={"epochs": 0}).run(task_id)  # an untrained network
    assert task.status == "rejected", task.to_json()
    assert task.outcome["candidate"] < task.outcome["serving"]
    assert served.get("credit-risk@production").version == 1


def test_a_trainer_that_raises_fails_the_task_and_touches_nothing(served: Registry) -> None:
    start = traffic_with_labels(served, 600, Drift(), seed=4)
    task_id = open_task(served, start)
    task = retrainer(served, params={"hidden": -3}).run(task_id)
    assert task.status == "failed"
    assert task.error is not None
    assert "retraining failed" in task.events[-1].reason
    assert served.get("credit-risk@production").version == 1
    assert [v.version for v in served.versions("credit-risk")] == [1]


def test_too_few_labels_fail_the_task(served: Registry) -> None:
    start = traffic_with_labels(served, 50, Drift(), seed=5)
    task = retrainer(served).run(open_task(served, start))
    assert task.status == "failed"
    assert "50 labelled rows" in (task.error or "")


def test_a_worker_claims_open_tasks_and_stops_when_none_is_left(served: Registry) -> None:
    start = traffic_with_labels(served, 50, Drift(), seed=6)
    first = open_task(served, start)
    worker = retrainer(served)
    done = worker.run_next()
    assert done is not None
    assert (done.id, done.status, done.claimed_by) == (first, "failed", "test-worker")
    assert worker.run_next() is None


def test_a_promotion_made_while_no_gateway_runs_is_served_when_one_starts(
    served: Registry,
) -> None:
    import asyncio

    from services.gateway.app import create_app
    from services.gateway.settings import GatewaySettings

    start = traffic_with_labels(served, 2500, Drift(concept_shift=-6.0), seed=7)
    task = retrainer(served).run(open_task(served, start))
    assert task.status == "promoted", task.outcome
    monitor = MonitorSettings(home=served.settings.home, drift_monitor="off")
    app = create_app(GatewaySettings(), registry=served, monitor_settings=monitor)

    async def routed() -> int | None:
        async with app.router.lifespan_context(app):
            manager = app.state.dataplane.manager
            return manager.routed_version("credit-risk")

    assert asyncio.run(routed()) == 2

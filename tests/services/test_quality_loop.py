"""The loop on evidence, end to end on generated scenarios: a real gateway (in process) takes
requests and labels, the monitor's rounds judge them, the retrainer acts on the task.

For a binary, a 3-class and a regression model: covariate drift the model does not care
about is a finding and never a task; a changed label relation is measured, opens exactly
one task, and the retrained version is promoted and holds. Labels that come late, too few
labels, a model whose task is unknown, and a fall only the estimate can see before labels.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch

from examples.scenarios.data import FEATURES, LABEL, Shift, generate
from examples.scenarios.train import TRAINER, train
from exporters import export
from monitors.loop import Monitor, Round
from monitors.settings import MonitorSettings
from registry import Registry
from services.retraining.retrainer import Retrainer
from tests.fixtures import make_mlp
from tests.services.gateway.conftest import Gateway, open_gateway

pytestmark = [pytest.mark.slow, pytest.mark.anyio]

FLUSH_S = 0.05
CHUNK = 600


def settings(home: Path, **overrides: Any) -> MonitorSettings:
    """Rounds are driven by the test (the gateway runs none of its own)."""
    values: dict[str, Any] = {
        "home": home,
        "drift_monitor": "off",
        "log_flush_interval_s": FLUSH_S,
        "log_max_rows_per_s": 1e9,
        "drift_min_rows": 300,
        "alert_consecutive_checks": 2,
        "quality_bucket_s": 1,
        "quality_window_rows": 1000,
        "quality_min_labels": 200,
        "quality_consecutive": 2,
        "task_cooldown_s": 0,
        "retrain_min_labelled_rows": 200,
        **overrides,
    }
    return MonitorSettings(**values)


def register(registry: Registry, name: str, task: str) -> None:
    result = train(generate(task, 6000, seed=1), {"task": task}, seed=0)
    version = result.register(registry, name, trainer=TRAINER)
    assert export(registry, version.ref, "onnx").passed
    registry.set_alias(name, "production", version.version, reason="test")


@dataclass
class Loop:
    """One model behind a gateway, and the monitor and retrainer over the same registry."""

    gateway: Gateway
    registry: Registry
    monitor: Monitor
    name: str
    task: str
    sent: int = 0

    async def send(
        self, shift: Shift | None, rows: int = CHUNK, labelled: int | None = None
    ) -> pd.DataFrame:
        """Requests with ids, then the labels of the first `labelled` of them (all)."""
        data = generate(self.task, rows, seed=1000 + self.sent, shift=shift)
        x = data[FEATURES].to_numpy(np.float32)
        ids = [f"{self.name}-{self.sent + i}" for i in range(rows)]
        for i in range(rows):
            body = {
                "id": ids[i],
                "inputs": [
                    {
                        "name": "features",
                        "shape": [1, 12],
                        "datatype": "FP32",
                        "data": x[i].tolist(),
                    }
                ],
            }
            answer = await self.gateway.client.post(f"/v2/models/{self.name}/infer", json=body)
            assert answer.status_code == 200, answer.text
        self.sent += rows
        data["id"] = ids
        # The labelled rows are spread evenly over the requests, as a labelled sample is.
        chosen = np.arange(rows) if labelled is None else np.linspace(0, rows - 1, labelled)
        await self.label(data.iloc[np.unique(chosen.astype(int))])
        return data

    async def label(self, data: pd.DataFrame) -> None:
        if data.empty:
            return
        cast = float if self.task == "regression" else int
        feedback = [
            {"id": i, "label": cast(v)} for i, v in zip(data["id"], data[LABEL], strict=True)
        ]
        answer = await self.gateway.client.post(
            f"/v1/models/{self.name}/feedback", json={"feedback": feedback}
        )
        assert answer.status_code == 200, answer.text

    async def round(self) -> Round:
        """A monitoring round once every row sent so far is on disk and past the window's
        end margin (2 flush intervals): waits on the log's state, not on a guess."""
        log = self.gateway.app.state.monitoring.log
        deadline = time.monotonic() + 60
        while log.stats().get("flushed", 0) < self.sent:
            assert time.monotonic() < deadline, log.stats()
            await asyncio.sleep(0.02)
        await asyncio.sleep(3 * FLUSH_S)
        served = self.gateway.manager.routed_version(self.name)
        return await asyncio.to_thread(self.monitor.round, self.name, served)

    async def round_until(self, done: Callable[[Round], bool], timeout_s: float = 60) -> Round:
        """Rounds until one shows `done`: labels are read once they are a few seconds old
        (the commit margin), so a round right after posting them may not see them yet."""
        deadline = time.monotonic() + timeout_s
        while not done(step := await self.round()):
            assert time.monotonic() < deadline, step.quality.result["labels"]
            await asyncio.sleep(0.2)
        return step

    def tasks(self) -> list[Any]:
        return self.monitor.tasks.list(model=self.name)


async def open_loop(
    registry: Registry, name: str, task: str, **overrides: Any
) -> AsyncIterator[Loop]:
    monitor_settings = settings(registry.settings.home, **overrides)
    async for gateway in open_gateway(registry, monitor=monitor_settings):
        yield Loop(gateway, registry, Monitor(registry, monitor_settings), name, task)


def decision(step: Round) -> dict[str, Any]:
    found: dict[str, Any] = step.quality.result["decision"]
    return found


@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
async def test_harmless_drift_is_a_finding_and_a_changed_relation_is_one_task_then_recovered(
    sqlite_registry: Registry, task: str
) -> None:
    register(sqlite_registry, "sensor", task)
    async for loop in open_loop(sqlite_registry, "sensor", task):
        await loop.send(None)
        clean = await loop.round()
        assert clean.quality.status == "holding", clean.quality.result["realised"]
        assert decision(clean)["outcome"] == "ok"

        # Four channels the truth ignores drift; the model is as good as before.
        harmless = []
        for _ in range(3):
            await loop.send(Shift(harmless=1.0))
            harmless.append(await loop.round())
        final = decision(harmless[-1])
        assert final["outcome"] == "finding", final["summary"]
        drifted = set(final["evidence"]["drift"]["drifted"])
        assert drifted, final
        assert drifted <= {"s6", "s7", "s8", "s9", "s10", "s11"}, drifted  # never the signal
        assert "holds at" in final["summary"]
        assert harmless[-1].quality.status == "holding"
        assert loop.tasks() == []

        # The relation changes: the fall is measured, and one task opens.
        rounds: list[Round] = []
        while not loop.tasks():
            assert len(rounds) < 5, [decision(r)["summary"] for r in rounds]
            await loop.send(Shift(concept=True))
            rounds.append(await loop.round())
        fell = rounds[-1].quality
        assert fell.status == "degraded"
        assert decision(rounds[-1])["rule"] == "realised_drop"
        realised = fell.result["realised"]
        assert realised["verdict"]["worse"]
        if task != "regression":  # the estimate is blind to a changed relation, by design
            assert fell.result["estimated"]["verdict"]["worse"] is False
        await loop.send(Shift(concept=True))
        await loop.round()  # evidence still there: a duplicate, not a second task
        assert len(loop.tasks()) == 1
        opened = loop.tasks()[0]
        assert opened.reason == "realised_drop"
        assert opened.duplicate_count >= 1
        assert opened.window_start is not None
        assert opened.evidence["realised"]["figure"]["n"] >= 200

        done = await asyncio.to_thread(Retrainer(sqlite_registry, loop.monitor.settings).run_next)
        assert done is not None
        assert done.status == "promoted", done.outcome.get("reason", done.error)
        assert done.outcome["window"]["gain"] > 0
        deadline = time.monotonic() + 60
        while loop.gateway.manager.routed_version("sensor") != 2:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        await loop.send(Shift(concept=True))
        recovered = await loop.round()
        assert recovered.quality.version == 2
        assert recovered.quality.status == "holding", recovered.quality.result["realised"]
        assert len(loop.tasks()) == 1


async def test_labels_that_come_late_are_joined_to_the_predictions_they_belong_to(
    registry: Registry,
) -> None:
    register(registry, "late", "binary")
    async for loop in open_loop(registry, "late", "binary"):
        data = await loop.send(None, labelled=0)
        before = await loop.round()
        realised = before.quality.result["realised"]
        assert before.quality.status == "insufficient"
        assert realised["judged"] is False
        assert "no labels have come back" in realised["why"]
        assert before.quality.result["estimated"]["judged"] is True  # the estimate needs none
        await loop.label(data)  # the truth arrives after the round that read the rows
        after = await loop.round_until(lambda r: r.quality.result["labels"]["joined"] == CHUNK)
        assert after.quality.status == "holding"
        assert after.quality.result["realised"]["rows"] == CHUNK
        assert after.quality.result["realised"]["coverage"] == 1.0
        labels = after.quality.result["labels"]
        assert labels["joined"] == CHUNK
        assert sum(labels["delay"]["counts"]) == CHUNK
        assert labels["delay"]["sum_s"] > 0
        # Published for Prometheus from the stored evaluation.
        await asyncio.to_thread(loop.gateway.app.state.monitoring.tick)
        metrics = (await loop.gateway.client.get("/metrics")).text
        assert 'mlgate_quality{metric="roc_auc",model="late",version="1"}' in metrics
        assert 'mlgate_labelled_rows_total{model="late",version="1"} 600.0' in metrics
        assert 'mlgate_label_delay_seconds_count{model="late",version="1"} 600.0' in metrics


async def test_too_few_labels_make_no_decision(sqlite_registry: Registry) -> None:
    register(sqlite_registry, "few", "binary")
    # One bucket a day: coverage is judged over all of a round's requests, however slowly
    # this machine sends them.
    async for loop in open_loop(sqlite_registry, "few", "binary", quality_bucket_s=86400):
        # 40 labels for 600 predictions: under the 10 % coverage that makes a bucket count.
        await loop.send(Shift(concept=True), labelled=40)
        sparse = await loop.round()
        assert sparse.quality.result["realised"]["rows"] == 0
        assert "MLGATE_QUALITY_MIN_COVERAGE" in sparse.quality.result["realised"]["why"]
        # 70 of 600 twice: 180 of 1800 (10 %) in the bucket, so it counts, but 180 labels
        # decide nothing.
        for _ in range(2):
            await loop.send(Shift(concept=True), labelled=70)
            step = await loop.round()
        realised = step.quality.result["realised"]
        assert realised["rows"] == 180
        assert realised["judged"] is False
        assert "a judgement needs 200" in realised["why"]
        assert decision(step)["outcome"] != "task"  # `s5`'s small shift may be a finding
        assert loop.tasks() == []


async def test_a_fall_only_the_estimate_sees_before_labels_opens_a_task_that_waits_for_them(
    sqlite_registry: Registry,
) -> None:
    register(sqlite_registry, "unsure", "binary")
    async for loop in open_loop(sqlite_registry, "unsure", "binary"):
        rounds: list[Round] = []
        while not loop.tasks():
            assert len(rounds) < 5, [decision(r)["summary"] for r in rounds]
            await loop.send(Shift(boundary=True), labelled=0)  # inputs move where it is unsure
            rounds.append(await loop.round())
        assert decision(rounds[-1])["rule"] == "estimated_drop"
        assert rounds[-1].quality.result["estimated"]["verdict"]["worse"]
        worker = Retrainer(sqlite_registry, loop.monitor.settings)
        waiting = await asyncio.to_thread(worker.run_next)
        assert waiting is not None
        assert waiting.status == "open"
        assert "waiting for labels" in waiting.outcome["waiting"]


async def test_a_model_whose_task_is_unknown_says_why_until_its_labels_show_it(
    sqlite_registry: Registry, tmp_path: Path
) -> None:
    # Registered from a module with reference data and no labels: one float per row could
    # be a probability, a score or a value.
    reference = pd.DataFrame(
        np.random.default_rng(0).standard_normal((500, 6)), columns=list("abcdef")
    )
    version = sqlite_registry.register(
        make_mlp(), "mlp", torch.randn(4, 6), feature_names=list("abcdef"), reference=reference
    )
    assert version.problem is None
    assert export(sqlite_registry, version.ref, "onnx").passed
    sqlite_registry.set_alias("mlp", "production", 1, reason="test")
    async for loop in open_loop(sqlite_registry, "mlp", "binary"):
        x = np.random.default_rng(0).standard_normal((300, 6)).astype(np.float32)
        for i in range(300):
            tensor = {"name": "x", "shape": [1, 6], "datatype": "FP32", "data": x[i].tolist()}
            body = {"id": f"m{i}", "inputs": [tensor]}
            answer = await loop.gateway.client.post("/v2/models/mlp/infer", json=body)
            assert answer.status_code == 200
        loop.sent = 300
        step = await loop.round()
        assert step.quality.status == "unknown"
        reason = step.quality.result["reason"]
        assert "task is unknown" in reason
        assert "declare it at registration" in reason
        assert "once 200 labels have come back" in reason
        shown = (await loop.gateway.client.get("/monitoring/models/mlp/quality")).json()
        assert shown["status"] == "unknown"
        # The truth comes back as 0/1 for outputs in [0, 1]: a binary classifier, and a
        # baseline from its first labelled predictions, each said to be so.
        truth = (x[:, 0] > 0).astype(int)
        feedback = {"feedback": [{"id": f"m{i}", "label": int(v)} for i, v in enumerate(truth)]}
        answer = await loop.gateway.client.post("/v1/models/mlp/feedback", json=feedback)
        assert answer.status_code == 200
        later = await loop.round_until(lambda r: r.quality.result["problem"] is not None)
        result = later.quality.result
        assert result["problem"]["task"] == "binary"
        assert result["problem"]["source"] == "feedback"
        assert "first 300 labelled predictions" in result["baseline_source"]
        assert later.quality.status == "holding"  # the same rows: no fall from itself

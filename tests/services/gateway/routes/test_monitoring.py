"""`GET /monitoring/models/{m}/quality`, and labels checked against the model's problem."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from examples.scenarios.data import generate
from examples.scenarios.train import TRAINER, train
from exporters import export
from monitors.loop import Monitor
from monitors.settings import MonitorSettings
from registry import Registry
from tests.services.gateway.conftest import Gateway, open_gateway

pytestmark = pytest.mark.anyio


@pytest.fixture
async def classifier(registry: Registry) -> AsyncIterator[Gateway]:
    result = train(generate("multiclass", 2000, seed=1), {"task": "multiclass", "epochs": 2})
    version = result.register(registry, "sensor", trainer=TRAINER)
    assert export(registry, version.ref, "onnx").passed
    registry.set_alias("sensor", "production", version.version, reason="test")
    settings = MonitorSettings(home=registry.settings.home, drift_monitor="off")
    async for gateway in open_gateway(registry, monitor=settings):
        yield gateway


async def test_labels_that_do_not_fit_the_problem_are_refused_naming_the_item(
    classifier: Gateway,
) -> None:
    post = classifier.client.post
    cases = {
        '{"id": "a", "label": 3}': "label is 3, but sensor is a multiclass model: a class index "
        "from 0 to 2",
        '{"feedback": [{"id": "a", "label": 1}, {"id": "b", "label": 1.5}]}': (
            "feedback[1].label is 1.5"
        ),
        '{"feedback": [{"id": "a", "label": [0, 1]}]}': "feedback[0].label is a list of 2 values",
        '{"id": "a", "label": -1}': "label is -1",
    }
    for body, message in cases.items():
        answer = await post("/v1/models/sensor/feedback", content=body)
        assert answer.status_code == 400, body
        assert message in answer.json()["error"], (body, answer.text)
    fine = await post("/v1/models/sensor/feedback", json={"id": "a", "label": 2})
    assert fine.status_code == 200, fine.text
    one = await post("/v1/models/sensor/feedback", json={"id": "b", "label": [1]})
    assert one.status_code == 200, one.text  # a list of one is one label


async def test_the_quality_route_answers_the_latest_evaluation_and_its_history(
    classifier: Gateway, registry: Registry
) -> None:
    get = classifier.client.get
    empty = await get("/monitoring/models/sensor/quality")
    assert empty.status_code == 404
    assert "no quality evaluation has run for sensor yet" in empty.json()["error"]
    monitor = Monitor(registry, classifier.app.state.monitoring.settings)
    for _ in range(3):
        await asyncio.to_thread(monitor.round, "sensor", 1)
    latest = (await get("/monitoring/models/sensor/quality?history=5")).json()
    assert latest["status"] == "insufficient"  # nothing served, no labels yet
    assert latest["problem"]["task"] == "multiclass"
    assert latest["metric"] == "accuracy"
    assert latest["baseline"]["n"] == 500
    assert len(latest["history"]) == 2
    assert latest["history"][0]["id"] < latest["id"]
    assert (await get("/monitoring/models/sensor/quality?version=1")).status_code == 200
    for query, status, message in (
        ("?history=x", 400, "'history' must be a whole number from 0 to 1000"),
        ("?history=1001", 400, "'history' must be a whole number"),
        ("?history=%C2%B3", 400, "'history' must be a whole number"),
        ("?version=9", 404, "has no version 9"),
    ):
        answer = await get(f"/monitoring/models/sensor/quality{query}")
        assert answer.status_code == status, (query, answer.text)
        assert message in answer.json()["error"], (query, answer.text)
    unknown = await get("/monitoring/models/nope/quality")
    assert unknown.status_code == 404

"""`POST /v1/models/{m}/feedback` through the gateway: inferences with ids, their labels."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import pytest

from monitors.quality.feedback import FeedbackStore
from monitors.quality.labelled_window import labelled_window
from monitors.settings import MonitorSettings
from registry import Registry
from tests.services.gateway.conftest import Gateway, open_gateway
from tests.services.gateway.test_metrics_endpoint import get, scrape

pytestmark = pytest.mark.anyio
URL = "/v1/models/mlp/feedback"


def monitor(registry: Registry) -> MonitorSettings:
    # No drift loop: these tests need the log only (and skip importing Evidently).
    return MonitorSettings(
        home=registry.settings.home, log_flush_interval_s=0.05, drift_monitor="off"
    )


async def gateway_for(registry: Registry, **overrides: Any) -> AsyncIterator[Gateway]:
    async for opened in open_gateway(registry, monitor=monitor(registry), **overrides):
        yield opened


def x(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, 6)).astype(np.float32)


async def infer_and_flush(gateway: Gateway, requests: dict[str, np.ndarray]) -> None:
    for request_id, inputs in requests.items():
        response = await gateway.infer("mlp", inputs, id=request_id)
        assert response.status_code == 200
        assert response.json()["id"] == request_id
    await asyncio.to_thread(gateway.app.state.monitoring.log.flush, 10)


async def test_labels_match_logged_rows_and_join(registry: Registry) -> None:
    async for gateway in gateway_for(registry):
        sent = {"req-1": x(3, 1), "req-2": x(1, 2)}
        await infer_and_flush(gateway, sent)

        single = await gateway.client.post(URL, json={"id": "req-2", "label": 1})
        assert single.status_code == 200
        assert single.json() == {
            "model": "mlp",
            "accepted": 1,
            "matched": 1,
            "unknown": 0,
            "replaced": 0,
            "unknown_ids": [],
            "unknown_ids_total": 0,
        }

        batch = await gateway.client.post(
            URL,
            json={
                "feedback": [
                    {"id": "req-1", "row": 0, "label": 0},
                    {"id": "req-1", "row": 2, "label": True, "timestamp": "2026-05-01T12:00Z"},
                    {"id": "req-1", "row": 3, "label": 1},  # the request had 3 rows
                    {"id": "req-2", "label": 0},  # replaces the first label
                    {"id": "never-sent", "label": 1},
                ]
            },
        )
        assert batch.status_code == 200
        receipt = batch.json()
        assert receipt["accepted"] == 5
        assert receipt["matched"] == 3
        assert receipt["unknown"] == 2
        assert receipt["replaced"] == 1
        assert receipt["unknown_ids"] == ["req-1", "never-sent"]
        assert "kept and joined with the log" in receipt["note"]

        samples = await scrape(gateway)
        assert get(samples, "mlgate_feedback_rows_total", model="mlp", outcome="matched") == 4
        assert get(samples, "mlgate_feedback_rows_total", model="mlp", outcome="unknown") == 2
        assert get(samples, "mlgate_feedback_rows_total", model="mlp", outcome="replaced") == 1

        monitoring = gateway.app.state.monitoring
        window = await asyncio.to_thread(
            labelled_window,
            monitoring.settings.log_path(),
            FeedbackStore(registry.db),
            "mlp",
            1,
        )
        assert (window.logged_rows, window.labelled_rows) == (4, 3)
        assert window.frame["request_id"].tolist() == ["req-1", "req-1", "req-2"]
        assert window.labels.tolist() == [0, 1, 0]
        inputs, _ = window.tensors()
        expected = np.stack([sent["req-1"][0], sent["req-1"][2], sent["req-2"][0]])
        np.testing.assert_array_equal(inputs["x"], expected)


async def test_ids_not_in_the_recent_log_are_reported_not_dropped(registry: Registry) -> None:
    async for gateway in gateway_for(registry):
        items = [{"id": f"u{i}", "label": 0} for i in range(150)]
        response = await gateway.client.post(URL, json={"feedback": items, "source": "batch"})
        assert response.status_code == 200
        receipt = response.json()
        assert (receipt["matched"], receipt["unknown"]) == (0, 150)
        assert receipt["unknown_ids"] == [f"u{i}" for i in range(100)]
        assert receipt["unknown_ids_total"] == 150
        stored = FeedbackStore(registry.db).labels_for("mlp", [f"u{i}" for i in range(150)])
        assert len(stored) == 150  # kept for a later join

        # Not flushed yet: not known now, matched once the log wrote it.
        await gateway.infer("mlp", x(1, 0), id="late")
        await asyncio.to_thread(gateway.app.state.monitoring.log.flush, 10)
        again = await gateway.client.post(URL, json={"id": "late", "label": 1})
        assert again.json()["matched"] == 1


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "the request body is not valid JSON"),
        (b"[]", "the feedback body must be a JSON object"),
        (b'{"feedback": [{"id": "a", "label": 1}, {"id": "b"}]}', "feedback[1].label is missing"),
        (b'{"feedback": [{"id": "a", "lable": 1}]}', "feedback[0].lable: unknown field"),
        (b'{"id": "a", "row": -2, "label": 1}', "row must be the row's index"),
        (b'{"id": "a", "label": "yes"}', "label must be a finite number"),
    ],
)
async def test_bad_bodies_get_400_naming_the_field(
    registry: Registry, body: bytes, message: str
) -> None:
    async for gateway in gateway_for(registry):
        response = await gateway.client.post(
            URL, content=body, headers={"content-type": "application/json"}
        )
        assert response.status_code == 400
        assert message in response.json()["error"]


async def test_unknown_models_too_many_items_and_api_keys(registry: Registry) -> None:
    async for gateway in gateway_for(registry, max_rows_per_request=3, api_keys="alpha"):
        key = {"x-api-key": "alpha"}
        missing = await gateway.client.post(URL, json={"id": "a", "label": 1})
        assert missing.status_code == 401
        wrong = await gateway.client.post(
            URL, json={"id": "a", "label": 1}, headers={"x-api-key": "beta"}
        )
        assert wrong.status_code == 403

        unknown = await gateway.client.post(
            "/v1/models/nosuch/feedback", json={"id": "a", "label": 1}, headers=key
        )
        assert unknown.status_code == 404
        assert "nosuch" in unknown.json()["error"]
        invalid = await gateway.client.post(
            "/v1/models/Bad Name!/feedback", json={"id": "a", "label": 1}, headers=key
        )
        assert invalid.status_code == 400

        items = [{"id": f"r{i}", "label": 0} for i in range(4)]
        too_many = await gateway.client.post(URL, json={"feedback": items}, headers=key)
        assert too_many.status_code == 413
        assert "the limit is 3" in too_many.json()["error"]
        fits = await gateway.client.post(URL, json={"feedback": items[:3]}, headers=key)
        assert fits.status_code == 200
        assert fits.json()["accepted"] == 3

        gateway.client.headers.update(key)  # /metrics needs the key too
        samples = await scrape(gateway)
        assert get(samples, "mlgate_feedback_rows_total", model="mlp", outcome="unknown") == 3
        assert get(samples, "mlgate_feedback_rows_total", model="nosuch", outcome="unknown") is None

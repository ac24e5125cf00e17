"""GET /metrics after real requests: the contract's series, with bounded labels."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from registry import Registry
from tests.services.gateway.conftest import Gateway, open_gateway
from tests.services.gateway.test_admission import overflow

pytestmark = pytest.mark.anyio

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def scrape(gateway: Gateway) -> Samples:
    response = await gateway.client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=")
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }


def get(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def rows(n: int) -> np.ndarray:
    return np.random.default_rng(n).standard_normal((n, 6)).astype(np.float32)


async def test_requests_batches_and_model_info_are_exported(gateway: Gateway) -> None:
    for n in (1, 2, 3):
        assert (await gateway.infer("mlp", rows(n))).status_code == 200
    bad = await gateway.infer("mlp", rows(2)[:, :4])
    assert bad.status_code == 400
    v1 = await gateway.client.post("/v1/models/mlp:predict", json={"instances": rows(2).tolist()})
    assert v1.status_code == 200
    samples = await scrape(gateway)
    ok = get(
        samples, "mlgate_requests_total", model="mlp", version="1", protocol="rest", code="200"
    )
    assert ok == 3.0
    assert get(samples, "mlgate_requests_total", model="mlp", version="1", protocol="rest",
               code="400") == 1.0  # fmt: skip
    assert get(samples, "mlgate_requests_total", model="mlp", version="1", protocol="v1",
               code="200") == 1.0  # fmt: skip
    assert get(samples, "mlgate_request_duration_seconds_count", model="mlp", version="1",
               protocol="rest") == 4.0  # fmt: skip
    assert get(samples, "mlgate_request_duration_seconds_bucket", model="mlp", version="1",
               protocol="rest", le="0.25") is not None  # fmt: skip
    # Valid requests reached the batcher: 4 batches, 1+2+3+2 rows.
    assert get(samples, "mlgate_batch_size_sum", model="mlp", version="1") == 8.0
    batches = sum(
        v for (name, labels), v in samples.items()
        if name == "mlgate_batches_total" and ("model", "mlp") in labels
    )  # fmt: skip
    assert batches == 4.0
    assert get(samples, "mlgate_queue_duration_seconds_count", model="mlp", version="1") == 4.0
    assert get(samples, "mlgate_compute_duration_seconds_count", model="mlp", version="1") == 4.0
    assert get(samples, "mlgate_queue_depth", model="mlp", version="1") == 0.0
    assert get(samples, "mlgate_queue_capacity", model="mlp", version="1") == 1024.0
    assert get(samples, "mlgate_model_info", model="mlp", version="1", format="onnx",
               alias="production", role="serving") == 1.0  # fmt: skip
    assert get(samples, "mlgate_model_info", model="two", version="1", format="onnx",
               alias="production", role="serving") == 1.0  # fmt: skip


async def test_unknown_model_names_never_become_label_values(gateway: Gateway) -> None:
    for name in ("nope", "also-not-served", "x1"):
        assert (await gateway.infer(name, rows(1))).status_code == 404
    samples = await scrape(gateway)
    models = {dict(labels).get("model") for (name, labels) in samples if name.startswith("mlgate")}
    assert models <= {"mlp", "two", "", None}
    assert get(samples, "mlgate_requests_total", model="", version="", protocol="rest",
               code="404") == 3.0  # fmt: skip
    assert not any("request_id" in dict(labels) for (_, labels) in samples)


async def test_rejections_are_counted_by_reason(registry: Registry) -> None:
    async for gateway in open_gateway(registry, max_queue=4, max_batch_size=2, max_inflight=1):
        # 8 rows can never fit a 4-row queue: 413, not a refusal for load.
        assert (await gateway.infer("mlp", rows(8))).status_code == 413
        # a running batch and 4 queued rows: the next request overflows the queue, 429.
        assert (await overflow(gateway)).status_code == 429
        late = await gateway.client.post(
            "/v2/models/mlp/infer",
            json={"inputs": [{"name": "x", "shape": [1, 6], "datatype": "FP32", "data": [0] * 6}]},
            headers={"X-Request-Deadline": "1"},  # 1970: passed before it arrived
        )
        assert late.status_code == 504
        samples = await scrape(gateway)
        assert get(samples, "mlgate_rejected_total", model="mlp", version="1",
                   reason="queue_full") == 1.0  # fmt: skip
        assert get(samples, "mlgate_queue_capacity", model="mlp", version="1") == 4.0
        assert get(samples, "mlgate_requests_total", model="mlp", version="1", protocol="rest",
                   code="429") == 1.0  # fmt: skip
        assert get(samples, "mlgate_requests_total", model="mlp", version="1", protocol="rest",
                   code="413") == 1.0  # fmt: skip
        assert get(samples, "mlgate_requests_total", model="mlp", version="1", protocol="rest",
                   code="504") == 1.0  # fmt: skip


async def test_the_collector_registry_is_the_one_passed_in(registry: Registry) -> None:
    from services.gateway.app import create_app
    from tests.services.gateway.conftest import settings

    own = CollectorRegistry()
    app = create_app(settings(), registry=registry, metrics_registry=own)
    async with app.router.lifespan_context(app):
        while not app.state.dataplane.manager.synced:
            await asyncio.sleep(0.01)
        names = {family.name for family in own.collect()}
        assert {"mlgate_requests", "mlgate_queue_depth", "mlgate_model_info"} <= names
    # Stopped: the scrape-time collectors are gone with the gateway they read.
    assert "mlgate_queue_depth" not in {family.name for family in own.collect()}

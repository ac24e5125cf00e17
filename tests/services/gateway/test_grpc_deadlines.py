"""gRPC deadlines and cancellation reach the batcher: behind a busy batch, a call whose
deadline cannot be met is shed before compute, and a cancelled call's rows never run."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import httpx
import numpy as np
import pytest
import torch
import tritonclient.grpc as triton
import tritonclient.grpc.aio as triton_aio

from exporters import export
from registry import Registry
from tests.fixtures import SlowStack
from tests.services.gateway.conftest import LiveServer
from tests.services.gateway.test_disconnect import stats, wait
from tests.services.gateway.test_grpc import grpc_client, refused, tensor
from tests.services.gateway.test_grpc_server import scrape

pytestmark = pytest.mark.slow
BUSY_ROWS, SMALL_ROWS = 6000, 16


@pytest.fixture
def slow(registry: Registry) -> Iterator[LiveServer]:
    """The slow model, one batch at a time, with an SLO no request here could miss."""
    version = registry.register(
        SlowStack(), "slow", torch.randn(4, 256), factory="tests.fixtures:SlowStack"
    )
    assert export(registry, version.ref, "onnx").passed
    with LiveServer(
        registry, grpc_port=0, max_rows_per_request=8192, max_body_bytes=64 << 20
    ) as live:
        loaded = httpx.post(
            f"{live.url}/v2/repository/models/slow/load",
            timeout=60,
            json={"parameters": {"max_inflight": 1, "max_batch_size": 8192, "slo_ms": 600_000}},
        )
        assert loaded.status_code == 200, loaded.text
        yield live


def ones(rows: int) -> list[triton.InferInput]:
    return [tensor("x", np.ones((rows, 256), np.float32))]


def busy(live: LiveServer) -> threading.Thread:
    """A big request in flight (over gRPC), holding the model's only batch slot."""

    def run() -> None:
        client = grpc_client(live)
        client.infer("slow", ones(BUSY_ROWS), client_timeout=120)
        client.close()

    thread = threading.Thread(target=run)
    thread.start()
    wait(lambda: stats(live.url)["inflight_batches"] == 1)
    return thread


def test_a_deadline_the_queue_cannot_meet_is_shed_before_compute(slow: LiveServer) -> None:
    thread = busy(slow)
    client = grpc_client(slow)
    status, message = refused(lambda: client.infer("slow", ones(SMALL_ROWS), client_timeout=0.05))
    assert status == "UNAVAILABLE"
    assert message.startswith("shed: predicted latency")
    assert message.endswith("budget (slo_ms or the request's timeout); retry later")
    thread.join(timeout=120)
    final = stats(slow.url)
    assert final["rejected"] == {"shed": 1}
    assert final["inference_count"] == BUSY_ROWS
    # With time to wait, the same request queues and is answered.
    answer = client.infer("slow", ones(SMALL_ROWS), client_timeout=60).as_numpy("output")
    assert answer.shape == (SMALL_ROWS, 256)
    client.close()


def test_a_cancelled_call_never_runs(slow: LiveServer) -> None:
    thread = busy(slow)

    async def cancel_while_queued() -> None:
        client = triton_aio.InferenceServerClient(f"127.0.0.1:{slow.app.state.grpc_port}")
        call = asyncio.ensure_future(client.infer("slow", ones(SMALL_ROWS)))
        await asyncio.to_thread(wait, lambda: stats(slow.url)["queued_rows"] == SMALL_ROWS)
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        await client.close()

    asyncio.run(cancel_while_queued())
    wait(lambda: stats(slow.url)["cancelled"] == 1)
    thread.join(timeout=120)
    final = stats(slow.url)
    assert final["inference_count"] == BUSY_ROWS  # the 16 cancelled rows never ran
    assert final["request_count"] == 2
    samples = scrape(slow)
    assert samples[("mlgate_requests_total", ("499", "slow", "grpc", "1"))] == 1


def test_a_cancelled_stream_cancels_its_queued_requests(slow: LiveServer) -> None:
    thread = busy(slow)
    client = grpc_client(slow)
    errors: list[str] = []
    client.start_stream(callback=lambda result, error: errors.append(error.message()))
    client.async_stream_infer("slow", ones(SMALL_ROWS))
    wait(lambda: stats(slow.url)["queued_rows"] == SMALL_ROWS)
    client.stop_stream(cancel_requests=True)
    assert errors == ["Locally cancelled by application!"]  # no answer came
    wait(lambda: stats(slow.url)["cancelled"] == 1)
    thread.join(timeout=120)
    assert stats(slow.url)["inference_count"] == BUSY_ROWS
    client.close()

"""gRPC deadlines and cancellation reach the batcher: behind a busy batch, a call whose
deadline cannot be met is shed before compute, and a cancelled call's rows never run."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator

import httpx
import numpy as np
import pytest
import torch
import tritonclient.grpc as triton
import tritonclient.grpc.aio as triton_aio

from exporters import export
from registry import Registry
from tests.fixtures import SlowStack
from tests.services.gateway.conftest import PATIENCE_S, HeldBatch, LiveServer
from tests.services.gateway.rpc.test_grpc import grpc_client, refused, tensor
from tests.services.gateway.rpc.test_server import scrape
from tests.services.gateway.test_disconnect import client_gone, start_busy, stats, wait

pytestmark = pytest.mark.slow
BUSY_ROWS, SMALL_ROWS = 6000, 16


@pytest.fixture
def held(hold: Callable[[int], HeldBatch]) -> HeldBatch:
    """The busy request's batch, held in flight until a test releases it."""
    return hold(BUSY_ROWS)


@pytest.fixture
def slow(registry: Registry, held: HeldBatch) -> Iterator[LiveServer]:
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
            json={
                "parameters": {
                    "max_inflight": 1,
                    "max_batch_size": 8192,
                    "max_queue": 3 * 8192,  # room for two full batches behind the busy one
                    "slo_ms": 600_000,
                }
            },
        )
        assert loaded.status_code == 200, loaded.text
        yield live


def ones(rows: int) -> list[triton.InferInput]:
    return [tensor("x", np.ones((rows, 256), np.float32))]


def busy(live: LiveServer, held: HeldBatch, rows: int = BUSY_ROWS) -> threading.Thread:
    """A request of `rows` rows (over gRPC) in a thread: the big one holds the model's only
    batch slot until `held` is released; any other queues behind it."""

    def run() -> None:
        client = grpc_client(live)
        client.infer("slow", ones(rows), client_timeout=300)
        client.close()

    if rows == BUSY_ROWS:
        return start_busy(run, held)
    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_a_deadline_the_queue_cannot_meet_is_shed_before_compute(
    slow: LiveServer, held: HeldBatch
) -> None:
    thread = busy(slow, held)
    # Two full batches queued behind the held one: whenever the next request arrives, at
    # least two batches of 8192 rows are ahead of it (about a second of compute on a small
    # CPU), so the prediction below does not depend on how long anything took to get here.
    queued = [busy(slow, held, rows=8192) for _ in range(2)]
    wait(lambda: stats(slow.url)["queued_rows"] == 2 * 8192, "two full batches to queue")
    client = grpc_client(slow)
    status, message = refused(lambda: client.infer("slow", ones(SMALL_ROWS), client_timeout=0.1))
    assert status == "UNAVAILABLE"
    assert message.startswith("shed: predicted latency")
    assert message.endswith("budget (slo_ms or the request's timeout); retry later")
    held.release()
    for request in (thread, *queued):
        request.join(timeout=PATIENCE_S)
    final = stats(slow.url)
    assert final["rejected"] == {"shed": 1}
    assert final["inference_count"] == BUSY_ROWS + 2 * 8192  # the shed rows never ran
    # With time to wait, the same request queues and is answered.
    answer = client.infer("slow", ones(SMALL_ROWS), client_timeout=60).as_numpy("output")
    assert answer.shape == (SMALL_ROWS, 256)
    client.close()


def test_a_cancelled_call_never_runs(slow: LiveServer, held: HeldBatch) -> None:
    thread = busy(slow, held)

    async def cancel_while_queued() -> None:
        client = triton_aio.InferenceServerClient(f"127.0.0.1:{slow.app.state.grpc_port}")
        call = asyncio.ensure_future(client.infer("slow", ones(SMALL_ROWS)))
        await asyncio.to_thread(wait, lambda: stats(slow.url)["queued_rows"] == SMALL_ROWS)
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        await client.close()

    asyncio.run(cancel_while_queued())
    # The gateway saw the cancel while the held batch kept the slot: the rows are dropped.
    wait(lambda: client_gone(slow, "grpc") == 1, "the gateway to see the cancel")
    held.release()
    wait(lambda: stats(slow.url)["cancelled"] == 1, "the batcher to drop the cancelled rows")
    thread.join(timeout=PATIENCE_S)
    final = stats(slow.url)
    assert final["inference_count"] == BUSY_ROWS  # the 16 cancelled rows never ran
    assert final["request_count"] == 2
    samples = scrape(slow)
    assert samples[("mlgate_requests_total", ("499", "slow", "grpc", "1"))] == 1


def test_a_cancelled_stream_cancels_its_queued_requests(slow: LiveServer, held: HeldBatch) -> None:
    thread = busy(slow, held)
    client = grpc_client(slow)
    errors: list[str] = []
    client.start_stream(callback=lambda result, error: errors.append(error.message()))
    client.async_stream_infer("slow", ones(SMALL_ROWS))
    wait(lambda: stats(slow.url)["queued_rows"] == SMALL_ROWS)
    client.stop_stream(cancel_requests=True)
    assert errors == ["Locally cancelled by application!"]  # no answer came
    wait(lambda: client_gone(slow, "grpc") == 1, "the gateway to see the stream cancelled")
    held.release()
    wait(lambda: stats(slow.url)["cancelled"] == 1, "the batcher to drop the cancelled rows")
    thread.join(timeout=PATIENCE_S)
    assert stats(slow.url)["inference_count"] == BUSY_ROWS
    client.close()

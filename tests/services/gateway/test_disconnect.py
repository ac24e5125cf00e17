"""A client that goes away: its queued rows are dropped before they cost compute."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from typing import Any

import httpx
import numpy as np
import orjson
import pytest
import torch
from prometheus_client.parser import text_string_to_metric_families

from exporters import export
from registry import Registry
from tests.fixtures import SlowStack
from tests.services.gateway.conftest import PATIENCE_S, HeldBatch, LiveServer, wait_until

pytestmark = pytest.mark.slow


def binary_request(rows: int) -> tuple[bytes, dict[str, str]]:
    x = np.ones((rows, 256), np.float32)
    header = orjson.dumps(
        {
            "inputs": [
                {
                    "name": "x",
                    "shape": [rows, 256],
                    "datatype": "FP32",
                    "parameters": {"binary_data_size": x.nbytes},
                }
            ]
        }
    )
    return header + x.tobytes(), {"Inference-Header-Content-Length": str(len(header))}


def stats(url: str) -> dict[str, Any]:
    document: dict[str, Any] = httpx.get(f"{url}/v2/models/slow/stats", timeout=60).json()
    first: dict[str, Any] = document["model_stats"][0]
    return first


def wait(condition: Any, what: str = "the gateway's state") -> None:
    wait_until(condition, what)


def client_gone(live: LiveServer, protocol: str) -> float:
    """Requests of the slow model its clients left before an answer (counted as 499)."""
    text = httpx.get(f"{live.url}/metrics", timeout=60).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "mlgate_requests_total"
        and sample.labels["code"] == "499"
        and sample.labels["model"] == "slow"
        and sample.labels["protocol"] == protocol
    )


def start_busy(send: Callable[[], object], held: HeldBatch) -> threading.Thread:
    """`send` (the big request) in a thread; returns once its batch is held in flight."""
    failed: list[BaseException] = []

    def run() -> None:
        try:
            send()
        except BaseException as exc:
            failed.append(exc)
            raise

    thread = threading.Thread(target=run)
    thread.start()
    wait(lambda: held.started.is_set() or not thread.is_alive(), "the big batch to start")
    assert held.started.is_set(), f"the big request ended before its batch ran: {failed}"
    return thread


def test_a_disconnected_clients_queued_rows_never_run(
    registry: Registry, hold: Callable[[int], HeldBatch]
) -> None:
    version = registry.register(
        SlowStack(), "slow", torch.randn(4, 256), factory="tests.fixtures:SlowStack"
    )
    assert export(registry, version.ref, "onnx").passed
    held = hold(6000)  # the big batch stays in flight until released, however fast it runs
    with LiveServer(registry, max_rows_per_request=8192, max_body_bytes=64 << 20) as live:
        # An hour of latency budget: on any CPU the big request is admitted, never shed as
        # predicted to miss its SLO (which would leave nothing in flight to queue behind).
        loaded = httpx.post(
            f"{live.url}/v2/repository/models/slow/load",
            timeout=60,
            json={"parameters": {"max_inflight": 1, "max_batch_size": 8192, "slo_ms": 3_600_000}},
        )
        assert loaded.status_code == 200, loaded.text
        body, headers = binary_request(6000)
        answers: list[httpx.Response] = []
        busy = start_busy(
            lambda: answers.append(
                httpx.post(
                    f"{live.url}/v2/models/slow/infer", content=body, headers=headers, timeout=300
                )
            ),
            held,
        )
        assert stats(live.url)["inflight_batches"] == 1

        small, small_headers = binary_request(16)
        head = (
            "POST /v2/models/slow/infer HTTP/1.1\r\nHost: gateway\r\n"
            f"Content-Length: {len(small)}\r\n"
            + "".join(f"{k}: {v}\r\n" for k, v in small_headers.items())
            + "\r\n"
        ).encode()
        with socket.create_connection(("127.0.0.1", live.port)) as sock:
            sock.sendall(head + small)
            wait(lambda: stats(live.url)["queued_rows"] == 16, "the small request to queue")
        # The socket is closed: the gateway cancels the queued request, while the big batch
        # still holds the only slot (so nothing could have run it in the meantime).
        wait(lambda: client_gone(live, "rest") == 1, "the gateway to see the client leave")
        held.release()
        busy.join(timeout=PATIENCE_S)
        assert [a.status_code for a in answers] == [200]
        wait(lambda: stats(live.url)["cancelled"] == 1, "the batcher to drop the cancelled rows")
        final = stats(live.url)
        assert final["inference_count"] == 6000  # the busy request only; the 16 rows never ran
        assert final["request_count"] == 2

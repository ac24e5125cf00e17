"""A client that goes away: its queued rows are dropped before they cost compute."""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

import httpx
import numpy as np
import orjson
import pytest
import torch

from exporters import export
from registry import Registry
from tests.fixtures import SlowStack
from tests.services.gateway.conftest import LiveServer

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
    document: dict[str, Any] = httpx.get(f"{url}/v2/models/slow/stats").json()
    first: dict[str, Any] = document["model_stats"][0]
    return first


def wait(condition: Any, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def test_a_disconnected_clients_queued_rows_never_run(registry: Registry) -> None:
    version = registry.register(
        SlowStack(), "slow", torch.randn(4, 256), factory="tests.fixtures:SlowStack"
    )
    assert export(registry, version.ref, "onnx").passed
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
        busy = threading.Thread(
            target=lambda: httpx.post(
                f"{live.url}/v2/models/slow/infer", content=body, headers=headers, timeout=120
            ),
        )
        busy.start()
        wait(lambda: stats(live.url)["inflight_batches"] == 1)

        small, small_headers = binary_request(16)
        head = (
            "POST /v2/models/slow/infer HTTP/1.1\r\nHost: gateway\r\n"
            f"Content-Length: {len(small)}\r\n"
            + "".join(f"{k}: {v}\r\n" for k, v in small_headers.items())
            + "\r\n"
        ).encode()
        with socket.create_connection(("127.0.0.1", live.port)) as sock:
            sock.sendall(head + small)
            wait(lambda: stats(live.url)["queued_rows"] == 16)
        # The socket is closed: the gateway cancels the queued request.
        busy.join(timeout=120)
        wait(lambda: stats(live.url)["cancelled"] == 1)
        final = stats(live.url)
        assert final["inference_count"] == 6000  # the busy request only; the 16 rows never ran
        assert final["request_count"] == 2

"""The door in uvicorn's protocol, on a real server: an overloaded gateway answers inference
with a prebuilt 503 before any ASGI work, keeps the connection, and counts the refusal."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from registry import Registry
from services.gateway.admission import Admission
from services.gateway.door import refusal_bytes
from tests.services.gateway.conftest import LiveServer

BODY = json.dumps(
    {"inputs": [{"name": "x", "shape": [1, 6], "datatype": "FP32", "data": [0.1] * 6}]}
).encode()


@contextmanager
def overloaded(admission: Admission) -> Iterator[None]:
    """Ten seconds of the loop's work in flight: far past any share of the SLO."""
    saved = admission.cost.per_answer_s
    admission.cost.per_answer_s = 10.0
    admission.inflight += 1
    try:
        yield
    finally:
        admission.inflight -= 1
        admission.cost.per_answer_s = saved


def post(
    connection: http.client.HTTPConnection, path: str, body: bytes = BODY
) -> tuple[int, dict[str, str], bytes]:
    connection.request("POST", path, body, {"Content-Type": "application/json"})
    response = connection.getresponse()
    return response.status, dict(response.getheaders()), response.read()


@pytest.fixture
def door_live(registry: Registry) -> Iterator[LiveServer]:
    with LiveServer(registry, loop_lag_shed_ms=1000) as server:
        yield server


def test_an_overloaded_gateway_refuses_at_the_door_and_keeps_the_connection(
    door_live: LiveServer,
) -> None:
    admission = door_live.app.state.dataplane.admission
    connection = http.client.HTTPConnection("127.0.0.1", door_live.port, timeout=30)
    assert post(connection, "/v2/models/mlp/infer")[0] == 200
    with overloaded(admission):
        status, headers, body = post(connection, "/v2/models/mlp/infer")
        assert status == 503
        assert int(headers["retry-after"]) >= 10  # the drain time: ten seconds of work
        assert "requests are in flight" in json.loads(body)["error"]
        # a large body is skipped, not read into memory, and the connection stays usable
        assert post(connection, "/v2/models/mlp/versions/1/infer", b"x" * 2_000_000)[0] == 503
        assert post(connection, "/v1/models/mlp:predict", b'{"instances": [[0]]}')[0] == 503
        connection.request("GET", "/v2/health/ready")
        ready = connection.getresponse()
        assert ready.status == 200  # health and metadata never go through the door
        ready.read()
        connection.request("GET", "/metrics")
        metrics = connection.getresponse().read().decode()
    assert post(connection, "/v2/models/mlp/infer")[0] == 200  # the same connection
    connection.close()
    assert 'mlgate_rejected_total{model="mlp",reason="overload",version="1"} 3.0' in metrics
    assert 'code="503",model="mlp",protocol="rest",version="1"} 2.0' in metrics
    assert 'code="503",model="mlp",protocol="v1",version="1"} 1.0' in metrics


def test_a_client_asking_to_close_is_answered_and_closed(door_live: LiveServer) -> None:
    admission = door_live.app.state.dataplane.admission
    connection = http.client.HTTPConnection("127.0.0.1", door_live.port, timeout=30)
    with overloaded(admission):
        connection.request(
            "POST", "/v2/models/mlp/infer", BODY,
            {"Content-Type": "application/json", "Connection": "close"},
        )  # fmt: skip
        response = connection.getresponse()
        assert response.status == 503
        assert response.getheader("connection") == "close"
        response.read()
    connection.close()


def test_unknown_models_are_refused_without_inventing_metric_labels(
    door_live: LiveServer,
) -> None:
    admission = door_live.app.state.dataplane.admission
    connection = http.client.HTTPConnection("127.0.0.1", door_live.port, timeout=30)
    with overloaded(admission):
        assert post(connection, "/v2/models/ghost-of-a-model/infer")[0] == 503
        connection.request("GET", "/metrics")
        metrics = connection.getresponse().read().decode()
    connection.close()
    assert "ghost-of-a-model" not in metrics


def test_the_prebuilt_refusal_is_well_formed_http() -> None:
    raw = refusal_bytes('quote " and ünicode', 0.2, keep_alive=True)
    head, body = raw.split(b"\r\n\r\n", 1)
    lines = head.split(b"\r\n")
    assert lines[0] == b"HTTP/1.1 503 Service Unavailable"
    fields = dict(line.split(b": ", 1) for line in lines[1:])
    assert int(fields[b"content-length"]) == len(body)
    assert fields[b"retry-after"] in (b"1", b"2")
    assert json.loads(body) == {"error": 'quote " and ünicode'}
    assert b"connection" not in fields
    assert b"connection: close" in refusal_bytes("x", 0, keep_alive=False)

"""load_tests.openloop against a real HTTP/1.1 keep-alive server on loopback.

The server is a ThreadingHTTPServer in a background thread; the URL's path picks what it
answers. Assertions are about counts (sent, statuses, unfinished, connect errors), never
about speed, so a slow or busy machine cannot make them flake.
"""

from __future__ import annotations

import json
import threading
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlsplit

import pytest

from load_tests import openloop
from services.demo.traffic import free_port

BODY = b'{"inputs": [[0.5, 1.5, -2.0]]}'
DRAIN = 0.4  # seconds the generator waits for answers after its schedule
HOLD = 10.0  # the longest /slow holds a request: far past DRAIN, released at teardown
KEYS = {
    "offered_rps",
    "seconds",
    "sent",
    "ok_rps",
    "p50_ms",
    "p99_ms",
    "all_p99_ms",
    "statuses",
    "unfinished",
    "connect_errors",
    "connections",
    "send_lag_p99_ms",
    "tick_lag_p99_ms",
    "generator_cpu_s",
    "refused_rps",
    "refusals_without_retry_after",
}


@dataclass
class Seen:
    """What the server received, under a lock (handlers run on many threads)."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    paths: list[str] = field(default_factory=list)
    bodies: list[bytes] = field(default_factory=list)
    content_types: list[str | None] = field(default_factory=list)
    accepted: int = 0  # TCP connections, counted as each gets its handler
    mixed: int = 0


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # the generator opens 8 connections up front to warm its pool; the default backlog of 5
    # would drop SYNs and stall it for a 1 s retransmit
    request_queue_size = 128
    seen: Seen
    release: threading.Event


class _Handler(BaseHTTPRequestHandler):
    """POST /ok → 200, /busy → 503, /mixed → every third 503, /close → 200 and close,
    /garbage → not HTTP, /slow → held until teardown. Keep-alive, Content-Length always."""

    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        super().setup()
        server = cast(_Server, self.server)
        with server.seen.lock:
            server.seen.accepted += 1

    def do_POST(self) -> None:
        server = cast(_Server, self.server)
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        route = urlsplit(self.path).path
        with server.seen.lock:
            server.seen.paths.append(self.path)
            server.seen.bodies.append(body)
            server.seen.content_types.append(self.headers.get("Content-Type"))
            if route == "/mixed":
                server.seen.mixed += 1
            mixed = server.seen.mixed
        if route == "/slow":
            server.release.wait(HOLD)
        if route == "/garbage":
            self.close_connection = True
            self._write(b"this is not an HTTP response\r\n\r\n")
            return
        busy = route == "/busy" or (route == "/mixed" and mixed % 3 == 0)
        payload = b'{"busy": true}' if busy else b'{"outputs": [[1.0]]}'
        self.send_response(503 if busy else 200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        if route == "/close":
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self._write(payload)

    def _write(self, data: bytes) -> None:
        try:
            self.wfile.write(data)
            self.wfile.flush()
        except OSError:  # the generator closed its side (the /slow requests after the drain)
            self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: thousands of requests would flood the captured output."""


@dataclass
class Endpoint:
    base: str
    seen: Seen


@pytest.fixture
def endpoint() -> Iterator[Endpoint]:
    server = _Server(("127.0.0.1", 0), _Handler)  # port 0: the kernel picks a free one
    server.seen = Seen()
    server.release = threading.Event()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield Endpoint(f"http://127.0.0.1:{server.server_address[1]}", server.seen)
    finally:
        server.release.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def _check_shape(result: dict[str, Any], rate: float, seconds: float) -> None:
    assert set(result) == KEYS
    assert result["offered_rps"] == rate
    assert result["sent"] == int(rate * seconds)
    answered = sum(result["statuses"].values())
    assert answered + result["unfinished"] == result["sent"]
    assert all(isinstance(v, int) and v > 0 for v in result["statuses"].values())
    assert result["generator_cpu_s"] >= 0
    # the schedule issues request i at start + i / rate, so it lasts at least (sent-1)/rate
    assert result["seconds"] >= (result["sent"] - 1) / rate - 0.002
    # answered per second over at least the schedule: never more than offered
    assert 0 <= result["ok_rps"] <= rate * 1.05


def test_every_request_is_sent_on_keep_alive_connections_and_answered(
    endpoint: Endpoint,
) -> None:
    rate, seconds = 200.0, 0.5
    result = openloop.run(f"{endpoint.base}/ok?tag=1", BODY, rate=rate, seconds=seconds, drain=5)
    _check_shape(result, rate, seconds)
    assert result["sent"] == 100
    assert result["statuses"] == {"200": 100}
    assert result["unfinished"] == 0
    assert result["connect_errors"] == 0
    assert result["ok_rps"] > 0
    assert result["p50_ms"] is not None
    assert result["p99_ms"] is not None
    assert result["all_p99_ms"] is not None
    assert 0 <= result["p50_ms"] <= result["p99_ms"]
    assert result["all_p99_ms"] == result["p99_ms"]  # every answer was a 200
    assert result["send_lag_p99_ms"] is not None
    assert result["tick_lag_p99_ms"] is not None
    # the server saw exactly what was sent: one POST per request, path, body and header intact
    assert endpoint.seen.paths == ["/ok?tag=1"] * 100
    assert endpoint.seen.bodies == [BODY] * 100
    assert endpoint.seen.content_types == ["application/json"] * 100
    # keep-alive: connections are reused (8 are opened up front to warm the pool), and none
    # was closed, so all that the server accepted are still open
    assert 8 <= result["connections"] < 100
    assert endpoint.seen.accepted <= result["connections"]


def test_503s_are_counted_under_their_status_and_not_as_ok(endpoint: Endpoint) -> None:
    rate, seconds = 100.0, 0.3
    result = openloop.run(f"{endpoint.base}/busy", BODY, rate=rate, seconds=seconds, drain=5)
    _check_shape(result, rate, seconds)
    assert result["statuses"] == {"503": 30}
    assert result["refusals_without_retry_after"] == 30
    assert result["ok_rps"] == 0
    assert result["p50_ms"] is None  # the ok percentiles cover 200s only
    assert result["p99_ms"] is None
    assert result["all_p99_ms"] is not None
    assert result["unfinished"] == 0


def test_mixed_statuses_add_up_to_the_requests_sent(endpoint: Endpoint) -> None:
    rate, seconds = 150.0, 0.4
    result = openloop.run(f"{endpoint.base}/mixed", BODY, rate=rate, seconds=seconds, drain=5)
    _check_shape(result, rate, seconds)
    assert result["statuses"] == {"200": 40, "503": 20}
    assert result["refusals_without_retry_after"] == 20
    assert result["unfinished"] == 0
    assert 0 < result["ok_rps"] <= rate * 1.05


def test_a_content_type_other_than_json_is_sent_as_given(endpoint: Endpoint) -> None:
    result = openloop.run(
        f"{endpoint.base}/ok",
        b"\x00\x01binary",
        rate=50,
        seconds=0.2,
        drain=5,
        content_type="application/octet-stream",
    )
    assert result["statuses"] == {"200": 10}
    assert endpoint.seen.bodies == [b"\x00\x01binary"] * 10
    assert endpoint.seen.content_types == ["application/octet-stream"] * 10


def test_connection_close_answers_are_counted_and_new_connections_opened(
    endpoint: Endpoint,
) -> None:
    rate, seconds = 100.0, 0.3
    result = openloop.run(f"{endpoint.base}/close", BODY, rate=rate, seconds=seconds, drain=5)
    _check_shape(result, rate, seconds)
    assert result["statuses"] == {"200": 30}
    assert result["unfinished"] == 0
    assert result["connect_errors"] == 0
    assert len(endpoint.seen.paths) == 30
    assert endpoint.seen.accepted >= 30  # a connection per request: each was closed after


def test_a_response_that_is_not_http_counts_as_bad_response(endpoint: Endpoint) -> None:
    rate, seconds = 50.0, 0.2
    result = openloop.run(f"{endpoint.base}/garbage", BODY, rate=rate, seconds=seconds, drain=5)
    _check_shape(result, rate, seconds)
    assert result["statuses"] == {"bad_response": 10}
    assert result["ok_rps"] == 0
    assert result["unfinished"] == 0


def test_requests_not_answered_within_the_drain_are_unfinished(endpoint: Endpoint) -> None:
    rate, seconds = 40.0, 0.25
    result = openloop.run(f"{endpoint.base}/slow", BODY, rate=rate, seconds=seconds, drain=DRAIN)
    _check_shape(result, rate, seconds)
    assert result["sent"] == 10
    assert result["statuses"] == {}
    assert result["unfinished"] == 10
    assert result["ok_rps"] == 0
    assert result["p99_ms"] is None
    assert result["all_p99_ms"] is None
    assert result["connect_errors"] == 0


def test_requests_queued_for_a_connection_count_as_unfinished_too(endpoint: Endpoint) -> None:
    """Two connections, both held by /slow: the other eight wait in the generator's queue."""
    rate, seconds = 40.0, 0.25
    result = openloop.run(
        f"{endpoint.base}/slow", BODY, rate=rate, seconds=seconds, drain=DRAIN, max_connections=2
    )
    _check_shape(result, rate, seconds)
    assert result["unfinished"] == 10
    assert result["statuses"] == {}
    assert result["connections"] == 2
    assert len(endpoint.seen.paths) == 2  # only the two on a connection reached the server


def test_connect_errors_are_counted_when_nothing_listens() -> None:
    port = free_port()  # bound, then closed: nothing listens there
    rate, seconds = 50.0, 0.2
    result = openloop.run(
        f"http://127.0.0.1:{port}/ok", BODY, rate=rate, seconds=seconds, drain=DRAIN
    )
    _check_shape(result, rate, seconds)
    assert result["sent"] == 10
    assert result["statuses"] == {}
    assert result["unfinished"] == 10  # never sent: each waited for a connection
    # eight refused while warming the pool, then one refused connection per request
    assert result["connect_errors"] == 8 + 10
    assert result["connections"] == 0
    assert result["ok_rps"] == 0
    assert result["p99_ms"] is None


def test_main_prints_one_json_line(
    endpoint: Endpoint, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    body = tmp_path / "body.json"
    body.write_bytes(BODY)
    openloop.main(
        [f"{endpoint.base}/ok", str(body), "--rate", "100", "--seconds", "0.2", "--drain", "5"]
    )
    out = capsys.readouterr().out
    assert out.endswith("\n")
    lines = out.splitlines()
    assert len(lines) == 1
    result = json.loads(lines[0])
    _check_shape(result, 100.0, 0.2)
    assert result["statuses"] == {"200": 20}
    assert endpoint.seen.bodies == [BODY] * 20


def test_main_passes_content_type_and_max_connections(
    endpoint: Endpoint, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    body = tmp_path / "body.bin"
    body.write_bytes(b"raw")
    openloop.main(
        [
            f"{endpoint.base}/slow",
            str(body),
            "--rate",
            "40",
            "--seconds",
            "0.1",
            "--drain",
            str(DRAIN),
            "--content-type",
            "application/octet-stream",
            "--max-connections",
            "1",
        ]
    )
    result = json.loads(capsys.readouterr().out)
    assert result["sent"] == 4
    assert result["unfinished"] == 4
    assert result["connections"] == 1
    assert endpoint.seen.content_types == ["application/octet-stream"]


def test_run_closes_its_connections(endpoint: Endpoint) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        result = openloop.run(f"{endpoint.base}/ok", BODY, rate=50, seconds=0.1, drain=5)
    assert result["statuses"] == {"200": 5}
    assert [str(w.message) for w in caught if w.category is ResourceWarning] == []


def test_run_pinned_runs_the_generator_in_a_child_on_the_given_core(
    endpoint: Endpoint, tmp_path: Path
) -> None:
    body = tmp_path / "body.json"
    body.write_bytes(BODY)
    result = openloop.run_pinned(f"{endpoint.base}/ok", body, rate=50, seconds=0.2, cpu=0)
    assert result["sent"] == 10
    assert result["statuses"] == {"200": 10}
    assert result["unfinished"] == 0

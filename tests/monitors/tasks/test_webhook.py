"""The outbound task webhook against a real HTTP server on a loopback port."""

from __future__ import annotations

import email.utils
import json
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from monitors.tasks.store import Task, TaskStore
from monitors.tasks.webhook import NotifierStats, TaskNotifier, retry_after_s
from registry import Registry

PATIENCE_S = 120.0
"""How long a test lets the notifier drain (a limit on a failing test; a passing one waits
only as long as its sends take, however loaded the machine)."""


def fast(url: str, **overrides: Any) -> TaskNotifier:
    """A notifier with tiny backoffs, so retries cost the tests milliseconds, and a send
    timeout no loaded machine reaches by accident."""
    options: dict[str, Any] = {"backoff_s": 0.01, "max_backoff_s": 0.05, "timeout_s": 30.0}
    return TaskNotifier(url, **{**options, **overrides})


@dataclass(frozen=True)
class Reply:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    drop: bool = False  # close the connection without answering
    gate: threading.Event | None = None  # answer only once this is set


@dataclass(frozen=True)
class Received:
    headers: dict[str, str]
    body: bytes
    status: int | None  # None: dropped


class Receiver:
    """http.server in a thread: answers `script` in order, then 200 to everything."""

    def __init__(self, script: list[Reply]) -> None:
        self.script = list(script)
        self.requests: list[Received] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with receiver.lock:
                    reply = receiver.script.pop(0) if receiver.script else Reply()
                    receiver.requests.append(
                        Received(dict(self.headers), body, None if reply.drop else reply.status)
                    )
                if reply.drop:
                    self.close_connection = True
                    return
                if reply.gate is not None:
                    reply.gate.wait(PATIENCE_S)
                self.send_response(reply.status)
                for name, value in {**reply.headers, "Content-Length": "0"}.items():
                    self.send_header(name, value)
                self.end_headers()

            def log_message(self, *_args: Any) -> None:
                pass  # the tests read `requests`, not the access log

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, *_args: Any) -> None:
                pass  # a reply to a client that timed out and left: expected here

        self.server = Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/tasks"
        # A short poll interval: shutdown() waits for it, once per test.
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.02,), daemon=True)

    @property
    def accepted(self) -> list[Received]:
        return [r for r in self.requests if r.status is not None and r.status < 300]


Serve = Callable[..., Receiver]


def a_task(registry: Registry, model: str = "mlp") -> Task:
    """A real task, opened in the registry's database."""
    outcome = TaskStore(registry.db).open(
        model, 1, "data_drift", evidence={"drift_share": 0.6}, source="test", actor="test"
    )
    assert outcome.task is not None
    return outcome.task


@pytest.fixture
def serve() -> Iterator[Serve]:
    """`serve(*replies)`: a started Receiver, stopped after the test."""
    started: list[Receiver] = []

    def start(*replies: Reply) -> Receiver:
        receiver = Receiver(list(replies))
        receiver.thread.start()
        started.append(receiver)
        return receiver

    yield start
    for receiver in started:
        receiver.server.shutdown()
        receiver.server.server_close()
        receiver.thread.join(5)


def test_503s_are_retried_and_the_task_arrives_once(
    sqlite_registry: Registry, serve: Serve
) -> None:
    receiver = serve(Reply(503), Reply(503))
    task = a_task(sqlite_registry)
    notifier = fast(receiver.url, attempts=5)
    notifier.notify(task, "task.opened")
    assert notifier.close(PATIENCE_S)
    assert [r.status for r in receiver.requests] == [503, 503, 200]
    (arrived,) = receiver.accepted
    assert json.loads(arrived.body) == {"event": "task.opened", "task": task.to_json()}
    assert arrived.headers["Content-Type"] == "application/json"
    assert arrived.headers["Idempotency-Key"] == f"{task.key}-task.opened-open-0"
    assert {r.body for r in receiver.requests} == {arrived.body}  # every retry the same
    assert {r.headers["Idempotency-Key"] for r in receiver.requests} == {
        f"{task.key}-task.opened-open-0"
    }
    assert notifier.stats() == NotifierStats(sent=1, retried=2, failed=0, dropped=0)


def test_429_is_retried_after_its_retry_after(
    sqlite_registry: Registry, serve: Serve, caplog: pytest.LogCaptureFixture
) -> None:
    receiver = serve(Reply(429, {"Retry-After": "0"}))
    # The backoff alone would wait 30 s or more: only the Retry-After makes this quick.
    notifier = TaskNotifier(receiver.url, backoff_s=60, max_backoff_s=60, timeout_s=30)
    with caplog.at_level(logging.WARNING, logger="mlgate.monitors"):
        notifier.notify(a_task(sqlite_registry), "task.opened")
        assert notifier.close(PATIENCE_S)
    assert logged_delays(caplog) == [0.0]  # the receiver's Retry-After, not the backoff
    assert [r.status for r in receiver.requests] == [429, 200]
    assert notifier.stats() == NotifierStats(sent=1, retried=1, failed=0, dropped=0)


def test_a_long_retry_after_is_capped(sqlite_registry: Registry, serve: Serve) -> None:
    receiver = serve(Reply(503, {"Retry-After": "3600"}))
    notifier = fast(receiver.url)
    notifier.notify(a_task(sqlite_registry), "task.opened")
    assert notifier.close(PATIENCE_S)
    assert len(receiver.accepted) == 1


@pytest.mark.parametrize(
    ("reply", "problem"),
    [(Reply(400), "HTTP 400"), (Reply(302, {"Location": "/elsewhere"}), "HTTP 302")],
)
def test_other_answers_are_not_retried(
    sqlite_registry: Registry,
    serve: Serve,
    caplog: pytest.LogCaptureFixture,
    reply: Reply,
    problem: str,
) -> None:
    receiver = serve(reply)
    task = a_task(sqlite_registry)
    notifier = fast(receiver.url)
    with caplog.at_level(logging.ERROR, logger="mlgate.monitors"):
        notifier.notify(task, "task.opened")
        assert notifier.close(PATIENCE_S)
    assert len(receiver.requests) == 1  # a redirect is not followed either
    assert notifier.stats() == NotifierStats(sent=0, retried=0, failed=1, dropped=0)
    assert f"task.opened of task {task.id} refused, not retried: {problem}" in caplog.text


def test_an_unreachable_url_is_given_up_after_the_attempts(
    sqlite_registry: Registry, caplog: pytest.LogCaptureFixture
) -> None:
    with socket.socket() as sock:  # a loopback port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    task = a_task(sqlite_registry)
    notifier = fast(f"http://127.0.0.1:{port}/", attempts=3)
    with caplog.at_level(logging.WARNING, logger="mlgate.monitors"):
        notifier.notify(task, "task.opened")
        assert notifier.close(PATIENCE_S)
    assert notifier.stats() == NotifierStats(sent=0, retried=2, failed=1, dropped=0)
    gave_up = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(gave_up) == 1
    assert f"gave up on task.opened of task {task.id} after 3 attempts" in gave_up[0].message
    assert "refused" in gave_up[0].message.lower()


def logged_delays(caplog: pytest.LogCaptureFixture) -> list[float]:
    """The delay each retry's warning names ("... retry 2 in 0.031s")."""
    return [
        float(r.getMessage().rsplit(" in ", 1)[1].removesuffix("s"))
        for r in caplog.records
        if r.levelno == logging.WARNING and "; retry " in r.getMessage()
    ]


def test_the_backoff_doubles_with_jitter_up_to_its_cap(
    sqlite_registry: Registry, caplog: pytest.LogCaptureFixture
) -> None:
    with socket.socket() as sock:  # a loopback port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    notifier = TaskNotifier(
        f"http://127.0.0.1:{port}/", attempts=6, backoff_s=0.004, max_backoff_s=0.02
    )
    with caplog.at_level(logging.WARNING, logger="mlgate.monitors"):
        for model in ("m1", "m2", "m3"):
            notifier.notify(a_task(sqlite_registry, model), "task.opened")
        assert notifier.close(PATIENCE_S)
    assert notifier.stats() == NotifierStats(sent=0, retried=15, failed=3, dropped=0)
    delays = logged_delays(caplog)
    assert len(delays) == 15
    # Retry n waits min(max, backoff·2^(n-1)): half of it fixed, the other half at random.
    ceilings = [min(0.02, 0.004 * 2**n) for n in range(5)] * 3
    for delay, ceiling in zip(delays, ceilings, strict=True):
        assert ceiling / 2 - 0.0005 <= delay <= ceiling + 0.0005  # the log rounds to 1 ms
    capped = [d for d, c in zip(delays, ceilings, strict=True) if c == 0.02]
    assert len(set(capped)) > 1  # six draws from [10, 20] ms: jittered, not one schedule


def test_retry_after_is_waited_as_asked_below_the_cap(
    sqlite_registry: Registry, serve: Serve, caplog: pytest.LogCaptureFixture
) -> None:
    receiver = serve(Reply(503, {"Retry-After": "1"}), Reply(429, {"Retry-After": "3600"}))
    notifier = TaskNotifier(receiver.url, backoff_s=0.001, max_backoff_s=1.5, timeout_s=30)
    with caplog.at_level(logging.WARNING, logger="mlgate.monitors"):
        notifier.notify(a_task(sqlite_registry), "task.opened")
        assert notifier.close(PATIENCE_S)
    assert [r.status for r in receiver.requests] == [503, 429, 200]
    # The receiver's word, not the millisecond backoff; an hour is capped at max_backoff_s.
    assert logged_delays(caplog) == [1.0, 1.5]


@pytest.mark.parametrize(
    ("silent", "problem"),
    [(True, "timed out"), (False, "RemoteDisconnected")],
)
def test_timeouts_and_dropped_connections_are_retried(
    sqlite_registry: Registry,
    serve: Serve,
    caplog: pytest.LogCaptureFixture,
    silent: bool,
    problem: str,
) -> None:
    # Silent: the first reply waits for a gate opened only after the drain, so the send
    # times out whatever the machine's speed; else the connection is closed unanswered.
    gate = threading.Event()
    receiver = serve(Reply(503, gate=gate) if silent else Reply(drop=True))
    notifier = TaskNotifier(receiver.url, backoff_s=0.01, max_backoff_s=0.05, timeout_s=0.2)
    with caplog.at_level(logging.WARNING, logger="mlgate.monitors"):
        notifier.notify(a_task(sqlite_registry), "task.opened")
        assert notifier.close(PATIENCE_S)
    gate.set()
    assert len(receiver.requests) == 2
    assert len(receiver.accepted) == 1
    assert notifier.stats() == NotifierStats(sent=1, retried=1, failed=0, dropped=0)
    assert problem in caplog.text


def test_notify_does_not_wait_and_close_drains_in_order(
    sqlite_registry: Registry, serve: Serve
) -> None:
    gate = threading.Event()
    receiver = serve(*(Reply(gate=gate) for _ in range(5)))
    tasks = [a_task(sqlite_registry, model=f"m{i}") for i in range(4)]
    store = TaskStore(sqlite_registry.db)
    updated = store.open("m0", 1, "data_drift", evidence={}, source="test", actor="test").task
    assert updated is not None
    assert updated.duplicate_count == 1
    notifier = fast(receiver.url)
    for task in tasks:
        notifier.notify(task, "task.opened")
    notifier.notify(updated, "task.updated")
    # Every notify returned while the receiver answers nothing: none of them waited.
    assert receiver.accepted == []
    gate.set()
    assert notifier.close(PATIENCE_S)
    keys = [r.headers["Idempotency-Key"] for r in receiver.accepted]
    assert keys == [
        *(f"{t.key}-task.opened-open-0" for t in tasks),
        f"{updated.key}-task.updated-{updated.status}-1",
    ]
    assert json.loads(receiver.accepted[-1].body)["event"] == "task.updated"
    assert notifier.stats() == NotifierStats(sent=5, retried=0, failed=0, dropped=0)

    notifier.notify(tasks[0], "task.updated")  # after close: dropped, not sent
    assert notifier.stats().dropped == 1
    assert len(receiver.requests) == 5


def test_close_reports_a_drain_that_runs_out_of_time(
    sqlite_registry: Registry, serve: Serve
) -> None:
    gate = threading.Event()
    receiver = serve(Reply(200, gate=gate))  # answers only once the gate opens
    notifier = fast(receiver.url)
    notifier.notify(a_task(sqlite_registry), "task.opened")
    assert notifier.close(0.1) is False  # the send cannot have finished: it is not answered
    gate.set()
    assert notifier.close(PATIENCE_S) is True  # a second close waits for the rest
    assert notifier.stats().sent == 1


def test_a_full_queue_drops_and_counts(
    sqlite_registry: Registry, serve: Serve, caplog: pytest.LogCaptureFixture
) -> None:
    gate = threading.Event()
    receiver = serve(Reply(gate=gate))  # the first send is answered once the gate opens
    tasks = [a_task(sqlite_registry, model=f"m{i}") for i in range(3)]
    notifier = fast(receiver.url, max_queued=1)
    notifier.notify(tasks[0], "task.opened")
    deadline = time.monotonic() + PATIENCE_S
    while not receiver.requests:  # the worker is busy with the first one, until the gate
        assert time.monotonic() < deadline
        time.sleep(0.01)
    with caplog.at_level(logging.ERROR, logger="mlgate.monitors"):
        notifier.notify(tasks[1], "task.opened")  # waits in the queue
        notifier.notify(tasks[2], "task.opened")  # no room
    assert notifier.close(0.05) is False  # no room for the stop either, yet
    gate.set()
    assert notifier.close(PATIENCE_S)
    assert notifier.stats() == NotifierStats(sent=2, retried=0, failed=0, dropped=1)
    assert f"dropping task.opened of task {tasks[2].id}" in caplog.text


def test_close_without_notifications_starts_nothing() -> None:
    notifier = TaskNotifier("http://127.0.0.1:9/")
    assert notifier.close(0)
    assert notifier.stats() == NotifierStats(0, 0, 0, 0)


def test_arguments_are_checked(sqlite_registry: Registry) -> None:
    for url in ("file:///etc/passwd", "ftp://host/x", "127.0.0.1:8080", "http:///hooks"):
        with pytest.raises(ValueError, match="must be http"):
            TaskNotifier(url)
    for url in ("http://127.0.0.1:99999/", "http://[::1/"):
        with pytest.raises(ValueError, match=r"Port out of range|Invalid IPv6 URL"):
            TaskNotifier(url)
    with pytest.raises(ValueError, match="attempts must be at least 1"):
        TaskNotifier("http://127.0.0.1:9/", attempts=0)
    notifier = TaskNotifier("http://127.0.0.1:9/")
    with pytest.raises(ValueError, match=r"unknown task event 'task\.closed'"):
        notifier.notify(a_task(sqlite_registry), "task.closed")
    assert notifier.close(0)


def test_retry_after_in_seconds_or_as_a_date() -> None:
    assert retry_after_s(None) is None
    assert retry_after_s("0") == 0
    assert retry_after_s(" 12 ") == 12
    assert retry_after_s("soon") is None
    assert retry_after_s("-3") is None
    later = email.utils.format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    assert 25 < (retry_after_s(later) or 0) <= 30
    assert retry_after_s("Wed, 21 Oct 2015 07:28:00 GMT") == 0  # passed: retry now


def test_an_unexpected_error_fails_one_notification_not_the_rest(
    sqlite_registry: Registry,
    serve: Serve,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    receiver = serve()
    first, second = a_task(sqlite_registry, "m1"), a_task(sqlite_registry, "m2")
    notifier = fast(receiver.url)
    real_send = notifier._send
    # Fault injection: no input reaches this guard (the URL is checked up front), and it
    # exists so that a bug in sending cannot silence every later notification.
    broken = {f"{first.key}-task.opened-open-0"}

    def send(delivery: Any) -> tuple[str | None, float | None]:
        if delivery.idempotency_key in broken:
            raise RuntimeError("a bug")
        return real_send(delivery)

    monkeypatch.setattr(notifier, "_send", send)
    with caplog.at_level(logging.ERROR, logger="mlgate.monitors"):
        notifier.notify(first, "task.opened")
        notifier.notify(second, "task.opened")
        assert notifier.close(PATIENCE_S)
    assert notifier.stats() == NotifierStats(sent=1, retried=0, failed=1, dropped=0)
    assert [r.headers["Idempotency-Key"] for r in receiver.accepted] == [
        f"{second.key}-task.opened-open-0"
    ]
    assert f"sending task.opened of task {first.id} failed" in caplog.text

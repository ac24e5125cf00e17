"""Outbound task webhook: tell another system (a CI job, a ticket queue, a chat bot) that a
retraining task was opened or updated.

`notify()` only queues: whoever opens tasks (the event loop, the monitor's thread) never
waits on someone else's HTTP server. One daemon thread POSTs, in order:

    POST <MLGATE_TASK_WEBHOOK_URL>
    Content-Type: application/json
    Idempotency-Key: <task key>-<event>-<status>-<duplicate_count>

    {"event": "task.opened" | "task.updated", "task": {...Task.to_json()}}

**Retries** (tenacity's `Retrying`). Connection errors, timeouts, 5xx and 429 are retried
up to `attempts` sends in all, with exponential backoff and "equal" jitter (half of the
doubled backoff fixed, half random, so many gateways do not retry in step), or after the
`Retry-After` a 429/503 asks for (capped at `max_backoff_s`). Other answers (4xx, and
redirects, which are not followed: a POST must not silently become a GET) will not change
on a retry and fail at once. A failure is logged on "mlgate.monitors" and
counted; it never reaches the code that opened the task. The receiver may see a
notification more than once (a timeout after it accepted one): the Idempotency-Key lets
it drop repeats, and differs for each update of a task.

The standard library's `urllib.request`, not httpx: httpx is a dev dependency only. The
queue is bounded: if the receiver is down for long, the oldest news is not worth memory;
notifications beyond `max_queued` are dropped and counted.
"""

from __future__ import annotations

import email.utils
import http.client
import json
import logging
import queue
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from monitors.tasks.store import Task

if TYPE_CHECKING:
    from tenacity import RetryCallState, Retrying

__all__ = ["EVENTS", "NotifierStats", "TaskNotifier", "retry_after_s"]

log = logging.getLogger("mlgate.monitors")

EVENTS = ("task.opened", "task.updated")
_STOP = object()


@dataclass(frozen=True, slots=True)
class NotifierStats:
    sent: int  # notifications the receiver accepted (2xx)
    retried: int  # sends repeated after a retryable failure
    failed: int  # notifications given up on (attempts spent, or not retryable)
    dropped: int  # notifications not queued: the queue was full, or the notifier closed


@dataclass(frozen=True, slots=True)
class _Delivery:
    body: bytes
    idempotency_key: str
    what: str  # for logs: "task.opened of task 3"


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *_args: object, **_kwargs: object) -> None:
        return None  # urllib then raises HTTPError with the 3xx: a failure, not retried


class TaskNotifier:
    def __init__(
        self,
        url: str,
        *,
        attempts: int = 5,
        backoff_s: float = 0.5,
        max_backoff_s: float = 30.0,
        timeout_s: float = 5.0,
        max_queued: int = 1000,
    ) -> None:
        parts = urllib.parse.urlsplit(url)  # ValueError for a malformed host or port
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"the task webhook URL must be http(s)://host..., got {url!r}")
        parts.port  # noqa: B018 - raises ValueError for a port out of range, here not later
        if attempts < 1:
            raise ValueError(f"attempts must be at least 1, got {attempts}")
        self.url = url
        self.attempts = attempts
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.timeout_s = timeout_s
        self._queue: queue.Queue[_Delivery | object] = queue.Queue(max_queued)
        self._opener = urllib.request.build_opener(_NoRedirects)
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._stop_queued = False
        self._sent = self._retried = self._failed = self._dropped = 0

    def notify(self, task: Task, event: str) -> None:
        """Queue one notification; returns at once. `event`: "task.opened" or "task.updated"."""
        if event not in EVENTS:
            raise ValueError(f"unknown task event {event!r}; events: {list(EVENTS)}")
        delivery = _Delivery(
            body=json.dumps({"event": event, "task": task.to_json()}).encode(),
            idempotency_key=f"{task.key}-{event}-{task.status}-{task.duplicate_count}",
            what=f"{event} of task {task.id}",
        )
        with self._lock:
            if self._closed:
                self._dropped += 1
                log.warning("task webhook: closed, dropping %s", delivery.what)
                return
            if self._thread is None:  # started on first use: constructing one costs nothing
                self._thread = threading.Thread(
                    target=self._run, name="mlgate-task-webhook", daemon=True
                )
                self._thread.start()
            try:
                self._queue.put_nowait(delivery)
            except queue.Full:
                self._dropped += 1
                log.error(
                    "task webhook: %d notifications queued, dropping %s",
                    self._queue.maxsize,
                    delivery.what,
                )

    def close(self, timeout_s: float = 10.0) -> bool:
        """Send what is queued (retries included) and stop; False if `timeout_s` ran out
        first (the daemon thread then dies with the process)."""
        deadline = time.monotonic() + timeout_s
        with self._lock:
            self._closed = True
            thread = self._thread
        if thread is None:
            return True
        if not self._stop_queued:
            try:  # outside the lock: the worker needs it to count while it makes room
                self._queue.put(_STOP, timeout=max(0.0, deadline - time.monotonic()))
            except queue.Full:
                return False
            self._stop_queued = True
        thread.join(max(0.0, deadline - time.monotonic()))
        return not thread.is_alive()

    def stats(self) -> NotifierStats:
        with self._lock:
            return NotifierStats(self._sent, self._retried, self._failed, self._dropped)

    # ---------------------------------------------------------------- the sending thread

    def _run(self) -> None:
        retrying = self._retrying()  # here, not at import: a gateway without a webhook never pays
        while (item := self._queue.get()) is not _STOP:
            assert isinstance(item, _Delivery)
            try:
                self._deliver(item, retrying)
            except Exception:  # a bug here must not stop every later notification
                self._count(failed=1)
                log.exception("task webhook: sending %s failed", item.what)

    def _retrying(self) -> Retrying:
        """The retry policy: a retryable answer is sent again until `attempts` sends in all,
        after the receiver's Retry-After (capped at `max_backoff_s`) or else the backoff,
        with "equal" jitter: min(max, backoff·2^(n-1)) / 2, plus up to as much again at
        random. A send that raises (a bug) is not retried: the exception reaches `_run`."""
        from tenacity import (
            Retrying,
            retry_if_result,
            stop_after_attempt,
            wait_exponential,
            wait_random_exponential,
        )

        half, cap = self.backoff_s / 2, self.max_backoff_s / 2
        backoff = wait_exponential(multiplier=half, max=cap) + wait_random_exponential(
            multiplier=half, max=cap
        )

        def wait(state: RetryCallState) -> float:
            _, wait_s = _answer(state)
            if wait_s is not None and wait_s >= 0:  # the receiver said when
                return min(wait_s, self.max_backoff_s)
            return float(backoff(state))

        return Retrying(
            stop=stop_after_attempt(self.attempts),
            wait=wait,
            retry=retry_if_result(_retryable),
            before_sleep=self._before_retry,
            retry_error_callback=_answer,  # attempts spent: the last answer, not RetryError
        )

    def _before_retry(self, state: RetryCallState) -> None:
        problem, _ = _answer(state)
        log.warning(
            "task webhook: %s failed (%s); retry %d in %.3fs",
            state.kwargs["delivery"].what,
            problem,
            state.attempt_number,
            state.upcoming_sleep,
        )
        self._count(retried=1)

    def _deliver(self, delivery: _Delivery, retrying: Retrying) -> None:
        problem, wait_s = retrying(self._send, delivery=delivery)
        if problem is None:
            self._count(sent=1)
        elif wait_s is None:  # not retryable
            self._count(failed=1)
            log.error("task webhook: %s refused, not retried: %s", delivery.what, problem)
        else:
            self._count(failed=1)
            log.error(
                "task webhook: gave up on %s after %d attempts: %s",
                delivery.what,
                self.attempts,
                problem,
            )

    def _send(self, delivery: _Delivery) -> tuple[str | None, float | None]:
        """(None, _) if accepted; else the problem and when to retry: None never, -1 after
        the backoff, >= 0 after that many seconds (the receiver's Retry-After)."""
        request = urllib.request.Request(  # noqa: S310 - __init__ allows http(s) only
            self.url,
            data=delivery.body,
            method="POST",
            headers={
                "Content-Type": "application/json",
                "Idempotency-Key": delivery.idempotency_key,
                "User-Agent": "mlgate-task-webhook",
            },
        )
        try:
            with self._opener.open(request, timeout=self.timeout_s) as response:
                response.read()
                return None, None
        except urllib.error.HTTPError as error:
            with error:  # its body is an open response: close it
                status = error.code
                if status == 429 or status >= 500:
                    asked = retry_after_s(error.headers.get("Retry-After"))
                    return f"HTTP {status}", -1.0 if asked is None else asked
                return f"HTTP {status}", None
        except (OSError, http.client.HTTPException) as error:
            # URLError (refused, DNS), timeouts, resets, a closed connection, a bad status line
            reason = error.reason if isinstance(error, urllib.error.URLError) else error
            return f"{type(error).__name__}: {reason}", -1.0

    def _count(self, *, sent: int = 0, retried: int = 0, failed: int = 0) -> None:
        with self._lock:
            self._sent += sent
            self._retried += retried
            self._failed += failed


def _answer(state: RetryCallState) -> tuple[str | None, float | None]:
    """What the last send said: `_send`'s (problem, when to retry)."""
    assert state.outcome is not None
    answer: tuple[str | None, float | None] = state.outcome.result()
    return answer


def _retryable(answer: tuple[str | None, float | None]) -> bool:
    problem, wait_s = answer
    return problem is not None and wait_s is not None


def retry_after_s(value: str | None) -> float | None:
    """A Retry-After header in seconds (delta-seconds or an HTTP date); None if absent or
    unreadable (the backoff applies then)."""
    if value is None:
        return None
    text = value.strip()
    if text.isascii() and text.isdigit():
        return float(text)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())

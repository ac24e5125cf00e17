"""An open-loop HTTP load generator: requests arrive on a fixed schedule, whatever the server does.

    python -m load_tests.openloop URL BODY_FILE --rate 3000 --seconds 6 [--content-type ...]

wrk, Debian's closed-loop tool, sends a connection's next request only when its last one
has been answered, so a slow server slows the arrivals and its queueing never shows (the
"coordinated omission" problem). Debian has no open-loop tool (no wrk2, vegeta or k6), so
this is one: request i is due at start + i / rate; it is issued at the first 1 ms tick at
or after that (`tick_lag_p99_ms` says how late ticks ran), and goes out on an idle
keep-alive connection, on a new one while fewer than --max-connections are open, or waits
in this process's queue until one frees. Latency counts from the issue, so time spent
waiting for a connection is the server's, as the user would see it (`send_lag_p99_ms`).

It is raw asyncio protocols on uvloop with httptools' C response parser (both come with
uvicorn[standard]): about 25 µs of CPU per request, so one core keeps up with 20,000+
requests/s. It checks itself: the tick lag stays near 1 ms and the send lag near 0 while
the server keeps up; and its own CPU time is reported beside the server's. After the schedule
ends it waits --drain seconds for answers; requests still unanswered count as `unfinished`.

Goodput and refusals are counted apart: `ok_rps` is 200s per second, `refused_rps` 429s and
503s per second (both until the last answer), `statuses` every outcome by status, and
`refusals_without_retry_after` the 429s and 503s that came without a Retry-After header (a
header callback on the parser: one comparison per header). p50/p99 are of the 200s alone;
`all_p99_ms` of every answer. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlsplit

import httptools
import numpy as np
import uvloop

__all__ = ["REFUSALS", "main", "run", "run_pinned"]

REFUSALS = (429, 503)  # the statuses that refuse a request (queue full, shed): not errors


class _Connection(asyncio.Protocol):
    def __init__(self, load: _Load) -> None:
        self.load = load
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.due = 0.0
        self.busy = False
        self.retry_after = False  # the response being parsed carries Retry-After

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self.load.everyone.add(self)

    def send(self, due: float) -> None:
        assert self.transport is not None
        self.due, self.busy = due, True
        self.load.lags.append(time.perf_counter() - due)
        self.transport.write(self.load.request)

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.load.finish(self, "bad_response", None)
            assert self.transport is not None
            self.transport.close()

    def on_message_begin(self) -> None:
        self.retry_after = False

    def on_header(self, name: bytes, value: bytes) -> None:
        if len(name) == 11 and name.lower() == b"retry-after":
            self.retry_after = True

    def on_message_complete(self) -> None:
        keep = self.parser.should_keep_alive()
        status = self.parser.get_status_code()
        if status in REFUSALS and not self.retry_after and self.busy:
            self.load.without_retry_after += 1
        self.load.finish(self, str(status), self if keep else None)
        if not keep and self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.load.everyone.discard(self)
        self.load.lost(self)


class _Load:
    def __init__(self, url: str, body: bytes, content_type: str, max_connections: int) -> None:
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        self.request = (
            f"POST {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
            f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode() + body
        self.max_connections = max_connections
        self.idle: collections.deque[_Connection] = collections.deque()
        self.everyone: set[_Connection] = set()
        self.closing = False
        self.open = 0
        self.waiting: collections.deque[float] = collections.deque()
        self.latencies: dict[str, list[float]] = collections.defaultdict(list)
        self.lags: list[float] = []
        self.ticks: list[float] = []
        self.outstanding = 0
        self.connect_errors = 0
        self.without_retry_after = 0

    def submit(self, due: float) -> None:
        issued = time.perf_counter()
        self.ticks.append(issued - due)
        due = issued
        self.outstanding += 1
        if self.idle:
            self.idle.popleft().send(due)
            return
        self.waiting.append(due)
        if self.open < self.max_connections:
            self.open += 1
            asyncio.get_running_loop().create_task(self._connect())

    async def _connect(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            _, connection = await loop.create_connection(
                lambda: _Connection(self), self.host, self.port
            )
        except OSError:
            self.open -= 1
            self.connect_errors += 1
            return
        self._use(connection)

    def _use(self, connection: _Connection) -> None:
        if self.waiting:
            connection.send(self.waiting.popleft())
        else:
            connection.busy = False
            self.idle.append(connection)

    def finish(self, connection: _Connection, status: str, reuse: _Connection | None) -> None:
        if not connection.busy:
            return
        connection.busy = False
        self.outstanding -= 1
        self.latencies[status].append(time.perf_counter() - connection.due)
        if reuse is not None:
            self._use(reuse)

    def lost(self, connection: _Connection) -> None:
        if self.closing:  # our own close at the end: what is unanswered stays unfinished
            return
        self.open -= 1
        if connection in self.idle:
            self.idle.remove(connection)
        if connection.busy:
            self.finish(connection, "socket_error", None)
        if self.waiting and self.open < self.max_connections:
            self.open += 1
            asyncio.get_running_loop().create_task(self._connect())


async def _drive(load: _Load, rate: float, seconds: float, drain: float) -> tuple[float, float]:
    """Send on schedule, then wait for answers; (schedule seconds, seconds until the last)."""
    for _ in range(min(load.max_connections, max(8, int(rate * 0.01)))):  # warm pool
        load.open += 1
        await load._connect()
    total = int(rate * seconds)
    start = time.perf_counter()
    sent = 0
    while sent < total:
        now = time.perf_counter()
        due_count = min(total, int((now - start) * rate) + 1)
        while sent < due_count:
            load.submit(start + sent / rate)
            sent += 1
        # 1 ms ticks: a sleep per request would cost a core; the wait counts from the tick
        await asyncio.sleep(max(0.001, start + sent / rate - time.perf_counter()))
    ended = time.perf_counter()
    deadline = ended + drain
    while load.outstanding and time.perf_counter() < deadline:
        await asyncio.sleep(0.001)
    elapsed = time.perf_counter() - start
    load.closing = True
    for connection in list(load.everyone):  # closed here, not left to the loop's close
        if connection.transport is not None:
            connection.transport.close()
    await asyncio.sleep(0)  # let connection_lost run
    return ended - start, elapsed


def _ms(values: np.ndarray, q: float) -> float | None:
    return round(float(np.percentile(values, q)) * 1000, 3) if values.size else None


def run(
    url: str,
    body: bytes,
    *,
    rate: float,
    seconds: float,
    content_type: str = "application/json",
    max_connections: int = 1024,
    drain: float = 5.0,
) -> dict[str, Any]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 65536)), hard))
    load = _Load(url, body, content_type, max_connections)
    cpu_before = time.process_time()
    duration, elapsed = uvloop.run(_drive(load, rate, seconds, drain))
    cpu = time.process_time() - cpu_before
    ok = np.asarray(load.latencies.get("200", []))
    refused = sum(len(load.latencies.get(str(status), [])) for status in REFUSALS)
    everything = np.asarray([x for values in load.latencies.values() for x in values])
    lags = np.asarray(load.lags)
    return {
        "offered_rps": rate,
        "seconds": round(duration, 3),
        "sent": int(rate * seconds),
        # answered per second, counted until the last answer (or the end of the drain)
        "ok_rps": round(ok.size / elapsed, 1),
        "refused_rps": round(refused / elapsed, 1),  # 429 and 503, never in ok_rps
        "p50_ms": _ms(ok, 50),
        "p99_ms": _ms(ok, 99),
        "all_p99_ms": _ms(everything, 99),
        "statuses": {status: len(values) for status, values in sorted(load.latencies.items())},
        "unfinished": load.outstanding,
        "connect_errors": load.connect_errors,
        "refusals_without_retry_after": load.without_retry_after,
        "connections": load.open,
        "send_lag_p99_ms": _ms(lags, 99),
        "tick_lag_p99_ms": _ms(np.asarray(load.ticks), 99),
        "generator_cpu_s": round(cpu, 3),
    }


def run_pinned(
    url: str, body_file: Path, *, rate: float, seconds: float, cpu: int, drain: float = 3.0
) -> dict[str, Any]:
    """`run` in a child process pinned to core `cpu`, away from the server's core."""
    done = subprocess.run(
        [
            "/usr/bin/taskset",
            "-c",
            str(cpu),
            sys.executable,
            "-m",
            "load_tests.openloop",
            url,
            str(body_file),
            "--rate",
            str(round(rate, 1)),
            "--seconds",
            str(seconds),
            "--drain",
            str(drain),
        ],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parent.parent,
    )
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("url")
    parser.add_argument("body_file", type=Path)
    parser.add_argument("--rate", type=float, required=True)
    parser.add_argument("--seconds", type=float, default=6)
    parser.add_argument("--content-type", default="application/json")
    parser.add_argument("--max-connections", type=int, default=1024)
    parser.add_argument("--drain", type=float, default=5)
    args = parser.parse_args(argv)
    result = run(
        args.url,
        args.body_file.read_bytes(),
        rate=args.rate,
        seconds=args.seconds,
        content_type=args.content_type,
        max_connections=args.max_connections,
        drain=args.drain,
    )
    sys.stdout.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()

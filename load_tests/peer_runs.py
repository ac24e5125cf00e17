"""One measured run of one peer in the peer benchmark, and what happens when a run fails.

A run resumes the peer (SIGCONT of its process tree, leaves first), waits until it answers
an inference, reads its CPU and batch counters, drives the load (wrk's closed loop or
load_tests.openloop's open loop), reads the counters again, lets an overloaded peer work off
its backlog, and pauses it (SIGSTOP) for the next peer's turn.

Every run reports goodput and refusals apart: `ok` and `ok_rps` count 200s only; `refused`
(by status) and `refused_rps` count 429s and 503s, which are never throughput;
`refusals_without_retry_after` the refusals without a Retry-After header. p50/p99 are of the
200s in the open loop, of every answer in the closed loop (wrk has no per-status latency:
`p99_of` says which).

A peer that does not answer after resuming is waited for with backed-off probes (SIGCONT is
sent again to any process of its tree still stopped) and, past the timeout, raises
`PeerUnavailable` with a diagnostic: the last probe's error, the tree's process states, the
CPU it used while waited for (busy or stuck) and the tail of its log. `Runner.attempt`
records any failed run with its reason, restarts a peer that no longer answers, and lets
the benchmark go on with the other runs.
"""

from __future__ import annotations

import contextlib
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from load_tests import openloop
from load_tests.peers.servers import Peer
from load_tests.wrk import run_wrk

__all__ = [
    "CLIENT_CPU",
    "FAILURES",
    "MAX_BATCH",
    "SERVER_CPU",
    "SLO_MS",
    "PeerUnavailable",
    "Runner",
    "closed",
    "measured",
    "open_loop",
    "start",
    "wait_answering",
]

SERVER_CPU, CLIENT_CPU = 0, 1
MAX_BATCH, SLO_MS = 64, 250  # mlgate's defaults, given to the peers that batch
RESUME_TIMEOUT_S, DRAIN_TIMEOUT_S, RECOVER_TIMEOUT_S = 120.0, 180.0, 30.0
# Between the answered probe and SIGSTOP: a batch that started before the probe's (mlgate
# runs two at once) finishes in this time, so none is in flight when the peer stops.
PAUSE_SETTLE_S = 0.25
# What a failed run can raise: the peer's own failure, a load generator that failed (its
# exit status, no JSON line), an HTTP error reading the peer's counters.
FAILURES = (RuntimeError, OSError, subprocess.SubprocessError, ValueError, KeyError, StopIteration)


class PeerUnavailable(RuntimeError):
    """A peer that did not answer in time; `diagnostic` says what it was doing."""

    def __init__(self, reason: str, diagnostic: str) -> None:
        super().__init__(reason)
        self.reason, self.diagnostic = reason, diagnostic


def _probe(peer: Peer, timeout: float) -> str | None:
    """None if the peer answered an inference with 200; else what went wrong."""
    request = urllib.request.Request(  # noqa: S310 (loopback http)
        peer.url, data=peer.body, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            return None if response.status == 200 else f"HTTP {response.status}"
    except urllib.error.HTTPError as exc:  # a refusal while it drains its queue, say
        return f"HTTP {exc.code}"
    except (urllib.error.URLError, OSError) as exc:
        return f"{type(exc).__name__}: {getattr(exc, 'reason', exc)}"


def wait_answering(peer: Peer, timeout: float, after: str) -> dict[str, Any]:
    """Probe until the peer answers an inference: {"waited_s", "resent_sigcont",
    "failed_probes", "first_failure"}.

    Probes back off from 50 ms to 2 s. Past the first second, any process of the tree still
    stopped gets SIGCONT again (a resume that did not reach it all). Raises PeerUnavailable
    past `timeout`, or at once if the server has exited."""
    started = time.monotonic()
    cpu = peer.server.cpu_seconds()
    delay, nudges, last, failures, first = 0.05, 0, "no probe answered", 0, None
    while True:
        code = peer.server.exit_code()
        if code is not None:
            raise PeerUnavailable(
                f"{peer.name} exited with status {code} after {after}",
                f"log {peer.server.log}, last lines:\n{peer.server.log_tail()}",
            )
        failed = _probe(peer, timeout=min(10.0, 2.0 + delay * 4))
        now = time.monotonic()
        if failed is None:
            return {
                "waited_s": round(now - started, 3),
                "resent_sigcont": nudges,
                "failed_probes": failures,
                "first_failure": first,
            }
        last, failures, first = failed, failures + 1, first or failed
        if peer.pausable and now - started > 1.0 and peer.server.stopped():
            peer.server.resume()
            nudges += 1
        if now - started > timeout:
            elapsed, used = now - started, peer.server.cpu_seconds() - cpu
            states = ", ".join(f"{pid} {state}" for pid, state in peer.server.states().items())
            raise PeerUnavailable(
                f"{peer.name} did not answer within {timeout:.0f} s after {after} "
                f"({failures} probes failed, the first with {first}, the last with {last}; "
                f"its processes used {used:.1f} s of CPU in "
                f"{elapsed:.0f} s: {'busy' if used > 0.2 * elapsed else 'idle'})",
                f"process states: {states}; "
                f"SIGCONT re-sent {nudges} times; log {peer.server.log}, last lines:\n"
                f"{peer.server.log_tail()}",
            )
        time.sleep(delay)
        delay = min(delay * 1.5, 2.0)


def start(peer: Peer, client_cpu: int | None) -> Peer:
    """Start the peer, warm it up (wrk, 8 connections, 2 s, not reported), let it finish
    what wrk left in flight, pause it.

    NOTE: a peer stopped in the middle of a batch times that batch across the whole pause
    (the clocks run on while it is stopped). mlgate's batch-cost model then predicts seconds
    a batch and sheds every request (503), and with nothing executed it never learns
    otherwise: the committed gateway did so after 30 s stopped under load. Every pause
    therefore follows an answered probe and PAUSE_SETTLE_S (`_pause`)."""
    peer.server.start()
    try:
        run_wrk(
            peer.url,
            peer.body,
            connections=8,
            seconds=2,
            header_length=None,
            content_type="application/json",
            cpu=client_cpu,
        )
        wait_answering(peer, DRAIN_TIMEOUT_S, "the warm-up")
        _pause(peer)
    except FAILURES:
        peer.server.stop()
        raise
    return peer


def _pause(peer: Peer) -> None:
    """SIGSTOP the peer's tree, once what it was computing has finished (see `start`)."""
    if peer.pausable:
        time.sleep(PAUSE_SETTLE_S)
        peer.server.pause()


@contextlib.contextmanager
def measured(peer: Peer) -> Iterator[dict[str, Any]]:
    """Resume the peer for one run; record its CPU, batches and processes around the run.

    Raises PeerUnavailable (the peer left running) if it does not answer after resuming."""
    if peer.pausable:
        peer.server.resume()
    extra: dict[str, Any] = {"resume": wait_answering(peer, RESUME_TIMEOUT_S, "resuming")}
    try:
        before = peer.batches() if peer.batches else None
        tree = peer.server.identities()
        cpu = peer.server.cpu_seconds()
    except FAILURES:
        _pause(peer)
        raise
    try:
        yield extra
    finally:
        extra["server_cpu_s"] = round(peer.server.cpu_seconds() - cpu, 3)
        now = peer.server.identities()
        if now != tree:  # the CPU of a process that exited during the run is not counted
            extra["tree_changed"] = {"exited": len(tree - now), "started": len(now - tree)}
        extra["processes"] = len(now)
        extra["mean_batch"] = 1.0
        if before is not None and peer.batches is not None:
            try:
                rows, batches = (a - b for a, b in zip(peer.batches(), before, strict=True))
                extra["mean_batch"] = round(rows / batches, 2) if batches else None
            except FAILURES as exc:
                extra["mean_batch"], extra["batches_error"] = None, str(exc)
        # An overloaded peer with an unbounded queue is still working through its backlog:
        # let it finish before pausing it, so the next run finds it idle (not counted).
        try:
            wait_answering(peer, DRAIN_TIMEOUT_S, "the run (its backlog)")
        except PeerUnavailable as exc:
            extra["drain_failed"] = exc.reason
        _pause(peer)


def _split(statuses: dict[str, int]) -> dict[str, Any]:
    """Goodput and refusals apart, from a run's count by status; `errors` is every outcome
    but 200, refusals included."""
    refusals = (str(status) for status in openloop.REFUSALS)
    return {
        "ok": statuses.get("200", 0),
        "refused": {status: statuses[status] for status in refusals if statuses.get(status)},
        "errors": {k: v for k, v in statuses.items() if k != "200" and v},
    }


def closed(
    peer: Peer, connections: int, seconds: float, cpu: int | None = CLIENT_CPU
) -> dict[str, Any]:
    """wrk, `connections` connections for `seconds`, on core `cpu` (None: unpinned)."""
    with measured(peer) as extra:
        result = run_wrk(
            peer.url,
            peer.body,
            connections=connections,
            seconds=seconds,
            header_length=None,
            content_type="application/json",
            cpu=cpu,
        )
    split = _split(dict(result.statuses))
    if result.socket_errors:
        split["errors"]["socket"] = result.socket_errors
    return {
        "shape": "closed",
        "load": connections,
        "ok_rps": round(split["ok"] / result.seconds, 1),
        "refused_rps": round(sum(split["refused"].values()) / result.seconds, 1),
        **split,
        "refusals_without_retry_after": result.refusals_without_retry_after,
        "p50_ms": result.p50_ms,
        "p99_ms": result.p99_ms,
        "p99_of": "all",  # wrk's latency is of every answer, refusals included
        "duration_s": result.seconds,
        "generator_cpu_s": result.wrk_cpu_s,
        "requests": result.requests,
        **extra,
    }


def open_loop(peer: Peer, rate: float, seconds: float, work: Path) -> dict[str, Any]:
    """load_tests.openloop at `rate` requests/s for `seconds`, on the client core."""
    body = work / f"{peer.name}.body"
    body.write_bytes(peer.body)
    with measured(peer) as extra:
        data = openloop.run_pinned(peer.url, body, rate=rate, seconds=seconds, cpu=CLIENT_CPU)
    split = _split(data["statuses"])
    for key in ("unfinished", "connect_errors"):
        if data[key]:
            split["errors"][key] = data[key]
    return {
        "shape": "open",
        "load": data["offered_rps"],
        "requests": data["sent"],
        **split,
        **{
            k: data[k]
            for k in (
                "ok_rps",
                "refused_rps",
                "refusals_without_retry_after",
                "p50_ms",
                "p99_ms",
                "all_p99_ms",
                "send_lag_p99_ms",
                "tick_lag_p99_ms",
                "generator_cpu_s",
            )
        },
        "p99_of": "200",
        **extra,
    }


def _reason(exc: BaseException) -> tuple[str, str]:
    """(one line, the details) for a failed run."""
    if isinstance(exc, PeerUnavailable):
        return exc.reason, exc.diagnostic
    detail = ""
    if isinstance(exc, subprocess.CalledProcessError):
        detail = "\n".join(str(exc.stderr or exc.stdout or "").splitlines()[-20:])
    return f"{type(exc).__name__}: {exc}".splitlines()[0][:500], detail


class Runner:
    """The started peers; runs each attempt, records failures and restarts, and goes on."""

    def __init__(self, log: Callable[[str], None]) -> None:
        self.log = log
        self.peers: dict[str, Peer] = {}
        self.factories: dict[str, tuple[Callable[[], Peer], int | None]] = {}
        self.down: dict[str, str] = {}  # peers that could not be (re)started, and why
        self.failures: list[dict[str, Any]] = []
        self.events: list[dict[str, Any]] = []

    def add(self, name: str, factory: Callable[[], Peer], client_cpu: int | None) -> None:
        """Start a peer (a failed start is recorded; its runs will fail as not running)."""
        self.factories[name] = (factory, client_cpu)
        try:
            self.peers[name] = start(factory(), client_cpu)
            self.log(f"{name} ready")
        except FAILURES as exc:
            self.down[name] = _reason(exc)[0]
            self._fail({"peer": name, "shape": "start"}, exc)

    def _fail(self, where: dict[str, Any], exc: BaseException) -> dict[str, Any]:
        reason, detail = _reason(exc)
        self.failures.append({**where, "reason": reason, "diagnostic": detail})
        self.log(f"FAILED {where}: {reason}")
        return {**where, "status": "failed", "reason": reason}

    def attempt(
        self,
        name: str,
        shape: str,
        load: float,
        measure: Callable[[Peer], dict[str, Any]],
        **tags: Any,
    ) -> dict[str, Any]:
        """One run: its figures with status "ok", or status "failed" and the reason; `tags`
        (repeat, seconds, share, …) go into either."""
        where = {"peer": name, "shape": shape, "load": load, **tags}
        peer = self.peers.get(name)
        if peer is None:
            reason = f"{name} is not running: {self.down.get(name, 'never started')}"
            return {**where, "status": "failed", "reason": reason}
        try:
            return {**measure(peer), **where, "status": "ok"}
        except FAILURES as exc:
            run = self._fail(where, exc)
            self._recover(name, peer, run["reason"], restart=isinstance(exc, PeerUnavailable))
            return run

    def _recover(self, name: str, peer: Peer, reason: str, *, restart: bool) -> None:
        """After a failed run: pause the peer if it still answers, else start it afresh."""
        if not restart:
            try:
                if peer.pausable:
                    peer.server.resume()
                wait_answering(peer, RECOVER_TIMEOUT_S, "a failed run")
                _pause(peer)
                return
            except PeerUnavailable:
                pass
        peer.server.stop()
        del self.peers[name]
        factory, client_cpu = self.factories[name]
        try:
            self.peers[name] = start(factory(), client_cpu)
            self.events.append({"peer": name, "event": "restarted", "after": reason})
            self.log(f"{name} restarted")
        except FAILURES as exc:
            self.down[name] = _reason(exc)[0]
            self.events.append({"peer": name, "event": "restart failed", "after": reason})
            self._fail({"peer": name, "shape": "restart"}, exc)

    def stop(self, names: list[str] | None = None) -> None:
        for name in list(self.peers) if names is None else names:
            if (peer := self.peers.pop(name, None)) is not None:
                peer.server.stop()

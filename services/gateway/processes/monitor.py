"""The gateway's monitoring rounds, in a child process of their own at the lowest CPU priority.

A round (drift and data quality over a window of up to 10k rows, quality from labels and
estimates, the decision policy) is seconds of Python and numpy on a wide model, and
rendering a drift report (Evidently) is seconds more. Run in a thread of the gateway, that
held the serving process's GIL and, on a busy core, the core itself: requests waited behind
it (the open-loop tails and the monitoring cost measured in issue 14). With
`drift_monitor=inprocess` the gateway now hands each round, and each report, to one child
process:

- started on first use (a gateway that never runs a round never starts it), with the
  `multiprocessing` spawn method (forking a process that runs threads is unsafe);
- at the lowest CPU priority (`MLGATE_MONITOR_PRIORITY`, default `idle`: Linux's
  SCHED_IDLE): a request that wakes the serving process takes the core from it at once,
  and it runs on the time serving leaves;
- given the gateway's own registry and monitoring settings (not the environment), so it
  reads and writes the same database, inference log and reports;
- one call at a time (`call` serialises them); each returns what the child's `Monitor`
  returned, or raises the exception it raised there (an `MlgateError` keeps its type).

It ends with the gateway: `close()` lets it finish at end-of-file on its pipe (the child
also stops when the gateway dies, since the pipe closes). A child that dies mid-call is
reported (`MonitorProcessDied`) and started afresh at the next call; the serving process
never depends on it. SIGINT is ignored in the child: Ctrl-C reaches the whole process
group, and the gateway decides when its child stops.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import pickle
import signal
import threading
from collections.abc import Callable
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

from monitors.settings import MonitorSettings
from registry.settings import RegistrySettings
from services.gateway.errors import Unavailable

__all__ = ["MonitorProcess", "MonitorProcessDied"]

log = logging.getLogger("mlgate.gateway")
OPS = ("rounds", "report")


class MonitorProcessDied(Unavailable):
    """The child process ended while a call was in flight (503: asking again starts one)."""


class MonitorProcess:
    def __init__(self, registry: RegistrySettings, monitor: MonitorSettings) -> None:
        self._settings = (registry, monitor)
        self._lock = threading.Lock()
        self._process: BaseProcess | None = None
        self._conn: Connection | None = None
        self._closed = False
        self.starts = 0
        """How many times a child was started: more than one means one died."""

    @property
    def pid(self) -> int | None:
        process = self._process
        return None if process is None else process.pid

    def call(self, op: str, *args: Any) -> Any:
        """Run `op` ("rounds" with targets, "report" with a check) in the child; blocking."""
        if op not in OPS:
            raise ValueError(f"unknown monitor process call {op!r}; known: {', '.join(OPS)}")
        with self._lock:
            if self._closed:
                raise RuntimeError("the monitor process is closed")
            conn = self._ensure()
            try:
                conn.send((op, args))
                ok, value = conn.recv()
            except (EOFError, OSError) as exc:
                code = self._reap(quiet=self._closed)
                raise MonitorProcessDied(
                    f"the monitor process ended (exit code {code}) during {op!r}; "
                    "a new one starts at the next call"
                ) from exc
        if ok:
            return value
        raise value

    def close(self, timeout_s: float = 10.0) -> None:
        """Stop the child: at end-of-file when idle, else (a call in flight) by SIGTERM."""
        self._closed = True
        process, conn = self._process, self._conn
        if process is None or conn is None:
            return
        idle = self._lock.acquire(blocking=False)
        try:
            if idle:
                conn.close()  # the child sees end-of-file and returns
                process.join(timeout_s)
            if process.is_alive():
                process.terminate()  # the call in flight then fails in its own thread
                process.join(timeout_s)
            if process.is_alive():
                process.kill()
                process.join(timeout_s)
        finally:
            if idle:
                self._process = self._conn = None
                self._lock.release()

    def _ensure(self) -> Connection:
        """The live child's pipe; a child is started when there is none."""
        if self._process is not None and self._conn is not None and self._process.is_alive():
            return self._conn
        if self._process is not None:
            self._reap()
        context = multiprocessing.get_context("spawn")
        ours, theirs = context.Pipe()
        process = context.Process(
            target=_child,
            args=(theirs, *self._settings),
            name="mlgate-monitor",
            daemon=True,  # never outlives the gateway, whatever stops it
        )
        process.start()
        # At once, from here: the child's own start (a fresh interpreter importing the
        # registry package) is a second of CPU that would otherwise run at full priority.
        if process.pid is not None:
            _lower_priority(self._settings[1].monitor_priority, process.pid)
        theirs.close()
        self._process, self._conn = process, ours
        self.starts += 1
        log.info("monitoring rounds run in process %s", process.pid)
        return ours

    def _reap(self, *, quiet: bool = False) -> int | None:
        process, conn = self._process, self._conn
        self._process = self._conn = None
        if conn is not None:
            conn.close()
        if process is None:
            return None
        process.join(5.0)
        if process.is_alive():
            process.kill()
            process.join(5.0)
        if not quiet:
            log.error("the monitor process %s ended (exit code %s)", process.pid, process.exitcode)
        return process.exitcode


def _child(
    conn: Connection, registry_settings: RegistrySettings, settings: MonitorSettings
) -> None:
    """The child's body: serve calls until end-of-file, then close the registry."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s [monitor]: %(message)s"
    )
    from monitors.loop import Monitor
    from monitors.monitor import preload
    from registry.store import Registry

    registry = Registry(settings=registry_settings)
    try:
        monitor = Monitor(registry, settings)
        preload()  # imports Evidently here, not in the serving process
        ops: dict[str, Callable[..., Any]] = {
            "rounds": monitor.run_once,
            "report": monitor.drift.report,
        }
        while True:
            try:
                op, args = conn.recv()
            except EOFError:
                return
            try:
                answer: tuple[bool, Any] = (True, ops[op](*args))
            except Exception as exc:  # noqa: BLE001 -- the caller gets it, this process goes on
                answer = (False, _portable(exc))
            conn.send(answer)
    finally:
        registry.close()


def _lower_priority(priority: str, pid: int) -> None:
    """`idle`: SCHED_IDLE, preempted at once by any ordinary task that wakes (on a core it
    shares with serving, nice 19 still cost one-connection p99 a millisecond: the scheduler
    let it finish its slice); `low`: nice 19; `normal`: as the gateway. Where the platform
    refuses, the child runs as it is."""
    with contextlib.suppress(OSError, AttributeError):
        if priority == "idle":
            os.sched_setscheduler(pid, os.SCHED_IDLE, os.sched_param(0))
        elif priority == "low":
            os.setpriority(os.PRIO_PROCESS, pid, 19)


def _portable(exc: Exception) -> Exception:
    """`exc` if it survives pickling (the registry's errors do), else a RuntimeError
    naming it: an exception whose constructor takes other arguments cannot be rebuilt."""
    try:
        pickle.loads(pickle.dumps(exc))  # noqa: S301 -- the bytes made on the line itself
    except Exception:  # noqa: BLE001 -- any failure to round-trip means: describe it instead
        return RuntimeError(f"{type(exc).__name__}: {exc}")
    return exc

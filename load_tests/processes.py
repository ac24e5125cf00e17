"""Benchmark servers as process trees: started (pinned to a core or not), paused, measured,
stopped.

Peers start helpers of their own (BentoML's circus workers in new sessions, PyTriton's
tritonserver and Python-backend stubs, `mlgate serve --workers N`'s worker processes), so a
server is the whole tree under the process this module starts, found by parent (psutil),
not just its process group.

Pausing stops the tree from the root down, so a supervisor cannot ask a stopped worker
anything; resuming continues it from the leaves up, a level at a time with a short settle
in between, so a supervisor never wakes to a helper that is still stopped (uvicorn's
supervisor, for one, kills a worker that misses a 5 s health check, and the time spent
stopped counts against that check). `stopped()` says which processes are still stopped,
`states()` and `log_tail()` are for diagnostics.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import psutil

__all__ = ["ServerProcess", "descendants", "levels", "tree_cpu_seconds"]

STOPPED = (psutil.STATUS_STOPPED, psutil.STATUS_TRACING_STOP)


def levels(root: int) -> list[list[int]]:
    """The live tree under `root` by depth: [[root], [its children], [theirs], …]."""
    children: dict[int, list[int]] = {}
    for process in psutil.process_iter(["ppid"]):
        children.setdefault(process.info["ppid"], []).append(process.pid)
    found, level = [], [root]
    while level:
        found.append(level)
        level = [child for pid in level for child in sorted(children.get(pid, []))]
    return found


def descendants(root: int) -> list[int]:
    """`root` and every live process below it, parents before their children."""
    return [pid for level in levels(root) for pid in level]


def _processes(root: int) -> list[psutil.Process]:
    """The tree's processes that are still there, each bound to its start time (so a
    signal never reaches a later process that reused a PID)."""
    found = []
    for pid in descendants(root):
        with contextlib.suppress(psutil.NoSuchProcess):
            found.append(psutil.Process(pid))
    return found


def tree_cpu_seconds(root: int) -> float:
    """User + system CPU of the live processes of the tree (threads included)."""
    total = 0.0
    for process in _processes(root):
        with contextlib.suppress(psutil.NoSuchProcess):
            times = process.cpu_times()
            total += times.user + times.system
    return total


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 (loopback)
            return bool(response.status == 200)
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


class ServerProcess:
    """One server: `argv` under `taskset -c cpu` (unpinned when `cpu` is None), ready when
    `ready_url` answers 200."""

    def __init__(
        self,
        argv: list[str],
        ready_url: str,
        *,
        env: dict[str, str] | None = None,
        cpu: int | None = None,
        cwd: Path | None = None,
        log: Path | None = None,
    ) -> None:
        pin = [] if cpu is None else ["/usr/bin/taskset", "-c", str(cpu)]
        self.argv = [*pin, *argv]
        self.ready_url = ready_url
        self.env = {**os.environ, **(env or {})}
        self.cwd = cwd
        self.log = log
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        if self._process is None:
            raise RuntimeError("the server is not running")
        return self._process.pid

    def start(self, timeout: float = 180) -> None:
        with self.log.open("ab") if self.log else open(os.devnull, "wb") as output:  # noqa: PTH123
            self._process = subprocess.Popen(
                self.argv,
                env=self.env,
                cwd=self.cwd,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(
                    f"{self.argv} exited with {self._process.returncode}; see {self.log}"
                )
            if _ready(self.ready_url):
                return
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"{self.argv} was not ready within {timeout} s; see {self.log}")

    def signal(self, signum: signal.Signals, *, leaves_first: bool = False) -> None:
        tree = _processes(self.pid)
        for process in reversed(tree) if leaves_first else tree:
            with contextlib.suppress(psutil.NoSuchProcess):
                process.send_signal(signum)

    def pause(self) -> None:
        """Root first, then down the tree: a stopped parent sends its helpers nothing."""
        self.signal(signal.SIGSTOP)

    def resume(self, settle: float = 0.05) -> None:
        """The deepest helpers first, then each level up, `settle` seconds apart: a parent
        wakes to helpers that are running already and have answered what it last asked."""
        tree = levels(self.pid)
        for depth, level in enumerate(reversed(tree)):
            if depth and settle:
                time.sleep(settle)
            for pid in level:
                with contextlib.suppress(psutil.NoSuchProcess):
                    psutil.Process(pid).resume()

    def states(self) -> dict[int, str]:
        """Each live process of the tree and its state (psutil's: running, sleeping,
        stopped, zombie, disk-sleep, …)."""
        found: dict[int, str] = {}
        for process in _processes(self.pid):
            with contextlib.suppress(psutil.NoSuchProcess):
                found[process.pid] = process.status()
        return found

    def stopped(self) -> list[int]:
        """Processes of the tree that are still stopped (by a signal or a tracer)."""
        return [pid for pid, state in self.states().items() if state in STOPPED]

    def identities(self) -> set[tuple[int, float]]:
        """(PID, start time) of each live process: a set that changes when one exits or
        starts (the CPU of a process that exited is no longer counted by `cpu_seconds`)."""
        found = set()
        for process in _processes(self.pid):
            with contextlib.suppress(psutil.NoSuchProcess):
                found.add((process.pid, process.create_time()))
        return found

    def exit_code(self) -> int | None:
        """The root's exit status once it has exited; None while it runs (or never started)."""
        return None if self._process is None else self._process.poll()

    def log_tail(self, lines: int = 20) -> str:
        """The last lines of the server's log, for a diagnostic."""
        if self.log is None or not self.log.exists():
            return ""
        with self.log.open("rb") as file:
            file.seek(max(0, self.log.stat().st_size - 16_384))
            text = file.read().decode(errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def cpu_seconds(self) -> float:
        return tree_cpu_seconds(self.pid)

    def stop(self) -> None:
        if self._process is None or self._process.poll() is not None:
            return
        tree = _processes(self.pid)
        self.resume()
        self.signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._process.wait(timeout=20)
        for process in tree:  # helpers in their own sessions outlive their parent
            with contextlib.suppress(psutil.NoSuchProcess):  # psutil refuses a reused PID
                process.kill()
        self._process.wait()

"""Benchmark servers as process trees: started pinned to a core, paused, measured, stopped.

Peers start helpers of their own (BentoML's circus workers in new sessions, PyTriton's
tritonserver and Python-backend stubs), so a server is the whole tree under the process
this module starts, found through /proc, not just its process group.
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

__all__ = ["ServerProcess", "descendants", "tree_cpu_seconds"]

_TICK = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> list[str] | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return None


def _started(pid: int) -> str | None:
    """The process's start time (clock ticks since boot): with the PID, its identity."""
    fields = _stat(pid)
    return None if fields is None else fields[19]


def descendants(root: int) -> list[int]:
    """`root` and every live process below it."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (fields := _stat(int(entry.name))) is not None:
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def tree_cpu_seconds(root: int) -> float:
    """User + system CPU of the live processes of the tree (threads included)."""
    total = 0
    for pid in descendants(root):
        if (fields := _stat(pid)) is not None:
            total += int(fields[11]) + int(fields[12])
    return total / _TICK


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 (loopback)
            return bool(response.status == 200)
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


class ServerProcess:
    """One server: `argv` under `taskset -c cpu`, ready when `ready_url` answers 200."""

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
        tree = descendants(self.pid)
        for pid in reversed(tree) if leaves_first else tree:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)

    def pause(self) -> None:
        self.signal(signal.SIGSTOP)

    def resume(self) -> None:
        """Helpers first, then their parents: a parent never wakes to a stopped helper."""
        self.signal(signal.SIGCONT, leaves_first=True)

    def cpu_seconds(self) -> float:
        return tree_cpu_seconds(self.pid)

    def stop(self) -> None:
        if self._process is None or self._process.poll() is not None:
            return
        tree = [(pid, _started(pid)) for pid in descendants(self.pid)]
        self.resume()
        self.signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._process.wait(timeout=20)
        for pid, started in tree:  # helpers in their own sessions outlive their parent
            if started is not None and _started(pid) == started:  # not a reused PID
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        self._process.wait()

"""`mlgate serve --workers N`: N gateway processes on one port.

The supervisor (uvicorn's, `Supervisor`) binds N listening sockets on the port with
SO_REUSEPORT, so the kernel spreads connections evenly over the workers, starts N workers
(spawned: each imports this module and builds its own app with `create_worker_app`, and
listens on its own socket), pings them, replaces one that dies or hangs without touching
the others (the replacement takes the same socket: connections that arrive meanwhile wait
in its queue), and on SIGTERM/SIGINT stops each gracefully (every worker finishes its
requests and runs its shutdown: queues drained, log flushed). Each worker has its own
event loop, model manager, batchers, runtimes and inference-log segment.

What is done once per gateway, not per worker, hangs on a slot: each worker takes the
lowest free `slot-<i>.lock` in the gateway's worker folder (an exclusive `flock`, released
by the kernel when the process dies, so a replacement takes the slot of the worker it
replaces). Slot 0 runs the monitoring rounds and the in-process retrainer; the others only
publish what it stored (`drift_monitor=external`). A worker's log replica is
`<replica>-w<slot>`, so a restarted worker appends to its predecessor's segments' series.
`/metrics` adds up across workers (`metrics.py`).

Threads are planned so that workers × onnxruntime threads per batch do not exceed the
cores: `MLGATE_INTRA_OP_THREADS` is capped at cores // workers, and the default
`MLGATE_MAX_INFLIGHT` (batches running at once) at cores // (workers × threads), at least
1 each. A version's own stored `max_inflight` still applies.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import tempfile
from pathlib import Path
from typing import Any

from uvicorn.config import STARTUP_FAILURE
from uvicorn.supervisors.multiprocess import Multiprocess, Process

from services.gateway.processes.slots import claim_slot

__all__ = [
    "create_worker_app",
    "plan_inflight",
    "plan_threads",
    "run_workers",
]

FOLDER_ENV = "MLGATE_WORKER_DIR"
WORKERS_ENV = "MLGATE_WORKERS"
log = logging.getLogger("uvicorn.error")
# Longer than the slowest model load or Evidently import that holds the GIL: uvicorn
# replaces a worker that does not answer its ping within this.
HEALTHCHECK_S = 60


def cores() -> int:
    """The cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def plan_threads(workers: int, intra_op_threads: int) -> int:
    """onnxruntime threads per batch, so that workers × threads ≤ cores."""
    return max(1, min(intra_op_threads, cores() // workers))


def plan_inflight(workers: int, threads: int, max_inflight: int) -> int:
    """Batches running at once per version, so that workers × batches × threads ≤ cores:
    a compute-bound model's batches then never fight over a core."""
    return max(1, min(max_inflight, cores() // (workers * threads)))


def create_worker_app() -> Any:
    """uvicorn's factory in each worker process: the gateway app for this worker's slot."""
    from monitors.settings import MonitorSettings
    from services.gateway.app import create_app
    from services.gateway.settings import GatewaySettings

    slot = claim_slot(Path(os.environ[FOLDER_ENV]), int(os.environ[WORKERS_ENV]))
    settings = GatewaySettings()
    monitor = MonitorSettings()
    base = monitor.log_replica or f"{socket.gethostname()}-{settings.port}"
    update: dict[str, Any] = {"log_replica": f"{base}-w{slot.index}"}
    if not slot.leader:
        update["retrainer"] = "off"
        if monitor.drift_monitor == "inprocess":
            update["drift_monitor"] = "external"
    role = "runs the monitor" if slot.leader and monitor.drift_monitor == "inprocess" else "serves"
    # uvicorn's logger: the one each worker's log level and handlers are set up for
    log.info("mlgate worker %s of %s (pid %s) %s", slot.index, slot.workers, os.getpid(), role)
    return create_app(settings, monitor_settings=monitor.model_copy(update=update), worker=slot)


def run_workers(workers: int, *, host: str, port: int, env: dict[str, str], log_level: str) -> None:
    """Serve with `workers` processes until stopped; `env`: settings every worker reads."""
    import uvicorn

    from services.gateway.door import DoorProtocol

    folder = Path(tempfile.mkdtemp(prefix="mlgate-workers-"))
    os.environ.update(env)
    os.environ.update({FOLDER_ENV: str(folder), WORKERS_ENV: str(workers)})
    config = uvicorn.Config(
        "services.gateway.workers:create_worker_app",
        factory=True,
        workers=workers,
        host=host,
        port=port,
        loop="uvloop",
        http=DoorProtocol,
        log_level=log_level,
        access_log=False,
        timeout_graceful_shutdown=10,
        timeout_worker_healthcheck=HEALTHCHECK_S,
    )
    try:
        sockets = reuse_port_sockets(host, port, workers)
    except OSError as exc:
        raise SystemExit(f"error: cannot listen on {host}:{port}: {exc}") from None
    try:
        Supervisor(config, sockets).run()
    finally:
        for sock in sockets:
            sock.close()
        shutil.rmtree(folder, ignore_errors=True)


def reuse_port_sockets(host: str, port: int, count: int) -> list[socket.socket]:
    """`count` listening sockets on one port with SO_REUSEPORT: the kernel spreads new
    connections evenly over them, where one shared socket hands most of them to whichever
    worker is waiting in accept (measured: 2 workers gave 1.12× one)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(family, socket.SOCK_STREAM)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind((host, port))
            port = sock.getsockname()[1]  # port 0: the others take the one the first got
            sock.listen(2048)
            sock.set_inheritable(True)
    except OSError:
        for sock in sockets:
            sock.close()
        raise
    return sockets


class Supervisor(Multiprocess):
    """uvicorn's supervisor, but each worker gets a listening socket of its own (worker i,
    and whoever replaces it, socket i), so SO_REUSEPORT balances connections."""

    def init_processes(self) -> None:
        for sock in self.sockets:
            process = Process(self.config, [sock])
            process.start()
            self.processes.append(process)

    def keep_subprocess_alive(self) -> None:
        # uvicorn's, with the dead worker's own socket given to its replacement.
        if self.should_exit.is_set():
            return
        for index, process in enumerate(self.processes):
            if process.is_alive(timeout=self.config.timeout_worker_healthcheck):
                continue
            process.kill()
            process.join()
            if process.exitcode == STARTUP_FAILURE:
                self.should_exit.set()
                return
            if self.should_exit.is_set():
                return
            log.info("worker process %s died; starting its replacement", process.pid)
            replacement = Process(self.config, [self.sockets[index]])
            replacement.start()
            self.processes[index] = replacement

    def restart_all(self) -> None:
        """SIGHUP: replace every worker, one at a time, each once its successor is ready."""
        for index, old in enumerate(self.processes):
            if self.should_exit.is_set():
                return
            new = Process(self.config, [self.sockets[index]])
            new.start()
            if not new.wait_until_ready(self.config.timeout_worker_healthcheck, self.should_exit):
                new.kill()
                new.join()
                return
            old.terminate()
            old.join()
            self.processes[index] = new

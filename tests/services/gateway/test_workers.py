"""`mlgate serve --workers 2`: real processes on one port. Metrics add up, one monitor,
a promotion reaches every worker with no failed request, a killed worker is replaced
without the others going down, and SIGTERM drains every worker."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import httpx
import psutil
import pytest

from monitors.log.counts import counts_name, read_lines
from monitors.settings import MonitorSettings
from registry import Registry
from services.demo.traffic import free_port
from services.gateway.processes.slots import claim_slot
from services.gateway.workers import plan_inflight, plan_threads

WORKERS = 2
BODY = {"inputs": [{"name": "x", "shape": [1, 6], "datatype": "FP32", "data": [0.5] * 6}]}


def until(condition: Callable[[], bool], what: str, guard_s: float = 120) -> None:
    """Poll a state (the guard only stops a broken test from hanging)."""
    deadline = time.monotonic() + guard_s
    while not condition():
        assert time.monotonic() < deadline, f"never: {what}"
        time.sleep(0.05)


def workers_of(parent: int) -> set[int]:
    """The live worker processes (uvicorn's spawn also starts a resource tracker: not a
    worker; a killed worker not yet reaped is a zombie: not one either)."""
    found = set()
    for child in psutil.Process(parent).children():
        with suppress(psutil.NoSuchProcess):  # gone meanwhile: not a worker
            if child.status() == psutil.STATUS_ZOMBIE:
                continue
            if not any("resource_tracker" in part for part in child.cmdline()):
                found.add(child.pid)
    return found


@contextmanager
def serving(home: Path, log: Path) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    port = free_port()
    command = [sys.executable, "-m", "services.cli", "--home", str(home), "serve"]
    command += ["--port", str(port), "--no-grpc", "--workers", str(WORKERS)]
    env = {
        **os.environ,
        "MLGATE_POLL_INTERVAL_S": "0.2",
        "MLGATE_LOG_FLUSH_INTERVAL_S": "0.2",
        "MLGATE_DRIFT_INTERVAL_S": "0.5",
    }
    url = f"http://127.0.0.1:{port}"
    with log.open("wb") as sink:
        process = subprocess.Popen(command, stderr=sink, env=env, start_new_session=True)
    try:
        until(lambda: _ready(url) or process.poll() is not None, "the gateway is ready")
        assert process.poll() is None, log.read_text()
        until(lambda: len(workers_of(process.pid)) == WORKERS, "both workers run")
        yield process, url
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=60)


def _ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/v2/health/ready", timeout=5).status_code == 200
    except httpx.TransportError:
        return False


def infer(url: str) -> httpx.Response:
    # a new connection each time, so the kernel spreads requests over both workers
    return httpx.post(f"{url}/v2/models/mlp/infer", json=BODY, timeout=30)


def counter(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_threads_are_planned_so_workers_times_threads_fit_the_cores() -> None:
    cores = len(os.sched_getaffinity(0))
    assert plan_threads(1, 1) == 1
    assert plan_threads(WORKERS, 64) == max(1, cores // WORKERS)
    assert plan_threads(cores * 4, 8) == 1  # never zero
    # batches running at once: workers × batches × threads ≤ cores, at least one
    assert plan_inflight(1, 1, 2) == min(2, cores)
    assert plan_inflight(cores, 1, 2) == 1
    assert plan_inflight(1, cores, 4) == 1


def test_slots_are_exclusive_and_a_released_slot_is_taken_again(tmp_path: Path) -> None:
    first = claim_slot(tmp_path, 2)
    second = claim_slot(tmp_path, 2)
    assert (first.index, second.index) == (0, 1)
    assert first.leader
    assert not second.leader
    with pytest.raises(RuntimeError, match="all 2 worker slots"):
        claim_slot(tmp_path, 2, wait_s=0.1)
    first.lock.close()  # as the kernel does when a worker dies
    again = claim_slot(tmp_path, 2)
    assert again.index == 0
    for slot in (second, again):
        slot.lock.close()


def test_two_workers_sum_their_metrics_and_one_runs_the_monitor(home: Path, tmp_path: Path) -> None:
    with serving(home, tmp_path / "serve.log") as (_, url):
        answered = [infer(url).status_code for _ in range(120)]
        assert answered == [200] * 120

        def per_replica() -> dict[str, int]:
            return answered_by_replica(home)

        until(lambda: sum(per_replica().values()) == 120, "both workers' counts are written")
        replicas = per_replica()
        assert sorted(r.rsplit("-", 1)[1] for r in replicas) == ["w0", "w1"]
        assert all(rows > 0 for rows in replicas.values())  # both workers answered some
        metrics = httpx.get(f"{url}/metrics", timeout=30).text
        assert counter(metrics, "mlgate_requests_total", model="mlp", code="200") == 120
        assert counter(metrics, "mlgate_batch_size_count", model="mlp") >= 1
        assert re.search(r'mlgate_model_info\{.*model="mlp".*\} 1\.0', metrics)
        # the monitor runs in worker 0 only: its rounds are the gateway's only rounds
        log = (tmp_path / "serve.log").read_text()
        assert log.count("mlgate worker 0 of 2") == 1
        assert log.count("mlgate worker 1 of 2") == 1
        assert log.count("runs the monitor") == 1
        assert "Traceback" not in log


def test_a_promotion_reaches_every_worker_without_a_failed_request(
    home: Path, registry: Registry, tmp_path: Path
) -> None:
    with serving(home, tmp_path / "serve.log") as (_, url):
        statuses: list[int] = []
        versions: list[str] = []
        stop = threading.Event()

        def traffic() -> None:
            while not stop.is_set():
                response = infer(url)
                statuses.append(response.status_code)
                if response.status_code == 200:
                    versions.append(response.json()["model_version"])

        client = threading.Thread(target=traffic)
        client.start()
        try:
            until(lambda: len(versions) >= 20, "traffic flows")
            registry.set_alias("mlp", "production", 2, reason="test: swap across workers")
            until(lambda: versions[-40:] == ["2"] * 40, "every worker answers with v2")
        finally:
            stop.set()
            client.join()
        assert set(statuses) == {200}
        assert "1" in versions


def test_a_killed_worker_is_replaced_and_the_others_keep_serving(
    home: Path, tmp_path: Path
) -> None:
    with serving(home, tmp_path / "serve.log") as (process, url):
        before = workers_of(process.pid)
        victim = min(before)
        os.kill(victim, signal.SIGKILL)
        until(
            lambda: (
                victim not in workers_of(process.pid) and len(workers_of(process.pid)) == WORKERS
            ),
            "a replacement worker starts",
        )
        until(lambda: _ready(url), "the gateway is ready")
        answered = [infer(url).status_code for _ in range(40)]
        assert answered == [200] * 40
        metrics = httpx.get(f"{url}/metrics", timeout=30).text
        assert counter(metrics, "mlgate_requests_total", model="mlp", code="200") >= 1
        assert process.poll() is None


def test_sigterm_drains_every_worker(home: Path, tmp_path: Path) -> None:
    with serving(home, tmp_path / "serve.log") as (process, url):
        assert [infer(url).status_code for _ in range(30)] == [200] * 30
        pids = workers_of(process.pid)
        os.killpg(process.pid, signal.SIGTERM)
        assert process.wait(timeout=60) == 0
        assert not any(psutil.pid_exists(pid) for pid in pids)
    log = (tmp_path / "serve.log").read_text()
    assert log.count("Application shutdown complete") == WORKERS
    assert sum(answered_by_replica(home).values()) == 30  # every worker flushed its counts


def answered_by_replica(home: Path) -> dict[str, int]:
    """Rows answered by mlp:1, per log replica, from the count files every worker writes."""
    folder = MonitorSettings(home=home).log_path() / "mlp" / "1"
    answered: dict[str, int] = {}
    for path in folder.glob("*"):
        name = counts_name(path)
        if name is not None:
            rows = sum(line[1] for line in read_lines(path))
            answered[name.replica] = answered.get(name.replica, 0) + rows
    return answered

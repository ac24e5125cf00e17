"""The gateway's monitoring rounds run in a child process, at the lowest CPU priority by
default (the tests' rounds run at normal priority: see tests/conftest.py)."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import sys
import threading
import time

import numpy as np
import psutil
import pytest

from registry import Registry
from services.gateway.processes.monitor import MonitorProcess, MonitorProcessDied, _portable
from tests.services.gateway.conftest import PATIENCE_S, open_gateway
from tests.services.gateway.test_monitoring import monitor_settings, settle_and_tick, traffic

pytestmark = pytest.mark.anyio


def alive(pid: int) -> bool:
    return psutil.pid_exists(pid)


def wait_until(predicate: object, what: str, timeout_s: float = PATIENCE_S) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, what
        time.sleep(0.02)


@pytest.mark.parametrize(
    ("priority", "policy", "nice"),
    [("idle", os.SCHED_IDLE, 0), ("low", os.SCHED_OTHER, 19), ("normal", os.SCHED_OTHER, 0)],
)
def test_the_child_runs_at_the_priority_asked_from_its_start(
    registry: Registry, priority: str, policy: int, nice: int
) -> None:
    """Read off the child as soon as it exists, without waiting for it to answer: at the
    idle priority (the default) a machine loaded on every core leaves it no CPU to."""
    settings = monitor_settings(registry.settings.home, monitor_priority=priority)
    rounds = MonitorProcess(registry.settings, settings)
    answers: list[object] = []

    def first_call() -> None:  # starts the child; answered, or ended by close() below
        try:
            answers.append(rounds.call("rounds", []))
        except MonitorProcessDied as exc:
            answers.append(exc)

    caller = threading.Thread(target=first_call)
    caller.start()
    try:
        wait_until(
            lambda: rounds.pid is not None and os.sched_getscheduler(rounds.pid) == policy,
            f"the child to run with scheduling policy {policy}",
        )
        pid = rounds.pid
        assert pid is not None
        assert pid != os.getpid()
        assert os.getpriority(os.PRIO_PROCESS, pid) == nice
    finally:
        rounds.close()
        caller.join(PATIENCE_S)
    assert answers == [[]] or isinstance(answers[0], MonitorProcessDied), answers
    assert not alive(pid), "close() left the child running"


async def test_rounds_run_in_a_child_ending_with_the_gateway(registry: Registry) -> None:
    settings = monitor_settings(registry.settings.home)
    async for gateway in open_gateway(registry, monitor=settings):
        rounds = gateway.app.state.monitoring.rounds
        assert rounds.starts == 0  # started on first use only
        await traffic(gateway, 200, seed=1)
        await settle_and_tick(gateway)
        pid = rounds.pid
        assert pid is not None
        assert pid != os.getpid()
        # What the child stored is what the gateway publishes and answers.
        drift = (await gateway.client.get("/monitoring/models/mlp/drift")).json()
        assert drift["window"]["rows"] == 200
        # The report renders there too.
        path = f"/monitoring/models/mlp/drift/report?check={drift['id']}"
        report = await gateway.client.get(path)
        assert report.status_code == 200
        assert "<html" in report.text.lower()
        assert rounds.starts == 1
    # Stopping the gateway joined its child (waitpid), so the pid is gone by now.
    assert not alive(pid), "the monitor process outlived its gateway"


async def test_a_child_killed_between_rounds_is_started_again(registry: Registry) -> None:
    settings = monitor_settings(registry.settings.home)
    async for gateway in open_gateway(registry, monitor=settings):
        monitoring = gateway.app.state.monitoring
        await traffic(gateway, 200, seed=2)
        await settle_and_tick(gateway)
        first = monitoring.rounds.pid
        assert first is not None
        child = monitoring.rounds._process
        os.kill(first, signal.SIGKILL)
        child.join(30)  # waits on the child's exit (its sentinel), not on a clock
        assert not child.is_alive(), "SIGKILL did not kill"
        await traffic(gateway, 200, seed=3)
        await settle_and_tick(gateway)
        assert monitoring.rounds.pid not in (None, first)
        assert monitoring.rounds.starts == 2
        checks = (await gateway.client.get("/monitoring/models/mlp/drift")).json()
        assert checks["window"]["rows"] == 200  # the new child's round
        # Serving never noticed.
        assert (await gateway.infer("mlp", np.zeros((1, 6), np.float32))).status_code == 200


async def test_a_child_dying_mid_call_fails_that_call_with_503(registry: Registry) -> None:
    rounds = MonitorProcess(registry.settings, monitor_settings(registry.settings.home))
    try:
        assert rounds.call("rounds", []) == []
        pid = rounds.pid
        assert pid is not None
        os.kill(pid, signal.SIGSTOP)  # it cannot answer the next call
        failures: list[BaseException] = []

        def call() -> None:
            try:
                rounds.call("rounds", [])
            except BaseException as exc:  # noqa: BLE001 -- the test inspects it
                failures.append(exc)

        caller = threading.Thread(target=call)
        caller.start()

        def waiting_for_the_answer() -> bool:
            frame = sys._current_frames().get(caller.ident or 0)
            while frame is not None:
                if frame.f_code.co_name == "recv":
                    return True
                frame = frame.f_back
            return False

        wait_until(waiting_for_the_answer, "the call never reached recv")
        os.kill(pid, signal.SIGKILL)
        caller.join(30)
        assert len(failures) == 1
        assert isinstance(failures[0], MonitorProcessDied)
        assert failures[0].status_code == 503
        assert "exit code -9" in str(failures[0])
        assert rounds.call("rounds", []) == []  # a new child
        assert rounds.starts == 2
    finally:
        rounds.close()


async def test_errors_raised_in_the_child_keep_their_type(registry: Registry) -> None:
    settings = monitor_settings(registry.settings.home)
    async for gateway in open_gateway(registry, monitor=settings):
        await traffic(gateway, 200, seed=4)
        await settle_and_tick(gateway)
        check = (await gateway.client.get("/monitoring/models/mlp/drift")).json()["id"]
        # The check's rows leave the log (retention): its report cannot be rendered.
        await asyncio.to_thread(gateway.app.state.monitoring.log.flush, 10)
        shutil.rmtree(settings.log_path() / "mlp")
        answer = await gateway.client.get(f"/monitoring/models/mlp/drift/report?check={check}")
        assert answer.status_code == 404, answer.text
        assert "no longer in the inference log" in answer.json()["error"]
        assert (await gateway.infer("mlp", np.zeros((1, 6), np.float32))).status_code == 200


def test_calls_are_checked_and_a_closed_process_refuses(registry: Registry) -> None:
    rounds = MonitorProcess(registry.settings, monitor_settings(registry.settings.home))
    with pytest.raises(ValueError, match="unknown monitor process call 'train'"):
        rounds.call("train")
    rounds.close()  # never started: nothing to stop
    with pytest.raises(RuntimeError, match="closed"):
        rounds.call("rounds", [])


def test_an_exception_that_cannot_be_rebuilt_is_described() -> None:
    class Odd(Exception):
        def __init__(self, a: int, b: int) -> None:
            super().__init__(f"{a}/{b}")

    described = _portable(Odd(1, 2))
    assert type(described) is RuntimeError
    assert str(described) == "Odd: 1/2"
    kept = _portable(KeyError("x"))
    assert type(kept) is KeyError

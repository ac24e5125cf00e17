"""Admission by event-loop lag: a late loop sheds new inference requests with 503."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest

from registry import Registry
from services.gateway.admission import LoopLag
from tests.services.gateway.conftest import Gateway, open_gateway

pytestmark = pytest.mark.anyio


def test_one_stall_is_not_overload_but_a_run_of_late_wake_ups_is() -> None:
    lag = LoopLag(0.02)
    states = []
    for lag_s in (0.5, 0.001, 0.03, 0.04, 0.015, 0.005):
        lag.observe(lag_s)
        states.append(lag.overloaded)
    # a stall alone (a model load, a garbage collection) sheds nothing; two late wake-ups
    # in a row do; better but not under half the threshold stays overloaded
    assert states == [False, False, False, True, True, False]
    assert lag.lag_s == 0.005


async def test_the_probe_sees_a_busy_loop_and_then_its_recovery() -> None:
    seen: list[float] = []
    lag = LoopLag(0.01, interval_s=0.002, report=seen.append)
    await lag.start()
    try:
        for _ in range(6):  # the loop blocked 30 ms at a time, as by work it cannot keep up with
            time.sleep(0.03)
            await asyncio.sleep(0.001)
        assert lag.overloaded
        assert max(seen) >= 0.02
        deadline = time.monotonic() + 30
        while lag.overloaded:  # an idle loop's next on-time wake-up clears it
            assert time.monotonic() < deadline
            await asyncio.sleep(0.002)
    finally:
        await lag.stop()


async def test_a_zero_threshold_never_starts_the_probe() -> None:
    lag = LoopLag(0.0, interval_s=0.001)
    await lag.start()
    time.sleep(0.01)
    await asyncio.sleep(0.005)
    assert lag.lag_s == 0.0
    assert not lag.overloaded
    await lag.stop()


async def _infer(gateway: Gateway) -> tuple[int, str]:
    response = await gateway.infer("mlp", np.zeros((1, 6), np.float32))
    return response.status_code, response.text


async def test_an_overloaded_gateway_answers_503_and_counts_it_then_serves_again(
    registry: Registry,
) -> None:
    async for gateway in open_gateway(registry, loop_lag_shed_ms=1000):
        admission = gateway.app.state.dataplane.admission
        assert admission.threshold_s == 1.0
        assert (await _infer(gateway))[0] == 200
        admission.observe(1.5)
        admission.observe(2.0)
        status, text = await _infer(gateway)
        assert status == 503
        assert "overloaded (its event loop is 2000 ms behind)" in text
        # the v1 route is behind the same door
        v1 = await gateway.client.post("/v1/models/mlp:predict", json={"instances": [[0] * 6]})
        assert v1.status_code == 503
        metrics = (await gateway.client.get("/metrics")).text
        assert 'mlgate_rejected_total{model="mlp",reason="overload",version="1"} 2.0' in metrics
        admission.observe(0.0)
        assert (await _infer(gateway))[0] == 200


async def test_the_default_threshold_is_a_tenth_of_the_slo_and_zero_turns_it_off(
    registry: Registry,
) -> None:
    async for gateway in open_gateway(registry, slo_ms=400, loop_lag_shed_ms=None):
        assert gateway.app.state.dataplane.admission.threshold_s == pytest.approx(0.04)
    async for gateway in open_gateway(registry, loop_lag_shed_ms=0):
        admission = gateway.app.state.dataplane.admission
        await asyncio.sleep(0.02)
        assert admission.lag_s == 0.0  # no probe ran


async def test_routes_off_the_fast_path_still_go_through_the_router(gateway: Gateway) -> None:
    wrong_method = await gateway.client.get("/v2/models/mlp/infer")
    assert wrong_method.status_code == 405
    assert "no such route or method" in wrong_method.json()["error"]
    unknown = await gateway.client.post("/v2/models/mlp/infer/extra", json={})
    assert unknown.status_code == 404
    assert (await gateway.client.get("/v2/health/live")).status_code == 200

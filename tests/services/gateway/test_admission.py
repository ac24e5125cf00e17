"""Admission at the door: a loop too far behind for the SLO refuses inference with 503 and
Retry-After before reading the body; a loop merely busy refuses nothing."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import numpy as np
import pytest

from registry import Registry
from services.gateway.admission import Admission, LoopCost, LoopLag
from tests.services.gateway.conftest import Gateway, open_gateway

pytestmark = pytest.mark.anyio


def test_the_door_refuses_only_when_two_loop_hops_exceed_the_front_share_of_the_slo() -> None:
    admission = Admission(0.1)  # 100 ms for the loop's waits
    for _ in range(20):
        admission.lag.observe(0.03)  # 30 ms behind, steadily: far past a tenth of the SLO
    assert admission.refusal() is None  # two hops are 60 ms: admitted
    for _ in range(20):
        admission.lag.observe(0.08)
    message = admission.refusal()
    assert message is not None
    assert "80 ms behind" in message
    assert "160 ms" in message
    assert admission.drain_s() == pytest.approx(0.08)
    for _ in range(20):
        admission.lag.observe(0.001)
    assert admission.refusal() is None


def test_one_stall_refuses_nothing_but_two_late_probes_in_a_row_do() -> None:
    admission = Admission(0.1)
    refused = []
    for lag_s in (0.5, 0.0, 0.3, 0.2, 0.04, 0.0):
        admission.lag.observe(lag_s)
        refused.append(admission.refusal() is not None)
    # a 500 ms stall alone (a garbage collection, a load) refuses nothing; 300 then 200 ms
    # behind does (two hops of 200 ms > 100 ms); one probe nearly on time clears it
    assert refused == [False, False, False, True, False, False]


def test_the_loops_cost_per_answer_is_measured_in_windows_without_many_refusals() -> None:
    cpu = [0.0]
    cost = LoopCost(window_probes=2, min_answers=10, smoothing=0.5, cpu=lambda: cpu[0])

    def window(answered: int, refused: int, seconds: float) -> None:
        cost.answered += answered
        cost.refused += refused
        cpu[0] += seconds
        cost.tick()
        cost.tick()

    window(0, 0, 0.0)  # the first window only starts the clock
    window(100, 0, 0.025)  # 250 µs an answer
    assert cost.per_answer_s == pytest.approx(250e-6)
    window(100, 50, 0.5)  # half as many refusals as answers: not a measure of an answer
    assert cost.per_answer_s == pytest.approx(250e-6)
    window(5, 0, 0.5)  # too few answers to say
    assert cost.per_answer_s == pytest.approx(250e-6)
    window(100, 5, 0.045)  # 450 µs, smoothed by half
    assert cost.per_answer_s == pytest.approx(350e-6)


def test_the_door_closes_when_the_work_in_flight_exceeds_its_share_of_the_slo() -> None:
    admission = Admission(0.1)
    admission.cost.per_answer_s = 250e-6  # 250 µs of the loop per answered request
    for _ in range(400):
        admission.enter()
    assert admission.refusal() is None  # 400 × 250 µs = 100 ms: just within
    admission.enter()
    message = admission.refusal()
    assert message is not None
    assert "401 requests are in flight at about 250 µs" in message
    assert admission.drain_s() == pytest.approx(401 * 250e-6)
    admission.leave()
    assert admission.refusal() is None
    assert admission.cost.refused == 1
    assert admission.cost.answered == 1


async def test_the_probe_sees_a_busy_loop_and_then_its_recovery() -> None:
    seen: list[float] = []
    reported = asyncio.Event()

    def report(lag_s: float) -> None:
        seen.append(lag_s)
        reported.set()

    # The threshold (100 ms) and the stalls (150 ms) are far apart from the lateness a busy
    # machine adds to every wake-up (a few ms, tens under heavy load): "one stall refuses
    # nothing" must not depend on how late the probe before it ran.
    admission = Admission(0.1, lag=LoopLag(interval_s=0.002, report=report))
    await admission.start()
    try:
        await reported.wait()  # the probe is running
        # The loop blocked 150 ms at a time, as by work it cannot keep up with. After each
        # block this test resumes right after the probe that was due meanwhile (a late one)
        # and before the next, however slowly the machine runs: no probe on time between.
        refusals = []
        for _ in range(2):
            reported.clear()
            time.sleep(0.15)
            await reported.wait()
            refusals.append(admission.refusal())
        assert refusals[0] is None  # one stall refuses nothing
        assert refusals[1] is not None  # two late probes in a row do
        assert min(seen[-2:]) >= 0.1
        deadline = time.monotonic() + 120
        while admission.refusal() is not None:  # an idle loop's on-time wake-ups clear it
            assert time.monotonic() < deadline
            await asyncio.sleep(0.002)
    finally:
        await admission.stop()


async def test_a_zero_threshold_never_starts_the_probe() -> None:
    admission = Admission(0.0, lag=LoopLag(interval_s=0.001))
    await admission.start()
    time.sleep(0.01)
    await asyncio.sleep(0.005)
    assert admission.lag.lag_s == 0.0
    assert admission.refusal() is None
    assert admission.return_hop_s() == 0.0
    await admission.stop()


async def _infer(gateway: Gateway) -> tuple[int, str]:
    response = await gateway.infer("mlp", np.zeros((1, 6), np.float32))
    return response.status_code, response.text


async def test_an_overloaded_gateway_answers_503_with_retry_after_then_serves_again(
    registry: Registry,
) -> None:
    async for gateway in open_gateway(registry, loop_lag_shed_ms=1000):
        admission = gateway.app.state.dataplane.admission
        assert admission.threshold_s == 1.0
        assert (await _infer(gateway))[0] == 200
        await admission.lag.stop()  # the test says how late the loop is, not the probe
        for _ in range(2):
            admission.lag.observe(20.0)
        response = await gateway.infer("mlp", np.zeros((1, 6), np.float32))
        assert response.status_code == 503
        assert "overloaded: its event loop is" in response.json()["error"]
        assert int(response.headers["retry-after"]) >= 1
        # the v1 route is behind the same door
        v1 = await gateway.client.post("/v1/models/mlp:predict", json={"instances": [[0] * 6]})
        assert v1.status_code == 503
        assert int(v1.headers["retry-after"]) >= 1
        # other routes are not: health, metadata and metrics still answer
        assert (await gateway.client.get("/v2/health/ready")).status_code == 200
        metrics = (await gateway.client.get("/metrics")).text
        assert 'mlgate_rejected_total{model="mlp",reason="overload",version="1"} 2.0' in metrics
        for _ in range(40):
            admission.lag.observe(0.0)
        assert (await _infer(gateway))[0] == 200


async def test_a_refused_body_is_never_read(registry: Registry) -> None:
    async for gateway in open_gateway(registry, loop_lag_shed_ms=1000):
        lag = gateway.app.state.dataplane.admission.lag
        await lag.stop()
        for _ in range(2):
            lag.observe(20.0)
        read = 0

        async def body() -> AsyncIterator[bytes]:
            nonlocal read
            read += 1
            yield b'{"inputs": []}'

        response = await gateway.client.post("/v2/models/mlp/infer", content=body())
        assert response.status_code == 503
        assert read == 0


async def test_the_default_door_is_three_quarters_of_the_slo_and_zero_turns_it_off(
    registry: Registry,
) -> None:
    async for gateway in open_gateway(registry, slo_ms=400, loop_lag_shed_ms=None):
        assert gateway.app.state.dataplane.admission.threshold_s == pytest.approx(0.3)
    async for gateway in open_gateway(registry, loop_lag_shed_ms=0):
        admission = gateway.app.state.dataplane.admission
        await asyncio.sleep(0.02)
        assert admission.lag.lag_s == 0.0  # no probe ran


async def test_routes_off_the_fast_path_still_go_through_the_router(gateway: Gateway) -> None:
    wrong_method = await gateway.client.get("/v2/models/mlp/infer")
    assert wrong_method.status_code == 405
    assert "no such route or method" in wrong_method.json()["error"]
    unknown = await gateway.client.post("/v2/models/mlp/infer/extra", json={})
    assert unknown.status_code == 404
    assert (await gateway.client.get("/v2/health/live")).status_code == 200


def _rows(n: int) -> np.ndarray:
    return np.random.default_rng(n).standard_normal((n, 6)).astype(np.float32)


async def test_more_rows_than_the_queue_ever_holds_is_413_naming_the_setting(
    registry: Registry,
) -> None:
    registry.set_serving_config("mlp:1", {"max_batch_size": 2, "max_queue": 4})
    async for gateway in open_gateway(registry):
        response = await gateway.infer("mlp", _rows(8))
        assert response.status_code == 413
        assert "retry-after" not in response.headers
        error = response.json()["error"]
        assert "max_queue 4" in error
        assert "MLGATE_MAX_QUEUE" in error
        assert (await gateway.infer("mlp", _rows(4))).status_code == 200


async def test_a_full_queue_is_429_with_retry_after(registry: Registry) -> None:
    registry.set_serving_config("mlp:1", {"max_batch_size": 2, "max_queue": 4, "max_inflight": 1})
    async for gateway in open_gateway(registry):
        response = await overflow(gateway)
        assert response.status_code == 429
        assert int(response.headers["retry-after"]) >= 1
        assert "max_queue 4" in response.json()["error"]


async def overflow(gateway: Gateway) -> Any:
    """With max_queue 4 and one execution slot: one batch running, 4 rows queued, then one
    more row; returns that last answer once the others are answered 200."""
    with gateway.app.state.dataplane.manager.acquire("mlp") as served:
        batcher = served.batcher
    gate = hold(batcher)
    running = asyncio.ensure_future(gateway.infer("mlp", _rows(2)))
    await until_state(batcher, inflight=1)
    queued = asyncio.ensure_future(gateway.infer("mlp", _rows(4)))
    await until_state(batcher, queued_rows=4)
    response = await gateway.infer("mlp", _rows(1))
    gate.set()
    assert [r.status_code for r in await asyncio.gather(running, queued)] == [200, 200]
    return response


def hold(batcher: Any) -> asyncio.Event:
    """Make the batcher's runtime wait for the returned event before each batch."""
    gate = asyncio.Event()
    run = batcher.execution.run

    async def held(inputs: dict[str, np.ndarray]) -> Any:
        await gate.wait()
        return await run(inputs)

    batcher.execution.run, batcher.execution.run_inline = held, None
    return gate


async def until_state(batcher: Any, **wanted: int) -> None:
    """Poll until the batcher's counters (inflight, queued_rows) have the wanted values."""
    await until(lambda: all(getattr(batcher, k) == v for k, v in wanted.items()))


async def until(condition: Callable[[], bool]) -> None:
    """Poll (no wall-clock bound on the system under test; a generous guard on the test)."""
    deadline = time.monotonic() + 60
    while not condition():
        assert time.monotonic() < deadline, "condition never held"
        await asyncio.sleep(0.001)


async def test_every_admitted_request_leaves_whatever_its_answer(registry: Registry) -> None:
    async for gateway in open_gateway(registry, loop_lag_shed_ms=1000):
        admission = gateway.app.state.dataplane.admission
        assert (await gateway.infer("mlp", _rows(2))).status_code == 200
        bad = await gateway.client.post("/v2/models/mlp/infer", content=b"{not json")
        assert bad.status_code == 400
        v1 = await gateway.client.post("/v1/models/mlp:predict", json={"instances": []})
        assert v1.status_code == 400
        assert (await gateway.infer("mlp", _rows(5000))).status_code == 413
        assert admission.inflight == 0
        assert admission.cost.answered == 4

"""The adaptive batcher against a runtime we control (a coroutine that records each batch)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import numpy as np
import pytest

from services.gateway.batching.batcher import BACKGROUND, AdaptiveBatcher, BatchSettings
from services.gateway.batching.costmodel import CostModel
from services.gateway.errors import (
    DeadlineExceeded,
    EngineUnavailable,
    ModelExecutionFailed,
    ModelNotReady,
    Overloaded,
    QueueFull,
)
from services.runtimes.base import Prediction

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Runtime:
    """Doubles its input; each batch waits for `gate` (when set) so tests decide when it ends."""

    def __init__(self) -> None:
        self.batches: list[int] = []
        self.gate: asyncio.Event | None = None
        self.running = 0
        self.most_running = 0
        self.engine_error: Exception | None = None  # raised for every batch when set

    async def __call__(self, inputs: dict[str, np.ndarray]) -> Prediction:
        x = inputs["x"]
        self.batches.append(len(x))
        self.running += 1
        self.most_running = max(self.most_running, self.running)
        try:
            if self.gate is not None:
                await self.gate.wait()
            if self.engine_error is not None:
                raise self.engine_error
            if (x == -1).any():
                raise ValueError("the model cannot take -1")
            return Prediction({"y": x * 2}, 0.001 * len(x))
        finally:
            self.running -= 1


def rows(n: int, value: float = 1.0, width: int = 3) -> dict[str, np.ndarray]:
    return {"x": np.full((n, width), value, dtype=np.float32)}


def batcher_for(runtime: Runtime, **settings: float) -> AdaptiveBatcher:
    return AdaptiveBatcher(runtime, BatchSettings(**settings))  # type: ignore[arg-type]


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_a_lone_request_is_dispatched_at_once() -> None:
    runtime = Runtime()
    batcher = batcher_for(runtime, max_queue_delay_ms=10_000)
    task = asyncio.ensure_future(batcher.submit(rows(1)))
    await settle()  # a few loop turns, no time passing: nothing waited for a timer
    assert runtime.batches == [1]
    assert (await task)["y"].tolist() == [[2.0, 2.0, 2.0]]
    assert batcher.stats.batches == {"idle": 1}


async def test_batches_form_while_the_runtime_is_busy() -> None:
    runtime = Runtime()
    runtime.gate = asyncio.Event()
    batcher = batcher_for(runtime, max_inflight=1)
    tasks = [asyncio.ensure_future(batcher.submit(rows(1, value=i))) for i in range(10)]
    await settle()
    assert runtime.batches == [1]
    runtime.gate.set()
    results = await asyncio.gather(*tasks)
    assert runtime.batches == [1, 9]
    assert [r["y"][0, 0] for r in results] == [2.0 * i for i in range(10)]
    assert batcher.stats.mean_batch_rows == 5.0


async def test_large_requests_are_split_and_reassembled_in_order() -> None:
    runtime = Runtime()
    batcher = batcher_for(runtime, max_batch_size=32)
    x = {"x": np.arange(70 * 3, dtype=np.float32).reshape(70, 3)}
    result = await batcher.submit(x)
    assert runtime.batches == [32, 32, 6]
    np.testing.assert_array_equal(result["y"], x["x"] * 2)


async def test_different_non_batch_shapes_never_share_a_batch() -> None:
    runtime = Runtime()
    runtime.gate = asyncio.Event()
    batcher = batcher_for(runtime, max_inflight=1)
    first = asyncio.ensure_future(batcher.submit(rows(1)))
    await settle()
    wide = [asyncio.ensure_future(batcher.submit(rows(1, width=5))) for _ in range(2)]
    narrow = [asyncio.ensure_future(batcher.submit(rows(1, width=3))) for _ in range(3)]
    await settle()
    runtime.gate.set()
    await asyncio.gather(first, *wide, *narrow)
    assert runtime.batches == [1, 2, 3]


async def test_a_full_queue_answers_429_with_retry_after() -> None:
    runtime = Runtime()
    runtime.gate = asyncio.Event()
    batcher = batcher_for(runtime, max_queue=4, max_inflight=1)
    running = asyncio.ensure_future(batcher.submit(rows(1)))
    await settle()
    queued = asyncio.ensure_future(batcher.submit(rows(4)))
    await settle()
    with pytest.raises(QueueFull, match="max_queue 4") as caught:
        await batcher.submit(rows(1))
    assert caught.value.status_code == 429
    assert int(caught.value.retry_after) >= 1
    assert batcher.stats.rejected == {"queue_full": 1}
    runtime.gate.set()
    await asyncio.gather(running, queued)


async def test_requests_predicted_to_miss_the_slo_are_shed_before_compute() -> None:
    runtime = Runtime()
    runtime.gate = asyncio.Event()
    batcher = batcher_for(runtime, slo_ms=50, max_inflight=1)
    running = asyncio.ensure_future(batcher.submit(rows(1)))
    await settle()
    batcher.cost.observe(1, 0.2)  # the model takes 200 ms a batch, and one is running
    with pytest.raises(Overloaded, match=r"exceeds the 50\.0 ms budget") as caught:
        await batcher.submit(rows(1))
    assert caught.value.status_code == 503
    assert runtime.batches == [1]
    assert batcher.stats.rejected == {"shed": 1}
    runtime.gate.set()
    await running


async def test_a_deadline_shorter_than_the_predicted_latency_is_shed() -> None:
    runtime = Runtime()
    runtime.gate = asyncio.Event()
    # The batcher's clock stands still: the deadline is 50 ms away when it is judged, however
    # long the machine takes between these lines.
    clock = FakeClock()
    batcher = AdaptiveBatcher(runtime, BatchSettings(slo_ms=10_000, max_inflight=1), clock=clock)
    running = asyncio.ensure_future(batcher.submit(rows(1)))
    await settle()
    batcher.cost.observe(1, 0.2)
    with pytest.raises(Overloaded):
        await batcher.submit(rows(1), deadline=clock() + 0.05)
    assert runtime.batches == [1]
    runtime.gate.set()
    await running


async def test_deadlines_passed_before_or_while_queued_answer_504() -> None:
    runtime = Runtime()
    runtime.gate = asyncio.Event()
    clock = FakeClock()  # time passes only when the test moves it
    batcher = AdaptiveBatcher(runtime, BatchSettings(max_inflight=1), clock=clock)
    with pytest.raises(DeadlineExceeded, match="before it was queued"):
        await batcher.submit(rows(1), deadline=clock() - 1)
    running = asyncio.ensure_future(batcher.submit(rows(1)))
    await settle()
    late = asyncio.ensure_future(batcher.submit(rows(1, value=7), deadline=clock() + 0.01))
    await settle()
    assert batcher.queued_rows == 1  # queued behind the running batch, its deadline ahead
    clock.now += 1  # the deadline passes while it waits
    runtime.gate.set()
    await running
    with pytest.raises(DeadlineExceeded, match="while it was queued"):
        await late
    assert runtime.batches == [1]  # the late request never reached the runtime


async def test_a_cancelled_request_never_costs_compute() -> None:
    runtime = Runtime()
    runtime.gate = asyncio.Event()
    batcher = batcher_for(runtime, max_inflight=1)
    running = asyncio.ensure_future(batcher.submit(rows(1)))
    await settle()
    gone = asyncio.ensure_future(batcher.submit(rows(5)))
    kept = asyncio.ensure_future(batcher.submit(rows(2)))
    await settle()
    gone.cancel()
    await settle()
    runtime.gate.set()
    await asyncio.gather(running, kept)
    assert runtime.batches == [1, 2]
    assert batcher.stats.cancelled == 1
    assert batcher.queued_rows == 0


async def test_one_bad_request_fails_alone() -> None:
    runtime = Runtime()
    runtime.gate = asyncio.Event()
    batcher = batcher_for(runtime, max_inflight=1)
    first = asyncio.ensure_future(batcher.submit(rows(1)))
    await settle()
    good = [asyncio.ensure_future(batcher.submit(rows(1, value=i))) for i in range(3)]
    bad = asyncio.ensure_future(batcher.submit(rows(1, value=-1)))
    await settle()
    runtime.gate.set()
    await first
    assert [(await g)["y"][0, 0] for g in good] == [0.0, 2.0, 4.0]
    with pytest.raises(ModelExecutionFailed, match="cannot take -1") as caught:
        await bad
    assert caught.value.status_code == 422
    # The failed batch of 4 was retried one request at a time.
    assert runtime.batches == [1, 4, 1, 1, 1, 1]


async def test_an_engine_failure_fails_the_batch_without_retrying_each_request() -> None:
    """A 5xx from the runtime (Triton unreachable) is about no one's input: every request
    of the batch gets it once, and nothing is run again."""
    runtime = Runtime()
    runtime.gate = asyncio.Event()
    batcher = batcher_for(runtime, max_inflight=1)
    first = asyncio.ensure_future(batcher.submit(rows(1)))
    await settle()
    waiting = [asyncio.ensure_future(batcher.submit(rows(1, value=i))) for i in range(3)]
    await settle()
    # The engine goes away while the first batch runs and three requests wait.
    runtime.engine_error = EngineUnavailable("the Triton server at 127.0.0.1:1 is not live")
    runtime.gate.set()
    for request in [first, *waiting]:
        with pytest.raises(EngineUnavailable, match="not live") as caught:
            await request
        assert caught.value.status_code == 503
    assert runtime.batches == [1, 3]


async def test_higher_priority_goes_first() -> None:
    runtime = Runtime()
    runtime.gate = asyncio.Event()
    batcher = batcher_for(runtime, max_inflight=1, max_batch_size=1)
    order: list[float] = []

    async def submit(value: float, priority: int) -> None:
        result = await batcher.submit(rows(1, value=value), priority=priority)
        order.append(float(result["y"][0, 0]) / 2)

    tasks = [asyncio.ensure_future(submit(0, 0))]
    await settle()
    levels = [(4, BACKGROUND), (1, 0), (2, 2), (3, 1)]  # a batch job's row came first
    tasks += [asyncio.ensure_future(submit(v, p)) for v, p in levels]
    await settle()
    runtime.gate.set()
    await asyncio.gather(*tasks)
    assert order == [0, 3, 2, 1, 4]


async def test_several_batches_run_at_once_when_allowed() -> None:
    runtime = Runtime()
    runtime.gate = asyncio.Event()
    batcher = batcher_for(runtime, max_inflight=3, max_queue_delay_ms=0)
    tasks = [asyncio.ensure_future(batcher.submit(rows(1))) for _ in range(3)]
    await settle()
    assert runtime.running == 3
    runtime.gate.set()
    await asyncio.gather(*tasks)
    assert runtime.most_running == 3


async def test_a_closed_batcher_refuses_new_work_and_drains() -> None:
    runtime = Runtime()
    runtime.gate = asyncio.Event()
    batcher = batcher_for(runtime, max_inflight=1)
    queued = [asyncio.ensure_future(batcher.submit(rows(1))) for _ in range(3)]
    await settle()
    batcher.close()
    with pytest.raises(ModelNotReady, match="being unloaded"):
        await batcher.submit(rows(1))
    drained = asyncio.ensure_future(batcher.drained())
    await settle()
    assert not drained.done()
    runtime.gate.set()
    await asyncio.gather(*queued)
    await asyncio.wait_for(drained, 120)  # a guard only: it is done as the queue empties


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def held(
    settings: BatchSettings, rate: float, cost: Callable[[CostModel], None]
) -> tuple[float | None, str]:
    """Ask the batcher how long the head of its queue may wait (fake clock, no loop)."""
    clock = FakeClock()
    batcher = AdaptiveBatcher(Runtime(), settings, clock=clock)
    cost(batcher.cost)
    batcher.admission.arrival_rate = rate
    item = type("Head", (), {"enqueued": 100.0, "deadline": None})()
    return batcher._hold(item, 1, clock.now)


def test_holding_is_bounded_by_the_delay_cap_the_slo_and_worth() -> None:
    def cheap(model: CostModel) -> None:
        model.observe(1, 0.001)

    def slow(model: CostModel) -> None:
        model.observe(32, 0.095)

    settings = BatchSettings(max_queue_delay_ms=5, slo_ms=100, max_inflight=2)
    until, bound = held(settings, rate=10_000, cost=cheap)
    assert until == pytest.approx(100.005)
    assert bound == "max_delay"
    # A 95 ms batch leaves 5 ms of a 100 ms SLO: the SLO binds before the cap would.
    generous = BatchSettings(max_queue_delay_ms=50, slo_ms=100, max_inflight=2)
    until, bound = held(generous, rate=10_000, cost=slow)
    assert until == pytest.approx(100.005)
    assert bound == "slo"
    # Rows arrive too slowly to add one within the window: waiting gains nothing.
    assert held(settings, rate=10, cost=cheap) == (None, "no_gain")


async def test_batches_cheaper_than_a_thread_hop_run_inline() -> None:
    runtime = Runtime()
    inline_calls: list[int] = []

    def inline(inputs: dict[str, np.ndarray]) -> Prediction:
        inline_calls.append(len(inputs["x"]))
        return Prediction({"y": inputs["x"] * 2}, 0.00001)

    batcher = AdaptiveBatcher(runtime, BatchSettings(inline_max_ms=5), run_inline=inline)
    first = await batcher.submit(rows(1))  # nothing known yet: the threaded path
    batcher.cost.observe(1, 0.00001)
    second = await batcher.submit(rows(2))
    assert runtime.batches == [1]
    assert inline_calls == [2]
    assert first["y"].shape == (1, 3)
    assert second["y"].tolist() == [[2.0] * 3] * 2
    batcher.cost.observe(1, 0.5)  # now it looks expensive: back to the worker threads
    await batcher.submit(rows(1))
    assert runtime.batches == [1, 1]


async def test_an_inline_failure_is_isolated_like_any_other() -> None:
    runtime = Runtime()

    def inline(inputs: dict[str, np.ndarray]) -> Prediction:
        raise ValueError("inline path broke")

    batcher = AdaptiveBatcher(runtime, BatchSettings(inline_max_ms=1), run_inline=inline)
    batcher.cost.observe(1, 0.00001)
    result = await batcher.submit(rows(1))
    assert result["y"].tolist() == [[2.0] * 3]  # rerun alone on the threaded path

"""What the batcher predicts: impossible requests get 413 (retrying cannot help), requests
that would miss the SLO given the time they already spent get 503 with Retry-After."""

from __future__ import annotations

import asyncio

import pytest

from services.gateway.batching import forecast
from services.gateway.batching.costmodel import CostModel
from services.gateway.batching.types import BatchSettings
from services.gateway.errors import Overloaded, PayloadTooLarge, QueueFull, error_body
from tests.services.gateway.batching.test_batcher import Runtime, batcher_for, rows, settle

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def test_more_rows_than_the_queue_holds_is_impossible_whatever_the_cost_model() -> None:
    settings = BatchSettings(max_queue=1024, max_batch_size=64)
    why = forecast.impossible(settings, 2000)
    assert why is not None
    for part in ("max_queue 1024", "MLGATE_MAX_QUEUE", "2000 rows"):
        assert part in why
    assert forecast.impossible(settings, 1024) is None


def test_a_request_the_cost_model_says_is_slow_is_never_impossible() -> None:
    settings = BatchSettings(max_batch_size=8, max_inflight=1, slo_ms=100, max_queue=4096)
    cost = CostModel()
    for _ in range(10):
        cost.observe(8, 0.5)  # a model predicted far over the SLO: shed later, not 413
    assert forecast.impossible(settings, 64) is None


def test_waves_use_every_execution_slot() -> None:
    settings = BatchSettings(max_batch_size=10, max_inflight=2)
    assert [forecast.waves(settings, n) for n in (1, 10, 11, 20, 21, 40, 41)] == [
        1, 1, 1, 1, 2, 2, 3,
    ]  # fmt: skip


async def test_the_batcher_answers_413_not_429_for_a_request_the_queue_can_never_hold() -> None:
    runtime = Runtime()
    batcher = batcher_for(runtime, max_queue=4, max_batch_size=2)
    with pytest.raises(PayloadTooLarge, match="max_queue 4") as caught:
        await batcher.submit(rows(5))
    assert caught.value.status_code == 413
    assert batcher.stats.rejected == {}  # not a refusal for load
    assert (await batcher.submit(rows(4)))["y"].shape == (4, 3)


async def test_time_spent_before_the_batcher_counts_against_the_slo() -> None:
    runtime = Runtime()
    runtime.gate = asyncio.Event()
    batcher = batcher_for(runtime, slo_ms=100, max_inflight=1)
    running = asyncio.ensure_future(batcher.submit(rows(1)))
    await settle()
    batcher.cost.observe(1, 0.03)  # 30 ms a batch, one running
    with pytest.raises(Overloaded, match=r"predicted latency") as caught:
        await batcher.submit(rows(1), spent_s=0.08)  # 80 ms spent + a 30 ms batch > 100 ms
    assert batcher.stats.rejected == {"shed": 1}
    status, _, headers = error_body(caught.value)
    assert status == 503
    assert int(headers["Retry-After"]) >= 1
    queued = asyncio.ensure_future(batcher.submit(rows(1), spent_s=0.01))
    await settle()
    runtime.gate.set()
    await asyncio.gather(running, queued)


async def test_an_idle_batcher_sheds_only_on_time_already_spent() -> None:
    runtime = Runtime()
    batcher = batcher_for(runtime, slo_ms=100)
    for _ in range(10):
        batcher.cost.observe(1, 5.0)  # misled: a batch timed across a stopped process
    # nothing is ahead: the request runs, and its batch corrects the model
    assert (await batcher.submit(rows(1)))["y"].shape == (1, 3)
    with pytest.raises(Overloaded):
        await batcher.submit(rows(1), spent_s=0.2)  # already past the SLO on arrival
    assert runtime.batches == [1]


def test_a_batch_timed_across_a_stall_counts_as_at_most_ten_predicted() -> None:
    cost = CostModel()
    for _ in range(8):
        cost.observe(4, 0.002)
    cost.observe(4, 30.0)  # the process was stopped for 30 s mid-batch
    assert cost.cost(4) < 0.01
    first = CostModel()
    first.observe(4, 30.0)  # before the model has settled nothing is bounded
    assert first.cost(4) == 30.0


async def test_retry_after_follows_the_queues_drain_time() -> None:
    runtime = Runtime()
    runtime.gate = asyncio.Event()
    batcher = batcher_for(runtime, max_queue=40, max_batch_size=4, max_inflight=1, slo_ms=60_000)
    for _ in range(8):
        batcher.cost.observe(4, 0.5)  # half a second a batch of 4
    running = asyncio.ensure_future(batcher.submit(rows(1)))
    await settle()
    queued = [asyncio.ensure_future(batcher.submit(rows(4))) for _ in range(9)]
    await settle()
    with pytest.raises(QueueFull) as caught:
        await batcher.submit(rows(8))
    # 36 rows queued = 9 batches of half a second: 4.5 s, plus up to a second of jitter
    assert caught.value.retry_after_s == pytest.approx(4.5)
    assert int(caught.value.retry_after) in (5, 6)
    runtime.gate.set()
    await asyncio.gather(running, *queued)

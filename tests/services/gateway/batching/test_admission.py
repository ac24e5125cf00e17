"""Admission on its own: the order of its refusals, what each counts, and the arrival rate.

The batcher's tests cover the same refusals through a queue; these pin the rules that the
split of admission out of the batcher must keep.
"""

from __future__ import annotations

from collections import Counter

import pytest

from services.gateway.batching.admission import Admission
from services.gateway.batching.costmodel import CostModel
from services.gateway.batching.types import BatchSettings, BatchStats
from services.gateway.errors import (
    DeadlineExceeded,
    ModelNotReady,
    Overloaded,
    PayloadTooLarge,
    QueueFull,
)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Observer:
    def __init__(self) -> None:
        self.refused: Counter[str] = Counter()

    def batch_started(self, reason: str, rows: int, waits: object) -> None: ...

    def batch_done(self, rows: int, compute_s: float) -> None: ...

    def rejected(self, reason: str) -> None:
        self.refused[reason] += 1


def admission(**settings: float) -> tuple[Admission, Clock, BatchStats, Observer, CostModel]:
    clock, stats, observer, cost = Clock(), BatchStats(), Observer(), CostModel()
    gate = Admission(BatchSettings(**settings), cost, stats, observer, clock)  # type: ignore[arg-type]
    return gate, clock, stats, observer, cost


def test_a_closing_version_refuses_before_anything_else() -> None:
    gate, clock, stats, _, _ = admission(max_queue=4)
    gate.closed = True
    with pytest.raises(ModelNotReady):
        gate.admit(100, clock.now - 1, 0.0, 4, ())
    assert not stats.rejected  # not a refusal of overload: nothing is counted


def test_a_request_no_queue_could_hold_is_413_and_not_counted_as_overload() -> None:
    gate, clock, stats, _, _ = admission(max_queue=4, max_batch_size=2)
    with pytest.raises(PayloadTooLarge, match="max_queue"):
        gate.admit(5, clock.now - 1, 0.0, 0, ())
    assert not stats.rejected


def test_deadline_then_full_queue_then_shed_each_counted_by_reason() -> None:
    gate, clock, stats, observer, cost = admission(max_queue=8, slo_ms=50)
    with pytest.raises(DeadlineExceeded):
        gate.admit(1, clock.now, 0.0, 0, ())
    with pytest.raises(QueueFull) as full:
        gate.admit(2, None, 0.0, 7, (clock.now + 1,))
    cost.observe(1, 0.02)
    cost.observe(8, 0.09)
    assert full.value.retry_after_s is not None
    with pytest.raises(Overloaded, match="predicted latency"):
        gate.admit(4, None, 0.0, 4, (clock.now + 0.05,))
    assert stats.rejected == Counter(deadline=1, queue_full=1, shed=1)
    assert observer.refused == stats.rejected


def test_with_nothing_queued_or_running_only_the_time_spent_counts() -> None:
    gate, _, stats, _, cost = admission(slo_ms=50)
    cost.observe(1, 10.0)  # a cost model misled by one stalled batch
    cost.observe(2, 20.0)
    gate.admit(1, None, 0.01, 0, ())  # admitted: running it is what corrects the model
    with pytest.raises(Overloaded):
        gate.admit(1, None, 0.06, 0, ())  # already past its budget before the batcher
    assert stats.rejected == Counter(shed=1)


def test_the_arrival_rate_follows_admitted_rows_only() -> None:
    gate, clock, _, _, _ = admission(max_queue=8)
    for _ in range(300):  # 3 s: six half-lives of the smoothing
        clock.now += 0.01
        gate.admit(1, None, 0.0, 0, ())
    assert gate.arrival_rate == pytest.approx(100, rel=0.05)
    rate = gate.arrival_rate
    clock.now += 0.01
    with pytest.raises(QueueFull):
        gate.admit(1, None, 0.0, 8, ())
    assert gate.arrival_rate == rate  # a refused request is not an arrival
    assert gate.last_arrival == pytest.approx(clock.now - 0.01)

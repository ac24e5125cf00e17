"""Who may join a batcher's queue: the checks a request passes before it costs anything.

In order: a closing batcher refuses (503); a request larger than the queue could ever hold
is a 413 naming the setting; a deadline already past is a 504; a full queue is a 429; and a
request whose predicted latency (the time it already spent, plus the queue ahead of it,
plus its own batches, from the cost model) exceeds its budget (`slo_ms`, or its deadline if
sooner) is shed with a 503. The 429 and 503 carry Retry-After: the queue's drain time.

Every refusal is counted by reason (`stats.rejected`, and the observer). Admission also
keeps the arrival rate, smoothed, which the dispatch reads to decide whether holding a
batch for more rows is worth it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection

from services.gateway.batching import forecast
from services.gateway.batching.costmodel import CostModel
from services.gateway.batching.types import BatchObserver, BatchSettings, BatchStats
from services.gateway.errors import (
    DeadlineExceeded,
    ModelNotReady,
    Overloaded,
    PayloadTooLarge,
    QueueFull,
)

__all__ = ["Admission"]

_ARRIVAL_HALF_LIFE_S = 0.5


class Admission:
    def __init__(
        self,
        settings: BatchSettings,
        cost: CostModel,
        stats: BatchStats,
        observer: BatchObserver | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self._cost = cost
        self._stats = stats
        self._observer = observer
        self._clock = clock
        self.arrival_rate = 0.0  # rows per second, exponentially smoothed
        self.last_arrival: float | None = None
        self.closed = False

    def admit(
        self,
        rows: int,
        deadline: float | None,
        spent_s: float,
        queued_rows: int,
        ends: Collection[float],
    ) -> None:
        """Raise the refusal this request gets, if any; else note its arrival.

        `queued_rows`: rows already waiting; `ends`: when each running batch is expected to
        end (empty when nothing runs).
        """
        now = self._clock()
        if self.closed:
            raise ModelNotReady("this model version is being unloaded; retry")
        impossible = forecast.impossible(self.settings, rows)
        if impossible is not None:
            raise PayloadTooLarge(impossible)
        if deadline is not None and deadline <= now:
            self.reject("deadline")
            raise DeadlineExceeded("the request's deadline had passed before it was queued")
        if queued_rows + rows > self.settings.max_queue:
            self.reject("queue_full")
            raise QueueFull(
                f"the queue holds {queued_rows} rows (max_queue "
                f"{self.settings.max_queue}); this request has {rows}",
                retry_after_s=self.drain_time(queued_rows),
            )
        self._note_arrival(rows, now)
        predicted = spent_s
        if self._cost.fitted and (queued_rows or ends):
            # NOTE: with nothing queued or running, only the time already spent counts:
            # nothing is ahead of this request, and running it is what corrects a cost
            # model misled by a stalled batch (else a model predicting every request late
            # would refuse every request for good).
            running = ends if len(ends) >= self.settings.max_inflight else ()
            predicted += forecast.latency(
                self._cost, self.settings, queued_rows + rows, running, now
            )
        budget = self.settings.slo_ms / 1000
        if deadline is not None:
            budget = min(budget, deadline - now + spent_s)
        if predicted > budget:
            self.reject("shed")
            raise Overloaded(
                f"shed: predicted latency {predicted * 1000:.1f} ms exceeds the "
                f"{budget * 1000:.1f} ms budget (slo_ms or the request's timeout); retry later",
                retry_after_s=self.drain_time(queued_rows),
            )

    def reject(self, reason: str) -> None:
        """Count one refusal (also a queued request whose deadline passed)."""
        self._stats.rejected[reason] += 1
        if self._observer is not None:
            self._observer.rejected(reason)

    def drain_time(self, queued_rows: int) -> float:
        return forecast.drain_time(self._cost, self.settings, queued_rows)

    def _note_arrival(self, rows: int, now: float) -> None:
        if self.last_arrival is not None:
            gap = max(now - self.last_arrival, 1e-6)
            weight = 1 - 0.5 ** (gap / _ARRIVAL_HALF_LIFE_S)
            self.arrival_rate += weight * (rows / gap - self.arrival_rate)
        self.last_arrival = now

"""Adaptive batching for one model version: a bounded queue in front of a runtime.

Requests wait as rows in a queue ordered by priority (1 = highest, as in Triton; 0 means
the default level; `BACKGROUND`, below every level a client can ask for, is a batch job's)
then arrival. A batch leaves when an execution slot is free and one of
these holds; the reason is counted (`stats.batches`):

    idle      nothing is running: no added delay at low load
    full      max_batch_size rows are waiting
    max_delay the oldest request has waited max_queue_delay_ms
    slo       waiting longer would make the oldest request miss slo_ms (or its deadline)
    no_gain   a slot is free and, at the current arrival rate, waiting would not add a row

So batches form while earlier batches run; a batch waits on purpose only when a slot is
free, another batch is running, and rows are arriving fast enough to be worth it. The
cost model (cost ≈ a·n + b, fitted online from every batch) bounds that wait and predicts
each new request's latency: the time it already spent before reaching the batcher (its
`spent_s`, measured by the data plane), plus the queue ahead of it, plus its own batches.
One predicted to miss its SLO or deadline is shed (503 with Retry-After) before it costs
compute; a full queue answers 429 with Retry-After (both the queue's drain time); a
request that could never be admitted (more rows than the queue holds) answers 413 naming
the setting; an idle batcher never sheds; a deadline that
passes in the queue answers 504. Only requests with the same non-batch shapes share a
batch.

Who may join the queue is `admission.py`; running a batch (inline or on the runtime's
thread, isolating a failure to its culprit) is `execution.py`. A cancelled request (its
client went away) is dropped from the queue.

NOTE: everything here runs on the event loop thread; only the runtime's own work runs
elsewhere, so the queue needs no lock. Timers replace polling: a hold schedules one wake-up.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import numpy as np

from services.gateway.batching.admission import Admission
from services.gateway.batching.costmodel import CostModel
from services.gateway.batching.execution import Execution, Run
from services.gateway.batching.types import (
    BatchObserver,
    BatchSettings,
    BatchStats,
    Item,
    Tensors,
)
from services.gateway.errors import DeadlineExceeded
from services.runtimes.base import Prediction

__all__ = ["BACKGROUND", "AdaptiveBatcher", "BatchObserver", "BatchSettings", "BatchStats"]

BACKGROUND = -1
"""The level below every request's: a gateway's batch jobs, served when nothing else waits."""


class AdaptiveBatcher:
    def __init__(
        self,
        run: Run,
        settings: BatchSettings,
        *,
        clock: Callable[[], float] = time.monotonic,
        observer: BatchObserver | None = None,
        run_inline: Callable[[Tensors], Prediction] | None = None,
    ) -> None:
        self.settings = settings
        self._clock = clock
        self._observer = observer
        self.cost = CostModel()
        self.stats = BatchStats()
        self.admission = Admission(settings, self.cost, self.stats, observer, clock)
        self.execution = Execution(
            run,
            run_inline,
            settings,
            self.cost,
            self.stats,
            observer,
            free=self._free,
            pump=self._pump,
        )
        self._queues: dict[int, list[Item]] = {}
        self._queued_rows = 0
        self._inflight: dict[int, float] = {}  # batch id → expected end
        self._next_batch = 0
        self._timer: asyncio.TimerHandle | None = None
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def queued_rows(self) -> int:
        return self._queued_rows

    @property
    def inflight(self) -> int:
        return len(self._inflight)

    def quiet_for(self) -> float:
        """Seconds since the last request arrived (infinite if none ever did)."""
        last = self.admission.last_arrival
        return float("inf") if last is None else self._clock() - last

    async def submit(
        self,
        inputs: Tensors,
        *,
        deadline: float | None = None,
        priority: int = 0,
        spent_s: float = 0.0,
    ) -> Tensors:
        """Queue one request (any number of rows); returns its outputs. `spent_s`: of the
        SLO, what the request has spent (or will) outside the batcher."""
        rows = len(next(iter(inputs.values())))
        self.admission.admit(rows, deadline, spent_s, self._queued_rows, self._inflight.values())
        loop = asyncio.get_running_loop()
        key = tuple((name, array.shape[1:]) for name, array in inputs.items())
        limit = self.settings.max_batch_size
        items = [
            Item(
                {n: a[start : start + limit] for n, a in inputs.items()},
                min(limit, rows - start),
                key,
                priority,
                deadline,
                self._clock(),
                loop.create_future(),
            )
            for start in range(0, rows, limit)
        ]
        for item in items:
            self._queues.setdefault(priority, []).append(item)
        self._queued_rows += rows
        self.stats.requests += 1
        self._idle.clear()
        self._pump()
        try:
            parts = [await item.future for item in items]
        except asyncio.CancelledError:
            for item in items:
                item.future.cancel()
            self._pump()
            raise
        if len(parts) == 1:
            return parts[0]
        return {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}

    def close(self) -> None:
        """Refuse new requests; queued and running ones still finish (see `drained`)."""
        self.admission.closed = True

    async def drained(self) -> None:
        await self._idle.wait()

    # ---------------------------------------------------------------- dispatch

    def _pump(self) -> None:
        """Start every batch that should start now; schedule a wake-up if one should wait."""
        while self._queued_rows and len(self._inflight) < self.settings.max_inflight:
            now = self._clock()
            head = self._head(now)
            if head is None:
                break
            rows = self._rows_like(head)
            if not self._inflight:
                reason = "idle"
            elif rows >= self.settings.max_batch_size:
                reason = "full"
            else:
                hold_until, bound = self._hold(head, rows, now)
                if hold_until is None:
                    reason = "no_gain"
                elif hold_until <= now:
                    reason = bound
                else:
                    self._wake_at(hold_until)
                    return
            self._start(self._take(head), reason, now)
        if not self._queued_rows and not self._inflight:
            self._idle.set()

    def _head(self, now: float) -> Item | None:
        """The first live item by priority and age; drops cancelled and expired ones."""
        for priority in sorted(self._queues, key=_rank):
            queue = self._queues[priority]
            while queue:
                item = queue[0]
                if item.future.done():
                    self.stats.cancelled += item.future.cancelled()
                    self._drop(queue, item)
                elif item.deadline is not None and item.deadline <= now:
                    self.admission.reject("deadline")
                    item.future.set_exception(
                        DeadlineExceeded("the request's deadline passed while it was queued")
                    )
                    self._drop(queue, item)
                else:
                    return item
        return None

    def _drop(self, queue: list[Item], item: Item) -> None:
        queue.remove(item)
        self._queued_rows -= item.rows

    def _rows_like(self, head: Item) -> int:
        queue = self._queues[head.priority]
        return sum(i.rows for i in queue if i.key == head.key and not i.future.done())

    def _hold(self, head: Item, rows: int, now: float) -> tuple[float | None, str]:
        """Until when the head may wait for more rows, and which bound that is."""
        settings = self.settings
        cap = head.enqueued + settings.max_queue_delay_ms / 1000
        latest = head.enqueued + settings.slo_ms / 1000
        if head.deadline is not None:
            latest = min(latest, head.deadline)
        latest -= self.cost.cost(settings.max_batch_size)
        until, bound = (cap, "max_delay") if cap <= latest else (latest, "slo")
        if until > now and self.admission.arrival_rate * (until - now) < 1:
            return None, "no_gain"
        return until, bound

    def _wake_at(self, when: float) -> None:
        loop = asyncio.get_running_loop()
        if self._timer is not None:
            self._timer.cancel()
        self._timer = loop.call_later(max(0.0, when - self._clock()), self._pump)

    def _take(self, head: Item) -> list[Item]:
        queue = self._queues[head.priority]
        batch, rows = [], 0
        for item in list(queue):
            if item.key != head.key or item.future.done():
                continue
            if rows + item.rows > self.settings.max_batch_size:
                break
            batch.append(item)
            rows += item.rows
            self._drop(queue, item)
        return batch

    def _start(self, batch: list[Item], reason: str, now: float) -> None:
        rows = sum(item.rows for item in batch)
        batch_id = self._next_batch
        self._next_batch += 1
        self._inflight[batch_id] = now + self.cost.cost(rows)
        self.stats.batches[reason] += 1
        self.stats.rows += rows
        waits = [now - item.enqueued for item in batch]
        self.stats.queue_s += sum(waits)
        if self._observer is not None:
            self._observer.batch_started(reason, rows, waits)
        self.execution.start(batch, rows, batch_id)

    def _free(self, batch_id: int) -> None:
        self._inflight.pop(batch_id, None)


def _rank(priority: int) -> tuple[bool, bool, int]:
    """1, 2, … first (1 highest, as in Triton), then 0 (the default), then BACKGROUND."""
    return (priority < 0, priority == 0, priority)

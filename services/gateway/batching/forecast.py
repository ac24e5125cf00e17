"""What the batcher predicts from its cost model (a request's latency, the queue's drain
time), and whether a request could ever be admitted at all."""

from __future__ import annotations

import math
from collections.abc import Iterable

from services.gateway.batching.costmodel import CostModel
from services.gateway.batching.types import BatchSettings

__all__ = ["drain_time", "impossible", "latency", "waves"]


def waves(settings: BatchSettings, rows: int) -> int:
    """Rounds of batches `rows` rows need with every execution slot free."""
    return math.ceil(math.ceil(rows / settings.max_batch_size) / settings.max_inflight)


def latency(
    cost: CostModel, settings: BatchSettings, backlog: int, busy_until: Iterable[float], now: float
) -> float:
    """Seconds until the last of `backlog` queued rows is computed: the wait for a slot
    (`busy_until`: when the running batches end, given only if every slot is busy), then
    the backlog's waves of batches."""
    ends = list(busy_until)
    slot_wait = max(0.0, min(ends) - now) if ends else 0.0
    return slot_wait + waves(settings, backlog) * cost.cost(min(backlog, settings.max_batch_size))


def drain_time(cost: CostModel, settings: BatchSettings, queued_rows: int) -> float:
    """Seconds for the queue to empty with every slot busy."""
    limit = settings.max_batch_size
    per_batch = cost.cost(limit) or 0.01
    return math.ceil(queued_rows / limit) * per_batch / settings.max_inflight


def impossible(settings: BatchSettings, rows: int) -> str | None:
    """Why no state of the queue would admit a request of `rows` rows (a 413: retrying
    cannot help), or None.

    NOTE: only the queue bound is certain. A request predicted to miss the SLO even with
    nothing queued is shed (503) rather than called impossible: the prediction comes from
    the cost model, which one stalled batch can mislead, and a 413 tells clients not to
    retry.
    """
    if rows > settings.max_queue:
        return (
            f"this request has {rows} rows, more than this version's queue ever holds "
            f"(max_queue {settings.max_queue}: the serving setting max_queue, default "
            "MLGATE_MAX_QUEUE); split it or raise max_queue"
        )
    return None

"""What the batcher predicts from its cost model: a request's latency, the queue's drain
time, and whether a request could ever be admitted at all."""

from __future__ import annotations

import math
from collections.abc import Iterable

from services.gateway.batch_types import BatchSettings
from services.gateway.costmodel import CostModel

__all__ = ["drain_time", "impossible", "latency", "waves"]

# Batches the cost model must have seen before it may call a request too big for the SLO
# (413): the first batches after a load are the slowest.
TRUSTED_SAMPLES = 8


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


def impossible(cost: CostModel, settings: BatchSettings, rows: int) -> str | None:
    """Why no state of the queue would admit a request of `rows` rows (a 413: retrying
    cannot help), or None."""
    if rows > settings.max_queue:
        return (
            f"this request has {rows} rows, more than this version's queue ever holds "
            f"(max_queue {settings.max_queue}: the serving setting max_queue, default "
            "MLGATE_MAX_QUEUE); split it or raise max_queue"
        )
    if cost.samples < TRUSTED_SAMPLES:
        return None
    idle = waves(settings, rows) * cost.cost(min(rows, settings.max_batch_size))
    if idle <= settings.slo_ms / 1000:
        return None
    return (
        f"this request has {rows} rows, which take about {idle * 1000:.0f} ms even with "
        f"nothing queued: more than slo_ms {settings.slo_ms:g} (the serving setting slo_ms, "
        "default MLGATE_SLO_MS); split it or raise slo_ms"
    )

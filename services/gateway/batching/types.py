"""The batcher's vocabulary: its settings, its counters, who it reports to, a queued item."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

__all__ = ["BatchObserver", "BatchSettings", "BatchStats", "Item", "Tensors"]

Tensors = dict[str, np.ndarray]


@dataclass(frozen=True)
class BatchSettings:
    max_batch_size: int = 32
    max_queue_delay_ms: float = 5.0
    slo_ms: float = 250.0
    max_queue: int = 1024
    max_inflight: int = 1
    inline_max_ms: float = 0.0


@dataclass
class BatchStats:
    batches: Counter[str] = field(default_factory=Counter)
    rejected: Counter[str] = field(default_factory=Counter)
    rows: int = 0
    requests: int = 0
    cancelled: int = 0
    queue_s: float = 0.0
    compute_s: float = 0.0

    @property
    def mean_batch_rows(self) -> float:
        total = sum(self.batches.values())
        return self.rows / total if total else 0.0


class BatchObserver(Protocol):
    """Told of every batch and refusal (the Prometheus metrics implement it)."""

    def batch_started(self, reason: str, rows: int, waits: Sequence[float]) -> None: ...

    def batch_done(self, rows: int, compute_s: float) -> None: ...

    def rejected(self, reason: str) -> None: ...


@dataclass(eq=False)
class Item:
    """One request (or one max_batch_size slice of a larger one) waiting in the queue."""

    inputs: Tensors
    rows: int
    key: Hashable
    priority: int
    deadline: float | None
    enqueued: float
    future: asyncio.Future[Tensors]

"""The request ids a gateway's inference log wrote lately: a bounded, thread-safe index.

Feedback (ground truth keyed by request id) is answered at once with how many of its rows
match a logged row. Reading the log on disk for that would cost a window read per POST,
so the log's writer thread notes, after each batch it made durable, every client-given
request id of the batch with the number of its rows logged (the sampler keeps a request's
first rows, so row `r` is logged when `r < rows`). Request threads only look ids up.

Bounded: past `capacity` ids (all models together) the oldest noted is forgotten, so the
index answers for the recent traffic only (at the log's default cap of 1000 rows/s,
200k single-row requests are about 3 minutes at full rate, hours at light traffic). A
label for an older row is not refused: it is stored and joined with the log when a
retrainer reads it (`monitors.quality.labelled_window`). Ids the log generated for requests sent
without one are skipped: no client knows them, and they would push real ids out.

Memory: about 165 bytes per id of 16 characters (an ordered dict per model, plus one
deque slot); 200k ids take about 33 MB.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Iterable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["RecentIds", "RecentModelIds"]


class RecentIds:
    """(model, request id) → rows logged, for the `capacity` ids noted last."""

    def __init__(self, capacity: int) -> None:
        if capacity < 0:
            raise ValueError(f"capacity must be >= 0, got {capacity}")
        self.capacity = capacity
        self._lock = threading.Lock()
        self._models: dict[str, collections.OrderedDict[str, int]] = {}
        # The model of every id held, oldest first: evicting pops the oldest id of that
        # model, which is the oldest overall (ids are noted in one order).
        self._order: collections.deque[str] = collections.deque()

    def __len__(self) -> int:
        return len(self._order)

    def add(self, model: str, ids: Iterable[tuple[str, int]]) -> None:
        """Note `(request id, rows logged)` pairs; an id seen again keeps its largest count."""
        if self.capacity == 0:
            return
        with self._lock:
            known = self._models.setdefault(model, collections.OrderedDict())
            for request_id, rows in ids:
                held = known.get(request_id)
                if held is not None:
                    known[request_id] = max(held, rows)
                    continue
                known[request_id] = rows
                self._order.append(model)
                if len(self._order) > self.capacity:
                    oldest = self._order.popleft()
                    self._models[oldest].popitem(last=False)

    def add_batch(self, model: str, batch: pa.RecordBatch, skip_prefix: str | None) -> None:
        """Note the requests of one written log batch (columns `request_id`, `row`).

        A request's rows are consecutive in a batch and numbered from 0, so each run
        starts where `row == 0`. Ids starting with `skip_prefix` (generated) are skipped.
        """
        rows = batch.column("row").to_numpy(zero_copy_only=False)
        if len(rows) == 0:
            return
        starts = np.flatnonzero(rows == 0)
        counts = np.diff(np.append(starts, len(rows)))
        # Which runs to note, decided column-wise: most ids are generated ones when
        # clients send none, and a loop over them held the GIL for nothing.
        column = batch.column("request_id")
        keep = pc.is_valid(column)
        if skip_prefix:
            keep = pc.and_kleene(keep, pc.invert(pc.starts_with(column, skip_prefix)))
        wanted = pc.fill_null(keep, False).to_numpy(zero_copy_only=False)[starts]
        if not wanted.any():
            return
        ids = column.take(pa.array(starts[wanted])).to_pylist()
        self.add(model, zip(ids, map(int, counts[wanted]), strict=True))

    def rows(self, model: str, request_id: str) -> int:
        """Rows of the request logged (0 if the id is not held)."""
        with self._lock:
            known = self._models.get(model)
            return 0 if known is None else known.get(request_id, 0)

    def view(self, model: str) -> RecentModelIds:
        return RecentModelIds(self, model)


class RecentModelIds:
    """One model's ids, set-like: `request_id in view` or `(request_id, row) in view`.

    A live view (no copy): each lookup takes the lock for a dict lookup.
    """

    __slots__ = ("_index", "model")

    def __init__(self, index: RecentIds, model: str) -> None:
        self._index = index
        self.model = model

    def __contains__(self, key: object) -> bool:
        if isinstance(key, str):
            return self._index.rows(self.model, key) > 0
        if isinstance(key, tuple) and len(key) == 2:
            request_id, row = key
            if isinstance(request_id, str) and isinstance(row, int) and row >= 0:
                return row < self._index.rows(self.model, request_id)
        return False

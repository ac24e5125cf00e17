"""Labels into buckets: ground truth joined to the sampled predictions it belongs to.

Two ways in, both bounded: when predictions enter a bucket's sample, their labels are
fetched by request id (labels often come back before the monitor reads the rows); and on
every round, the labels received since the previous round are matched against the
samples in the label horizon (labels that come back hours or days later). A replaced
label (the same id and row posted again) replaces the value in the sample.

A label the quality figures can use is one number per row. Anything else (a list of
several values, which the feedback route accepts for multi-output models) is counted as
`unusable` and left out, as are labels that are not class indices of a classifier
(counted when the metrics are computed).

The delay of a label is when it was received minus when its prediction was made; the
histogram of delays (`DELAY_BUCKETS`, seconds) is kept per version, cumulatively, for
`mlgate_label_delay_seconds`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from monitors.quality.buckets import Bucket

if TYPE_CHECKING:  # pandas is imported where labels are read: the gateway's gauges need none
    import pandas as pd

__all__ = ["DELAY_BUCKETS", "LabelTally", "join", "label_lookup"]

DELAY_BUCKETS = (1.0, 10.0, 60.0, 600.0, 3600.0, 21600.0, 86400.0, 259200.0, 604800.0)
"""Upper bounds of the label-delay histogram: 1 s, 10 s, 1 min, 10 min, 1 h, 6 h, 1 d,
3 d, 7 d (and +Inf)."""


@dataclass
class LabelTally:
    """A version's labels so far: joined rows, unusable ones, and the delay histogram."""

    joined: int = 0
    unusable: int = 0
    delay_counts: list[int] = field(default_factory=lambda: [0] * (len(DELAY_BUCKETS) + 1))
    delay_sum_s: float = 0.0

    def add_delays(self, delays: np.ndarray) -> None:
        if not len(delays):
            return
        delays = np.maximum(delays, 0.0)  # a client's clock ahead of ours is no delay
        slots = np.searchsorted(np.asarray(DELAY_BUCKETS), delays, side="left")
        for slot, count in zip(*np.unique(slots, return_counts=True), strict=True):
            self.delay_counts[int(slot)] += int(count)
        self.delay_sum_s += float(delays.sum())
        self.joined += len(delays)

    def to_json(self) -> dict[str, Any]:
        return {
            "joined": self.joined,
            "unusable": self.unusable,
            "delay": {
                "le": [*DELAY_BUCKETS, "+Inf"],
                "counts": list(self.delay_counts),
                "sum_s": self.delay_sum_s,
            },
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> LabelTally:
        delay = data.get("delay") or {}
        counts = list(delay.get("counts") or [0] * (len(DELAY_BUCKETS) + 1))
        return cls(
            joined=int(data.get("joined", 0)),
            unusable=int(data.get("unusable", 0)),
            delay_counts=[int(c) for c in counts],
            delay_sum_s=float(delay.get("sum_s", 0.0)),
        )


def label_lookup(frame: pd.DataFrame) -> tuple[dict[tuple[str, int], tuple[float, float]], int]:
    """(request id, row) → (label, received at, epoch s) for usable labels, and how many
    were unusable."""
    import pandas as pd

    values = [_number(v) for v in frame["label"].tolist()]
    received = pd.to_datetime(frame["received_at"], utc=True)
    # Seconds since the epoch whatever unit pandas chose for the column (µs, ns).
    epoch = pd.Timestamp(0, tz="UTC")
    seconds = (received - epoch).dt.total_seconds().to_numpy() if len(frame) else np.empty(0)
    lookup: dict[tuple[str, int], tuple[float, float]] = {}
    unusable = 0
    for rid, row, value, at in zip(
        frame["request_id"].tolist(), frame["row"].tolist(), values, seconds, strict=True
    ):
        if value is None:
            unusable += 1
            continue
        lookup[(str(rid), int(row))] = (value, float(at))
    return lookup, unusable


def join(
    buckets: Iterable[tuple[Bucket, np.ndarray | None]],
    lookup: Mapping[tuple[str, int], tuple[float, float]],
) -> np.ndarray:
    """Put labels into the given positions of each bucket (None: every row); returns the
    delays of the rows that had no label before."""
    delays: list[np.ndarray] = []
    if not lookup:
        return np.empty(0)
    for bucket, positions in buckets:
        where = np.arange(bucket.rows) if positions is None else positions
        found = [
            (i, lookup[key])
            for i in where
            if (key := (bucket.request_id[i], int(bucket.row[i]))) in lookup
        ]
        if not found:
            continue
        index = np.asarray([i for i, _ in found], dtype=np.int64)
        labels = np.asarray([v for _, (v, _) in found])
        received = np.asarray([at for _, (_, at) in found])
        fresh = np.isnan(bucket.label[index])
        changed = fresh | (bucket.label[index] != labels)
        if not changed.any():
            continue
        bucket.label[index] = labels
        bucket.labelled_at_s[index] = received
        bucket.dirty = True
        bucket.revision += 1
        delays.append(received[fresh] - bucket.ts_us[index[fresh]] / 1e6)
    return np.concatenate(delays) if delays else np.empty(0)


def _number(value: Any) -> float | None:
    if isinstance(value, list):
        value = value[0] if len(value) == 1 else None
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float) and np.isfinite(value):
        return float(value)
    return None

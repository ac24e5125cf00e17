"""Quality buckets: a bounded, uniform sample of each time bucket's predictions, with labels.

Realised quality is judged by when a prediction was made, not by when its label came
back: labels arrive late (minutes for a click, days for a chargeback) and partly. So the
monitor keeps, per model version, tumbling time buckets (`bucket_s`, aligned to the epoch)
of the predictions it read from the inference log, and joins labels into them as they
arrive, for as long as a bucket is within the label horizon.

A bucket keeps at most `sample_rows` predictions: the ones with the smallest random keys
among every row that fell in it (bottom-k sampling). That is a uniform sample of the
bucket however its rows arrive (in any number of reads, in any order), so every figure
computed on it is an unbiased estimate for the whole bucket, and a bucket's cost (memory,
disk, the label join, the metrics) is bounded by `sample_rows` whatever the traffic.
`seen` counts every row that fell in the bucket.

Each bucket is one Parquet file, `<folder>/<bucket start, epoch seconds>.parquet`,
rewritten (temporary file, fsync, rename) when it changes: the columns are the prediction
time, request id, row, sampling key, the judged output's columns, the label (NaN: none
yet) and when the label was received; `seen` is in the file's metadata.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

__all__ = ["Bucket", "BucketStore"]

_META = b"mlgate"


@dataclass
class Bucket:
    start_s: int
    """Epoch seconds of the bucket's start."""
    seen: int
    ts_us: np.ndarray
    request_id: np.ndarray
    row: np.ndarray
    key: np.ndarray
    output: np.ndarray
    """(n, k) float64: the judged output's columns."""
    label: np.ndarray
    """(n,) float64, NaN where no label has come back yet."""
    labelled_at_s: np.ndarray
    """(n,) float64 epoch seconds when the label was received, NaN without one."""
    dirty: bool = field(default=False, compare=False)
    revision: int = field(default=0, compare=False)
    """Bumped on every change in memory: figures computed on a bucket are cached by it."""

    @property
    def rows(self) -> int:
        return len(self.key)

    @property
    def labelled(self) -> np.ndarray:
        return ~np.isnan(self.label)

    @property
    def start(self) -> datetime:
        return datetime.fromtimestamp(self.start_s, UTC)

    @classmethod
    def empty(cls, start_s: int, width: int) -> Bucket:
        return cls(
            start_s=start_s,
            seen=0,
            ts_us=np.empty(0, np.int64),
            request_id=np.empty(0, object),
            row=np.empty(0, np.int32),
            key=np.empty(0, np.float64),
            output=np.empty((0, width), np.float64),
            label=np.empty(0, np.float64),
            labelled_at_s=np.empty(0, np.float64),
        )


class BucketStore:
    """One model version's buckets on disk, with the ones in use cached in memory."""

    def __init__(self, folder: Path, *, bucket_s: float, sample_rows: int) -> None:
        self.folder = folder
        self.bucket_s = max(1, int(bucket_s))
        self.sample_rows = sample_rows
        self._cache: dict[int, Bucket] = {}

    def bucket_of(self, ts_us: np.ndarray) -> np.ndarray:
        return (ts_us // 1_000_000 // self.bucket_s) * self.bucket_s

    def fold(
        self,
        ts_us: np.ndarray,
        request_id: np.ndarray,
        row: np.ndarray,
        output: np.ndarray,
    ) -> list[tuple[Bucket, np.ndarray]]:
        """Add newly read predictions; returns each changed bucket and the positions in it
        of the rows that entered its sample (their labels may already be in)."""
        starts = self.bucket_of(ts_us)
        changed = []
        for start in np.unique(starts):
            mine = starts == start
            bucket = self.get(int(start), output.shape[1])
            keys = _keys(self.folder, int(start), bucket.seen, int(mine.sum()))
            added = _merge(
                bucket,
                self.sample_rows,
                ts_us[mine],
                request_id[mine],
                row[mine],
                keys,
                output[mine],
            )
            bucket.seen += int(mine.sum())
            bucket.dirty = True
            bucket.revision += 1
            changed.append((bucket, added))
        return changed

    def get(self, start_s: int, width: int) -> Bucket:
        cached = self._cache.get(start_s)
        if cached is not None:
            return cached
        path = self._path(start_s)
        bucket = _read(path, start_s) if path.exists() else Bucket.empty(start_s, width)
        self._cache[start_s] = bucket
        return bucket

    def recent(self, since_s: float) -> list[Bucket]:
        """The buckets that start at or after `since_s`, newest first (read once, cached)."""
        if self.folder.is_dir():
            for path in self.folder.glob("*.parquet"):
                start = int(path.stem) if path.stem.isdigit() else None
                if start is not None and start + self.bucket_s > since_s:
                    self._cache.setdefault(start, _read(path, start))
        return sorted(
            (b for b in self._cache.values() if b.start_s + self.bucket_s > since_s),
            key=lambda b: -b.start_s,
        )

    def save(self, buckets: Iterable[Bucket]) -> None:
        for bucket in buckets:
            if bucket.dirty:
                _write(self._path(bucket.start_s), bucket)
                bucket.dirty = False

    def expire(self, before_s: float) -> int:
        """Forget (and delete) buckets that ended before `before_s`: past the horizon."""
        gone = 0
        for start in [s for s in self._cache if s + self.bucket_s <= before_s]:
            del self._cache[start]
        if self.folder.is_dir():
            for path in self.folder.glob("*.parquet"):
                if path.stem.isdigit() and int(path.stem) + self.bucket_s <= before_s:
                    path.unlink(missing_ok=True)
                    gone += 1
        return gone

    def _path(self, start_s: int) -> Path:
        return self.folder / f"{start_s}.parquet"


def _keys(folder: Path, start_s: int, seen: int, count: int) -> np.ndarray:
    """Random sampling keys, seeded by the bucket and how many rows it had seen: the same
    reads give the same sample."""
    digest = hashlib.sha256(f"{folder}|{start_s}|{seen}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "big")).random(count)


def _merge(
    bucket: Bucket,
    sample_rows: int,
    ts_us: np.ndarray,
    request_id: np.ndarray,
    row: np.ndarray,
    keys: np.ndarray,
    output: np.ndarray,
) -> np.ndarray:
    """Keep the `sample_rows` smallest keys of old and new rows; the new rows' positions."""
    old = bucket.rows
    merged_keys = np.concatenate([bucket.key, keys])
    limit = min(len(merged_keys), sample_rows)
    keep = np.sort(np.argpartition(merged_keys, limit - 1)[:limit]) if limit else np.arange(0)
    nan = np.full(len(keys), np.nan)
    bucket.ts_us = np.concatenate([bucket.ts_us, ts_us])[keep]
    bucket.request_id = np.concatenate([bucket.request_id, request_id.astype(object)])[keep]
    bucket.row = np.concatenate([bucket.row, row.astype(np.int32)])[keep]
    bucket.key = merged_keys[keep]
    bucket.output = np.concatenate([bucket.output, output.astype(np.float64)])[keep]
    bucket.label = np.concatenate([bucket.label, nan])[keep]
    bucket.labelled_at_s = np.concatenate([bucket.labelled_at_s, nan])[keep]
    return np.flatnonzero(keep >= old)


def _read(path: Path, start_s: int) -> Bucket:
    table = pq.read_table(path)
    meta = json.loads((table.schema.metadata or {}).get(_META, b"{}"))
    width = int(meta.get("width", 1))
    columns = {name: table.column(name).to_numpy() for name in table.column_names}
    output = np.stack([columns[f"output_{j}"] for j in range(width)], axis=1).astype(np.float64)
    return Bucket(
        start_s=start_s,
        seen=int(meta.get("seen", table.num_rows)),
        ts_us=columns["ts_us"].astype(np.int64),
        request_id=columns["request_id"].astype(object),
        row=columns["row"].astype(np.int32),
        key=columns["key"].astype(np.float64),
        output=output.reshape(table.num_rows, width),
        label=columns["label"].astype(np.float64),
        labelled_at_s=columns["labelled_at_s"].astype(np.float64),
    )


def _write(path: Path, bucket: Bucket) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    columns: Mapping[str, pa.Array] = {
        "ts_us": pa.array(bucket.ts_us, pa.int64()),
        "request_id": pa.array(bucket.request_id.tolist(), pa.string()),
        "row": pa.array(bucket.row, pa.int32()),
        "key": pa.array(bucket.key),
        **{f"output_{j}": pa.array(bucket.output[:, j]) for j in range(bucket.output.shape[1])},
        "label": pa.array(bucket.label),
        "labelled_at_s": pa.array(bucket.labelled_at_s),
    }
    meta = {"seen": bucket.seen, "width": bucket.output.shape[1]}
    table = pa.table(dict(columns)).replace_schema_metadata({_META: json.dumps(meta).encode()})
    partial = path.with_suffix(".tmp")
    pq.write_table(table, partial)
    with partial.open("rb") as handle:
        os.fsync(handle.fileno())
    partial.replace(path)

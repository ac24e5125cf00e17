"""The inference log's segment files on the writer's side: append, rotate, recover, expire.

`SegmentWriter` holds one open stream segment per (model, version) and is used by one
thread only, the inference log's writer thread (or `start()`, before that thread runs).

- `append` writes one record batch and fsyncs it: when it returns, the rows survive a
  kill -9 (and a power cut: a new segment's folder entry is fsynced too). It opens a new
  segment first when none is open, or when the batch's schema differs from the open
  one's (a tensor dimension marked -1 in the signature changed size).
- `rotate_due` closes segments past `segment_max_bytes` (of stream, before compression)
  or older than `segment_max_age_s` and converts them to Parquet, then applies retention.
- `recover` converts the streams a crash left behind (see `log_segments.convert_stream`).
- `expire` deletes segments whose newest row is older than the retention: the file's
  mtime, never older than its newest row, rules out most files without opening them, and
  the newest `ts` (Parquet footer, or the stream's rows) decides for the rest.

Errors propagate to the caller, which counts and logs them; a segment that failed to
take a batch is closed and abandoned (its complete batches stay readable).
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import pyarrow as pa

from monitors.log.segments import (
    PARQUET_SUFFIX,
    STREAM_SUFFIX,
    TMP_SUFFIX,
    SegmentName,
    convert_stream,
    first_free_seq,
    fsync_dir,
    parquet_max_ts_us,
    read_stream,
    version_folder,
)

__all__ = ["SegmentWriter"]

log = logging.getLogger("mlgate.monitors")


@dataclass(slots=True)
class _OpenSegment:
    path: Path
    file: BinaryIO
    writer: pa.ipc.RecordBatchStreamWriter
    schema: pa.Schema
    opened_at: float
    bytes: int = 0


@dataclass
class SegmentWriter:
    directory: Path
    replica: str
    max_bytes: int
    max_age_s: float
    retention_s: float
    clock: Callable[[], float] = time.monotonic
    wall_clock: Callable[[], float] = time.time
    closed_segments: int = 0
    _open: dict[tuple[str, int], _OpenSegment] = field(default_factory=dict)
    _next_seq: dict[Path, int] = field(default_factory=dict)

    @property
    def open_segments(self) -> int:
        return len(self._open)

    def append(self, model: str, version: int, batch: pa.RecordBatch, oldest_ts: float) -> None:
        key = (model, version)
        segment = self._open.get(key)
        if segment is not None and not segment.schema.equals(batch.schema, check_metadata=True):
            self._close(key)
            segment = None
        if segment is None:
            segment = self._open_segment(model, version, batch.schema, oldest_ts)
            self._open[key] = segment
        try:
            segment.writer.write_batch(batch)
            segment.file.flush()
            os.fsync(segment.file.fileno())
            segment.bytes = segment.file.tell()
        except BaseException:
            self._abandon(key)
            raise

    def rotate_due(self) -> None:
        """Close and convert the segments due; then apply retention. See `close_all`."""
        now = self.clock()
        due = [
            key
            for key, segment in self._open.items()
            if segment.bytes >= self.max_bytes or now - segment.opened_at >= self.max_age_s
        ]
        if due:
            self._close_each(due)
            self.expire()

    def close_all(self) -> None:
        """Close and convert every open segment."""
        self._close_each(list(self._open))

    def _close_each(self, keys: list[tuple[str, int]]) -> None:
        """Try every segment; then raise the first error (its stream stays, recovered later)."""
        errors = []
        for key in keys:
            try:
                self._close(key)
            except Exception as exc:  # noqa: BLE001 -- reraised below, after the others
                errors.append(exc)
        if errors:
            raise errors[0]

    def recover(self, *, any_replica: bool = False) -> tuple[int, int, int]:
        """Convert streams a crash left (this replica's, or all).

        Returns (segments converted, rows in them, files that failed). A file that fails
        is logged and left for the next start; the others are still recovered.
        """
        segments = rows = failed = 0
        for folder in self._version_folders():
            for path in sorted(folder.iterdir()):
                name = SegmentName.parse(path)
                if name is None or not (any_replica or name.replica == self.replica):
                    continue
                try:
                    if path.name.endswith(TMP_SUFFIX):
                        # A conversion cut short (its stream is still there, and may have
                        # been converted just now, which replaced this file).
                        path.unlink(missing_ok=True)
                    elif path.name.endswith(STREAM_SUFFIX):
                        kept = convert_stream(path)
                        segments += kept > 0
                        rows += kept
                except (OSError, pa.ArrowException):
                    failed += 1
                    log.exception("could not recover inference log segment %s", path)
        return segments, rows, failed

    def expire(self) -> int:
        """Delete segments wholly older than the retention; return how many.

        A segment that cannot be read is kept and logged: deleting needs proof of age.
        """
        cutoff = self.wall_clock() - self.retention_s
        open_paths = {segment.path for segment in self._open.values()}
        deleted = 0
        for folder in self._version_folders():
            for entry in os.scandir(folder):
                path = Path(entry.path)
                if path in open_paths or SegmentName.parse(path) is None:
                    continue
                try:
                    if entry.stat().st_mtime >= cutoff or _newest_ts(path) >= cutoff:
                        continue
                    path.unlink()
                except FileNotFoundError:
                    continue  # another replica expired or converted it first
                except (OSError, pa.ArrowException) as exc:
                    log.warning("retention kept %s, which cannot be read: %s", path, exc)
                    continue
                deleted += 1
        return deleted

    def _version_folders(self) -> list[Path]:
        if not self.directory.is_dir():
            return []
        return [
            folder
            for model in self.directory.iterdir()
            if model.is_dir()
            for folder in model.iterdir()
            if folder.is_dir() and folder.name.isdigit()
        ]

    def _open_segment(
        self, model: str, version: int, schema: pa.Schema, oldest_ts: float
    ) -> _OpenSegment:
        folder = version_folder(self.directory, model, version)
        seq = self._next_seq.get(folder)
        if seq is None:
            seq = first_free_seq(folder, self.replica, SegmentName.parse)
        while True:
            stem = SegmentName(math.floor(oldest_ts), self.replica, seq).stem
            path = folder / (stem + STREAM_SUFFIX)
            seq += 1
            if (folder / (stem + PARQUET_SUFFIX)).exists():
                continue
            try:
                file = path.open("xb")  # never append to a file someone else wrote
            except FileExistsError:
                continue
            break
        self._next_seq[folder] = seq
        try:
            writer = pa.ipc.new_stream(file, schema)
            fsync_dir(folder)
        except BaseException:
            file.close()
            raise
        return _OpenSegment(path, file, writer, schema, self.clock())

    def _close(self, key: tuple[str, int]) -> None:
        segment = self._open.pop(key)
        try:
            segment.writer.close()
            segment.file.flush()
            os.fsync(segment.file.fileno())
        finally:
            segment.file.close()
        convert_stream(segment.path)
        self.closed_segments += 1

    def _abandon(self, key: tuple[str, int]) -> None:
        """Stop writing to a segment that failed; keep its complete batches if possible."""
        segment = self._open.pop(key)
        for release in (segment.writer.close, segment.file.close):
            # The write error is what gets reported; closing after it may fail as well.
            with contextlib.suppress(Exception):
                release()
        try:
            convert_stream(segment.path)
            self.closed_segments += 1
        except Exception:
            log.warning("could not convert abandoned segment %s", segment.path, exc_info=True)


def _newest_ts(path: Path) -> float:
    """The newest `ts` of a segment in seconds; +inf when unknown (keep it)."""
    if path.name.endswith(PARQUET_SUFFIX):
        newest = parquet_max_ts_us(path)
        return math.inf if newest is None else newest / 1e6
    if path.name.endswith(STREAM_SUFFIX):
        table = read_stream(path)
        if table is None or table.num_rows == 0:
            return -math.inf
        return float(table.column("ts").cast(pa.int64()).to_numpy().max()) / 1e6
    return -math.inf  # a .parquet.tmp whose conversion died long ago

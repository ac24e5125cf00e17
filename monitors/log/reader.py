"""Reading the inference log back: a time window, or the last N rows, as a DataFrame.

Reads closed Parquet segments and open stream segments (complete batches only: a reader
racing the writer sees the batches fsynced so far, never a failure on the one being
written; a stream converted or a segment expired while we list is read from its Parquet
or skipped). See `segments` for the files.

Cost. Segments are pruned by their names before any is opened: a segment's rows are no
older than its start (in the name) and, along one replica's chain, younger than its
successor's start + 1 s; only the last segment of a chain needs its Parquet footer. So a
window reads the segments that overlap it, and `last=N` reads segments newest first and
stops once no unread segment can hold a row newer than the N-th newest found: N rows plus
at most one segment per replica, whatever the log's size. Bounds allow `_CLOCK_SLACK_S`
for the wall clock stepping back; a larger step can make a window miss rows near a
segment boundary (never return wrong ones).

Versions of a model can have different layouts (signatures). With `version=None` the rows
of every version are returned together (with a `version` column) when they share one
layout; otherwise `BadRequest` asks for a version.
"""

from __future__ import annotations

import functools
import json
import logging
import math
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from monitors.log.segments import (
    LAYOUT_KEY,
    PARQUET_SUFFIX,
    STREAM_SUFFIX,
    TMP_SUFFIX,
    SegmentName,
    parquet_max_ts_us,
    read_stream,
)
from registry.errors import BadRequest
from registry.names import check_model_name
from registry.reference import rebuild_tensors

if TYPE_CHECKING:  # pandas is imported where a function needs it, not by the gateway
    import pandas as pd

__all__ = ["LogWindow", "log_models", "log_versions", "read_log"]

log = logging.getLogger("mlgate.monitors")
_CLOCK_SLACK_S = 2.0
_TS = pa.timestamp("us", tz="UTC")
_EMPTY_SCHEMA = pa.schema(
    [
        ("ts", _TS),
        ("request_id", pa.string()),
        ("row", pa.int32()),
        ("latency_s", pa.float64()),
        ("replica", pa.string()),
        ("version", pa.int64()),
    ]
)


@dataclass(frozen=True, eq=False)
class LogWindow:
    """Logged rows, oldest first: `table`, and `frame` with the same columns."""

    table: pa.Table
    layout: dict[str, Any]
    skipped: tuple[Path, ...] = field(default=())
    """Segments that could not be read (corrupt); logged as warnings too."""

    @property
    def rows(self) -> int:
        return self.table.num_rows

    @functools.cached_property
    def frame(self) -> pd.DataFrame:
        """`table` as a DataFrame, made on first use: for a minute of rows with a few hundred
        features that is most of a second, which a monitoring round that needs only some
        columns (or a sample of the rows) does not pay."""
        return self.table.to_pandas()

    def sample(self, positions: np.ndarray) -> LogWindow:
        """The rows at `positions` (in that order) as a window of their own."""
        taken = self.table.take(pa.array(positions, pa.int64()))
        return LogWindow(taken, self.layout, self.skipped)

    def tensors(
        self, *, inputs: bool = True
    ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """The logged input and output tensors, rebuilt as in the reference data (with
        `inputs=False`, the outputs only: the inputs come back empty)."""
        if not self.layout.get("inputs") and not self.layout.get("outputs"):
            return {}, {}
        layout = self.layout if inputs else {**self.layout, "inputs": {}}
        return rebuild_tensors(self.table, layout)


@dataclass(frozen=True, slots=True)
class _Segment:
    version: int
    path: Path
    lower_s: float
    upper_s: float


def log_models(directory: Path) -> list[str]:
    """Models with a folder in the log."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    return sorted(p.name for p in directory.iterdir() if p.is_dir() and _versions(p))


def log_versions(directory: Path, model: str) -> list[int]:
    """Versions of `model` with a folder in the log."""
    return _versions(Path(directory) / check_model_name(model))


def read_log(
    directory: Path,
    model: str,
    version: int | None = None,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    last: int | None = None,
    inputs: bool = True,
) -> LogWindow:
    """Rows of `model` (one version, or all) with `start <= ts < end`, or the newest `last`;
    with `inputs=False` without the input columns (not even read from Parquet segments),
    for readers of the predictions only."""
    folder = Path(directory) / check_model_name(model)
    for name, moment in (("start", start), ("end", end)):
        if moment is not None and moment.utcoffset() is None:
            raise BadRequest(f"{name} must be a timezone-aware datetime, got {moment!r}")
    if start is not None and end is not None and start > end:
        raise BadRequest(f"start {start.isoformat()} is after end {end.isoformat()}")
    if last is not None and last < 0:
        raise BadRequest(f"last must be a row count >= 0, got {last}")
    versions = _versions(folder) if version is None else [version]
    start_s = -math.inf if start is None else start.timestamp()
    end_s = math.inf if end is None else end.timestamp()
    segments = [
        s
        for v in versions
        for s in _segments(folder / str(v), v)
        if s.lower_s - _CLOCK_SLACK_S < end_s and s.upper_s > start_s
    ]
    tables, skipped = _read(segments, start, end, last, inputs)
    window = _window(model, version, tables, last, tuple(skipped))
    if not inputs:
        return LogWindow(window.table, {**window.layout, "inputs": {}}, window.skipped)
    return window


def _versions(folder: Path) -> list[int]:
    if not folder.is_dir():
        return []
    return sorted(int(p.name) for p in folder.iterdir() if p.is_dir() and p.name.isdigit())


def _segments(folder: Path, version: int) -> list[_Segment]:
    """The folder's segments with bounds on their `ts`, a Parquet preferred to its stream."""
    if not folder.is_dir():
        return []
    # Listed twice: a listing that runs while a stream is converted can miss both files
    # (the Parquet not yet renamed when it passed that name, the stream deleted when it
    # got to its name); the rename is then done before the second listing starts.
    paths = set(folder.iterdir())
    paths |= set(folder.iterdir())
    found: dict[SegmentName, Path] = {}
    for path in sorted(paths):
        name = SegmentName.parse(path)
        if name is None or path.name.endswith(TMP_SUFFIX):
            continue
        if path.name.endswith(PARQUET_SUFFIX) or name not in found:
            found[name] = path
    chains: dict[str, list[SegmentName]] = {}
    for name in sorted(found, key=lambda n: n.seq):
        chains.setdefault(name.replica, []).append(name)
    segments = []
    for chain in chains.values():
        for successor, name in zip([*chain[1:], None], chain, strict=True):
            path = found[name]
            if successor is not None:
                upper = successor.start_s + 1 + _CLOCK_SLACK_S
            else:
                upper = _newest_bound(path)
            segments.append(_Segment(version, path, name.start_s, upper))
    return segments


def _newest_bound(path: Path) -> float:
    """Above the newest `ts` of a chain's last segment: from its footer, or +inf."""
    if path.name.endswith(STREAM_SUFFIX):
        return math.inf
    try:
        newest = parquet_max_ts_us(path)
    except (OSError, pa.ArrowInvalid):
        return math.inf  # expired meanwhile, or corrupt: reading it will tell
    return math.inf if newest is None else newest / 1e6 + 1e-6


def _read(
    segments: list[_Segment],
    start: datetime | None,
    end: datetime | None,
    last: int | None,
    inputs: bool,
) -> tuple[list[pa.Table], list[Path]]:
    if last is not None:
        segments = sorted(segments, key=lambda s: (s.upper_s, s.lower_s), reverse=True)
    tables: list[pa.Table] = []
    skipped: list[Path] = []
    newest = np.empty(0, dtype=np.int64)  # the `last` newest ts read so far, in µs
    for segment in segments:
        if last is not None and len(newest) >= last:
            threshold_s = newest.min() / 1e6 if last else math.inf
            if segment.upper_s <= threshold_s:
                break  # this and every later segment only hold older rows
        try:
            table = _read_segment(segment.path, inputs)
        except (OSError, pa.ArrowException) as exc:
            log.warning("skipping unreadable inference log segment %s: %s", segment.path, exc)
            skipped.append(segment.path)
            continue
        if table is None:
            continue
        table = _in_window(table, start, end)
        version = pa.array(np.full(table.num_rows, segment.version, dtype=np.int64))
        tables.append(table.add_column(5, "version", version))
        if last:
            ts = table.column("ts").cast(pa.int64()).to_numpy()
            newest = np.concatenate([newest, ts])
            if len(newest) > last:
                newest = np.partition(newest, len(newest) - last)[-last:]
    return tables, skipped


def _read_segment(path: Path, inputs: bool = True) -> pa.Table | None:
    """A segment's rows (with `inputs=False` without its input columns); None when it
    vanished (expired) before we opened it."""
    if path.name.endswith(STREAM_SUFFIX):
        try:
            table = read_stream(path)
        except FileNotFoundError:
            path = path.with_suffix(PARQUET_SUFFIX)  # converted while we listed
        else:
            if table is None or inputs:
                return table
            return table.drop_columns(_input_columns(table.schema))
    try:
        if inputs:
            return pq.read_table(path)
        schema = pq.read_schema(path)
        dropped = set(_input_columns(schema))
        return pq.read_table(path, columns=[n for n in schema.names if n not in dropped])
    except FileNotFoundError:
        return None


def _input_columns(schema: pa.Schema) -> list[str]:
    """The columns that hold a segment's inputs, by its layout."""
    layout = json.loads((schema.metadata or {}).get(LAYOUT_KEY, b"{}"))
    return [c for entry in layout.get("inputs", {}).values() for c in entry["columns"]]


def _in_window(table: pa.Table, start: datetime | None, end: datetime | None) -> pa.Table:
    ts = table.column("ts")
    keep = None
    if start is not None:
        keep = pc.greater_equal(ts, pa.scalar(start, _TS))
    if end is not None:
        before = pc.less(ts, pa.scalar(end, _TS))
        keep = before if keep is None else pc.and_(keep, before)
    if keep is None or pc.all(keep).as_py():  # a segment wholly inside: nothing to copy
        return table
    return table.filter(keep)


def _ascending(ts: pa.ChunkedArray) -> bool:
    """Whether `ts` never decreases (the stable sort would leave the rows as they are)."""
    values = ts.cast(pa.int64()).to_numpy()
    return bool(np.all(values[1:] >= values[:-1]))


def _window(
    model: str,
    version: int | None,
    tables: list[pa.Table],
    last: int | None,
    skipped: tuple[Path, ...],
) -> LogWindow:
    layouts: dict[str, list[int]] = {}
    for table in tables:
        layout_json = (table.schema.metadata or {}).get(LAYOUT_KEY, b"{}").decode()
        versions = layouts.setdefault(layout_json, [])
        if table.num_rows and table.column("version")[0].as_py() not in versions:
            versions.append(table.column("version")[0].as_py())
    with_rows = {k: v for k, v in layouts.items() if v}
    if len(with_rows) > 1:
        which = "versions " + ", ".join(str(v) for vs in with_rows.values() for v in vs)
        raise BadRequest(
            f"the logged rows of model {model!r} have {len(with_rows)} different layouts "
            f"({which}); "
            + ("read one version at a time" if version is None else "no one table holds them")
        )
    if not tables:
        table = _EMPTY_SCHEMA.empty_table()
        layout: dict[str, Any] = {"inputs": {}, "outputs": {}}
    else:
        layout_json = next(iter(with_rows or layouts))
        layout = json.loads(layout_json)
        table = pa.concat_tables(
            t.replace_schema_metadata(None)
            for t in tables
            if (t.schema.metadata or {}).get(LAYOUT_KEY, b"{}").decode() == layout_json
        )
        if not _ascending(table.column("ts")):  # sorting copies every column: only if needed
            table = table.take(pc.sort_indices(table, [("ts", "ascending")]))
        if last is not None and table.num_rows > last:
            table = table.slice(table.num_rows - last)
        table = table.replace_schema_metadata({LAYOUT_KEY: json.dumps(layout).encode()})
    return LogWindow(table=table, layout=layout, skipped=skipped)

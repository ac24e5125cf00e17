"""Rows answered and refused per model version, written beside the inference log's segments.

Why. The data-quality checks need the share of rows refused at validation. The log's rows
are sampled and capped, so they cannot say how many rows were answered; and with several
replicas and an external `mlgate monitor`, no process sees another's counters. So each
replica writes what it counted into the log folder, and `read_counts` sums the files.

Counting happens in `InferenceLog` (`record` counts a request's rows before the sampler
decides anything; `refused` counts a refused request's rows by reason); its writer thread
writes them with `log_counts_writer.CountsWriter`. This module holds the format and the
reader, which is all a monitor process needs.

Files. One append-only JSON-lines file per version and replica at a time:

    <directory>/<model>/<version>/<start>-<replica>-<seq>.counts.jsonl

named like a segment (`log_segments.SegmentName`: `<start>` the UTC second of its first
line, `<seq>` growing along one replica's files in one folder), so segment readers skip it
and retention deletes it the same way: when its newest line is older than `retention_s`.
A file is left for a new one after `max_age_s` (the log's `segment_max_age_s`). Each line
holds the rows of one flush interval, ending at `ts` (Unix seconds), as deltas:

    {"ts":1795416120.25,"answered":120,"refused":{"dtype":3,"non_finite":10}}

so a window's counts are the sum over every replica's lines with `start <= ts < end`,
exact at the window's edges to within one flush interval. A line is written only when the
version's counts changed, with one write() and an fsync.

Crashes. A kill -9 loses the counts of the flush interval under way (as it loses rows),
and can tear the line being written. A torn line is always the last of its file: a
restart opens a new file, and a failed write abandons its file (its counts are written
again, to a new file, next cycle). Readers skip a last line without its newline, and any
line that does not parse (with a warning).
"""

from __future__ import annotations

import json
import logging
import math
from datetime import datetime
from pathlib import Path
from typing import NamedTuple

from monitors.log.segments import SegmentName
from registry.errors import BadRequest
from registry.names import check_model_name

__all__ = ["COUNTS_SUFFIX", "RowCounts", "counts_name", "read_counts", "read_lines"]

log = logging.getLogger("mlgate.monitors")
COUNTS_SUFFIX = ".counts.jsonl"
_CLOCK_SLACK_S = 2.0  # as log_reader's: the wall clock may step back a little

Line = tuple[float, int, dict[str, int]]


class RowCounts(NamedTuple):
    answered_rows: int
    refused_rows: dict[str, int]


def counts_name(path: Path) -> SegmentName | None:
    """The name of a counts file, or None for any other file."""
    if not path.name.endswith(COUNTS_SUFFIX):
        return None
    return SegmentName.parse_stem(path.name[: -len(COUNTS_SUFFIX)])


def read_counts(
    directory: Path,
    model: str,
    version: int,
    start: datetime | None = None,
    end: datetime | None = None,
) -> RowCounts:
    """Rows answered and refused (by reason) by every replica in `[start, end)`.

    Reads only the files that can hold lines in the window: along one replica's chain a
    file holds no line newer than its successor's `<start>` + 1 s.
    """
    for what, moment in (("start", start), ("end", end)):
        if moment is not None and moment.utcoffset() is None:
            raise BadRequest(f"{what} must be a timezone-aware datetime, got {moment!r}")
    start_s = -math.inf if start is None else start.timestamp()
    end_s = math.inf if end is None else end.timestamp()
    folder = Path(directory) / check_model_name(model) / str(int(version))
    answered = 0
    refused: dict[str, int] = {}
    for path, lower_s, upper_s in _files(folder):
        if lower_s - _CLOCK_SLACK_S >= end_s or upper_s <= start_s:
            continue
        try:
            lines = read_lines(path)
        except FileNotFoundError:
            continue  # expired while we listed
        except OSError as exc:
            log.warning("skipping unreadable counts file %s: %s", path, exc)
            continue
        for ts, rows, by_reason in lines:
            if start_s <= ts < end_s:
                answered += rows
                for reason, count in by_reason.items():
                    refused[reason] = refused.get(reason, 0) + count
    return RowCounts(answered, dict(sorted(refused.items())))


def _files(folder: Path) -> list[tuple[Path, float, float]]:
    """(path, lower bound, upper bound) of the `ts` in each counts file of the folder."""
    if not folder.is_dir():
        return []
    chains: dict[str, list[tuple[SegmentName, Path]]] = {}
    for path in folder.iterdir():
        name = counts_name(path)
        if name is not None:
            chains.setdefault(name.replica, []).append((name, path))
    files = []
    for chain in chains.values():
        chain.sort(key=lambda item: item[0].seq)
        for (name, path), successor in zip(chain, [*chain[1:], None], strict=True):
            upper = math.inf if successor is None else successor[0].start_s + 1 + _CLOCK_SLACK_S
            files.append((path, float(name.start_s), upper))
    return files


def read_lines(path: Path) -> list[Line]:
    """The complete, well-formed lines of a counts file; a torn last line is left out."""
    data = path.read_bytes()
    complete = data[: data.rfind(b"\n") + 1]  # what follows the last newline is torn
    lines: list[Line] = []
    for number, raw in enumerate(complete.splitlines(), start=1):
        try:
            lines.append(_parse(raw))
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            log.warning("skipping line %d of counts file %s: %s", number, path, exc)
    return lines


def _parse(raw: bytes) -> Line:
    document = json.loads(raw)
    ts, answered, refused = document["ts"], document["answered"], document["refused"]
    if not isinstance(ts, int | float) or not math.isfinite(ts):
        raise ValueError(f"ts {ts!r} is not a time")
    counts = [answered, *refused.values()]
    if not all(isinstance(c, int) and not isinstance(c, bool) for c in counts):
        raise ValueError("counts must be integers")
    return float(ts), answered, {str(k): v for k, v in refused.items()}

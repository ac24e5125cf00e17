"""Rows answered and refused: counted before sampling, written per flush, summed by replica."""

from __future__ import annotations

import json
import logging
import os
import random
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from monitors.log.counts import COUNTS_SUFFIX, RowCounts, read_counts
from monitors.log.counts_writer import CountsWriter
from monitors.log.inference_log import InferenceLog, LogSettings
from monitors.log.reader import read_log
from registry.errors import BadRequest
from registry.signature import signature_from_torch

SIGNATURE = signature_from_torch(
    {"x": np.zeros((2, 3), np.float32)}, {"score": np.zeros((2, 1), np.float32)}, ["a", "b", "c"]
)
DAY = 24 * 3600.0


def at(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def made(tmp_path: Path) -> Iterator[list[InferenceLog]]:
    logs: list[InferenceLog] = []
    yield logs
    for log in logs:
        log.close()


def open_log(made: list[InferenceLog], directory: Path, **options: Any) -> InferenceLog:
    settings: dict[str, Any] = {
        "directory": directory,
        "replica": "a",
        "flush_interval_s": 0.05,
        "max_rows_per_s": 1e9,
        **options,
    }
    extra = {key: settings.pop(key) for key in ("wall_clock", "rng") if key in settings}
    log = InferenceLog(LogSettings(**settings), **extra)
    made.append(log)
    log.start()
    return log


def answer(log: InferenceLog, rows: int, version: int = 1) -> None:
    x = np.zeros((rows, 3), np.float32)
    log.record("m", version, SIGNATURE, None, {"x": x}, {"score": x[:, :1]}, 0.001)


def counts_files(directory: Path) -> list[Path]:
    return sorted(directory.glob(f"*/*/*{COUNTS_SUFFIX}"))


def test_sampling_does_not_change_the_answered_rows(
    tmp_path: Path, made: list[InferenceLog]
) -> None:
    log = open_log(made, tmp_path, sample_rate=0.1, rng=random.Random(3))
    for rows in range(1, 101):
        answer(log, rows)
    log.refused("m", 1, "dtype", 4)
    log.refused("m", 1, "non_finite", 2)
    log.refused("m", 1, "dtype", 1)
    log.flush()
    logged = read_log(tmp_path, "m", 1).rows
    assert 0 < logged < 5050 / 3  # sampled...
    counts = read_counts(tmp_path, "m", 1)
    assert counts == RowCounts(5050, {"dtype": 5, "non_finite": 2})  # ...but not these
    answered, refused = counts  # a plain tuple too
    assert (answered, refused) == (5050, {"dtype": 5, "non_finite": 2})


def test_a_line_per_flush_that_changed_something_in_a_window(
    tmp_path: Path, made: list[InferenceLog]
) -> None:
    clock = Clock(1_800_000_000.0)
    log = open_log(made, tmp_path, wall_clock=clock)
    answer(log, 3)
    log.flush()
    clock.now += 10
    log.flush()  # nothing new: no line
    answer(log, 5)
    answer(log, 2, version=2)
    log.refused("m", 1, "shape", 7)
    log.flush()
    (path,) = (tmp_path / "m" / "1").glob(f"*{COUNTS_SUFFIX}")
    assert path.name == "20270115T080000Z-a-000001" + COUNTS_SUFFIX
    documents = [json.loads(line) for line in path.read_text().splitlines()]
    assert documents == [
        {"ts": 1_800_000_000.0, "answered": 3, "refused": {}},
        {"ts": 1_800_000_010.0, "answered": 5, "refused": {"shape": 7}},
    ]
    assert read_counts(tmp_path, "m", 1, at(1_800_000_005), None) == (5, {"shape": 7})
    assert read_counts(tmp_path, "m", 1, None, at(1_800_000_010)) == (3, {})
    assert read_counts(tmp_path, "m", 2) == (2, {})
    assert read_counts(tmp_path, "m", 3) == (0, {})
    assert read_counts(tmp_path / "nowhere", "m", 1) == (0, {})
    with pytest.raises(BadRequest, match="timezone-aware"):
        read_counts(tmp_path, "m", 1, datetime(2027, 1, 1))


def test_every_replica_is_summed(tmp_path: Path, made: list[InferenceLog]) -> None:
    first = open_log(made, tmp_path, replica="gw-0")
    second = open_log(made, tmp_path, replica="gw-1")
    answer(first, 10)
    answer(second, 7)
    first.refused("m", 1, "dtype", 3)
    second.refused("m", 1, "dtype", 2)
    second.refused("m", 1, "too_many_rows", 5000)
    first.flush()
    second.flush()
    assert len(counts_files(tmp_path)) == 2
    assert read_counts(tmp_path, "m", 1) == (17, {"dtype": 5, "too_many_rows": 5000})


def test_a_torn_last_line_is_skipped_and_a_restart_writes_a_new_file(
    tmp_path: Path, made: list[InferenceLog], caplog: pytest.LogCaptureFixture
) -> None:
    log = open_log(made, tmp_path)
    answer(log, 4)
    log.flush()
    log.close()
    (path,) = counts_files(tmp_path)
    with path.open("ab") as file:  # a kill -9 in the middle of write()
        file.write(b'{"ts":1800000000.0,"answered":9')
    assert read_counts(tmp_path, "m", 1) == (4, {})

    again = open_log(made, tmp_path)  # same replica name: a restart
    answer(again, 6)
    again.flush()
    assert len(counts_files(tmp_path)) == 2  # never appended after the torn line
    assert read_counts(tmp_path, "m", 1) == (10, {})

    with path.open("ab") as file:  # a complete line that is garbage: warned about, skipped
        file.write(b"\nnot json\n")
    with caplog.at_level(logging.WARNING, "mlgate.monitors"):
        assert read_counts(tmp_path, "m", 1) == (10, {})
    assert "skipping line" in caplog.text


def test_a_failed_write_loses_nothing(
    tmp_path: Path, made: list[InferenceLog], monkeypatch: pytest.MonkeyPatch
) -> None:
    log = open_log(made, tmp_path)
    answer(log, 1)
    log.flush()
    real_write = os.write
    calls = {"n": 0}

    def torn_then_failing(fd: int, data: Any) -> int:
        if not bytes(data).startswith(b'{"ts"'):  # os.write is everyone's: only ours fail
            return real_write(fd, data)
        calls["n"] += 1
        if calls["n"] == 1:
            real_write(fd, bytes(data[:5]))  # a partial write...
            raise OSError(28, "No space left on device")  # ...then the disk is full
        return real_write(fd, data)

    monkeypatch.setattr("monitors.log.counts_writer.os.write", torn_then_failing)
    answer(log, 2)
    log.flush()
    assert log.stats()["counts_write_errors"] == 1
    assert log.stats()["write_errors"] == 0  # no row was lost
    answer(log, 3)
    log.flush()  # the 2 rows of the failed cycle go with these 3, to a new file
    assert len(counts_files(tmp_path)) == 2
    assert read_counts(tmp_path, "m", 1) == (6, {})


def test_files_rotate_by_age_and_retention_deletes_old_ones(tmp_path: Path) -> None:
    clock, wall = Clock(0.0), Clock(1_800_000_000.0)
    writer = CountsWriter(
        tmp_path, "a", max_age_s=3600, retention_s=DAY, clock=clock, wall_clock=wall
    )
    writer.write({("m", 1): 5}, {})
    clock.now += 3600
    wall.now += 3600
    writer.rotate_due()
    writer.write({("m", 1): 8}, {("m", 1, "dtype"): 1})
    old, new = counts_files(tmp_path)
    assert read_counts(tmp_path, "m", 1) == (8, {"dtype": 1})
    os.utime(old, (wall.now - 2 * DAY, wall.now - 2 * DAY))
    os.utime(new, (wall.now - 2 * DAY, wall.now - 2 * DAY))  # an old mtime alone proves nothing
    wall.now += DAY - 1800  # the first file's line is now past the retention, not the second's
    assert writer.expire() == 1
    assert counts_files(tmp_path) == [new]
    assert read_counts(tmp_path, "m", 1) == (3, {"dtype": 1})
    writer.close_all()


def test_the_reader_skips_files_that_cannot_hold_the_window(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock, wall = Clock(0.0), Clock(1_800_000_000.0)
    writer = CountsWriter(
        tmp_path, "a", max_age_s=60, retention_s=DAY, clock=clock, wall_clock=wall
    )
    for minute in range(5):
        writer.write({("m", 1): minute + 1}, {})
        clock.now += 60
        wall.now += 60
        writer.rotate_due()
    opened: list[Path] = []
    real = Path.read_bytes

    def spy(path: Path) -> bytes:
        opened.append(path)
        return real(path)

    monkeypatch.setattr(Path, "read_bytes", spy)
    start = at(1_800_000_000 + 3 * 60)
    assert read_counts(tmp_path, "m", 1, start, at(1_800_000_000 + 4 * 60)) == (1, {})
    # Minutes 2 to 4 (2 and 4 within the clock slack of the window); 0 and 1 are ruled out
    # by their successors' names without being opened.
    assert sorted(p.name[9:13] for p in opened) == ["0802", "0803", "0804"]

"""The inference log's writer: round trips, rotation, retention, backlog, errors, crashes."""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest

from monitors.log.inference_log import InferenceLog, LogSettings
from monitors.log.reader import read_log
from monitors.log.segments import SegmentName
from registry.errors import BadRequest
from registry.signature import Signature, TensorSpec, signature_from_torch
from tests.support import log_worker

ROOT = Path(__file__).resolve().parents[3]
DAY = 24 * 3600.0

TABULAR = signature_from_torch(
    {"x": np.zeros((2, 3), np.float32)},
    {"score": np.zeros((2, 1), np.float32)},
    ["age", "income", "debt"],
)
IMAGE = Signature(
    (TensorSpec("image", "float32", (-1, 3, 4, 4)),),
    (TensorSpec("logits", "float32", (-1, 10)),),
)
MULTI = Signature(
    (TensorSpec("numeric", "float32", (-1, 4)), TensorSpec("counts", "int64", (-1, 3))),
    (TensorSpec("value", "float32", (-1, 1)), TensorSpec("label", "int64", (-1,))),
)
Arrays = dict[str, np.ndarray]


class Logs:
    """Makes logs under one folder with test-friendly settings; closes them all at the end."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.made: list[InferenceLog] = []

    def make(
        self,
        *,
        start: bool = True,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        **settings: Any,
    ) -> InferenceLog:
        options: dict[str, Any] = {
            "directory": self.directory,
            "replica": "test",
            "flush_interval_s": 0.05,
            "max_rows_per_s": 1e9,
            **settings,
        }
        log = InferenceLog(LogSettings(**options), clock=clock, wall_clock=wall_clock)
        self.made.append(log)
        if start:
            log.start()
        return log


@pytest.fixture
def logs(tmp_path: Path) -> Iterator[Logs]:
    made = Logs(tmp_path / "log")
    yield made
    for log in made.made:
        log.close()


class FakeClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def tabular(index: int, rows: int) -> tuple[Arrays, Arrays]:
    x = (np.arange(rows * 3, dtype=np.float32).reshape(rows, 3) + 10 * index) / 3
    return {"x": x}, {"score": x.sum(axis=1, keepdims=True)}


def image(index: int, rows: int) -> tuple[Arrays, Arrays]:
    pixels = np.random.default_rng(index).standard_normal((rows, 3, 4, 4)).astype(np.float32)
    return {"image": pixels}, {"logits": pixels.reshape(rows, -1)[:, :10] * 2}


def multi(index: int, rows: int) -> tuple[Arrays, Arrays]:
    numeric = np.full((rows, 4), index, dtype=np.float32) + np.arange(4, dtype=np.float32)
    counts = np.arange(rows * 3, dtype=np.int64).reshape(rows, 3) * index
    value = numeric.sum(axis=1, keepdims=True)
    return {"numeric": numeric, "counts": counts}, {"value": value, "label": counts[:, 0] % 5}


def files(directory: Path, pattern: str) -> list[Path]:
    return sorted(directory.rglob(pattern))


def test_round_trip_keeps_values_ids_rows_and_latencies(logs: Logs) -> None:
    log = logs.make()
    cases: list[tuple[str, Signature, Callable[[int, int], tuple[Arrays, Arrays]], int]] = [
        ("tabular", TABULAR, tabular, 3),
        ("image", IMAGE, image, 2),
        ("multi", MULTI, multi, 4),
    ]
    expected: dict[str, list[tuple[str | None, Arrays, Arrays, float, int]]] = {}
    for index in range(6):
        for model, signature, make, rows in cases:
            inputs, outputs = make(index, rows - index % 2)
            request_id = f"{model}-{index}" if index % 3 else None
            latency = 0.001 * (index + 1)
            taken = log.record(model, 7, signature, request_id, inputs, outputs, latency)
            assert taken == rows - index % 2
            expected.setdefault(model, []).append((request_id, inputs, outputs, latency, taken))
    total = sum(r[4] for requests in expected.values() for r in requests)
    assert log.flush() == total

    def check() -> None:
        for model, requests in expected.items():
            window = read_log(logs.directory, model, 7)
            frame = window.frame
            assert len(frame) == sum(r[4] for r in requests)
            assert (frame["version"] == 7).all()
            assert (frame["replica"] == "test").all()
            assert frame["ts"].is_monotonic_increasing
            ids = frame["request_id"].tolist()
            offset = 0
            for request_id, _, _, latency, rows in requests:
                mine = ids[offset : offset + rows]
                if request_id is None:
                    assert re.fullmatch(r"[0-9a-f]{16}-[0-9]+", mine[0])
                else:
                    assert mine[0] == request_id
                assert mine == [mine[0]] * rows
                assert frame["row"].tolist()[offset : offset + rows] == list(range(rows))
                assert frame["latency_s"].tolist()[offset : offset + rows] == [latency] * rows
                offset += rows
            assert len(set(ids)) == len(requests)  # generated ids differ per request
            inputs, outputs = window.tensors()
            for name, array in inputs.items():
                np.testing.assert_array_equal(array, np.concatenate([r[1][name] for r in requests]))
                assert array.dtype == requests[0][1][name].dtype
            for name, array in outputs.items():
                np.testing.assert_array_equal(array, np.concatenate([r[2][name] for r in requests]))
            assert set(inputs) == set(requests[0][1])
            assert set(outputs) == set(requests[0][2])

    check()  # from the open streams
    log.close()
    assert not files(logs.directory, "*.arrows")
    assert len(files(logs.directory, "*.parquet")) == 3
    check()  # from Parquet
    columns = list(read_log(logs.directory, "tabular").frame.columns)
    assert columns == [
        *("ts", "request_id", "row", "latency_s", "replica", "version"),
        *("age", "income", "debt", "score"),
    ]
    assert log.stats()["flushed"] == total
    assert log.stats()["segments_closed"] == 3


def test_a_capped_request_logs_its_first_rows(logs: Logs) -> None:
    log = logs.make(max_rows_per_s=5.0, clock=FakeClock(0.0))
    inputs, outputs = tabular(0, 8)
    assert log.record("m", 1, TABULAR, "r", inputs, outputs, 0.1) == 5
    assert log.record("m", 1, TABULAR, "s", inputs, outputs, 0.1) == 0
    log.flush()
    window = read_log(logs.directory, "m")
    assert window.frame["row"].tolist() == [0, 1, 2, 3, 4]
    np.testing.assert_array_equal(window.tensors()[0]["x"], inputs["x"][:5])
    assert log.stats()["capped"] == 3 + 8


def test_sampled_out_requests_are_counted_not_written(logs: Logs) -> None:
    log = logs.make(sample_rate=0.0)
    inputs, outputs = tabular(0, 3)
    assert log.record("m", 1, TABULAR, "r", inputs, outputs, 0.1) == 0
    assert log.flush() == 0
    assert log.stats()["sampled_out"] == 3
    assert read_log(logs.directory, "m").rows == 0


def test_rotation_by_size_writes_parquet_segments(logs: Logs) -> None:
    log = logs.make(segment_max_bytes=1)
    for index in range(3):
        log.record("m", 1, TABULAR, f"r{index}", *tabular(index, 2), 0.1)
        log.flush()  # writes a batch, and then the segment is past its size
    assert len(files(logs.directory, "*.parquet")) == 3
    assert not files(logs.directory, "*.arrows")
    assert log.stats()["segments_closed"] == 3
    assert log.stats()["segments_open"] == 0
    names = [p.name for p in files(logs.directory, "*.parquet")]
    assert [n.rsplit("-", 1)[1] for n in names] == [
        "000001.parquet",
        "000002.parquet",
        "000003.parquet",
    ]
    frame = read_log(logs.directory, "m").frame
    assert frame["request_id"].tolist() == ["r0", "r0", "r1", "r1", "r2", "r2"]


def test_parquet_segments_dictionary_encode_only_the_replica(logs: Logs) -> None:
    # A dictionary tried on every feature column cost 8x the CPU on rotation (and reading).
    log = logs.make(segment_max_bytes=1)
    log.record("m", 1, TABULAR, "r", *tabular(0, 3), 0.1)
    log.flush()
    (segment,) = files(logs.directory, "*.parquet")
    row_group = pq.ParquetFile(segment).metadata.row_group(0)
    encodings = {
        row_group.column(i).path_in_schema: set(row_group.column(i).encodings)
        for i in range(row_group.num_columns)
    }
    dictionary = {"PLAIN_DICTIONARY", "RLE_DICTIONARY"}
    assert encodings["replica"] & dictionary
    for column in ("age", "income", "debt", "score", "request_id", "ts"):
        assert not encodings[column] & dictionary, column


def test_rotation_by_age(logs: Logs) -> None:
    clock = FakeClock(0.0)
    log = logs.make(clock=clock, segment_max_age_s=60.0)
    log.record("m", 1, TABULAR, "r0", *tabular(0, 2), 0.1)
    log.flush()
    clock.now = 59.0
    log.flush()
    assert len(files(logs.directory, "*.arrows")) == 1
    clock.now = 60.0
    log.flush()  # no new rows: an idle segment is rotated too
    assert not files(logs.directory, "*.arrows")
    assert len(files(logs.directory, "*.parquet")) == 1
    log.record("m", 1, TABULAR, "r1", *tabular(1, 2), 0.1)
    log.flush()
    assert files(logs.directory, "*.arrows")[0].name.endswith("-test-000002.arrows")
    assert read_log(logs.directory, "m").frame["request_id"].tolist() == ["r0"] * 2 + ["r1"] * 2


def test_segment_numbers_continue_after_a_restart(logs: Logs) -> None:
    first = logs.make()
    first.record("m", 1, TABULAR, "a", *tabular(0, 1), 0.1)
    first.close()
    second = logs.make()
    second.record("m", 1, TABULAR, "b", *tabular(1, 1), 0.1)
    second.close()
    names = [p.name for p in files(logs.directory, "*.parquet")]
    assert [n[-14:] for n in names] == ["000001.parquet", "000002.parquet"]


def test_retention_at_start_deletes_only_segments_wholly_too_old(logs: Logs) -> None:
    old = logs.make()
    old.record("m", 1, TABULAR, "old", *tabular(0, 2), 0.1)
    old.close()
    [old_segment] = files(logs.directory, "*.parquet")
    later = logs.make(wall_clock=lambda: time.time() + 8 * DAY)  # eight days on
    assert not old_segment.exists()
    later.record("m", 1, TABULAR, "new", *tabular(1, 2), 0.1)
    later.close()
    [new_segment] = files(logs.directory, "*.parquet")
    # Its mtime is "eight days ago" to a clock eight days on, but its rows are recent:
    # the footer decides, and it stays.
    logs.make(wall_clock=lambda: time.time() + 8 * DAY).close()
    assert new_segment.exists()
    assert read_log(logs.directory, "m").frame["request_id"].tolist() == ["new", "new"]


def test_retention_runs_after_each_rotation(logs: Logs) -> None:
    later = logs.make(wall_clock=lambda: time.time() + 8 * DAY, segment_max_bytes=1)
    other = logs.make(replica="other")
    other.record("m", 1, TABULAR, "old", *tabular(0, 2), 0.1)
    other.close()
    [old_segment] = files(logs.directory, "*.parquet")
    later.record("m", 1, TABULAR, "new", *tabular(1, 2), 0.1)
    later.flush()  # rotates, then expires
    assert not old_segment.exists()
    assert read_log(logs.directory, "m").frame["request_id"].tolist() == ["new", "new"]


def _orphan_stream(logs: Logs, replica: str, wall_clock: Callable[[], float]) -> Path:
    """A stream left by a dead replica: copied while open, its log then closed and removed."""
    log = logs.make(replica=replica, wall_clock=wall_clock)
    log.record("m", 1, TABULAR, replica, *tabular(0, 2), 0.1)
    log.flush()
    [stream] = files(logs.directory, f"*-{replica}-*.arrows")
    data = stream.read_bytes()
    log.close()
    stream.with_suffix(".parquet").unlink()
    stream.write_bytes(data)
    return stream


def test_retention_expires_dead_replicas_streams_and_temporary_files(logs: Logs) -> None:
    nine_days_ago = time.time() - 9 * DAY
    stale = _orphan_stream(logs, "stale", lambda: time.time() - 8 * DAY)
    touched = _orphan_stream(logs, "touched", time.time)  # recent rows, old mtime
    temporary = stale.with_name(
        stale.name.replace("stale", "crashed").replace(".arrows", ".parquet.tmp")
    )
    temporary.write_bytes(b"half a parquet file")
    for path in (stale, touched, temporary):
        os.utime(path, (nine_days_ago, nine_days_ago))
    logs.make().close()
    assert not stale.exists()
    assert not temporary.exists()
    assert touched.exists()  # its rows are recent, whatever its mtime says


def test_backlog_overflow_drops_and_counts_without_blocking(logs: Logs) -> None:
    log = logs.make(start=False, max_pending_rows=10)
    inputs, outputs = tabular(0, 4)
    taken = [log.record("m", 1, TABULAR, f"r{i}", inputs, outputs, 0.1) for i in range(3)]
    assert taken == [4, 4, 0]
    assert log.stats()["dropped_backlog"] == 4
    assert log.stats()["recorded"] == 8
    assert log.stats()["pending"] == 8
    log.start()
    assert log.flush() == 8
    assert log.stats()["pending"] == 0
    assert log.record("m", 1, TABULAR, "r3", inputs, outputs, 0.1) == 4  # room again
    log.close()
    assert log.record("m", 1, TABULAR, "late", inputs, outputs, 0.1) == 0
    assert log.stats()["dropped_backlog"] == 8
    assert read_log(logs.directory, "m").rows == 12


def test_write_error_is_counted_logged_once_and_other_models_go_on(
    logs: Logs, caplog: pytest.LogCaptureFixture
) -> None:
    log = logs.make()
    logs.directory.mkdir(parents=True, exist_ok=True)
    (logs.directory / "broken").write_text("a file where the model's folder should be")
    for round_ in range(2):
        log.record("broken", 1, TABULAR, f"b{round_}", *tabular(round_, 3), 0.1)
        log.record("good", 1, TABULAR, f"g{round_}", *tabular(round_, 2), 0.1)
        assert log.flush() == 2 * (round_ + 1)
    stats = log.stats()
    assert stats["write_errors"] == 2
    assert stats["dropped_write_error"] == 6
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1  # once a minute per model, however often it fails
    assert errors[0].name == "mlgate.monitors"
    assert "broken:1" in errors[0].getMessage()
    assert read_log(logs.directory, "good").frame["request_id"].tolist() == ["g0"] * 2 + ["g1"] * 2


def test_a_directory_that_cannot_exist_only_counts_errors(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    log = InferenceLog(LogSettings(tmp_path / "file" / "log", replica="r", flush_interval_s=0.05))
    log.start()
    assert log.record("m", 1, TABULAR, "r", *tabular(0, 2), 0.1) == 2
    assert log.flush() == 0
    log.close()
    assert log.stats()["write_errors"] == 1
    assert log.stats()["dropped_write_error"] == 2


def test_rows_not_matching_their_signature_are_dropped_alone(
    logs: Logs, caplog: pytest.LogCaptureFixture
) -> None:
    log = logs.make()
    inputs, outputs = tabular(0, 2)
    log.record("m", 1, TABULAR, "no-output", inputs, {}, 0.1)
    log.record("m", 1, TABULAR, "short", inputs, {"score": outputs["score"][:1]}, 0.1)
    log.record("m", 1, TABULAR, "ok", inputs, outputs, 0.1)
    clashing = Signature(
        (TensorSpec("x", "float32", (-1, 2)),),
        (TensorSpec("y", "float32", (-1,)),),
        {"x": ["row", "z"]},
    )
    log.record(
        "clash",
        1,
        clashing,
        "c",
        {"x": np.zeros((2, 2), np.float32)},
        {"y": np.zeros(2, np.float32)},
        0.1,
    )
    assert log.flush() == 2
    assert log.stats()["dropped_invalid"] == 6
    assert read_log(logs.directory, "m").frame["request_id"].tolist() == ["ok", "ok"]
    messages = " ".join(r.getMessage() for r in caplog.records)
    assert "'score' is missing" in messages
    assert "clash with the log's own columns" in messages


def test_a_request_without_its_first_input_is_refused_at_record(logs: Logs) -> None:
    log = logs.make()
    assert log.record("m", 1, TABULAR, "r", {}, {}, 0.1) == 0
    assert log.stats()["invalid_requests"] == 1


def test_changing_row_shapes_start_new_segments(logs: Logs) -> None:
    ragged = Signature(
        (TensorSpec("tokens", "int64", (-1, -1)),), (TensorSpec("p", "float32", (-1,)),)
    )

    def request(width: int) -> tuple[Arrays, Arrays]:
        return {"tokens": np.ones((2, width), np.int64)}, {"p": np.zeros(2, np.float32)}

    log = logs.make()
    for width in (3, 3, 5, 3):
        log.record("ragged", 1, ragged, f"w{width}", *request(width), 0.1)
    assert log.flush() == 8
    log.close()
    assert len(files(logs.directory, "*.parquet")) == 3  # runs: 3 3 | 5 | 3
    with pytest.raises(BadRequest, match="2 different layouts"):
        read_log(logs.directory, "ragged", 1)


def test_lifecycle_errors(logs: Logs) -> None:
    log = logs.make(start=False, flush_interval_s=60.0)
    with pytest.raises(RuntimeError, match="not started"):
        log.flush()
    log.start()
    with pytest.raises(RuntimeError, match="started once"):
        log.start()
    log.record("m", 1, TABULAR, "r", *tabular(0, 2), 0.1)
    with pytest.raises(TimeoutError, match="did not flush"):
        log.flush(timeout_s=0)
    with pytest.raises(TimeoutError, match="did not stop"):
        log.close(timeout_s=0)
    log.close()
    assert log.flush() == 2  # after close: nothing left to wait for
    with pytest.raises(RuntimeError, match="started once"):
        log.start()


@pytest.mark.parametrize(
    ("setting", "value", "message"),
    [
        ("sample_rate", 1.5, "sample_rate"),
        ("max_rows_per_s", 0.0, "max_rows_per_s"),
        ("flush_interval_s", 0.0, "flush_interval_s"),
        ("segment_max_bytes", 0, "segment_max_bytes"),
        ("max_pending_rows", 0, "max_pending_rows"),
        ("retention_s", 3600.0, "must exceed segment_max_age_s"),
        ("replica", "a/b", "replica name"),
        ("replica", "", "replica name"),
        ("replica", ".hidden", "replica name"),
    ],
)
def test_invalid_settings_are_refused(
    tmp_path: Path, setting: str, value: Any, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        LogSettings(tmp_path, **{setting: value})


def test_default_replica_is_host_and_pid(tmp_path: Path) -> None:
    assert LogSettings(str(tmp_path)).replica.endswith(f"-{os.getpid()}")  # type: ignore[arg-type]
    assert LogSettings(str(tmp_path)).directory == tmp_path  # type: ignore[arg-type]


# Recovery and real crashes.


def _stream_with_batches(logs: Logs, replica: str, batches: int) -> tuple[Path, bytes, list[int]]:
    """A stream of `batches` batches of two one-row requests, its bytes and batch ends.

    The log is closed and its Parquet deleted: the caller writes (some of) the bytes back.
    """
    log = logs.make(replica=replica, flush_interval_s=60.0)  # one batch per flush()
    ends = []
    for index in range(batches):
        for half in range(2):
            log.record("m", 1, TABULAR, f"{replica}-{index}-{half}", *tabular(index, 1), 0.1)
        log.flush()
        [stream] = files(logs.directory, f"*-{replica}-*.arrows")
        ends.append(stream.stat().st_size)
    data = stream.read_bytes()
    log.close()
    stream.with_suffix(".parquet").unlink()
    return stream, data, ends


@pytest.mark.parametrize(
    "cut_into",
    [
        pytest.param(lambda end, next_end: end + 12, id="metadata"),  # its header
        pytest.param(lambda end, next_end: (end + next_end) // 2, id="middle"),
        pytest.param(lambda end, next_end: next_end - 4, id="body"),  # its last bytes
    ],
)
def test_recovery_keeps_the_complete_batches_of_a_torn_stream(
    logs: Logs, cut_into: Callable[[int, int], int]
) -> None:
    stream, data, ends = _stream_with_batches(logs, "cut", 3)
    stream.write_bytes(data[: cut_into(ends[1], ends[2])])  # into the third batch
    expected = ["cut-0-0", "cut-0-1", "cut-1-0", "cut-1-1"]
    assert read_log(logs.directory, "m").frame["request_id"].tolist() == expected
    recovering = logs.make(replica="cut")
    recovering.close()
    assert not stream.exists()
    assert stream.with_suffix(".parquet").exists()
    assert recovering.stats()["segments_recovered"] == 1
    assert recovering.stats()["rows_recovered"] == 4
    assert read_log(logs.directory, "m").frame["request_id"].tolist() == expected


def test_recovery_deletes_what_holds_nothing_more(logs: Logs) -> None:
    stream, data, _ = _stream_with_batches(logs, "gone", 1)
    stream.write_bytes(data[:10])  # died while writing the schema
    converted, converted_data, _ = _stream_with_batches(logs, "done", 1)
    converted.write_bytes(converted_data)
    logs.make(replica="done").close()  # makes its Parquet again
    converted.write_bytes(converted_data)  # a crash between rename and delete
    parquet_before = converted.with_suffix(".parquet").read_bytes()
    temporary = converted.with_name(converted.name.replace(".arrows", ".parquet.tmp"))
    temporary.write_bytes(b"half written")
    logs.make(replica="gone").close()
    assert not stream.exists()
    assert not stream.with_suffix(".parquet").exists()
    assert converted.exists()
    assert temporary.exists()
    logs.make(replica="done").close()
    assert not converted.exists()
    assert not temporary.exists()
    assert converted.with_suffix(".parquet").read_bytes() == parquet_before


def test_recovery_after_a_crash_in_the_middle_of_a_conversion(logs: Logs) -> None:
    stream, data, _ = _stream_with_batches(logs, "midway", 2)
    stream.write_bytes(data)
    temporary = stream.with_name(stream.name.replace(".arrows", ".parquet.tmp"))
    temporary.write_bytes(b"the first bytes of a parquet file")
    recovering = logs.make(replica="midway")
    recovering.close()
    assert not stream.exists()
    assert not temporary.exists()
    assert recovering.stats()["rows_recovered"] == 4
    assert read_log(logs.directory, "m").rows == 4


def test_recovery_goes_past_a_file_it_cannot_read(
    logs: Logs, caplog: pytest.LogCaptureFixture
) -> None:
    stream, data, _ = _stream_with_batches(logs, "test", 1)
    stream.write_bytes(data)
    unreadable = stream.parent / (SegmentName(0, "test", 99).stem + ".arrows")
    unreadable.mkdir()  # a "stream" that cannot be read
    recovering = logs.make()
    assert recovering.stats()["write_errors"] == 1
    assert recovering.stats()["segments_recovered"] == 1
    assert any("could not recover" in r.getMessage() for r in caplog.records)
    recovering.record("m", 1, TABULAR, "after", *tabular(5, 1), 0.1)
    assert recovering.flush() == 1  # and it serves on
    assert unreadable.is_dir()


def test_retention_keeps_a_segment_it_cannot_read(
    logs: Logs, caplog: pytest.LogCaptureFixture
) -> None:
    folder = logs.directory / "m" / "1"
    folder.mkdir(parents=True)
    corrupt = folder / (SegmentName(0, "other", 1).stem + ".parquet")
    corrupt.write_bytes(b"not parquet")
    long_ago = time.time() - 30 * DAY
    os.utime(corrupt, (long_ago, long_ago))
    log = logs.make()
    log.close()
    assert corrupt.exists()
    assert log.stats()["write_errors"] == 0
    assert any("retention kept" in r.getMessage() for r in caplog.records)


def test_a_model_name_that_is_not_one_is_never_a_path(logs: Logs, tmp_path: Path) -> None:
    log = logs.make()
    log.record("../escaped", 1, TABULAR, "r", *tabular(0, 1), 0.1)
    log.record("m", 1, TABULAR, "r", *tabular(0, 1), 0.1)
    assert log.flush() == 1
    assert log.stats()["write_errors"] == 1
    assert not (tmp_path / "escaped").exists()


def test_recover_all_converts_other_replicas_streams(logs: Logs) -> None:
    stream, data, _ = _stream_with_batches(logs, "dead", 2)
    stream.write_bytes(data)
    logs.make(replica="alive").close()
    assert stream.exists()
    survivor = logs.make(replica="alive", start=False)
    survivor.start(recover_all=True)
    survivor.close()
    assert not stream.exists()
    assert survivor.stats()["rows_recovered"] == 4


def _worker(directory: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.support.log_worker", str(directory), *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )


def _check_requests(directory: Path, indices: list[int]) -> None:
    """Every listed request is whole (both rows, in order) with the values it was sent."""
    frame = read_log(directory, log_worker.MODEL, 1).frame
    window = read_log(directory, log_worker.MODEL, 1)
    assert frame["request_id"].tolist() == [
        log_worker.request_id(i) for i in indices for _ in range(log_worker.ROWS_PER_REQUEST)
    ]
    assert frame["row"].tolist() == [0, 1] * len(indices)
    expected = np.concatenate([log_worker.expected_inputs(i) for i in indices])
    np.testing.assert_array_equal(window.tensors()[0]["x"], expected)


@pytest.mark.slow
def test_kill_9_loses_nothing_that_was_flushed(tmp_path: Path) -> None:
    worker = _worker(tmp_path, "--replica", "crashy", "--flush-every", "25")
    acknowledged: list[tuple[int, int]] = []
    with worker:
        assert worker.stdout is not None
        for line in worker.stdout:
            if line.startswith("FLUSHED"):
                rows, index = map(int, line.split()[1:])
                acknowledged.append((rows, index))
                if len(acknowledged) == 3:
                    break
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=30)
    assert worker.returncode == -signal.SIGKILL
    flushed_rows, last_index = acknowledged[-1]
    assert flushed_rows == (last_index + 1) * log_worker.ROWS_PER_REQUEST
    assert files(tmp_path, "*.arrows")  # the crash left the open segment behind
    assert read_log(tmp_path, log_worker.MODEL).rows >= flushed_rows  # readable as it is

    recovering = InferenceLog(LogSettings(tmp_path, replica="crashy"))
    recovering.start()
    recovering.close()
    assert not files(tmp_path, "*.arrows")
    assert files(tmp_path, "*.parquet")
    ids = read_log(tmp_path, log_worker.MODEL).frame["request_id"].unique().tolist()
    written = len(ids)
    assert written > last_index  # every acknowledged request, maybe some more
    _check_requests(tmp_path, list(range(written)))  # contiguous, whole, right values


@pytest.mark.slow
def test_failing_writes_drop_batches_and_the_writer_goes_on(tmp_path: Path) -> None:
    worker = _worker(
        tmp_path,
        "--replica",
        "full",
        "--requests",
        "600",
        "--flush-every",
        "20",
        "--max-file-bytes",
        "40000",
    )
    output, _ = worker.communicate(timeout=120)
    assert worker.returncode == 0, output
    stats = json.loads(output.splitlines()[-1].removeprefix("STATS "))
    assert stats["write_errors"] >= 1
    assert stats["dropped_write_error"] >= 2
    assert stats["flushed"] + stats["dropped_write_error"] == 600 * log_worker.ROWS_PER_REQUEST
    frame = read_log(tmp_path, log_worker.MODEL).frame
    assert len(frame) == stats["flushed"]  # torn batches are not read back
    indices = sorted({int(i) for i in frame["request_id"]})
    lost = set(range(600)) - set(indices)
    assert lost
    assert max(indices) > min(lost)
    _check_requests(tmp_path, indices)

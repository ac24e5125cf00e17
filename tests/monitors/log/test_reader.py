"""Reading the inference log: windows, last N, pruning, versions, racing the writer."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from monitors.log.inference_log import InferenceLog, LogSettings
from monitors.log.reader import log_models, log_versions, read_log
from registry.errors import BadRequest, InvalidName
from registry.signature import Signature, TensorSpec

T0 = 1_700_000_000.0  # 2023-11-14T22:13:20Z
TABULAR = Signature(
    (TensorSpec("x", "float32", (-1, 3)),),
    (TensorSpec("score", "float32", (-1, 1)),),
    {"x": ["a", "b", "c"]},
)
WIDER = Signature(
    (TensorSpec("x", "float32", (-1, 4)),),
    (TensorSpec("score", "float32", (-1, 1)),),
    {"x": ["a", "b", "c", "d"]},
)


class FakeClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def at(seconds: float) -> datetime:
    return datetime.fromtimestamp(T0 + seconds, UTC)


def request(
    value: float, signature: Signature = TABULAR
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    width = signature.inputs[0].shape[1]
    x = np.full((1, width), value, dtype=np.float32)
    return {"x": x}, {"score": x[:, :1] * 2}


def write_segments(
    directory: Path,
    segments: list[list[float]],
    *,
    replica: str = "a",
    model: str = "m",
    version: int = 1,
    signature: Signature = TABULAR,
) -> list[Path]:
    """One Parquet segment per inner list: a one-row request at each T0 + offset."""
    clock = FakeClock(T0)
    log = InferenceLog(
        LogSettings(directory, replica=replica, segment_max_bytes=1, flush_interval_s=60.0),
        wall_clock=clock,
    )
    log.start()
    for offsets in segments:
        for offset in offsets:
            clock.now = T0 + offset
            log.record(
                model, version, signature, f"{replica}{offset:g}", *request(offset, signature), 0.1
            )
        log.flush()  # one batch, then rotated: one segment
    log.close()
    return sorted((directory / model / str(version)).glob(f"*-{replica}-*.parquet"))


def ids(directory: Path, **query: object) -> list[str]:
    frame = read_log(directory, "m", **query).frame  # type: ignore[arg-type]
    return [str(i) for i in frame["request_id"]]


@pytest.fixture
def three_segments(tmp_path: Path) -> list[Path]:
    return write_segments(tmp_path, [[0, 1, 2, 3], [10, 11, 12, 13], [20, 21, 22, 23]])


def test_window_is_start_inclusive_end_exclusive_across_segments(
    tmp_path: Path, three_segments: list[Path]
) -> None:
    assert len(three_segments) == 3
    assert ids(tmp_path, start=at(2), end=at(12)) == ["a2", "a3", "a10", "a11"]
    assert ids(tmp_path, start=at(20)) == ["a20", "a21", "a22", "a23"]
    assert ids(tmp_path, end=at(1)) == ["a0"]
    window = read_log(tmp_path, "m", start=at(2), end=at(12))
    np.testing.assert_array_equal(window.tensors()[0]["x"][:, 0], [2, 3, 10, 11])
    assert window.frame["ts"].iloc[0] == at(2)


def test_last_n_returns_the_newest_rows_oldest_first(
    tmp_path: Path, three_segments: list[Path]
) -> None:
    assert ids(tmp_path, last=6) == ["a12", "a13", "a20", "a21", "a22", "a23"]
    assert ids(tmp_path, last=100) == ids(tmp_path)
    assert len(ids(tmp_path)) == 12
    assert ids(tmp_path, last=3, end=at(12)) == ["a3", "a10", "a11"]
    assert ids(tmp_path, last=0) == []


def test_segments_outside_the_query_are_never_opened(
    tmp_path: Path, three_segments: list[Path], caplog: pytest.LogCaptureFixture
) -> None:
    oldest = three_segments[0]
    oldest.write_bytes(b"not parquet")  # opening it would be reported as skipped
    for query in ({"last": 4}, {"start": at(20)}, {"start": at(14), "end": at(30)}):
        window = read_log(tmp_path, "m", **query)
        assert window.skipped == ()
        assert window.rows == 4
    newest = three_segments[-1]
    newest.write_bytes(b"not parquet either")
    assert read_log(tmp_path, "m", end=at(5)).skipped == (oldest,)
    assert read_log(tmp_path, "m", end=at(5)).rows == 0
    everything = read_log(tmp_path, "m")
    assert everything.skipped == (oldest, newest)
    assert everything.frame["request_id"].tolist() == ["a10", "a11", "a12", "a13"]
    assert any("skipping unreadable" in r.getMessage() for r in caplog.records)


def test_last_n_with_several_replicas_finds_rows_in_older_named_segments(
    tmp_path: Path,
) -> None:
    # Replica a's only segment starts at 100 but holds the newest row (199); replica b's
    # newest segment starts later (150.5).
    write_segments(tmp_path, [[100, 150, 199]], replica="a")
    b_segments = write_segments(tmp_path, [[110, 111], [130, 131], [150.5, 160]], replica="b")
    assert ids(tmp_path, last=2) == ["b160", "a199"]
    assert ids(tmp_path, last=4) == ["a150", "b150.5", "b160", "a199"]
    b_segments[0].write_bytes(b"garbage")  # b's oldest cannot hold any of the newest 4
    assert read_log(tmp_path, "m", last=4).skipped == ()


def test_a_window_with_no_rows_keeps_the_layout(tmp_path: Path, three_segments: list[Path]) -> None:
    window = read_log(tmp_path, "m", start=at(5), end=at(6))
    assert window.rows == 0
    assert list(window.frame.columns)[-4:] == ["a", "b", "c", "score"]
    inputs, outputs = window.tensors()
    assert inputs["x"].shape == (0, 3)
    assert outputs["score"].shape == (0, 1)


def test_unknown_model_or_version_gives_an_empty_window(tmp_path: Path) -> None:
    for window in (read_log(tmp_path, "nobody"), read_log(tmp_path / "missing", "nobody", 3)):
        assert window.rows == 0
        assert len(window.frame) == 0
        assert list(window.frame.columns) == [
            "ts",
            "request_id",
            "row",
            "latency_s",
            "replica",
            "version",
        ]
        assert window.tensors() == ({}, {})
    write_segments(tmp_path, [[0]])
    assert read_log(tmp_path, "m", 2).rows == 0


def test_versions_with_one_layout_are_read_together(tmp_path: Path) -> None:
    write_segments(tmp_path, [[0, 1]], version=1)
    write_segments(tmp_path, [[2]], version=2)
    frame = read_log(tmp_path, "m").frame
    assert frame["version"].tolist() == [1, 1, 2]
    assert read_log(tmp_path, "m", 2).frame["request_id"].tolist() == ["a2"]


def test_versions_with_different_layouts_need_a_version(tmp_path: Path) -> None:
    write_segments(tmp_path, [[0, 1]], version=1)
    write_segments(tmp_path, [[2]], version=2, signature=WIDER)
    with pytest.raises(BadRequest, match="read one version at a time") as raised:
        read_log(tmp_path, "m")
    assert raised.value.status_code == 400
    assert list(read_log(tmp_path, "m", 2).frame.columns)[-5:] == ["a", "b", "c", "d", "score"]
    assert read_log(tmp_path, "m", 1).rows == 2
    assert read_log(tmp_path, "m", start=at(2)).rows == 1  # only version 2 has rows there


def test_models_and_versions_are_listed(tmp_path: Path) -> None:
    assert log_models(tmp_path / "missing") == []
    write_segments(tmp_path, [[0]], model="alpha", version=1)
    write_segments(tmp_path, [[0]], model="alpha", version=3)
    write_segments(tmp_path, [[0]], model="beta", version=2)
    (tmp_path / "alpha" / "scratch").mkdir()
    (tmp_path / "empty").mkdir()
    (tmp_path / "notes.txt").write_text("")
    assert log_models(tmp_path) == ["alpha", "beta"]
    assert log_versions(tmp_path, "alpha") == [1, 3]
    assert log_versions(tmp_path, "gamma") == []


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"start": datetime(2026, 1, 1)}, "timezone-aware"),  # naive on purpose
        ({"end": datetime(2026, 1, 1)}, "timezone-aware"),
        ({"start": at(10), "end": at(5)}, "is after end"),
        ({"last": -1}, "last must be"),
    ],
)
def test_bad_queries_are_refused(tmp_path: Path, query: dict[str, object], message: str) -> None:
    with pytest.raises(BadRequest, match=message):
        read_log(tmp_path, "m", **query)  # type: ignore[arg-type]


def test_a_model_name_that_is_not_one_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidName):
        read_log(tmp_path, "../etc")
    with pytest.raises(InvalidName):
        log_versions(tmp_path, "a/b")


@pytest.fixture
def busy_log(tmp_path: Path) -> Iterator[tuple[InferenceLog, threading.Event]]:
    """A log written by a feeding thread, rotating often, until the test ends."""
    log = InferenceLog(
        LogSettings(
            tmp_path,
            replica="busy",
            flush_interval_s=0.005,
            segment_max_bytes=20_000,
            max_rows_per_s=1e9,
        )
    )
    log.start()
    stop = threading.Event()

    def feed() -> None:  # the only thread calling record(), as the event loop would be
        index = 0
        while not stop.is_set():
            x = np.full((2, 3), index, dtype=np.float32)
            log.record("m", 1, TABULAR, f"{index:08d}", {"x": x}, {"score": x[:, :1]}, 0.1)
            index += 1
            time.sleep(0.0002)

    feeder = threading.Thread(target=feed)
    feeder.start()
    yield log, stop
    stop.set()
    feeder.join()
    log.close()


def test_a_reader_racing_the_writer_never_fails_and_sees_a_prefix(
    tmp_path: Path, busy_log: tuple[InferenceLog, threading.Event]
) -> None:
    log, stop = busy_log
    # Read until enough has happened (reads, and segments closed while reading), not for a
    # fixed time that a loaded machine may fill with less; the limit bounds a failing test.
    deadline = time.monotonic() + 120
    seen = reads = 0
    while reads <= 10 or seen == 0 or log.stats()["segments_closed"] < 2:
        assert time.monotonic() < deadline, (reads, seen, log.stats())
        frame = read_log(tmp_path, "m", 1).frame
        indices = [int(i) for i in frame["request_id"]]
        assert indices == sorted(indices)
        assert frame["row"].tolist() == [0, 1] * (len(frame) // 2)
        assert sorted(set(indices)) == list(range(len(set(indices))))  # no gap
        assert len(frame) >= seen
        seen = len(frame)
        reads += 1
        newest = read_log(tmp_path, "m", 1, last=5).frame
        if seen >= 5:
            assert len(newest) == 5
            assert int(newest["request_id"].iloc[-1]) >= indices[-1]
    stop.set()


def test_reading_without_inputs_leaves_them_out_of_parquet_and_streams(tmp_path: Path) -> None:
    write_segments(tmp_path, [[1, 2], [3]])  # two Parquet segments
    log = InferenceLog(LogSettings(tmp_path, replica="b", flush_interval_s=60.0))
    log.start()
    log.record("m", 1, TABULAR, "open", *request(4.0), 0.1)
    log.flush()  # an open stream segment beside them
    try:
        whole = read_log(tmp_path, "m", 1)
        outputs_only = read_log(tmp_path, "m", 1, inputs=False)
    finally:
        log.close()
    assert whole.rows == outputs_only.rows == 4
    assert {"a", "b", "c"} <= set(whole.frame.columns)
    assert not {"a", "b", "c"} & set(outputs_only.frame.columns)
    assert outputs_only.layout["inputs"] == {}
    inputs, outputs = outputs_only.tensors()
    assert inputs == {}
    np.testing.assert_array_equal(outputs["score"], whole.tensors()[1]["score"])
    assert outputs_only.frame["request_id"].tolist() == whole.frame["request_id"].tolist()


def test_a_sample_of_a_window_holds_those_rows_and_their_tensors(tmp_path: Path) -> None:
    write_segments(tmp_path, [[1, 2, 3, 4]])
    window = read_log(tmp_path, "m")
    sample = window.sample(np.array([3, 1]))
    assert sample.frame["request_id"].tolist() == ["a4", "a2"]
    inputs, _ = sample.tensors()
    np.testing.assert_array_equal(inputs["x"], window.tensors()[0]["x"][[3, 1]])
    assert inputs["x"].flags["C_CONTIGUOUS"]

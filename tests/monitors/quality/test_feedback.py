"""Feedback: the body's rules, the store (SQLite and PostgreSQL), the recent-id index of a
real inference log, and the join of labels with logged rows."""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from sqlalchemy import insert
from sqlalchemy.orm import Session

from monitors.log.inference_log import InferenceLog, LogSettings
from monitors.log.reader import read_log
from monitors.log.recent_ids import RecentIds
from monitors.quality.feedback import RECEIPT_MAX_IDS, FeedbackStore
from monitors.quality.feedback_body import FeedbackItem, TooManyFeedbackItems, parse_feedback
from monitors.quality.labelled_window import labelled_window
from monitors.schema import FeedbackRow
from registry import Registry
from registry.errors import BadRequest, Conflict
from registry.signature import Signature, TensorSpec, signature_from_torch

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
TABULAR = signature_from_torch(
    {"x": np.zeros((2, 3), np.float32)},
    {"score": np.zeros((2, 1), np.float32)},
    ["age", "income", "debt"],
)
# An output named "label": the join's label column must not overwrite it.
CLASSIFIER = Signature(
    (TensorSpec("x", "float32", (-1, 2)),),
    (TensorSpec("label", "int64", (-1,)),),
)


class Clock:
    """The log's wall clock, set by the test: rows get known timestamps."""

    def __init__(self) -> None:
        self.now = T0.timestamp()

    def __call__(self) -> float:
        return self.now

    def at(self, seconds: float) -> None:
        self.now = T0.timestamp() + seconds


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def log(tmp_path: Path, clock: Clock) -> Iterator[InferenceLog]:
    settings = LogSettings(
        directory=tmp_path / "log", replica="test", flush_interval_s=0.05, max_rows_per_s=1e9
    )
    opened = InferenceLog(settings, wall_clock=clock)
    opened.start()
    yield opened
    opened.close()


def rows(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, 3)).astype(np.float32)


def record(
    log: InferenceLog, request_id: str | None, x: np.ndarray, *, model: str = "m", version: int = 1
) -> None:
    taken = log.record(model, version, TABULAR, request_id, {"x": x}, {"score": x[:, :1]}, 0.01)
    assert taken == len(x)


# ---------------------------------------------------------------- the body's rules


def test_single_and_batched_bodies_parse() -> None:
    single = parse_feedback({"id": "req-1", "label": True}, max_items=10)
    assert single.items == [FeedbackItem("req-1", 1, 0, None)]
    assert single.source == "api"
    batch = parse_feedback(
        {
            "feedback": [
                {"id": "req-1", "row": 2, "label": [0.2, 0.8], "timestamp": "2026-05-01T12:00Z"},
                {"id": "req-2", "label": [1, False]},
            ],
            "source": "chargebacks",
        },
        max_items=2,
    )
    assert batch.source == "chargebacks"
    assert batch.items == [
        FeedbackItem("req-1", [0.2, 0.8], 2, T0),
        FeedbackItem("req-2", [1, 0], 0, None),
    ]
    offset = parse_feedback(
        {"id": "a", "label": 0, "timestamp": "2026-05-01T14:00+02:00"}, max_items=1
    )
    assert offset.items[0].known_at == T0
    assert offset.items[0].known_at.tzinfo == UTC


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ([{"id": "a", "label": 1}], "the feedback body must be a JSON object"),
        ({"feedback": []}, "'feedback' must be a non-empty list"),
        ({"feedback": {"id": "a"}}, "'feedback' must be a non-empty list"),
        ({"feedback": [{"id": "a", "label": 1}, 3]}, "feedback[1] must be a JSON object"),
        ({"feedback": [{"id": "a", "label": 1}], "id": "b"}, "id: unknown field"),
        (
            {"feedback": [{"id": "a", "label": 1}, {"id": "b", "lable": 1}]},
            "feedback[1].lable: unknown field; the fields are id, row, label, timestamp",
        ),
        ({"id": "a", "label": 1, "colour": 1}, "colour: unknown field"),
        ({"label": 1}, "id must be the request's id"),
        ({"id": "", "label": 1}, "id must be the request's id"),
        ({"id": 7, "label": 1}, "id must be the request's id"),
        ({"id": "x" * 513, "label": 1}, "1 to 512 characters"),
        ({"feedback": [{"id": "a", "row": -1, "label": 1}]}, "feedback[0].row must be"),
        ({"id": "a", "row": True, "label": 1}, "row must be the row's index"),
        ({"id": "a", "row": 1.0, "label": 1}, "row must be the row's index"),
        ({"id": "a", "row": 2**31, "label": 1}, "row must be the row's index"),
        ({"feedback": [{"id": "a"}]}, "feedback[0].label is missing"),
        ({"id": "a", "label": "yes"}, "label must be a finite number or true/false"),
        ({"id": "a", "label": None}, "label must be a finite number"),
        ({"id": "a", "label": math.nan}, "label must be a finite number"),
        ({"id": "a", "label": 2**63}, "label must be a finite number"),
        ({"id": "a", "label": "y" * 10_000}, "got 'yyyyyyyy"),
        ({"id": "a", "label": []}, "label is an empty list"),
        ({"feedback": [{"id": "a", "label": [1, "b"]}]}, "feedback[0].label[1] must be"),
        ({"id": "a", "label": [[1]]}, "label[0] must be a finite number"),
        ({"id": "a", "label": 1, "timestamp": "2026-05-01T12:00"}, "timestamp must be an ISO"),
        ({"id": "a", "label": 1, "timestamp": "yesterday"}, "timestamp must be an ISO"),
        ({"id": "a", "label": 1, "timestamp": 1714564800}, "timestamp must be an ISO"),
        (
            {"feedback": [{"id": "a", "label": 1}, {"id": "b", "label": [0, 1]}]},
            "feedback[1].label is a list of 2 values, but feedback[0].label is a number",
        ),
        ({"id": "a", "label": 1, "source": ""}, "'source' must be a string"),
        ({"feedback": [{"id": "a", "label": 1}], "source": 3}, "'source' must be a string"),
    ],
)
def test_bad_bodies_are_refused_naming_the_item_and_field(document: Any, message: str) -> None:
    with pytest.raises(BadRequest) as caught:
        parse_feedback(document, max_items=10)
    assert message in str(caught.value)
    assert len(str(caught.value)) < 300  # a long value is cut short


def test_too_many_items_is_413() -> None:
    items = [{"id": f"r{i}", "label": 0} for i in range(4)]
    assert len(parse_feedback({"feedback": items[:3]}, max_items=3).items) == 3
    with pytest.raises(TooManyFeedbackItems, match="'feedback' has 4 items; the limit is 3"):
        parse_feedback({"feedback": items}, max_items=3)
    assert TooManyFeedbackItems.status_code == 413


# ---------------------------------------------------------------- the store


def test_labels_are_stored_and_a_second_label_replaces_the_first(registry: Registry) -> None:
    store = FeedbackStore(registry.db)
    first = store.add(
        "m",
        [FeedbackItem("r1", 1), FeedbackItem("r1", 0, row=1), FeedbackItem("r2", [0.5, 0.5])],
        source="first",
        now=T0,
    )
    assert (first.accepted, first.matched, first.replaced, first.unknown) == (3, 0, 0, 3)
    assert first.unknown_ids == ["r1", "r2"]  # distinct, in body order

    later = T0 + timedelta(hours=1)
    second = store.add(
        "m",
        [FeedbackItem("r1", 0, known_at=T0), FeedbackItem("r3", 1), FeedbackItem("r3", 0)],
        source="second",
        now=later,
    )
    # r1 row 0 was stored; the second r3 replaces the first r3 of the same body.
    assert (second.accepted, second.replaced) == (3, 2)
    stored = store.labels_for("m", ["r1", "r2", "r3", "missing"])
    found = {(r.request_id, r.row): (r.label, r.received_at) for r in stored.itertuples()}
    assert found == {
        ("r1", 0): (0, later),
        ("r1", 1): (0, T0),
        ("r2", 0): ([0.5, 0.5], T0),
        ("r3", 0): (0, later),
    }
    # Another model's labels are its own.
    assert store.labels_for("other", ["r1"]).empty
    other = store.add("other", [FeedbackItem("r1", 1)], now=T0)
    assert other.replaced == 0
    assert [k for k in store.received_keys("m", T0, later).itertuples(index=False)] == [
        ("r1", 1),
        ("r2", 0),
    ]
    assert len(store.received_keys("m")) == 4


def test_many_labels_in_one_body(registry: Registry) -> None:
    store = FeedbackStore(registry.db)
    items = [FeedbackItem(f"req-{i}", i % 2) for i in range(2500)]  # several IN (...) chunks
    assert store.add("m", items, now=T0).replaced == 0
    again = store.add("m", [*items[:1200], FeedbackItem("new", 1)], now=T0)
    assert (again.accepted, again.replaced) == (1201, 1200)
    assert len(store.labels_for("m", [f"req-{i}" for i in range(2500)])) == 2500


def test_matched_and_unknown_against_a_real_log(registry: Registry, log: InferenceLog) -> None:
    record(log, "two-rows", rows(2, 0))
    record(log, "one-row", rows(1, 1))
    record(log, None, rows(1, 2))  # the log generates this request's id
    record(log, "other-model", rows(1, 3), model="n")
    store = FeedbackStore(registry.db)
    items = [
        FeedbackItem("two-rows", 1, row=0),
        FeedbackItem("two-rows", 0, row=1),
        FeedbackItem("two-rows", 0, row=2),  # the request had two rows
        FeedbackItem("one-row", 1),
        FeedbackItem("other-model", 1),  # logged, but for model n
    ]
    before = store.add("m", items, known=log.recent_ids("m"))
    assert before.matched == 0  # not flushed yet: the index notes written rows only
    log.flush()
    receipt = store.add("m", items, known=log.recent_ids("m"))
    assert (receipt.accepted, receipt.matched, receipt.unknown, receipt.replaced) == (5, 3, 2, 5)
    assert receipt.unknown_ids == ["two-rows", "other-model"]
    document = receipt.to_json()
    assert document["unknown"] == 2
    assert "kept and joined with the log when it is read" in document["note"]
    assert "other-model" in log.recent_ids("n")
    generated = read_log(log.settings.directory, "m", 1).frame["request_id"].tolist()
    assert len(generated) == 4
    assert not any(rid in log.recent_ids("m") for rid in generated[3:])


def test_the_receipt_lists_at_most_100_unknown_ids(registry: Registry) -> None:
    items = [FeedbackItem(f"u{i}", 0) for i in range(150)]
    document = FeedbackStore(registry.db).add("m", items).to_json()
    assert document["unknown"] == 150
    assert document["unknown_ids"] == [f"u{i}" for i in range(RECEIPT_MAX_IDS)]
    assert document["unknown_ids_total"] == 150
    clean = FeedbackStore(registry.db).add("m", items[:1], known={("u0", 0)}).to_json()
    assert clean["matched"] == 1
    assert "note" not in clean


class CollidingStore(FeedbackStore):
    """Another writer commits one of our new keys just before we insert it (PostgreSQL)."""

    def __init__(self, registry: Registry, collisions: int) -> None:
        super().__init__(registry.db)
        self.collisions = collisions

    def _existing(
        self, session: Session, model: str, keys: list[tuple[str, int]]
    ) -> dict[tuple[str, int], int]:
        found = super()._existing(session, model, keys)
        new = [key for key in keys if key not in found]
        if self.collisions and new:
            self.collisions -= 1
            with self.db.write() as other:
                other.execute(
                    insert(FeedbackRow),
                    [
                        {
                            "model": model,
                            "request_id": new[0][0],
                            "row": new[0][1],
                            "label": 9,
                            "received_at": T0,
                            "source": "other",
                        }
                    ],
                )
        return found


@pytest.fixture
def postgres_registry(postgres_url: str) -> Iterator[Registry]:
    registry = Registry(url=postgres_url)
    yield registry
    registry.close()


@pytest.mark.postgres
def test_a_concurrent_insert_of_the_same_key_is_retried(postgres_registry: Registry) -> None:
    # PostgreSQL only: SQLite serialises writers, so the other insert would wait for ours.
    store = CollidingStore(postgres_registry, collisions=1)
    receipt = store.add("m", [FeedbackItem("r", 1)], now=T0)
    assert receipt.replaced == 1  # the second pass found the other writer's row
    assert store.labels_for("m", ["r"])["label"].tolist() == [1]

    stubborn = CollidingStore(postgres_registry, collisions=2)
    with pytest.raises(Conflict, match="kept colliding"):
        stubborn.add("m", [FeedbackItem("s", 1, row=0), FeedbackItem("s", 1, row=1)], now=T0)


# ---------------------------------------------------------------- the recent-id index


def test_the_index_is_bounded_and_forgets_the_oldest() -> None:
    index = RecentIds(3)
    index.add("a", [("1", 2), ("2", 1)])
    index.add("b", [("1", 1)])
    index.add("a", [("2", 4)])  # seen again: keeps its largest row count, not a new slot
    assert len(index) == 3
    assert ("2", 3) in index.view("a")
    index.add("b", [("2", 1)])  # evicts a/1, the oldest
    assert len(index) == 3
    assert "1" not in index.view("a")
    assert "1" in index.view("b")
    assert ("1", 0) in index.view("b")
    assert ("1", 1) not in index.view("b")
    assert 3 not in index.view("b")
    assert ("1", -1) not in index.view("b")
    assert "x" not in index.view("unknown-model")
    none = RecentIds(0)
    none.add("a", [("1", 1)])
    assert len(none) == 0
    with pytest.raises(ValueError, match="capacity must be >= 0"):
        RecentIds(-1)
    with pytest.raises(ValueError, match="recent_ids must be >= 0"):
        LogSettings(directory=Path("x"), recent_ids=-1)


def test_the_index_notes_each_request_of_a_batch() -> None:
    batch = pa.RecordBatch.from_pydict(
        {
            "request_id": ["a", "a", "a", "gen-1", "b", "a"],
            "row": pa.array([0, 1, 2, 0, 0, 0], pa.int32()),
        }
    )
    index = RecentIds(10)
    index.add_batch("m", batch, skip_prefix="gen-")
    assert index.rows("m", "a") == 3
    assert index.rows("m", "b") == 1
    assert index.rows("m", "gen-1") == 0
    index.add_batch("m", batch.slice(0, 0), skip_prefix=None)
    assert len(index) == 2


def test_a_failing_index_never_costs_logged_rows(
    log: InferenceLog, caplog: pytest.LogCaptureFixture
) -> None:
    class Broken(RecentIds):
        def add_batch(self, model: str, batch: pa.RecordBatch, skip_prefix: str | None) -> None:
            raise RuntimeError("index bug")

    log._recent = Broken(10)
    with caplog.at_level(logging.ERROR, "mlgate.monitors"):
        record(log, "r", rows(2, 0))
        log.flush()
    assert log.stats()["flushed"] == 2
    assert log.stats()["write_errors"] == 0
    assert read_log(log.settings.directory, "m", 1).rows == 2
    assert "noting request ids of m failed" in caplog.text


# ---------------------------------------------------------------- the join


def test_the_join_keeps_labelled_rows_and_counts_what_did_not_join(
    registry: Registry, log: InferenceLog, clock: Clock
) -> None:
    logged = {f"a{i}": rows(2, i) for i in range(4)}
    for i, (request_id, x) in enumerate(logged.items()):
        clock.at(i)
        record(log, request_id, x)
    clock.at(2)
    record(log, "v2", rows(1, 9), version=2)  # another version's row, same window
    clock.at(100)
    record(log, "b0", rows(1, 10))  # after the window
    log.flush()

    store = FeedbackStore(registry.db)
    store.add(
        "m",
        [
            FeedbackItem("a2", 0, row=1),
            FeedbackItem("a0", 1, row=1),
            FeedbackItem("a0", 0, row=0),
            FeedbackItem("b0", 1),  # logged after the window
            FeedbackItem("v2", 1),  # logged by version 2
            FeedbackItem("ghost", 1),  # never logged
        ],
        now=T0 + timedelta(seconds=50),
    )
    store.add("m", [FeedbackItem("a1", 1)], now=T0 + timedelta(seconds=500))  # arrived late
    store.add("m", [FeedbackItem("old", 1)], now=T0 - timedelta(seconds=1))  # before the window

    window = labelled_window(
        log.settings.directory, store, "m", 1, start=T0, end=T0 + timedelta(seconds=60)
    )
    assert window.logged_rows == 8
    assert window.labelled_rows == 4
    assert window.unmatched_ids == 3  # b0, v2, ghost: received within [start, end)
    assert window.duplicate_rows == 0
    assert window.label_columns == ("label",)
    frame = window.frame
    assert list(zip(frame["request_id"], frame["row"], strict=True)) == [
        ("a0", 0),
        ("a0", 1),
        ("a1", 0),
        ("a2", 1),
    ]  # the log's order, oldest first
    assert frame["label"].tolist() == [0, 1, 1, 0]
    assert window.labels.tolist() == [0, 1, 1, 0]
    assert window.labels.dtype == np.int64
    inputs, outputs = window.tensors()
    expected = np.stack([logged["a0"][0], logged["a0"][1], logged["a1"][0], logged["a2"][1]])
    np.testing.assert_array_equal(inputs["x"], expected)
    np.testing.assert_array_equal(outputs["score"], expected[:, :1])
    assert frame["age"].tolist() == expected[:, 0].tolist()

    everything = labelled_window(log.settings.directory, store, "m", 1)
    assert (everything.logged_rows, everything.labelled_rows) == (9, 5)  # b0 joins too
    assert everything.unmatched_ids == 3  # v2, ghost, old
    other_version = labelled_window(log.settings.directory, store, "m", 2)
    assert other_version.labels.tolist() == [1]


def test_list_labels_become_columns(registry: Registry, log: InferenceLog) -> None:
    record(log, "p", rows(3, 0))
    log.flush()
    store = FeedbackStore(registry.db)
    store.add("m", [FeedbackItem("p", [0.2, 0.8], row=2), FeedbackItem("p", [1, 0], row=0)])
    window = labelled_window(log.settings.directory, store, "m", 1)
    assert window.label_columns == ("label_0", "label_1")
    assert window.labels.shape == (2, 2)
    assert window.labels.dtype == np.float64
    assert window.frame["row"].tolist() == [0, 2]
    assert window.frame["label_1"].tolist() == [0.0, 0.8]
    assert window.unmatched_ids == 0


def test_labels_of_different_shapes_are_refused_until_replaced(
    registry: Registry, log: InferenceLog
) -> None:
    record(log, "p", rows(2, 0))
    log.flush()
    store = FeedbackStore(registry.db)
    store.add("m", [FeedbackItem("p", 1, row=0)])
    store.add("m", [FeedbackItem("p", [0, 1], row=1)])
    with pytest.raises(BadRequest, match=r"different shapes \(1 numbers, 1 lists of 2\)"):
        labelled_window(log.settings.directory, store, "m", 1)
    store.add("m", [FeedbackItem("p", 0, row=1)])
    assert labelled_window(log.settings.directory, store, "m", 1).labels.tolist() == [1, 0]


def test_a_reused_request_id_labels_its_newest_row(
    registry: Registry, log: InferenceLog, clock: Clock
) -> None:
    record(log, "same", rows(1, 0))
    clock.at(1)
    newest = rows(1, 1)
    record(log, "same", newest)
    log.flush()
    store = FeedbackStore(registry.db)
    store.add("m", [FeedbackItem("same", 1)])
    window = labelled_window(log.settings.directory, store, "m", 1)
    assert (window.logged_rows, window.labelled_rows, window.duplicate_rows) == (2, 1, 1)
    np.testing.assert_array_equal(window.tensors()[0]["x"], newest)


def test_a_log_column_named_label_is_not_overwritten(registry: Registry, log: InferenceLog) -> None:
    x = rows(2, 0)[:, :2]
    log.record("c", 1, CLASSIFIER, "q", {"x": x}, {"label": np.array([1, 0])}, 0.01)
    log.flush()
    store = FeedbackStore(registry.db)
    store.add("c", [FeedbackItem("q", 0, row=0), FeedbackItem("q", 0, row=1)])
    window = labelled_window(log.settings.directory, store, "c", 1)
    assert window.label_columns == ("_label",)
    assert window.frame["label"].tolist() == [1, 0]  # the model's output
    assert window.frame["_label"].tolist() == [0, 0]  # the truth


def test_an_empty_window_has_no_labels(registry: Registry, tmp_path: Path) -> None:
    store = FeedbackStore(registry.db)
    store.add("m", [FeedbackItem("r", 1)])
    window = labelled_window(tmp_path / "nothing", store, "m", 1)
    assert (window.logged_rows, window.labelled_rows, window.unmatched_ids) == (0, 0, 1)
    assert window.labels.shape == (0,)
    assert window.tensors() == ({}, {})

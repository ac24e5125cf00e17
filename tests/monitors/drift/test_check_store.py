"""Stored drift checks, on SQLite and on the real PostgreSQL server."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from monitors.drift.check_store import CheckStore, DriftCheck
from registry import Registry

START = datetime(2026, 11, 23, 6, 0, tzinfo=UTC)


def check(model: str, version: int, minute: int, *, detected: bool) -> DriftCheck:
    return DriftCheck(
        model=model,
        version=version,
        checked_at=START + timedelta(minutes=minute, seconds=30),
        window_start=START + timedelta(minutes=minute - 1),
        window_end=START + timedelta(minutes=minute),
        rows=1000 + minute,
        reference_digest="ab" * 32,
        share=0.6 if detected else 0.1,
        detected=detected,
        config={"drift": {"drift_share": 0.5}},
        result={"features": [{"column": "x", "score": 0.3}]},
    )


def test_checks_round_trip_and_count_consecutive_detections(registry: Registry) -> None:
    store = CheckStore(registry.db)
    assert store.latest("m") is None
    pattern = [True, True, False, True, True, True]
    stored = [store.add(check("m", 1, i, detected=d)) for i, d in enumerate(pattern)]
    assert [s.consecutive for s in stored] == [1, 2, 0, 1, 2, 3]
    latest = store.latest("m", 1)
    assert latest == stored[-1]
    assert latest.window_end == START + timedelta(minutes=5)
    assert latest.window_end.tzinfo is not None
    assert latest.config == {"drift": {"drift_share": 0.5}}
    assert latest.result["features"][0]["score"] == 0.3
    assert store.get(stored[0].id or 0) == stored[0]
    assert store.get(10_000) is None
    document = latest.to_json()
    assert document["window"] == {
        "start": (START + timedelta(minutes=4)).isoformat(),
        "end": (START + timedelta(minutes=5)).isoformat(),
        "rows": 1005,
    }
    assert document["consecutive_detections"] == 3


def test_versions_and_models_keep_their_own_history(registry: Registry) -> None:
    store = CheckStore(registry.db)
    store.add(check("m", 1, 0, detected=True))
    store.add(check("m", 2, 1, detected=True))
    store.add(check("other", 1, 2, detected=True))
    # A new version starts its own run of detections.
    assert store.latest("m", 2) is not None
    assert store.latest("m", 2).consecutive == 1  # type: ignore[union-attr]
    assert store.latest("m").version == 2  # type: ignore[union-attr]
    assert [c.version for c in store.history("m")] == [2, 1]
    assert [c.version for c in store.history("m", 1)] == [1]
    assert store.history("m", limit=1)[0].version == 2
    assert store.latest("missing") is None


def test_a_second_store_on_the_same_database_sees_the_checks(registry: Registry) -> None:
    CheckStore(registry.db).add(check("m", 1, 0, detected=False))
    other = Registry(url=registry.db.url)
    try:
        assert CheckStore(other.db).latest("m", 1) is not None
    finally:
        other.close()

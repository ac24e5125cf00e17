"""Retraining tasks: idempotent opening, cooldown, the lifecycle, atomic claims."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from monitors.tasks.decisions import approve_task, reject_task
from monitors.tasks.store import TaskStore, task_key
from registry import Registry
from registry.errors import BadRequest, Conflict, NotFound

NOW = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
WORKER = [sys.executable, "-m", "tests.support.claim_worker"]
WINDOW = NOW - timedelta(minutes=3)


def open_one(store: TaskStore, model: str = "m", version: int = 1, **extra: object):  # type: ignore[no-untyped-def]
    values: dict[str, object] = {
        "evidence": {"drift_share": 0.6},
        "source": "monitor",
        "actor": "test",
        "window_start": WINDOW,
        "window_end": NOW,
        "rows": 1000,
        "now": NOW,
        **extra,
    }
    return store.open(model, version, "data_drift", **values)  # type: ignore[arg-type]


def test_a_storm_of_alerts_is_one_task(registry: Registry) -> None:
    store = TaskStore(registry.db)
    first = open_one(store)
    assert first.action == "created"
    assert first.task is not None
    assert first.task.key == task_key("m", 1, "data_drift", WINDOW)
    for i in range(10):
        again = open_one(
            store,
            evidence={"drift_share": 0.5 + i},
            window_start=WINDOW + timedelta(minutes=i),
        )
        assert again.action == "duplicate"
        assert again.task is not None
        assert again.task.id == first.task.id
    task = store.get(first.task.id)
    assert task.duplicate_count == 10
    assert task.evidence == {"drift_share": 9.5}  # the latest evidence
    assert [e.to_status for e in task.events] == ["open"]
    assert len(store.list()) == 1
    # Another version or reason is another problem.
    assert open_one(store, version=2).action == "created"
    assert store.counts() == {("m", "open"): 2}


def test_the_lifecycle_is_enforced_and_audited(registry: Registry) -> None:
    store = TaskStore(registry.db)
    created = open_one(store).task
    assert created is not None
    with pytest.raises(Conflict, match="cannot become promoted"):
        store.transition(created.id, "promoted", reason="skip ahead", actor="t")
    claimed = store.claim("worker-1")
    assert claimed is not None
    assert (claimed.id, claimed.status, claimed.claimed_by) == (created.id, "running", "worker-1")
    assert store.claim("worker-2") is None  # nothing else is open
    candidate = store.transition(
        created.id, "candidate", reason="v2 beats v1", actor="worker-1", candidate_version=2,
        outcome={"auc": 0.8},
    )  # fmt: skip
    assert candidate.candidate_version == 2
    assert candidate.outcome == {"auc": 0.8}
    with pytest.raises(Conflict, match="is candidate, not running"):
        store.transition(created.id, "failed", reason="x", actor="t", expect="running")
    rejected = reject_task(store, created.id, reason="not convinced", actor="alice")
    assert rejected.status == "rejected"
    assert [(e.from_status, e.to_status, e.actor) for e in rejected.events] == [
        (None, "open", "test"),
        ("open", "running", "worker-1"),
        ("running", "candidate", "worker-1"),
        ("candidate", "rejected", "alice"),
    ]
    with pytest.raises(Conflict, match="none: it has ended"):
        store.transition(created.id, "open", reason="again", actor="t")
    # The same window's alert after the end is still the same task, not a new one.
    assert open_one(store).action == "duplicate"


def test_cooldown_after_a_promotion_and_minimum_rows(registry: Registry) -> None:
    registry.register(__import__("tests.fixtures", fromlist=["make_mlp"]).make_mlp(), "m",
                      __import__("torch").randn(2, 6))  # fmt: skip
    store = TaskStore(registry.db, cooldown_s=3600, min_rows=500)
    assert open_one(store, rows=499).action == "refused"
    task = open_one(store).task
    assert task is not None
    store.claim("w", now=NOW)
    store.transition(task.id, "candidate", reason="better", actor="w", candidate_version=1, now=NOW)
    # approve_task moves the alias: version 1 has no passed export, so the registry refuses.
    with pytest.raises(Conflict):
        approve_task(store, registry, task.id, alias="production", reason="ok", actor="alice")
    store.transition(task.id, "promoted", reason="promoted by hand", actor="alice", now=NOW)
    later = NOW + timedelta(minutes=30)
    cooled = open_one(store, version=2, window_start=later, now=later)
    assert cooled.action == "refused"
    assert "cooling down until" in cooled.why
    after = NOW + timedelta(hours=2)
    assert open_one(store, version=2, window_start=after, now=after).action == "created"


def test_errors_name_what_is_wrong(registry: Registry) -> None:
    store = TaskStore(registry.db)
    with pytest.raises(NotFound, match="no retraining task 9"):
        store.get(9)
    with pytest.raises(NotFound, match="no retraining task 9"):
        store.transition(9, "failed", reason="x", actor="t")
    task = open_one(store).task
    assert task is not None
    with pytest.raises(BadRequest, match="unknown task status 'done'"):
        store.transition(task.id, "done", reason="x", actor="t")
    with pytest.raises(BadRequest, match="needs a reason"):
        store.transition(task.id, "rejected", reason=" ", actor="t")
    with pytest.raises(BadRequest, match="unknown task status"):
        store.list(status="nope")
    with pytest.raises(BadRequest, match="needs a reason"):
        store.open("m", 1, "", evidence={}, source="cli", actor="t")
    with pytest.raises(Conflict, match="is open, not candidate"):
        approve_task(store, Registry(url=registry.db.url), task.id, alias="production",
                     reason="ok", actor="alice")  # fmt: skip


def test_two_worker_processes_never_claim_the_same_task(registry: Registry, tmp_path: Path) -> None:
    store = TaskStore(registry.db)
    ids = set()
    for i in range(40):
        created = open_one(store, model=f"m{i}")
        assert created.task is not None
        ids.add(created.task.id)
    start = tmp_path / "go"
    workers = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.support.claim_worker",
                registry.db.url,
                f"w{n}",
                str(start),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        for n in range(2)
    ]
    start.touch()
    claimed = []
    for worker in workers:
        output, _ = worker.communicate(timeout=120)
        assert worker.returncode == 0
        claimed.append([int(line) for line in output.split()])
    assert sorted(claimed[0] + claimed[1]) == sorted(ids)  # every task once, none twice
    assert not set(claimed[0]) & set(claimed[1])
    assert all(t.status == "running" for t in store.list(limit=100))


def test_a_task_without_a_window_gets_the_last_day_and_notes_do_not_move_it(
    registry: Registry,
) -> None:
    store = TaskStore(registry.db, default_window_s=86400)
    opened = store.open("m", 1, "manual", evidence={}, source="cli", actor="alice", now=NOW)
    assert opened.task is not None
    assert opened.task.window_start == NOW - timedelta(days=1)
    assert opened.task.window_end == NOW
    assert store.last_opened("m") == NOW
    assert store.last_opened("other") is None
    running = store.claim("w", now=NOW)
    assert running is not None
    noted = store.note(running.id, candidate_version=4, outcome={"rows": 10})
    assert (noted.status, noted.candidate_version, noted.outcome["rows"]) == ("running", 4, 10)
    with pytest.raises(NotFound):
        store.note(999, candidate_version=1)


def test_a_worker_skips_tasks_for_a_person_and_tasks_waiting_for_labels(
    registry: Registry,
) -> None:
    store = TaskStore(registry.db)
    store.open("m", 1, "data_quality", evidence={}, source="monitor", actor="t", now=NOW)
    waiting = open_one(store, "w")
    assert waiting.task is not None
    claimed = store.claim("worker", now=NOW)
    assert claimed is not None
    assert claimed.id == waiting.task.id
    later = (NOW + timedelta(minutes=5)).isoformat()
    store.transition(claimed.id, "open", reason="waiting for labels", actor="worker",
                     outcome={"retry_after": later, "waiting": "3 of 200"}, now=NOW)  # fmt: skip
    assert store.claim("worker", now=NOW) is None  # the data_quality one is a person's
    assert store.claim("worker", now=NOW + timedelta(minutes=6)) is not None

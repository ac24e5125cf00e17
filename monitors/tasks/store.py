"""Retraining tasks: opened once per confirmed problem, claimed by one worker, audited.

    open ──claim──▶ running ──▶ candidate ──approve──▶ promoted
      │  ▲             │  │          └──────reject───▶ rejected
      │  └─too few ────┘  │          └──(or failed)──▶ failed
      │    labels yet     └──▶ needs-trainer ──(a person's candidate)──▶ running
      └──reject──▶ rejected               └──reject──▶ rejected

Every status change is a `task_events` row with its reason and actor (append-only).

**Idempotency.** A task's key is a hash of (model, serving version, reason, window start),
unique in the table. Opening a task while one for the same model, version and reason is
still active (open, running or candidate) does not open a second: it bumps the active
task's `duplicate_count` and replaces its evidence with the latest. So a storm of alerts
(the in-process monitor every minute, Alertmanager's repeats, a person) is one task.

**Cooldown.** After a task of a model ends `promoted`, no new task opens for that model
for `cooldown_s`: the new version's reference is its own training data, and its first
windows must be given time. Windows with fewer than `min_rows` rows open nothing.

**Claims.** `claim` moves the oldest open task a worker may take to running in one
transaction: SQLite's writers are serialised (BEGIN IMMEDIATE), PostgreSQL skips rows
another worker has locked (`FOR UPDATE SKIP LOCKED`). Two workers never get the same
task. A worker does not take a `data_quality` task (retraining on broken inputs learns
the breakage: a person decides), nor one sent back to wait for labels until its
`outcome.retry_after` has passed.

**Windows.** A task opened without a window (by a person, or by an Alertmanager alert)
gets the last `default_window_s` as its window, so the retrainer trains on recent rows
and not on everything ever logged.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from monitors.schema import TaskEventRow, TaskRow, ensure_tables
from monitors.tasks.records import (
    ACTIVE,
    PERSON_ONLY,
    STATUSES,
    OpenOutcome,
    Task,
    TaskEvent,
    task_from_row,
    task_key,
    task_summary,
)
from registry.db import Database
from registry.errors import BadRequest, Conflict, NotFound

if TYPE_CHECKING:
    from monitors.settings import MonitorSettings
    from registry.store import Registry

__all__ = [
    "ACTIVE",
    "PERSON_ONLY",
    "STATUSES",
    "OpenOutcome",
    "Task",
    "TaskStore",
    "task_key",
    "task_store",
]

_MOVES = {
    "open": {"running", "rejected"},
    "running": {"candidate", "failed", "open", "needs-trainer"},
    "candidate": {"promoted", "rejected", "failed"},
    "needs-trainer": {"running", "rejected"},
}
_CLAIM_SCAN = 50


class TaskStore:
    def __init__(
        self,
        db: Database,
        *,
        cooldown_s: float = 3600.0,
        min_rows: int = 0,
        default_window_s: float = 86400.0,
    ) -> None:
        self.db = db
        self.cooldown_s = cooldown_s
        self.min_rows = min_rows
        self.default_window_s = default_window_s

    # ---------------------------------------------------------------- opening

    def open(
        self,
        model: str,
        serving_version: int,
        reason: str,
        *,
        evidence: Mapping[str, Any],
        source: str,
        actor: str,
        window_start: datetime | None = None,
        window_end: datetime | None = None,
        rows: int | None = None,
        key: str | None = None,
        enforce_min_rows: bool = True,
        now: datetime | None = None,
    ) -> OpenOutcome:
        """Open a task, or count a duplicate on the active one, or refuse (cooldown, rows).

        `enforce_min_rows=False` for rules whose own statistics guard them (a quality fall
        judged on an interval): `min_rows` is drift's rule.
        """
        if not reason.strip():
            raise BadRequest("a retraining task needs a reason")
        now = now or datetime.now(UTC)
        key = key or task_key(model, serving_version, reason, window_start)
        if window_start is None:
            window_start = now - timedelta(seconds=self.default_window_s)
            window_end = window_end or now
        min_rows = self.min_rows if enforce_min_rows else 0
        ensure_tables(self.db)
        for _ in range(2):  # a second pass if another writer inserted the same key first
            try:
                with self.db.write() as session:
                    return self._open(
                        session, model, serving_version, reason, dict(evidence), source,
                        actor, window_start, window_end, rows, key, now, min_rows,
                    )  # fmt: skip
            except IntegrityError:
                continue
        raise Conflict(f"could not open or update the task with key {key}")  # pragma: no cover

    def _open(
        self,
        session: Session,
        model: str,
        version: int,
        reason: str,
        evidence: dict[str, Any],
        source: str,
        actor: str,
        window_start: datetime | None,
        window_end: datetime | None,
        rows: int | None,
        key: str,
        now: datetime,
        min_rows: int,
    ) -> OpenOutcome:
        active = (
            session.scalars(
                select(TaskRow)
                .where(
                    TaskRow.model == model,
                    TaskRow.serving_version == version,
                    TaskRow.reason == reason,
                    TaskRow.status.in_(ACTIVE),
                )
                .order_by(TaskRow.id)
                .limit(1)
            ).first()
            or session.scalars(select(TaskRow).where(TaskRow.key == key)).first()
        )
        if active is not None:
            active.duplicate_count += 1
            active.evidence = evidence
            active.updated_at = now
            if window_end is not None:
                active.window_end = window_end
            if rows is not None:
                active.rows = rows
            session.flush()
            why = f"task {active.id} is already {active.status} for {model}:{version} ({reason})"
            return OpenOutcome("duplicate", task_from_row(active), why)
        if rows is not None and rows < min_rows:
            return OpenOutcome(
                "refused", None, f"the window has {rows} rows; a task needs {min_rows}"
            )
        promoted = session.scalars(
            select(TaskEventRow.at)
            .join(TaskRow, TaskRow.id == TaskEventRow.task_id)
            .where(TaskRow.model == model, TaskEventRow.to_status == "promoted")
            .order_by(TaskEventRow.at.desc())
            .limit(1)
        ).first()
        if promoted is not None and now - promoted < timedelta(seconds=self.cooldown_s):
            until = promoted + timedelta(seconds=self.cooldown_s)
            return OpenOutcome(
                "refused",
                None,
                f"{model} was retrained at {promoted.isoformat()}; cooling down until "
                f"{until.isoformat()}",
            )
        row = TaskRow(
            key=key,
            model=model,
            serving_version=version,
            reason=reason,
            status="open",
            source=source,
            window_start=window_start,
            window_end=window_end,
            rows=rows,
            evidence=evidence,
            duplicate_count=0,
            created_at=now,
            updated_at=now,
            outcome={},
        )
        session.add(row)
        session.flush()
        session.add(
            TaskEventRow(
                task_id=row.id,
                at=now,
                from_status=None,
                to_status="open",
                reason=task_summary(reason, evidence),
                actor=actor,
            )
        )
        session.flush()
        return OpenOutcome("created", task_from_row(row), f"opened task {row.id}")

    # ---------------------------------------------------------------- the lifecycle

    def claim(self, worker: str, *, now: datetime | None = None) -> Task | None:
        """The oldest open task, now running and claimed by `worker`; None if none is open."""
        ensure_tables(self.db)
        now = now or datetime.now(UTC)
        with self.db.write() as session:
            query = (
                select(TaskRow)
                .where(TaskRow.status == "open", TaskRow.reason.not_in(PERSON_ONLY))
                .order_by(TaskRow.id)
                .limit(_CLAIM_SCAN)
            )
            if session.get_bind().dialect.name == "postgresql":
                query = query.with_for_update(skip_locked=True)
            row = next((r for r in session.scalars(query) if _due(r, now)), None)
            if row is None:
                return None
            self._move(session, row, "running", f"claimed by {worker}", worker, now)
            row.claimed_by = worker
            session.flush()
            return task_from_row(row, self._events(session, row.id))

    def transition(
        self,
        task_id: int,
        to: str,
        *,
        reason: str,
        actor: str,
        expect: str | None = None,
        candidate_version: int | None = None,
        outcome: Mapping[str, Any] | None = None,
        error: str | None = None,
        now: datetime | None = None,
    ) -> Task:
        """Move a task on; 409 if the move is not allowed from where it is (or `expect`)."""
        if to not in STATUSES:
            raise BadRequest(f"unknown task status {to!r}; statuses: {list(STATUSES)}")
        if not reason.strip():
            raise BadRequest("a task's status change needs a reason")
        ensure_tables(self.db)
        now = now or datetime.now(UTC)
        with self.db.write() as session:
            row = session.get(TaskRow, task_id, with_for_update=True)
            if row is None:
                raise NotFound(f"no retraining task {task_id}")
            if expect is not None and row.status != expect:
                raise Conflict(f"task {task_id} is {row.status}, not {expect}")
            self._move(session, row, to, reason, actor, now)
            if candidate_version is not None:
                row.candidate_version = candidate_version
            if outcome is not None:
                row.outcome = {**row.outcome, **outcome}
            if error is not None:
                row.error = error
            session.flush()
            return task_from_row(row, self._events(session, row.id))

    def _move(
        self, session: Session, row: TaskRow, to: str, reason: str, actor: str, now: datetime
    ) -> None:
        if to not in _MOVES.get(row.status, set()):
            allowed = sorted(_MOVES.get(row.status, set())) or "none: it has ended"
            raise Conflict(
                f"task {row.id} is {row.status}; it cannot become {to} (allowed: {allowed})"
            )
        session.add(
            TaskEventRow(
                task_id=row.id,
                at=now,
                from_status=row.status,
                to_status=to,
                reason=reason,
                actor=actor,
            )
        )
        row.status = to
        row.updated_at = now

    def note(
        self,
        task_id: int,
        *,
        candidate_version: int | None = None,
        outcome: Mapping[str, Any] | None = None,
        now: datetime | None = None,
    ) -> Task:
        """Record what a running task has produced so far, without moving it: the candidate
        is named as soon as it is registered, whatever happens to it next."""
        ensure_tables(self.db)
        with self.db.write() as session:
            row = session.get(TaskRow, task_id, with_for_update=True)
            if row is None:
                raise NotFound(f"no retraining task {task_id}")
            if candidate_version is not None:
                row.candidate_version = candidate_version
            if outcome is not None:
                row.outcome = {**row.outcome, **outcome}
            row.updated_at = now or datetime.now(UTC)
            session.flush()
            return task_from_row(row, self._events(session, row.id))

    # ---------------------------------------------------------------- reading

    def last_opened(self, model: str) -> datetime | None:
        """When the model's newest task was opened (for the schedule rule)."""
        ensure_tables(self.db)
        with self.db.read() as session:
            found: datetime | None = session.scalar(
                select(func.max(TaskRow.created_at)).where(TaskRow.model == model)
            )
            return found

    def get(self, task_id: int) -> Task:
        ensure_tables(self.db)
        with self.db.read() as session:
            row = session.get(TaskRow, task_id)
            if row is None:
                raise NotFound(f"no retraining task {task_id}")
            return task_from_row(row, self._events(session, task_id))

    def list(
        self, *, model: str | None = None, status: str | None = None, limit: int = 100
    ) -> list[Task]:
        """Newest first."""
        if status is not None and status not in STATUSES:
            raise BadRequest(f"unknown task status {status!r}; statuses: {list(STATUSES)}")
        ensure_tables(self.db)
        query = select(TaskRow)
        if model is not None:
            query = query.where(TaskRow.model == model)
        if status is not None:
            query = query.where(TaskRow.status == status)
        with self.db.read() as session:
            rows = session.scalars(query.order_by(TaskRow.id.desc()).limit(limit)).all()
            return [task_from_row(r) for r in rows]

    def counts(self) -> dict[tuple[str, str], int]:
        """(model, status) → tasks, for `mlgate_retraining_tasks`."""
        ensure_tables(self.db)
        with self.db.read() as session:
            found = session.execute(
                select(TaskRow.model, TaskRow.status, func.count()).group_by(
                    TaskRow.model, TaskRow.status
                )
            ).all()
            return {(model, status): int(n) for model, status, n in found}

    @staticmethod
    def _events(session: Session, task_id: int) -> tuple[TaskEvent, ...]:
        rows = session.scalars(
            select(TaskEventRow).where(TaskEventRow.task_id == task_id).order_by(TaskEventRow.id)
        ).all()
        return tuple(TaskEvent(r.at, r.from_status, r.to_status, r.reason, r.actor) for r in rows)


def _due(row: TaskRow, now: datetime) -> bool:
    """Not waiting: a task sent back for labels is tried again after its retry time."""
    retry = (row.outcome or {}).get("retry_after")
    return retry is None or datetime.fromisoformat(retry) <= now


def task_store(registry: Registry, settings: MonitorSettings) -> TaskStore:
    """The task store with the cooldown and minimum rows from the settings."""
    return TaskStore(
        registry.db,
        cooldown_s=settings.task_cooldown_s,
        min_rows=settings.task_min_rows,
        default_window_s=settings.task_default_window_s,
    )

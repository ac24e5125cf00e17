"""Monitoring's tables, in the registry's database, migrated on first use.

    drift_checks     one row per drift check (drift/check_store.py)
    retraining_tasks one row per task, with its idempotency key and evidence (tasks/store.py)
    task_events      every status change of a task, with its reason (append-only)
    feedback         ground truth per (model, request id, row); a new label replaces the
                     old one (quality/feedback.py)
    quality_checks   one row per quality evaluation of a version: realised and estimated
                     figures, label coverage and delay, the decision (quality/store.py)
    monitor_policies per-model or per-version overrides of the decision thresholds
                     (quality/policy_store.py)

They use their own SQLAlchemy metadata and their own Alembic environment
(monitors/migrations/, version table `alembic_version_monitors`): changing them changes
nothing in the registry's tables or revisions. A change here needs a revision there.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from monitors.migrations import MONITOR_MIGRATIONS
from registry.db import Database
from registry.schema import UTCDateTime

__all__ = [
    "DriftCheckRow",
    "FeedbackRow",
    "MonitorBase",
    "MonitorPolicyRow",
    "QualityCheckRow",
    "TaskEventRow",
    "TaskRow",
    "ensure_tables",
]


class MonitorBase(DeclarativeBase):
    pass


class DriftCheckRow(MonitorBase):
    __tablename__ = "drift_checks"
    __table_args__ = (Index("ix_drift_checks_model_version", "model", "version", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    model: Mapped[str] = mapped_column(String(200))
    version: Mapped[int] = mapped_column(Integer)
    checked_at: Mapped[datetime] = mapped_column(UTCDateTime())
    window_start: Mapped[datetime] = mapped_column(UTCDateTime())
    window_end: Mapped[datetime] = mapped_column(UTCDateTime())
    rows: Mapped[int] = mapped_column(Integer)
    reference_digest: Mapped[str] = mapped_column(String(64))
    share: Mapped[float] = mapped_column(Float)
    detected: Mapped[bool] = mapped_column(Boolean)
    consecutive: Mapped[int] = mapped_column(Integer)
    config: Mapped[dict[str, Any]] = mapped_column(JSON)
    result: Mapped[dict[str, Any]] = mapped_column(JSON)


class TaskRow(MonitorBase):
    __tablename__ = "retraining_tasks"
    __table_args__ = (Index("ix_retraining_tasks_model_status", "model", "status"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(64), unique=True)
    model: Mapped[str] = mapped_column(String(200))
    serving_version: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    source: Mapped[str] = mapped_column(String(32))
    window_start: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    window_end: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    rows: Mapped[int | None] = mapped_column(Integer, nullable=True)
    evidence: Mapped[dict[str, Any]] = mapped_column(JSON)
    duplicate_count: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    claimed_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    candidate_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    outcome: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)


class TaskEventRow(MonitorBase):
    """Append-only: no code updates or deletes these rows."""

    __tablename__ = "task_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("retraining_tasks.id"), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    from_status: Mapped[str | None] = mapped_column(String(16), nullable=True)
    to_status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text)
    actor: Mapped[str] = mapped_column(String(200))


class FeedbackRow(MonitorBase):
    """One label per logged row: (model, request_id, row) is unique."""

    __tablename__ = "feedback"
    __table_args__ = (
        UniqueConstraint("model", "request_id", "row", name="uq_feedback_key"),
        # The join counts the labels received in a window that matched no logged row.
        Index("ix_feedback_model_received", "model", "received_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    model: Mapped[str] = mapped_column(String(200))
    request_id: Mapped[str] = mapped_column(String(512))
    row: Mapped[int] = mapped_column(Integer)
    label: Mapped[Any] = mapped_column(JSON)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime())
    known_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    source: Mapped[str] = mapped_column(String(64))


class QualityCheckRow(MonitorBase):
    __tablename__ = "quality_checks"
    __table_args__ = (Index("ix_quality_checks_model_version", "model", "version", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    model: Mapped[str] = mapped_column(String(200))
    version: Mapped[int] = mapped_column(Integer)
    checked_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # unknown (no problem), no-baseline, insufficient, holding, degraded
    status: Mapped[str] = mapped_column(String(16))
    metric: Mapped[str | None] = mapped_column(String(32), nullable=True)
    labelled_rows: Mapped[int] = mapped_column(Integer)
    result: Mapped[dict[str, Any]] = mapped_column(JSON)


class MonitorPolicyRow(MonitorBase):
    """Threshold overrides for a model (version 0) or one version of it."""

    __tablename__ = "monitor_policies"
    __table_args__ = (UniqueConstraint("model", "version", name="uq_monitor_policy"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    model: Mapped[str] = mapped_column(String(200))
    version: Mapped[int] = mapped_column(Integer)
    settings: Mapped[dict[str, Any]] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_by: Mapped[str] = mapped_column(String(200))


_ready: set[str] = set()


def ensure_tables(db: Database) -> None:
    """Migrate monitoring's tables once per process and database (safe when many start)."""
    if db.url in _ready:
        return
    db.migrate(MONITOR_MIGRATIONS)
    _ready.add(db.url)

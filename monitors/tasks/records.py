"""What a retraining task is, as callers see it: plain data, and its JSON."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from monitors.schema import TaskRow

__all__ = [
    "ACTIVE",
    "PERSON_ONLY",
    "STATUSES",
    "OpenOutcome",
    "Task",
    "TaskEvent",
    "task_from_row",
    "task_key",
    "task_summary",
]

STATUSES = ("open", "running", "candidate", "needs-trainer", "promoted", "rejected", "failed")
ACTIVE = ("open", "running", "candidate", "needs-trainer")
PERSON_ONLY = ("data_quality",)
"""Reasons a retraining worker never claims: a person reviews them."""


def task_key(model: str, version: int, reason: str, window_start: datetime | str | None) -> str:
    start = window_start.isoformat() if isinstance(window_start, datetime) else window_start
    text = f"{model}|{version}|{reason}|{start or ''}"
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class TaskEvent:
    at: datetime
    from_status: str | None
    to_status: str
    reason: str
    actor: str

    def to_json(self) -> dict[str, Any]:
        return {
            "at": self.at.isoformat(),
            "from": self.from_status,
            "to": self.to_status,
            "reason": self.reason,
            "actor": self.actor,
        }


@dataclass(frozen=True, slots=True)
class Task:
    id: int
    key: str
    model: str
    serving_version: int
    reason: str
    status: str
    source: str
    window_start: datetime | None
    window_end: datetime | None
    rows: int | None
    evidence: dict[str, Any]
    duplicate_count: int
    created_at: datetime
    updated_at: datetime
    claimed_by: str | None
    candidate_version: int | None
    outcome: dict[str, Any]
    error: str | None
    events: tuple[TaskEvent, ...] = field(default=())

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "key": self.key,
            "model": self.model,
            "serving_version": self.serving_version,
            "reason": self.reason,
            "status": self.status,
            "source": self.source,
            "window": {
                "start": self.window_start.isoformat() if self.window_start else None,
                "end": self.window_end.isoformat() if self.window_end else None,
                "rows": self.rows,
            },
            "evidence": self.evidence,
            "duplicate_count": self.duplicate_count,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
            "claimed_by": self.claimed_by,
            "candidate_version": self.candidate_version,
            "outcome": self.outcome,
            "error": self.error,
            "events": [e.to_json() for e in self.events],
        }


def task_from_row(row: TaskRow, events: tuple[TaskEvent, ...] = ()) -> Task:
    return Task(
        id=row.id,
        key=row.key,
        model=row.model,
        serving_version=row.serving_version,
        reason=row.reason,
        status=row.status,
        source=row.source,
        window_start=row.window_start,
        window_end=row.window_end,
        rows=row.rows,
        evidence=dict(row.evidence),
        duplicate_count=row.duplicate_count,
        created_at=row.created_at,
        updated_at=row.updated_at,
        claimed_by=row.claimed_by,
        candidate_version=row.candidate_version,
        outcome=dict(row.outcome or {}),
        error=row.error,
        events=events,
    )


@dataclass(frozen=True, slots=True)
class OpenOutcome:
    """What opening did: `created` a task, updated an active `duplicate`, or was `refused`."""

    action: str
    task: Task | None
    why: str


def task_summary(reason: str, evidence: Mapping[str, Any]) -> str:
    """The one line a task shows: its reason, and the evidence's summary or drift share."""
    if isinstance(evidence.get("summary"), str):
        return f"{reason}: {evidence['summary']}"
    share = evidence.get("drift_share")
    if isinstance(share, int | float):
        return f"{reason}: drift share {share:.2f}"
    return reason

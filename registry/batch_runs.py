"""The record of each file scored with a version: which version (resolved, never an alias),
the input's and the outputs' sha256, the counts and the time, who ran it and where.

A prediction file can then be traced to the exact version that wrote it
(`mlgate runs --digest SHA`), and a version to every file it scored. Records are only ever
added.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from registry.names import ModelRef
from registry.queries import find_model, resolve
from registry.schema import BatchRunRow, ModelRow, VersionRow

__all__ = ["BatchRun", "BatchRunInput", "add_batch_run", "batch_runs"]


@dataclass(frozen=True)
class BatchRunInput:
    """What a finished (or failed) run reports; the registry adds the version and the id."""

    status: str
    runner: str
    input_uri: str
    input_digest: str
    rows: int
    scored: int
    rejected: int
    started_at: datetime
    seconds: float
    output_uri: str | None = None
    output_digest: str | None = None
    rejects_uri: str | None = None
    rejects_digest: str | None = None
    error: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class BatchRun(BatchRunInput):
    id: int = 0
    model: str = ""
    version: int = 0
    actor: str = ""

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["started_at"] = self.started_at.isoformat()
        return data


def add_batch_run(session: Session, ref: ModelRef, run: BatchRunInput, actor: str) -> BatchRun:
    version = resolve(session, ref)
    row = BatchRunRow(version_id=version.id, actor=actor, **asdict(run))
    session.add(row)
    session.flush()
    return _record(row, version.model.name, version.number)


def batch_runs(
    session: Session, name: str | None, *, digest: str | None = None, limit: int = 50
) -> list[BatchRun]:
    """Newest first; of one model, or of every model; only those that read or wrote `digest`."""
    query = (
        select(BatchRunRow, ModelRow.name, VersionRow.number)
        .join(VersionRow, BatchRunRow.version_id == VersionRow.id)
        .join(ModelRow, VersionRow.model_id == ModelRow.id)
        .order_by(BatchRunRow.id.desc())
        .limit(limit)
    )
    if name is not None:
        query = query.where(ModelRow.id == find_model(session, name).id)
    if digest is not None:
        query = query.where(
            (BatchRunRow.input_digest == digest)
            | (BatchRunRow.output_digest == digest)
            | (BatchRunRow.rejects_digest == digest)
        )
    return [_record(row, model, number) for row, model, number in session.execute(query).all()]


def _record(row: BatchRunRow, model: str, number: int) -> BatchRun:
    fields = {name: getattr(row, name) for name in BatchRunInput.__dataclass_fields__}
    return BatchRun(**fields, id=row.id, model=model, version=number, actor=row.actor)

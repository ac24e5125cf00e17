"""The record of each file scored with a version: which version (resolved, never an alias),
the input's and the outputs' sha256, the counts and the time, who ran it and where.

A run's row is written when it starts (`running`) and updated as it goes (rows, progress),
so that any process sharing the database can follow it: `mlgate runs`, and every gateway
replica answering `GET /batch/jobs/{id}`. It ends `succeeded` (with the outputs' digests)
or `failed` (with the error; no output was written). A prediction file can then be traced
to the exact version that wrote it (`mlgate runs --digest SHA`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from registry.db import Database
from registry.errors import NotFound
from registry.queries import as_ref, find_model, resolve
from registry.schema import BatchRunRow, ModelRow, VersionRow, utcnow

__all__ = ["BatchRun", "BatchRuns"]

_UPDATABLE = frozenset(
    {
        "status",
        "input_digest",
        "output_digest",
        "rejects_uri",
        "rejects_digest",
        "rows",
        "scored",
        "rejected",
        "progress",
        "seconds",
        "error",
        "details",
    }
)


@dataclass(frozen=True)
class BatchRun:
    id: int
    model: str
    version: int
    status: str
    runner: str
    input_uri: str
    output_uri: str
    started_at: datetime
    updated_at: datetime
    actor: str
    input_digest: str | None = None
    output_digest: str | None = None
    rejects_uri: str | None = None
    rejects_digest: str | None = None
    rows: int = 0
    scored: int = 0
    rejected: int = 0
    progress: float = 0.0
    seconds: float = 0.0
    error: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def done(self) -> bool:
        return self.status != "running"

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["started_at"] = self.started_at.isoformat()
        data["updated_at"] = self.updated_at.isoformat()
        return data


class BatchRuns:
    """`Registry.batch_runs`: start, update, read and list the records."""

    def __init__(self, db: Database, actor: Callable[[], str]) -> None:
        self._db = db
        self._actor = actor

    def start(
        self, ref: str, *, runner: str, input_uri: str, output_uri: str, details: Mapping[str, Any]
    ) -> BatchRun:
        """Record a file being scored with the version `ref` names, `running`."""
        with self._db.write() as session:
            version = resolve(session, as_ref(ref))
            row = BatchRunRow(
                version_id=version.id,
                status="running",
                runner=runner,
                input_uri=input_uri,
                output_uri=output_uri,
                details=dict(details),
                actor=self._actor(),
            )
            session.add(row)
            session.flush()
            return _record(row, version.model.name, version.number)

    def update(self, run_id: int, **fields: Any) -> BatchRun:
        unknown = set(fields) - _UPDATABLE
        if unknown:
            raise ValueError(f"batch run fields that cannot change: {sorted(unknown)}")
        with self._db.write() as session:
            row = _row(session, run_id)
            for name, value in fields.items():
                setattr(row, name, value)
            row.updated_at = utcnow()
            session.flush()
            return _read(session, run_id)

    def get(self, run_id: int) -> BatchRun:
        with self._db.read() as session:
            return _read(session, run_id)

    def list(
        self, name: str | None = None, *, digest: str | None = None, limit: int = 50
    ) -> list[BatchRun]:
        """Newest first; of one model or of all; only those that read or wrote `digest`."""
        query = (
            select(BatchRunRow, ModelRow.name, VersionRow.number)
            .join(VersionRow, BatchRunRow.version_id == VersionRow.id)
            .join(ModelRow, VersionRow.model_id == ModelRow.id)
            .order_by(BatchRunRow.id.desc())
            .limit(limit)
        )
        with self._db.read() as session:
            if name is not None:
                query = query.where(ModelRow.id == find_model(session, name).id)
            if digest is not None:
                query = query.where(
                    (BatchRunRow.input_digest == digest)
                    | (BatchRunRow.output_digest == digest)
                    | (BatchRunRow.rejects_digest == digest)
                )
            rows = session.execute(query).all()
            return [_record(row, model, number) for row, model, number in rows]


def _read(session: Session, run_id: int) -> BatchRun:
    row = _row(session, run_id)
    version = session.get(VersionRow, row.version_id)
    assert version is not None  # a foreign key
    return _record(row, version.model.name, version.number)


def _row(session: Session, run_id: int) -> BatchRunRow:
    row = session.get(BatchRunRow, run_id)
    if row is None:
        raise NotFound(f"no batch run {run_id}")
    return row


def _record(row: BatchRunRow, model: str, number: int) -> BatchRun:
    names = BatchRun.__dataclass_fields__.keys() - {"model", "version"}
    return BatchRun(**{n: getattr(row, n) for n in names}, model=model, version=number)

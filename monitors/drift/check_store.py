"""Stored drift checks: one row per check, in the registry's database.

Each check keeps what is needed to trust and reproduce it: the model and version, the
reference data's digest, the window's bounds and row count, the configuration, and
Evidently's per-feature results as JSON. In the registry's database (SQLite by default,
PostgreSQL for many replicas) so that every gateway replica can answer
`GET /monitoring/models/{m}/drift` with what the one `mlgate monitor` process found.

The table is monitoring's own (monitors/schema.py), created on first use.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select

from monitors.schema import DriftCheckRow, ensure_tables
from registry.db import Database

__all__ = ["CheckStore", "DriftCheck"]


@dataclass(frozen=True, slots=True)
class DriftCheck:
    model: str
    version: int
    checked_at: datetime
    window_start: datetime
    window_end: datetime
    rows: int
    reference_digest: str
    share: float
    detected: bool
    config: dict[str, Any]
    result: dict[str, Any]
    consecutive: int = 0
    id: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "model": self.model,
            "version": self.version,
            "checked_at": self.checked_at.isoformat(),
            "window": {
                "start": self.window_start.isoformat(),
                "end": self.window_end.isoformat(),
                "rows": self.rows,
            },
            "reference_digest": self.reference_digest,
            "share": self.share,
            "detected": self.detected,
            "consecutive_detections": self.consecutive,
            "config": self.config,
            "result": self.result,
        }


def _from_row(row: DriftCheckRow) -> DriftCheck:
    return DriftCheck(
        model=row.model,
        version=row.version,
        checked_at=row.checked_at,
        window_start=row.window_start,
        window_end=row.window_end,
        rows=row.rows,
        reference_digest=row.reference_digest,
        share=row.share,
        detected=row.detected,
        config=row.config,
        result=row.result,
        consecutive=row.consecutive,
        id=row.id,
    )


class CheckStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def _ensure(self) -> None:
        ensure_tables(self.db)

    def add(self, check: DriftCheck) -> DriftCheck:
        """Store a check; its `consecutive` count continues the previous check's."""
        self._ensure()
        with self.db.write() as session:
            previous = session.scalars(
                select(DriftCheckRow.consecutive)
                .where(DriftCheckRow.model == check.model, DriftCheckRow.version == check.version)
                .order_by(DriftCheckRow.id.desc())
                .limit(1)
            ).first()
            consecutive = (previous or 0) + 1 if check.detected else 0
            row = DriftCheckRow(
                model=check.model,
                version=check.version,
                checked_at=check.checked_at,
                window_start=check.window_start,
                window_end=check.window_end,
                rows=check.rows,
                reference_digest=check.reference_digest,
                share=check.share,
                detected=check.detected,
                consecutive=consecutive,
                config=check.config,
                result=check.result,
            )
            session.add(row)
            session.flush()
            return _from_row(row)

    def latest(self, model: str, version: int | None = None) -> DriftCheck | None:
        found = self.history(model, version, limit=1)
        return found[0] if found else None

    def history(
        self, model: str, version: int | None = None, *, limit: int = 100
    ) -> list[DriftCheck]:
        """The newest checks first."""
        self._ensure()
        query = select(DriftCheckRow).where(DriftCheckRow.model == model)
        if version is not None:
            query = query.where(DriftCheckRow.version == version)
        with self.db.read() as session:
            rows = session.scalars(query.order_by(DriftCheckRow.id.desc()).limit(limit)).all()
            return [_from_row(r) for r in rows]

    def get(self, check_id: int) -> DriftCheck | None:
        self._ensure()
        with self.db.read() as session:
            row = session.get(DriftCheckRow, check_id)
            return _from_row(row) if row is not None else None

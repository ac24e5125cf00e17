"""Stored quality evaluations: one row per evaluation of a version, in the registry's database.

Like the drift checks (`drift/check_store.py`), they live in the database every gateway replica
shares, so that `GET /monitoring/models/{m}/quality` and the gauges answer the same on all
of them with what one monitor found. A row holds the status and the whole evaluation as
JSON: the realised and estimated figures over the newest rows, each bucket's figures
(the history of the label horizon), label coverage and delay, and the decision.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import select

from monitors.schema import QualityCheckRow, ensure_tables
from registry.db import Database

__all__ = ["STATUSES", "QualityCheck", "QualityStore"]

STATUSES = ("unknown", "no-baseline", "insufficient", "holding", "degraded")


@dataclass(frozen=True, slots=True)
class QualityCheck:
    model: str
    version: int
    checked_at: datetime
    status: str
    metric: str | None
    labelled_rows: int
    result: dict[str, Any]
    id: int | None = None

    def with_result(self, **changes: Any) -> QualityCheck:
        return replace(self, result={**self.result, **changes})

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "model": self.model,
            "version": self.version,
            "checked_at": self.checked_at.isoformat(),
            "status": self.status,
            "metric": self.metric,
            "labelled_rows": self.labelled_rows,
            **self.result,
        }


def _from_row(row: QualityCheckRow) -> QualityCheck:
    return QualityCheck(
        model=row.model,
        version=row.version,
        checked_at=row.checked_at,
        status=row.status,
        metric=row.metric,
        labelled_rows=row.labelled_rows,
        result=dict(row.result),
        id=row.id,
    )


class QualityStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def add(self, check: QualityCheck) -> QualityCheck:
        ensure_tables(self.db)
        with self.db.write() as session:
            row = QualityCheckRow(
                model=check.model,
                version=check.version,
                checked_at=check.checked_at,
                status=check.status,
                metric=check.metric,
                labelled_rows=check.labelled_rows,
                result=check.result,
            )
            session.add(row)
            session.flush()
            return _from_row(row)

    def latest(self, model: str, version: int | None = None) -> QualityCheck | None:
        found = self.history(model, version, limit=1)
        return found[0] if found else None

    def history(
        self, model: str, version: int | None = None, *, limit: int = 100
    ) -> list[QualityCheck]:
        """The newest evaluations first."""
        ensure_tables(self.db)
        query = select(QualityCheckRow).where(QualityCheckRow.model == model)
        if version is not None:
            query = query.where(QualityCheckRow.version == version)
        with self.db.read() as session:
            rows = session.scalars(query.order_by(QualityCheckRow.id.desc()).limit(limit)).all()
            return [_from_row(r) for r in rows]

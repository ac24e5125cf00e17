"""The `feedback` table: ground truth per (model, request id, row), and what adding did.

The key (model, request id, row) is unique: a second label for the same row replaces the
first, and the receipt counts it as `replaced`. The body's rules are `feedback_body`.

Labels are stored whether or not the log is known to hold their row. At POST time the
gateway can only say whether its own recent log holds it (`InferenceLog.recent_ids`):
those are `matched`, the others `unknown`: kept, never dropped, and joined with the log
when a retrainer reads a window (`monitors.quality.labelled_window`), which counts the labels it
could not join.

Writes are one transaction per body: the existing keys are read, then new rows inserted
and replaced ones updated in bulk. SQLite serialises writers (BEGIN IMMEDIATE), so that is
atomic there; on PostgreSQL two bodies inserting the same new key at once make one fail
on the unique key, and it runs again, finding that key stored.
"""

from __future__ import annotations

from collections.abc import Container, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from monitors.quality.feedback_body import FeedbackItem
from monitors.schema import FeedbackRow, ensure_tables
from registry.db import Database
from registry.errors import Conflict

if TYPE_CHECKING:  # pandas is imported where a function needs it, not by the gateway
    import pandas as pd

__all__ = ["RECEIPT_MAX_IDS", "UNKNOWN_NOTE", "FeedbackReceipt", "FeedbackStore"]

RECEIPT_MAX_IDS = 100
_CHUNK = 900  # ids per IN (...) query: under the 999 binds of older SQLite builds
UNKNOWN_NOTE = (
    "unknown: no row with this request id and row in this gateway's recent inference log "
    "(not flushed yet, written by another replica or too long ago, sampled out, or never "
    "served here); the labels are kept and joined with the log when it is read"
)


@dataclass(frozen=True, slots=True)
class FeedbackReceipt:
    """What `add` did. `matched + unknown == accepted`; `replaced` counts within both."""

    model: str
    accepted: int
    matched: int
    replaced: int
    unknown_ids: list[str]
    """The distinct request ids of the unknown items, in body order."""

    @property
    def unknown(self) -> int:
        return self.accepted - self.matched

    def to_json(self) -> dict[str, Any]:
        document: dict[str, Any] = {
            "model": self.model,
            "accepted": self.accepted,
            "matched": self.matched,
            "unknown": self.unknown,
            "replaced": self.replaced,
            "unknown_ids": self.unknown_ids[:RECEIPT_MAX_IDS],
            "unknown_ids_total": len(self.unknown_ids),
        }
        if self.unknown:
            document["note"] = UNKNOWN_NOTE
        return document


class FeedbackStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def add(
        self,
        model: str,
        items: Sequence[FeedbackItem],
        *,
        known: Container[tuple[str, int]] = (),
        source: str = "api",
        now: datetime | None = None,
    ) -> FeedbackReceipt:
        """Store `items` for `model`; `known` holds the (request id, row) seen logged."""
        now = now or datetime.now(UTC)
        latest: dict[tuple[str, int], FeedbackItem] = {}
        for item in items:  # a later item for the same row replaces an earlier one
            latest[(item.request_id, item.row)] = item
        unknown: dict[str, None] = {}
        matched = 0
        for item in items:
            if (item.request_id, item.row) in known:
                matched += 1
            else:
                unknown[item.request_id] = None
        ensure_tables(self.db)
        for attempt in range(2):
            try:
                with self.db.write() as session:
                    stored_before = self._write(session, model, latest, source, now)
                break
            except IntegrityError:  # PostgreSQL: another body inserted one of our keys
                if attempt:
                    raise Conflict(
                        f"feedback for {model} kept colliding with another writer; send it again"
                    ) from None
        return FeedbackReceipt(
            model=model,
            accepted=len(items),
            matched=matched,
            replaced=len(items) - len(latest) + stored_before,
            unknown_ids=list(unknown),
        )

    def _write(
        self,
        session: Session,
        model: str,
        latest: dict[tuple[str, int], FeedbackItem],
        source: str,
        now: datetime,
    ) -> int:
        """Insert new keys, update stored ones; return how many were stored before."""
        existing = self._existing(session, model, list(latest))
        inserts: list[dict[str, Any]] = []
        updates: list[dict[str, Any]] = []
        for key, item in latest.items():
            values = {
                "label": item.label,
                "received_at": now,
                "known_at": item.known_at,
                "source": source,
            }
            if key in existing:
                updates.append({"id": existing[key], **values})
            else:
                inserts.append({"model": model, "request_id": key[0], "row": key[1], **values})
        if inserts:
            session.execute(insert(FeedbackRow), inserts)
        if updates:
            session.execute(update(FeedbackRow), updates)
        return len(updates)

    def _existing(
        self, session: Session, model: str, keys: list[tuple[str, int]]
    ) -> dict[tuple[str, int], int]:
        """The stored keys among `keys`, with their primary keys."""
        wanted = set(keys)
        existing: dict[tuple[str, int], int] = {}
        for chunk in _chunks(list(dict.fromkeys(request_id for request_id, _ in keys))):
            found = session.execute(
                select(FeedbackRow.id, FeedbackRow.request_id, FeedbackRow.row).where(
                    FeedbackRow.model == model, FeedbackRow.request_id.in_(chunk)
                )
            ).all()
            existing.update({(rid, row): pk for pk, rid, row in found if (rid, row) in wanted})
        return existing

    def labels_for(self, model: str, request_ids: Sequence[str]) -> pd.DataFrame:
        """The labels of these requests: columns request_id, row, label, received_at."""
        ensure_tables(self.db)
        found: list[Any] = []
        with self.db.read() as session:
            for chunk in _chunks(list(dict.fromkeys(request_ids))):
                found.extend(
                    session.execute(
                        select(
                            FeedbackRow.request_id,
                            FeedbackRow.row,
                            FeedbackRow.label,
                            FeedbackRow.received_at,
                        ).where(FeedbackRow.model == model, FeedbackRow.request_id.in_(chunk))
                    ).all()
                )
        return _frame(found, ["request_id", "row", "label", "received_at"])

    def received_labels(self, model: str, start: datetime, end: datetime) -> pd.DataFrame:
        """The labels received (or replaced) in `[start, end)`, with their values: what the
        quality monitor joins into the predictions it already sampled."""
        ensure_tables(self.db)
        query = select(
            FeedbackRow.request_id, FeedbackRow.row, FeedbackRow.label, FeedbackRow.received_at
        ).where(
            FeedbackRow.model == model,
            FeedbackRow.received_at >= start,
            FeedbackRow.received_at < end,
        )
        with self.db.read() as session:
            found = session.execute(query).all()
        return _frame(found, ["request_id", "row", "label", "received_at"])

    def received_keys(
        self, model: str, start: datetime | None = None, end: datetime | None = None
    ) -> pd.DataFrame:
        """(request_id, row) of the labels received in `[start, end)`."""
        ensure_tables(self.db)
        query = select(FeedbackRow.request_id, FeedbackRow.row).where(FeedbackRow.model == model)
        if start is not None:
            query = query.where(FeedbackRow.received_at >= start)
        if end is not None:
            query = query.where(FeedbackRow.received_at < end)
        with self.db.read() as session:
            return _frame(session.execute(query).all(), ["request_id", "row"])


def _chunks(values: list[str]) -> list[list[str]]:
    return [values[i : i + _CHUNK] for i in range(0, len(values), _CHUNK)]


def _frame(rows: Sequence[Any], columns: list[str]) -> pd.DataFrame:
    import pandas as pd

    frame = pd.DataFrame([tuple(r) for r in rows], columns=columns)
    frame["request_id"] = frame["request_id"].astype("str")
    frame["row"] = frame["row"].astype("int64")
    return frame

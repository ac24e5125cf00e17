"""Canaries: a version that answers a share (`weight`) of the traffic an alias routes.

Every gateway serving the alias splits its requests between the alias's version and the
canary: by a request key when the client sends one (the same key always reaches the same
version), at random otherwise. A canary runs until it is rolled back (by the gateway's rule
when it does worse, or by a person), stopped, or completed: the alias moves to it, audited
like any move. The rows stay: an alias's canaries, how each ended and on what evidence.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from registry.aliases import beside_alias, move_alias, share_of_requests
from registry.db import Database
from registry.errors import BadRequest, NotFound
from registry.names import check_alias
from registry.queries import find_model
from registry.records import AliasEvent
from registry.schema import CanaryRow, ModelRow, VersionRow, utcnow

__all__ = ["ENDINGS", "Canaries", "Canary"]

ENDINGS = ("rolled_back", "stopped", "completed")


@dataclass(frozen=True)
class Canary:
    id: int
    model: str
    alias: str
    version: int
    weight: float
    status: str
    started_at: datetime
    actor: str
    reason: str
    ended_at: datetime | None = None
    ended_by: str | None = None
    ended_reason: str | None = None
    evidence: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["started_at"] = self.started_at.isoformat()
        data["ended_at"] = None if self.ended_at is None else self.ended_at.isoformat()
        return data


class Canaries:
    """`Registry.canaries`: start, end, complete and read them."""

    def __init__(self, db: Database, actor: Callable[[], str]) -> None:
        self._db = db
        self._actor = actor

    def start(self, name: str, alias: str, version: int, weight: object, *, reason: str) -> Canary:
        """A new canary; one already running on the alias is stopped (replaced)."""
        share = share_of_requests(weight, "weight", whole=False)
        _reason(reason, "start a canary")
        with self._db.write() as session:
            target, canary = beside_alias(session, name, alias, version, "canary")
            running = _running(session, target.model_id, alias)
            if running is not None:
                self._close(running, "stopped", f"replaced by {name}:{version}", None)
            row = CanaryRow(
                model_id=target.model_id,
                alias=alias,
                version_id=canary.id,
                weight=share,
                status="running",
                actor=self._actor(),
                reason=reason.strip(),
            )
            session.add(row)
            session.flush()
            return _record(row, name, version)

    def end(
        self,
        name: str,
        alias: str,
        status: str,
        *,
        reason: str,
        evidence: dict[str, Any] | None = None,
        canary_id: int | None = None,
    ) -> Canary:
        """Roll back or stop the alias's running canary (only `canary_id`, if given: a gateway
        judging one canary never ends its successor)."""
        if status not in ("rolled_back", "stopped"):
            raise BadRequest(f"a canary ends rolled_back or stopped here, not {status!r}")
        _reason(reason, "end a canary")
        with self._db.write() as session:
            model = find_model(session, name)
            row = _running(session, model.id, check_alias(alias))
            if row is None or (canary_id is not None and row.id != canary_id):
                raise NotFound(f"alias {alias!r} of {name} has no running canary")
            self._close(row, status, reason.strip(), evidence)
            session.flush()
            return _record(row, name, _number(session, row))

    def complete(self, name: str, alias: str, *, reason: str) -> tuple[Canary, AliasEvent]:
        """The alias moves to the canary (audited); the canary ends `completed`."""
        _reason(reason, "complete a canary")
        with self._db.write() as session:
            model = find_model(session, name)
            row = _running(session, model.id, check_alias(alias))
            if row is None:
                raise NotFound(f"alias {alias!r} of {name} has no running canary")
            version = _number(session, row)
            event = move_alias(
                session,
                name,
                alias,
                version,
                reason=f"canary completed: {reason.strip()}",
                actor=self._actor(),
            )
            self._close(row, "completed", reason.strip(), None)
            session.flush()
            return _record(row, name, version), event

    def running(self, aliases: Sequence[str]) -> dict[str, dict[str, Canary]]:
        """{model: {alias: canary}} of the running canaries on these aliases (one query)."""
        with self._db.read() as session:
            found: dict[str, dict[str, Canary]] = {}
            for canary in _canaries(session, None, aliases, running=True):
                found.setdefault(canary.model, {})[canary.alias] = canary
            return found

    def of(self, name: str) -> list[Canary]:
        """The model's canaries, running or ended, newest first."""
        with self._db.read() as session:
            return _canaries(session, find_model(session, name).id, None, running=False)

    def _close(
        self, row: CanaryRow, status: str, reason: str, evidence: dict[str, Any] | None
    ) -> None:
        row.status, row.ended_at, row.ended_by = status, utcnow(), self._actor()
        row.ended_reason, row.evidence = reason, evidence


def _reason(reason: str, what: str) -> None:
    if not reason or not reason.strip():
        raise BadRequest(f"a reason is required to {what}; say why")


def _running(session: Session, model_id: int, alias: str) -> CanaryRow | None:
    return session.scalar(
        select(CanaryRow).where(
            CanaryRow.model_id == model_id,
            CanaryRow.alias == alias,
            CanaryRow.status == "running",
        )
    )


def _number(session: Session, row: CanaryRow) -> int:
    version = session.get(VersionRow, row.version_id)
    assert version is not None  # a foreign key
    return version.number


def _canaries(
    session: Session, model_id: int | None, aliases: Sequence[str] | None, *, running: bool
) -> list[Canary]:
    query = (
        select(CanaryRow, ModelRow.name, VersionRow.number)
        .join(ModelRow, CanaryRow.model_id == ModelRow.id)
        .join(VersionRow, CanaryRow.version_id == VersionRow.id)
        .order_by(CanaryRow.id.desc())
    )
    if model_id is not None:
        query = query.where(CanaryRow.model_id == model_id)
    if aliases is not None:
        query = query.where(CanaryRow.alias.in_(list(aliases)))
    if running:
        query = query.where(CanaryRow.status == "running")
    return [_record(row, model, number) for row, model, number in session.execute(query).all()]


def _record(row: CanaryRow, model: str, version: int) -> Canary:
    return Canary(
        row.id,
        model,
        row.alias,
        version,
        row.weight,
        row.status,
        row.started_at,
        row.actor,
        row.reason,
        row.ended_at,
        row.ended_by,
        row.ended_reason,
        row.evidence,
    )

"""Shadows: a version that runs on a copy of the traffic an alias answers.

The gateway serving the alias mirrors `rate` of the requests it routes by that alias to the
shadow, off the request path, and logs both answers under one request id; the shadow's
answer is never returned (services/gateway/shadowing.py). A shadow is a version of the same
model with an artifact that passed the parity gate, other than the one the alias points to,
and the alias must exist. One shadow per alias; setting another replaces it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from registry.aliases import beside_alias, share_of_requests
from registry.db import Database
from registry.errors import BadRequest, NotFound
from registry.names import check_alias
from registry.queries import find_model
from registry.schema import ModelRow, ShadowRow, VersionRow, utcnow

__all__ = ["Shadow", "Shadows"]


@dataclass(frozen=True)
class Shadow:
    model: str
    alias: str
    version: int
    rate: float
    updated_at: datetime
    actor: str
    reason: str

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["updated_at"] = self.updated_at.isoformat()
        return data


class Shadows:
    """`Registry.shadows`: set, clear and read them."""

    def __init__(self, db: Database, actor: Callable[[], str]) -> None:
        self._db = db
        self._actor = actor

    def set(self, name: str, alias: str, version: int, rate: object, *, reason: str) -> Shadow:
        share = share_of_requests(rate, "rate", whole=True)
        if not reason or not reason.strip():
            raise BadRequest("a reason is required to set a shadow; say why")
        with self._db.write() as session:
            target, shadow = beside_alias(session, name, alias, version, "shadow")
            row = session.scalar(
                select(ShadowRow).where(
                    ShadowRow.model_id == target.model_id, ShadowRow.alias == alias
                )
            )
            if row is None:
                row = ShadowRow(model_id=target.model_id, alias=alias)
                session.add(row)
            row.version_id, row.rate = shadow.id, share
            row.updated_at, row.actor, row.reason = utcnow(), self._actor(), reason.strip()
            session.flush()
            return Shadow(name, alias, version, row.rate, row.updated_at, row.actor, row.reason)

    def clear(self, name: str, alias: str) -> None:
        check_alias(alias)
        with self._db.write() as session:
            model = find_model(session, name)
            row = session.scalar(
                select(ShadowRow).where(ShadowRow.model_id == model.id, ShadowRow.alias == alias)
            )
            if row is None:
                raise NotFound(f"alias {alias!r} of {name} has no shadow")
            session.delete(row)

    def of(self, name: str) -> list[Shadow]:
        with self._db.read() as session:
            model = find_model(session, name)
            return [s for s in _shadows(session, None) if s.model == model.name]

    def targets(self, aliases: Sequence[str]) -> dict[str, dict[str, tuple[int, float]]]:
        """{model: {alias: (version, rate)}} for these aliases, over every model (one query)."""
        with self._db.read() as session:
            found: dict[str, dict[str, tuple[int, float]]] = {}
            for shadow in _shadows(session, aliases):
                found.setdefault(shadow.model, {})[shadow.alias] = (shadow.version, shadow.rate)
            return found


def _shadows(session: Session, aliases: Sequence[str] | None) -> list[Shadow]:
    query = (
        select(ShadowRow, ModelRow.name, VersionRow.number)
        .join(ModelRow, ShadowRow.model_id == ModelRow.id)
        .join(VersionRow, ShadowRow.version_id == VersionRow.id)
    )
    if aliases is not None:
        query = query.where(ShadowRow.alias.in_(list(aliases)))
    return [
        Shadow(model, row.alias, number, row.rate, row.updated_at, row.actor, row.reason)
        for row, model, number in session.execute(query).all()
    ]

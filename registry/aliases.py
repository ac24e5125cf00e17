"""Moving aliases, and their append-only audit log.

An alias points at exactly one version, and only at one with an artifact that passed the
parity gate. Each move is one transaction: the alias row and an `alias_events` row saying
from, to, when, by whom and why. Nothing ever updates or deletes an event.
"""

from __future__ import annotations

import math

from sqlalchemy import select
from sqlalchemy.orm import Session

from registry.errors import AliasUnchanged, BadRequest, NotFound, NotServable
from registry.names import ModelRef, check_alias, check_model_name
from registry.queries import find_model, lock_model, resolve, to_record
from registry.records import SERVABLE_KINDS, AliasEvent
from registry.schema import AliasEventRow, AliasRow, VersionRow, utcnow

__all__ = ["alias_events", "beside_alias", "move_alias", "share_of_requests"]


def move_alias(
    session: Session, name: str, alias: str, version: int, *, reason: str, actor: str
) -> AliasEvent:
    check_model_name(name)
    check_alias(alias)
    if not reason or not reason.strip():
        raise BadRequest(f"a reason is required to move alias {alias!r}; say why, e.g. --reason")
    target = resolve(session, ModelRef(name, version=version))
    lock_model(session, target.model_id)
    record = to_record(session, target)
    if not record.servable_formats:
        exports = [f"{a.kind}: {a.status}" for a in record.artifacts if a.kind in SERVABLE_KINDS]
        detail = f" (exports: {', '.join(exports)})" if exports else " (nothing exported yet)"
        raise NotServable(
            f"{record.ref} has no artifact that passed the parity gate{detail}; it cannot be "
            f"promoted to {alias!r}"
        )
    current = session.scalar(
        select(AliasRow).where(AliasRow.model_id == target.model_id, AliasRow.name == alias)
    )
    if current is not None and current.version_id == target.id:
        raise AliasUnchanged(f"alias {alias!r} already points to {name}:{version}")
    if target.status in ("candidate", "declined"):
        target.status = "ready"  # promoted: from now on it is an ordinary, ready version
    previous = current.version.number if current is not None else None
    at = utcnow()
    if current is None:
        session.add(
            AliasRow(model_id=target.model_id, name=alias, version_id=target.id, updated_at=at)
        )
    else:
        current.version_id = target.id
        current.updated_at = at
    event = AliasEventRow(
        model_id=target.model_id,
        alias=alias,
        from_version=previous,
        to_version=version,
        at=at,
        actor=actor,
        reason=reason.strip(),
    )
    session.add(event)
    session.flush()
    return AliasEvent.from_row(event, name)


def alias_events(session: Session, name: str, alias: str | None) -> list[AliasEvent]:
    model = find_model(session, name)
    query = select(AliasEventRow).where(AliasEventRow.model_id == model.id)
    if alias is not None:
        query = query.where(AliasEventRow.alias == alias)
    return [
        AliasEvent.from_row(row, name) for row in session.scalars(query.order_by(AliasEventRow.id))
    ]


def beside_alias(
    session: Session, name: str, alias: str, version: int, role: str
) -> tuple[AliasRow, VersionRow]:
    """The alias and the version that is to run beside it (a shadow, a canary): the alias
    exists (404), the version is another one of the model (400) that can serve (409)."""
    model = find_model(session, name)
    target = session.scalar(
        select(AliasRow).where(AliasRow.model_id == model.id, AliasRow.name == check_alias(alias))
    )
    if target is None:
        raise NotFound(f"model {name} has no alias {alias!r}")
    row = resolve(session, ModelRef(name, version=version))
    if row.id == target.version_id:
        raise BadRequest(
            f"{name}:{version} is what {alias!r} points to: a {role} is another version"
        )
    if not to_record(session, row).servable_formats:
        raise NotServable(
            f"{name}:{version} has no artifact that passed the parity gate; it cannot serve, "
            f"even as a {role}"
        )
    return target, row


def share_of_requests(value: object, field: str, *, whole: bool) -> float:
    """`value` as a share of requests above 0 and at most 1 (`whole`) or below 1; 400 naming
    `field` otherwise."""
    top = "at most 1" if whole else "below 1"
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not (math.isfinite(value) and value > 0 and (value <= 1 if whole else value < 1))
    ):
        raise BadRequest(f"'{field}' must be a share of requests above 0 and {top}, got {value!r}")
    return float(value)

"""Finding rows inside a session: models by name, versions by reference, records from rows."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from registry.errors import AliasNotFound, ModelNotFound, VersionNotFound
from registry.names import LATEST, ModelRef, check_model_name, parse_ref
from registry.records import ModelVersion
from registry.schema import AliasRow, ModelRow, VersionRow

__all__ = ["as_ref", "find_model", "lock_model", "resolve", "to_record", "version_query"]


def as_ref(ref: str | ModelRef) -> ModelRef:
    return ref if isinstance(ref, ModelRef) else parse_ref(ref)


def version_query() -> Any:
    return select(VersionRow).options(
        selectinload(VersionRow.artifacts), selectinload(VersionRow.model)
    )


def find_model(session: Session, name: str) -> ModelRow:
    check_model_name(name)
    model = session.scalar(select(ModelRow).where(ModelRow.name == name))
    if model is None:
        raise ModelNotFound(f"model {name!r} is not registered")
    return model


def lock_model(session: Session, model_id: int) -> None:
    """Serialise writers of one model on PostgreSQL (SQLite writers already are)."""
    session.execute(select(ModelRow.id).where(ModelRow.id == model_id).with_for_update())


def resolve(session: Session, ref: ModelRef) -> VersionRow:
    """The version row a reference names, or a NotFound error that says what exists."""
    model = find_model(session, ref.name)
    query = version_query().where(VersionRow.model_id == model.id)
    if ref.version is not None:
        row = session.scalar(query.where(VersionRow.number == ref.version))
        if row is None:
            newest = session.scalar(
                select(func.max(VersionRow.number)).where(VersionRow.model_id == model.id)
            )
            raise VersionNotFound(
                f"model {ref.name!r} has no version {ref.version} (newest: {newest})"
            )
        return row
    if ref.alias == LATEST:
        row = session.scalar(
            query.where(VersionRow.status == "ready").order_by(VersionRow.number.desc()).limit(1)
        )
        if row is None:
            raise VersionNotFound(
                f"model {ref.name!r} has no ready version (none passed the parity gate)"
            )
        return row
    if ref.alias is not None:
        alias = session.scalar(
            select(AliasRow).where(AliasRow.model_id == model.id, AliasRow.name == ref.alias)
        )
        if alias is None:
            known = session.scalars(select(AliasRow.name).where(AliasRow.model_id == model.id))
            raise AliasNotFound(
                f"model {ref.name!r} has no alias {ref.alias!r} (aliases: "
                f"{', '.join(sorted(known)) or 'none'})"
            )
        return session.scalars(query.where(VersionRow.id == alias.version_id)).one()
    row = session.scalar(query.order_by(VersionRow.number.desc()).limit(1))
    if row is None:
        raise VersionNotFound(f"model {ref.name!r} has no versions")
    return row


def to_record(session: Session, row: VersionRow) -> ModelVersion:
    aliases = session.scalars(select(AliasRow.name).where(AliasRow.version_id == row.id)).all()
    parent = None
    if row.parent_version_id is not None:
        parent_row = session.get(VersionRow, row.parent_version_id)
        if parent_row is not None:
            parent = f"{parent_row.model.name}:{parent_row.number}"
    return ModelVersion.from_row(row, list(aliases), parent)

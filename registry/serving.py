"""What the gateway needs from the registry: serving configs and alias targets.

A serving config is a JSON object stored per version (batching and runtime settings),
written at promotion or load time. The registry stores it as given; the gateway validates
it (services/gateway/deployment.py) before it is written.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from registry.names import ModelRef
from registry.queries import resolve
from registry.schema import AliasRow, ModelRow, ServingConfigRow, VersionRow, utcnow

__all__ = ["alias_targets", "config_stamps", "read_serving_config", "write_serving_config"]


def write_serving_config(
    session: Session, ref: ModelRef, config: Mapping[str, Any], actor: str
) -> dict[str, Any]:
    version = resolve(session, ref)
    row = session.get(ServingConfigRow, version.id)
    if row is None:
        row = ServingConfigRow(version_id=version.id, config=dict(config), updated_by=actor)
        session.add(row)
    else:
        row.config = dict(config)
        row.updated_by = actor
    row.updated_at = utcnow()
    session.flush()
    return dict(row.config)


def read_serving_config(session: Session, ref: ModelRef) -> dict[str, Any]:
    version = resolve(session, ref)
    row = session.get(ServingConfigRow, version.id)
    return dict(row.config) if row is not None else {}


def alias_targets(session: Session, aliases: Sequence[str]) -> dict[str, dict[str, int]]:
    """{model: {alias: version}} for the given aliases, over every model, in one query."""
    rows = session.execute(
        select(ModelRow.name, AliasRow.name, VersionRow.number)
        .join(AliasRow, AliasRow.model_id == ModelRow.id)
        .join(VersionRow, AliasRow.version_id == VersionRow.id)
        .where(AliasRow.name.in_(list(aliases)))
    ).all()
    targets: dict[str, dict[str, int]] = {}
    for model, alias, number in rows:
        targets.setdefault(model, {})[alias] = number
    return targets


def config_stamps(session: Session, model_names: Sequence[str]) -> dict[tuple[str, int], str]:
    """When each version's serving config last changed, for these models (one query)."""
    rows = session.execute(
        select(ModelRow.name, VersionRow.number, ServingConfigRow.updated_at)
        .join(VersionRow, VersionRow.model_id == ModelRow.id)
        .join(ServingConfigRow, ServingConfigRow.version_id == VersionRow.id)
        .where(ModelRow.name.in_(list(model_names)))
    ).all()
    return {(name, number): updated.isoformat() for name, number, updated in rows}

"""The registry's Alembic environment: its tables' revisions, applied when a registry opens.

    v0001  schema version 1: models, versions, artifacts, datasets, aliases, alias_events,
           mlgate_meta
    v0002  schema version 2: serving_configs
    v0003  Alembic owns the schema: mlgate_meta's schema_version becomes "3", which the
           mlgate releases from before Alembic refuse

A database written before Alembic (no `alembic_version` table) is stamped at the revision
its `schema_version` row names, then upgraded. New revisions: `python -m registry.migrations
revision -m "what changes"` (see `__main__.py`), then set `REGISTRY_MIGRATIONS.head`.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Connection, column, inspect, select, table

from registry.errors import MlgateError
from registry.migrate import Migrations

__all__ = ["LEGACY_SCHEMA_VERSIONS", "REGISTRY_MIGRATIONS"]

# The schema_version row written before Alembic → the revision that schema is.
LEGACY_SCHEMA_VERSIONS = {"1": "0001", "2": "0002"}


def _legacy_revision(connection: Connection, where: str) -> str | None:
    if not inspect(connection).has_table("mlgate_meta"):
        return None
    meta = table("mlgate_meta", column("key"), column("value"))
    found = connection.execute(
        select(meta.c.value).where(meta.c.key == "schema_version")
    ).scalar_one_or_none()
    if found in LEGACY_SCHEMA_VERSIONS:
        return LEGACY_SCHEMA_VERSIONS[found]
    raise MlgateError(
        f"registry database {where} has schema version {found} and no alembic_version "
        f"table; this mlgate upgrades schema versions "
        f"{', '.join(sorted(LEGACY_SCHEMA_VERSIONS))} only"
    )


REGISTRY_MIGRATIONS = Migrations(
    what="registry",
    folder=Path(__file__).parent,
    version_table="alembic_version",
    head="0006",
    pg_lock=0x6D6C67617465,
    legacy_revision=_legacy_revision,
)

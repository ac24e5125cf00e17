"""Monitoring's Alembic environment: its tables' revisions, applied on first use.

    v0001  drift_checks, retraining_tasks, task_events, feedback
    v0002  quality_checks, monitor_policies

Its version table is `alembic_version_monitors`, beside the registry's `alembic_version` in
the same database: the two sets of tables change independently. A database written before
Alembic (no version table) is stamped at the revision whose tables it holds, then upgraded.
New revisions: `python -m monitors.migrations revision -m "what changes"` (see
registry/migrate_cli.py), then set `MONITOR_MIGRATIONS.head`.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Connection, inspect

from registry.errors import MlgateError
from registry.migrate import Migrations

__all__ = ["LEGACY_TABLES", "MONITOR_MIGRATIONS"]

# What create_all made before Alembic → the revision those tables are, newest first.
LEGACY_TABLES = {
    "0002": {
        "drift_checks",
        "retraining_tasks",
        "task_events",
        "feedback",
        "quality_checks",
        "monitor_policies",
    },
    "0001": {"drift_checks", "retraining_tasks", "task_events", "feedback"},
}


def _legacy_revision(connection: Connection, where: str) -> str | None:
    ours = set().union(*LEGACY_TABLES.values())
    present = ours & set(inspect(connection).get_table_names())
    if not present:
        return None
    for revision, tables in LEGACY_TABLES.items():
        if present == tables:
            return revision
    raise MlgateError(
        f"monitoring tables in database {where} are not a set this mlgate knows: it has "
        f"{', '.join(sorted(present))} and no alembic_version_monitors table"
    )


MONITOR_MIGRATIONS = Migrations(
    what="monitoring",
    folder=Path(__file__).parent,
    version_table="alembic_version_monitors",
    head="0002",
    pg_lock=0x6D6C6D6F6E69,
    legacy_revision=_legacy_revision,
)

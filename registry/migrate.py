"""Alembic migrations, run when a database is first used by a process.

The registry's tables and monitoring's each have their own Alembic environment inside their
package (`registry/migrations/`, `monitors/migrations/`) and their own version table in the
one database they share, so that `registry` knows nothing of `monitors` and either set of
tables can change without the other. A `Migrations` names one environment.

`Database.migrate(plan)` first reads the version table in a plain read transaction: when it
holds the head this code was shipped with (`Migrations.head`), that is all, and Alembic is
not even imported. Otherwise `upgrade` runs inside one write transaction that holds the
schema lock (an advisory lock on PostgreSQL, `BEGIN IMMEDIATE` on SQLite), so concurrent
openers queue and the later ones find the work done: it reads the version again, refuses a
revision this code does not know (a newer mlgate migrated the database), stamps a database
written before Alembic (by `create_all`) at the revision its tables match, then runs
`alembic upgrade head` on that same connection. PostgreSQL and SQLite both run DDL inside
the transaction, so a failed upgrade leaves the database as it was.

No alembic.ini: the `Config` is built here, pointing at the package's folder.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from sqlalchemy import Connection, MetaData, column, inspect, select, table, text
from sqlalchemy.types import TypeDecorator

from registry.errors import MlgateError

if TYPE_CHECKING:
    from alembic.autogenerate.api import AutogenContext
    from alembic.config import Config
    from alembic.runtime.migration import MigrationContext, MigrationInfo

__all__ = [
    "Migrations",
    "alembic_config",
    "at_head",
    "lock",
    "own_tables_only",
    "run_environment",
    "upgrade",
]


@dataclass(frozen=True)
class Migrations:
    """One Alembic environment: a package's tables and their revisions."""

    what: str
    """What the tables are, for messages: "registry", "monitoring"."""
    folder: Path
    """The Alembic script location: env.py, script.py.mako, versions/."""
    version_table: str
    head: str
    """The newest revision in `folder`; a test keeps it equal to what Alembic finds there.
    Only a shortcut: a stale value costs an import of Alembic per process, never a wrong
    schema."""
    pg_lock: int
    """The PostgreSQL advisory lock (any fixed 64-bit number) that serialises migrations."""
    legacy_revision: Callable[[Connection, str], str | None]
    """For a database with no version table: the revision its tables were created at by
    mlgate before Alembic, or None when it holds none of them (given the connection and
    the database's URL for messages; raises `MlgateError` when it cannot tell)."""


def at_head(connection: Connection, plan: Migrations) -> bool:
    """Whether the version table says the tables are at `plan.head` (two cheap reads)."""
    if not inspect(connection).has_table(plan.version_table):
        return False
    versions = table(plan.version_table, column("version_num"))
    found = connection.execute(select(versions.c.version_num)).scalars().all()
    return found == [plan.head]


def upgrade(connection: Connection, plan: Migrations, where: str) -> list[str]:
    """Bring the tables to the newest revision; returns the revisions applied, oldest first.

    `connection` is in a write transaction that the caller commits; `where` names the
    database in messages (no password).
    """
    from alembic import command
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    lock(connection, plan)
    applied: list[str] = []
    config = alembic_config(plan, connection, applied)
    script = ScriptDirectory.from_config(config)
    context = MigrationContext.configure(connection, opts={"version_table": plan.version_table})
    current = context.get_current_heads()
    if not current:
        legacy = plan.legacy_revision(connection, where)
        if legacy is not None:
            command.stamp(config, legacy)
    else:
        known = {revision.revision for revision in script.walk_revisions()}
        unknown = sorted(set(current) - known)
        if unknown:
            raise MlgateError(
                f"{plan.what} database {where} is at revision {', '.join(unknown)}, which "
                f"this mlgate does not know (its newest is {script.get_current_head()}): a "
                "newer mlgate migrated it; use that version, or upgrade this one"
            )
    command.upgrade(config, "head")
    return applied


def lock(connection: Connection, plan: Migrations) -> None:
    """Serialise migrations on PostgreSQL until the transaction ends.

    (On SQLite the write transaction, begun with `BEGIN IMMEDIATE`, already holds the
    database's one write lock.)
    """
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": plan.pg_lock})


def alembic_config(
    plan: Migrations, connection: Connection | None, applied: list[str] | None = None
) -> Config:
    """Alembic's configuration for `plan`, in code: its env.py runs on `connection`.

    The revisions that `upgrade` applies are appended to `applied` when it is given.
    """
    from alembic.config import Config

    config = Config(
        stdout=sys.stdout,  # the one in force now (Alembic's default is bound at its import)
        attributes={
            "connection": connection,
            "version_table": plan.version_table,
            "applied": applied if applied is not None else [],
        },
    )
    config.set_main_option("script_location", str(plan.folder))
    # Revision ids are sequence numbers ("0004"); files are named v0004_<message>.py.
    config.set_main_option("file_template", "v%%(rev)s_%%(slug)s")
    return config


def own_tables_only(metadata: MetaData) -> Callable[[str | None, str, Any], bool]:
    """An `include_name` hook for Alembic: only `metadata`'s tables are compared.

    The database also holds the other environment's tables and version table; without
    this, autogenerate would propose to drop them.
    """

    def include_name(name: str | None, type_: str, _parent_names: Any) -> bool:
        return type_ != "table" or name in metadata.tables

    return include_name


def run_environment(metadata: MetaData) -> None:
    """The body of every env.py here: run Alembic's command on the connection it was given."""
    from alembic import context

    config = context.config
    connection = config.attributes.get("connection")
    if connection is None or context.is_offline_mode():
        raise MlgateError(
            "mlgate's migrations run on a connection given by registry.migrate "
            "(python -m registry.migrations, python -m monitors.migrations), not from an "
            "alembic.ini or in --sql mode"
        )
    applied: list[str] = config.attributes["applied"]

    def record(
        ctx: MigrationContext,
        step: MigrationInfo,
        heads: Collection[Any],
        run_args: Mapping[str, Any],
    ) -> None:
        if step.is_upgrade and not step.is_stamp and step.up_revision_id is not None:
            applied.append(step.up_revision_id)

    context.configure(
        connection=connection,
        target_metadata=metadata,
        version_table=config.attributes["version_table"],
        include_name=own_tables_only(metadata),
        # SQLite cannot alter most of a table: Alembic's batch mode copies it instead.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        render_item=_render_item,
        on_version_apply=record,
    )
    with context.begin_transaction():
        context.run_migrations()


def _render_item(type_: str, obj: Any, _autogen_context: AutogenContext) -> str | Literal[False]:
    """Write our column types (UTCDateTime) as the SQLAlchemy type they store as.

    A revision then stands alone: it never imports the schema module it was generated from,
    which goes on changing after it.
    """
    if type_ == "type" and isinstance(obj, TypeDecorator):
        return f"sa.{obj.impl_instance!r}"
    return False

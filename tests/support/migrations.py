"""What the migration tests compare: a database's tables as reflected, its rows, its revision."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import MetaData, column, create_engine, inspect, select, table, text

from registry.db import Database
from registry.migrate import Migrations, alembic_config, own_tables_only

__all__ = ["differences", "downgrade_to", "rows", "snapshot", "upgrade_to", "versions"]

VERSION_TABLES = {"alembic_version", "alembic_version_monitors"}


def snapshot(url: str, only: set[str] | None = None) -> dict[str, dict[str, Any]]:
    """Every table but the version tables (or those in `only`), as SQLAlchemy reflects them:
    columns with types, nullability and defaults, primary key, foreign keys, indexes and
    unique constraints, each with the name the database gave it."""
    engine = create_engine(url)
    try:
        inspector = inspect(engine)
        names = set(inspector.get_table_names()) - VERSION_TABLES
        return {name: _table(inspector, name) for name in sorted(names & (only or names))}
    finally:
        engine.dispose()


def _table(inspector: Any, name: str) -> dict[str, Any]:
    primary = inspector.get_pk_constraint(name)
    return {
        "columns": [
            (c["name"], str(c["type"]), c["nullable"], c.get("default"), c.get("autoincrement"))
            for c in inspector.get_columns(name)
        ],
        "primary_key": (primary.get("name"), tuple(primary["constrained_columns"])),
        "foreign_keys": sorted(
            (
                fk.get("name") or "",
                tuple(fk["constrained_columns"]),
                fk["referred_table"],
                tuple(fk["referred_columns"]),
            )
            for fk in inspector.get_foreign_keys(name)
        ),
        "indexes": sorted(
            (ix["name"], tuple(ix["column_names"]), bool(ix["unique"]))
            for ix in inspector.get_indexes(name)
        ),
        "unique": sorted(
            (uc.get("name") or "", tuple(uc["column_names"]))
            for uc in inspector.get_unique_constraints(name)
        ),
    }


def differences(url: str, plan: Migrations, metadata: MetaData) -> list[Any]:
    """What Alembic's autogenerate finds between `metadata` and the database: [] if none."""
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(
                connection,
                opts={
                    "version_table": plan.version_table,
                    "include_name": own_tables_only(metadata),
                    "compare_type": True,
                },
            )
            return list(compare_metadata(context, metadata))
    finally:
        engine.dispose()


def rows(url: str, tables: set[str]) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of these tables, in primary-key order."""
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            found: dict[str, list[tuple[Any, ...]]] = {}
            for name in sorted(tables):
                columns = [c["name"] for c in inspect(connection).get_columns(name)]
                keys = inspect(connection).get_pk_constraint(name)["constrained_columns"]
                reflected = table(name, *[column(c) for c in columns])
                query = select(reflected).order_by(*[reflected.c[k] for k in keys])
                found[name] = [tuple(row) for row in connection.execute(query)]
            return found
    finally:
        engine.dispose()


def versions(url: str, version_table: str) -> list[str]:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            found = connection.execute(text(f"SELECT version_num FROM {version_table}"))  # noqa: S608
            return [str(value) for (value,) in found]
    finally:
        engine.dispose()


def upgrade_to(url: str, plan: Migrations, revision: str) -> None:
    """`alembic upgrade REVISION` on the database, as the developer command runs it."""
    _run(url, plan, command.upgrade, revision)


def downgrade_to(url: str, plan: Migrations, revision: str) -> None:
    """`alembic downgrade REVISION` ("base" undoes them all)."""
    _run(url, plan, command.downgrade, revision)


def _run(url: str, plan: Migrations, step: Callable[[Config, str], None], revision: str) -> None:
    db = Database(url)
    try:
        with db.write_connection() as connection:
            step(alembic_config(plan, connection), revision)
    finally:
        db.dispose()

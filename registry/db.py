"""Engine and transactions for the registry database: SQLite by default, any SQLAlchemy URL.

SQLite runs in WAL mode with a busy timeout, and every write transaction starts with
`BEGIN IMMEDIATE`. A deferred transaction that reads and then writes can fail at once with
"database is locked" when another process wrote in between (the busy timeout does not
apply to that lock upgrade); taking the write lock up front makes writers queue instead.
On PostgreSQL, writers that allocate version numbers lock the model's row instead.

The first read or write of a process migrates the registry's tables (`ensure_schema`, with
Alembic: registry/migrate.py); at head that is one read of the version table.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from registry.migrate import Migrations, at_head, upgrade
from registry.migrations import REGISTRY_MIGRATIONS

__all__ = ["Database"]

_WRITE = "mlgate_write"


class Database:
    """One registry database. Cheap to create; connects lazily."""

    def __init__(self, url: str, *, sqlite_busy_timeout_s: float = 60.0) -> None:
        self.url = url
        parsed = make_url(url)
        self.is_sqlite = parsed.get_backend_name() == "sqlite"
        if self.is_sqlite and parsed.database not in (None, "", ":memory:"):
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        self.engine: Engine = _make_engine(url, self.is_sqlite, sqlite_busy_timeout_s)
        self._schema_ready = False

    @contextmanager
    def read(self) -> Iterator[Session]:
        self.ensure_schema()
        with Session(self.engine, expire_on_commit=False) as session, session.begin():
            yield session

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A transaction that will write: committed at the end, rolled back on error."""
        self.ensure_schema()
        with self._write_unchecked() as session:
            yield session

    @contextmanager
    def _write_unchecked(self) -> Iterator[Session]:
        connection = self.engine.connect().execution_options(**{_WRITE: True})
        try:
            with Session(bind=connection, expire_on_commit=False) as session, session.begin():
                yield session
        finally:
            connection.close()

    @contextmanager
    def write_connection(self) -> Iterator[Connection]:
        """A write transaction on a plain connection (for DDL): committed at the end."""
        connection = self.engine.connect().execution_options(**{_WRITE: True})
        try:
            with connection.begin():
                yield connection
        finally:
            connection.close()

    def ensure_schema(self) -> None:
        """Migrate the registry's tables once per process (registry/migrate.py)."""
        if self._schema_ready:
            return
        self.migrate(REGISTRY_MIGRATIONS)
        self._schema_ready = True

    def migrate(self, plan: Migrations) -> list[str]:
        """Bring `plan`'s tables to its newest revision; returns the revisions applied.

        Safe when many processes start together; one read when the tables are at head.
        """
        with self.engine.connect() as connection, connection.begin():
            if at_head(connection, plan):
                return []
        with self.write_connection() as connection:
            return upgrade(connection, plan, self.safe_url())

    def safe_url(self) -> str:
        """The URL with any password hidden, for messages."""
        return make_url(self.url).render_as_string(hide_password=True)

    def dispose(self) -> None:
        self.engine.dispose()


def _make_engine(url: str, is_sqlite: bool, busy_timeout_s: float) -> Engine:
    if not is_sqlite:
        return create_engine(url, pool_pre_ping=True)
    engine = create_engine(url, connect_args={"timeout": busy_timeout_s})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event below issue BEGIN itself (the pysqlite recipe).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_s * 1000)}")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        write = connection.get_execution_options().get(_WRITE, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    return engine

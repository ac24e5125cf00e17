"""Engine and transactions for the registry database: SQLite by default, any SQLAlchemy URL.

SQLite runs in WAL mode with a busy timeout, and every write transaction starts with
`BEGIN IMMEDIATE`. A deferred transaction that reads and then writes can fail at once with
"database is locked" when another process wrote in between (the busy timeout does not
apply to that lock upgrade); taking the write lock up front makes writers queue instead.
On PostgreSQL, writers that allocate version numbers lock the model's row instead.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from registry.errors import MlgateError
from registry.schema import ADDITIVE_UPGRADES, SCHEMA_VERSION, Base, MetaRow

__all__ = ["Database"]

_WRITE = "mlgate_write"
# Any fixed 64-bit number: the advisory lock that serialises schema creation on PostgreSQL.
_PG_SCHEMA_LOCK = 0x6D6C67617465


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

    def ensure_schema(self) -> None:
        """Create the tables once per process; safe when many processes start together."""
        if self._schema_ready:
            return
        with self._write_unchecked() as session:
            connection = session.connection()
            if not self.is_sqlite and connection.dialect.name == "postgresql":
                connection.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_SCHEMA_LOCK})
            Base.metadata.create_all(connection)
            meta = session.get(MetaRow, "schema_version")
            if meta is None:
                session.add(MetaRow(key="schema_version", value=str(SCHEMA_VERSION)))
            elif meta.value in ADDITIVE_UPGRADES:
                meta.value = str(SCHEMA_VERSION)  # create_all above added the new tables
            elif meta.value != str(SCHEMA_VERSION):
                raise MlgateError(
                    f"registry database {self.safe_url()} has schema version {meta.value}; "
                    f"this mlgate expects {SCHEMA_VERSION}"
                )
        self._schema_ready = True

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

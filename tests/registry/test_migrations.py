"""The registry's Alembic migrations, on SQLite and on a real PostgreSQL.

Empty → head gives what `create_all` gives; a database written before Alembic (create_all
plus a schema_version row) is stamped at its revision and upgraded with its rows intact;
a database newer than the code is refused; concurrent openers migrate once.
"""

from __future__ import annotations

import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, create_engine, inspect, text

from monitors.migrations import MONITOR_MIGRATIONS
from registry import Registry
from registry.db import Database
from registry.errors import MlgateError
from registry.migrate import Migrations, alembic_config
from registry.migrations import REGISTRY_MIGRATIONS
from registry.schema import Base
from tests.support.legacy_schema import write_legacy_registry
from tests.support.migrations import (
    differences,
    downgrade_to,
    rows,
    snapshot,
    upgrade_to,
    versions,
)

PLAN = REGISTRY_MIGRATIONS
V1_TABLES = {"mlgate_meta", "models", "versions", "artifacts", "datasets", "aliases"}
V1_TABLES |= {"alias_events"}
V2_TABLES = V1_TABLES | {"serving_configs"}


def _migrate(url: str, plan: Migrations = PLAN) -> list[str]:
    db = Database(url)
    try:
        return db.migrate(plan)
    finally:
        db.dispose()


def _create_all(url: str) -> None:
    engine = create_engine(url)
    try:
        Base.metadata.create_all(engine)
    finally:
        engine.dispose()


def _schema_version(url: str) -> str:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return str(
                connection.scalar(
                    text("SELECT value FROM mlgate_meta WHERE key = 'schema_version'")
                )
            )
    finally:
        engine.dispose()


@pytest.mark.parametrize("plan", [REGISTRY_MIGRATIONS, MONITOR_MIGRATIONS], ids=lambda p: p.what)
def test_the_head_in_code_is_alembics_only_head(plan: Migrations) -> None:
    # The shortcut that skips importing Alembic compares the database with plan.head.
    script = ScriptDirectory.from_config(alembic_config(plan, None))
    assert script.get_heads() == [plan.head]


def test_empty_to_head_is_what_create_all_makes(registry_url: str, other_database_url: str) -> None:
    assert _migrate(registry_url) == ["0001", "0002", "0003", "0004", "0005", "0006"]
    _create_all(other_database_url)

    assert differences(registry_url, PLAN, Base.metadata) == []
    assert snapshot(registry_url) == snapshot(other_database_url)
    assert set(snapshot(registry_url)) == set(Base.metadata.tables)
    assert versions(registry_url, "alembic_version") == ["0006"]
    assert _schema_version(registry_url) == "3"


@pytest.mark.parametrize(("schema_version", "revision"), [(1, "0001"), (2, "0002")])
def test_a_legacy_schema_is_the_revision_it_is_stamped_at(
    registry_url: str, other_database_url: str, schema_version: int, revision: str
) -> None:
    write_legacy_registry(registry_url, schema_version)
    upgrade_to(other_database_url, PLAN, revision)

    assert snapshot(registry_url) == snapshot(other_database_url)
    assert _schema_version(other_database_url) == str(schema_version)


@pytest.mark.parametrize(
    ("schema_version", "applied"),
    [(1, ["0002", "0003", "0004", "0005", "0006"]), (2, ["0003", "0004", "0005", "0006"])],
    ids=["v1", "v2"],
)
def test_a_database_written_before_alembic_is_stamped_and_upgraded(
    registry_url: str, tmp_path: Path, schema_version: int, applied: list[str]
) -> None:
    write_legacy_registry(registry_url, schema_version)
    legacy_tables = V2_TABLES if schema_version == 2 else V1_TABLES
    before = rows(registry_url, legacy_tables - {"mlgate_meta"})

    assert _migrate(registry_url) == applied
    assert versions(registry_url, "alembic_version") == ["0006"]
    assert differences(registry_url, PLAN, Base.metadata) == []
    assert rows(registry_url, legacy_tables - {"mlgate_meta"}) == before
    assert _schema_version(registry_url) == "3"
    assert _migrate(registry_url) == []  # at head: nothing more to do

    # The code reads and writes the migrated database.
    registry = Registry(url=registry_url, home=tmp_path / "home")
    try:
        [summary] = registry.models()
        assert (summary.name, summary.versions, summary.aliases) == ("churn", 2, {"production": 2})
        assert registry.get("churn@production").lineage == {"params": {"lr": 0.05}}
        assert [e.to_version for e in registry.alias_history("churn")] == [1, 2]
        if schema_version == 2:
            assert registry.serving_config("churn:2") == {"max_batch_size": 32}
        registry.set_serving_config("churn:1", {"max_batch_size": 8}, actor="test")
        assert registry.serving_config("churn:1") == {"max_batch_size": 8}
        registry.set_alias("churn", "production", 1, reason="roll back", actor="test")
        assert [e.to_version for e in registry.alias_history("churn")] == [1, 2, 1]
    finally:
        registry.close()


def test_an_unknown_legacy_schema_version_is_refused(registry_url: str) -> None:
    write_legacy_registry(registry_url, 2)
    engine = create_engine(registry_url)
    with engine.begin() as connection:
        connection.execute(text("UPDATE mlgate_meta SET value = '7'"))
    engine.dispose()

    with pytest.raises(MlgateError, match=r"schema version 7 .*upgrades schema versions 1, 2"):
        _migrate(registry_url)
    engine = create_engine(registry_url)
    assert not inspect(engine).has_table("alembic_version")  # nothing was stamped
    engine.dispose()


def test_a_database_newer_than_the_code_is_refused(registry_url: str, tmp_path: Path) -> None:
    _migrate(registry_url)
    engine = create_engine(registry_url)
    with engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '0099'"))
    engine.dispose()

    registry = Registry(url=registry_url, home=tmp_path / "home")
    with pytest.raises(MlgateError) as refused:
        registry.models()
    registry.close()
    assert "registry database" in str(refused.value)
    assert "at revision 0099" in str(refused.value)
    assert "its newest is 0006" in str(refused.value)
    assert versions(registry_url, "alembic_version") == ["0099"]


def test_downgrades_undo_every_revision(registry_url: str, other_database_url: str) -> None:
    _migrate(registry_url)
    downgrade_to(registry_url, PLAN, "0002")
    assert _schema_version(registry_url) == "2"  # what mlgate before Alembic accepts
    downgrade_to(registry_url, PLAN, "base")
    assert snapshot(registry_url) == {}

    assert _migrate(registry_url) == ["0001", "0002", "0003", "0004", "0005", "0006"]
    _create_all(other_database_url)
    assert snapshot(registry_url) == snapshot(other_database_url)


def test_opening_a_database_at_head_does_not_import_alembic(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'registry.db'}"
    _migrate(url)
    _migrate(url, MONITOR_MIGRATIONS)
    opened = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from registry.db import Database; "
            "from monitors.schema import ensure_tables; "
            "db = Database(sys.argv[1]); db.ensure_schema(); ensure_tables(db); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('alembic', 'mako')))",
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).parents[2],
    )
    assert opened.stdout.strip() == "[]"


@pytest.mark.postgres
def test_concurrent_openers_on_postgres_migrate_once(postgres_url: str) -> None:
    """Both openers find the database empty and queue on the lock; the second finds it done."""
    holder = create_engine(postgres_url)
    with holder.connect() as held, ThreadPoolExecutor(2) as pool:
        held.execute(text("SELECT pg_advisory_lock(:k)"), {"k": PLAN.pg_lock})
        openers = [pool.submit(_migrate, postgres_url) for _ in range(2)]
        _wait_for_lock_waiters(held, 2)
        held.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": PLAN.pg_lock})
        held.commit()
        results = sorted(opener.result() for opener in openers)
    holder.dispose()

    assert results == [[], ["0001", "0002", "0003", "0004", "0005", "0006"]]
    assert versions(postgres_url, "alembic_version") == ["0006"]


def _wait_for_lock_waiters(connection: Connection, count: int) -> None:
    query = text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")
    deadline = time.monotonic() + 60  # a hang guard: they queue within milliseconds
    while time.monotonic() < deadline:
        if connection.execute(query).scalar_one() >= count:
            return
        connection.rollback()  # a session-level advisory lock outlives the transaction
        time.sleep(0.05)
    raise AssertionError(f"{count} openers never waited on the migration lock")

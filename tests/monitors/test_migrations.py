"""Monitoring's Alembic migrations, on SQLite and on a real PostgreSQL.

Its tables live in the registry's database under their own version table; see
tests/registry/test_migrations.py for the registry's half and what the helpers compare.
"""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, inspect, text

from monitors.migrations import LEGACY_TABLES, MONITOR_MIGRATIONS
from monitors.quality.policy_store import PolicyStore
from monitors.schema import MonitorBase, ensure_tables
from monitors.tasks.store import TaskStore
from registry.db import Database
from registry.errors import MlgateError
from registry.migrations import REGISTRY_MIGRATIONS
from registry.schema import Base
from tests.support.legacy_schema import write_legacy_monitoring, write_legacy_registry
from tests.support.migrations import differences, downgrade_to, rows, snapshot, upgrade_to, versions

PLAN = MONITOR_MIGRATIONS


def _migrate(url: str) -> list[str]:
    db = Database(url)
    try:
        return db.migrate(PLAN)
    finally:
        db.dispose()


def test_empty_to_head_is_what_create_all_makes(registry_url: str, other_database_url: str) -> None:
    assert _migrate(registry_url) == ["0001", "0002"]
    engine = create_engine(other_database_url)
    MonitorBase.metadata.create_all(engine)
    engine.dispose()

    assert differences(registry_url, PLAN, MonitorBase.metadata) == []
    assert snapshot(registry_url) == snapshot(other_database_url)
    assert set(snapshot(registry_url)) == set(MonitorBase.metadata.tables)
    assert versions(registry_url, "alembic_version_monitors") == ["0002"]


@pytest.mark.parametrize(("with_quality", "revision"), [(False, "0001"), (True, "0002")])
def test_a_legacy_schema_is_the_revision_it_is_stamped_at(
    registry_url: str, other_database_url: str, with_quality: bool, revision: str
) -> None:
    write_legacy_monitoring(registry_url, with_quality=with_quality)
    upgrade_to(other_database_url, PLAN, revision)

    assert snapshot(registry_url) == snapshot(other_database_url)


@pytest.mark.parametrize(
    ("with_quality", "applied"), [(False, ["0002"]), (True, [])], ids=["four", "six"]
)
def test_tables_written_before_alembic_are_stamped_and_upgraded(
    registry_url: str, with_quality: bool, applied: list[str]
) -> None:
    write_legacy_registry(registry_url, 2)
    write_legacy_monitoring(registry_url, with_quality=with_quality)
    legacy_tables = LEGACY_TABLES["0002" if with_quality else "0001"]
    before = rows(registry_url, legacy_tables)

    assert _migrate(registry_url) == applied
    assert versions(registry_url, "alembic_version_monitors") == ["0002"]
    assert differences(registry_url, PLAN, MonitorBase.metadata) == []
    assert rows(registry_url, legacy_tables) == before
    # The registry's half is its own: not stamped by monitoring, migrated when it opens.
    engine = create_engine(registry_url)
    assert not inspect(engine).has_table("alembic_version")
    engine.dispose()
    db = Database(registry_url)
    assert db.migrate(REGISTRY_MIGRATIONS) == ["0003", "0004", "0005", "0006"]
    assert differences(registry_url, REGISTRY_MIGRATIONS, Base.metadata) == []

    # The code reads and writes the migrated tables.
    tasks = TaskStore(db)
    task = tasks.get(1)
    assert (task.model, task.reason, task.status) == ("churn", "drift", "open")
    tasks.transition(task.id, "running", reason="claimed", actor="worker")
    assert tasks.get(1).status == "running"
    policies = PolicyStore(db)
    policies.update("churn", None, set_values={"quality_min_labels": 80}, actor="test")
    assert policies.overrides("churn") == {"quality_min_labels": 80}
    db.dispose()


def test_a_partial_set_of_legacy_tables_is_refused(registry_url: str) -> None:
    write_legacy_monitoring(registry_url, with_quality=True)
    engine = create_engine(registry_url)
    with engine.begin() as connection:
        connection.execute(text("DROP TABLE monitor_policies"))
    engine.dispose()

    with pytest.raises(MlgateError, match="not a set this mlgate knows: it has drift_checks"):
        _migrate(registry_url)


def test_a_database_newer_than_the_code_is_refused(registry_url: str) -> None:
    _migrate(registry_url)
    engine = create_engine(registry_url)
    with engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version_monitors SET version_num = '0042'"))
    engine.dispose()

    db = Database(registry_url)
    with pytest.raises(MlgateError) as refused:
        ensure_tables(db)
    db.dispose()
    assert "monitoring database" in str(refused.value)
    assert "at revision 0042" in str(refused.value)
    assert "its newest is 0002" in str(refused.value)


def test_downgrades_undo_every_revision(registry_url: str) -> None:
    _migrate(registry_url)
    downgrade_to(registry_url, PLAN, "base")
    assert snapshot(registry_url) == {}
    assert _migrate(registry_url) == ["0001", "0002"]
    assert differences(registry_url, PLAN, MonitorBase.metadata) == []

"""Databases as mlgate wrote them before Alembic, frozen here, with a few rows in them.

Before Alembic, opening a registry ran `Base.metadata.create_all` and wrote (or checked) a
`schema_version` row in `mlgate_meta`; monitoring ran `MonitorBase.metadata.create_all`.
These tables copy registry/schema.py (schema versions 1 and 2) and monitors/schema.py (its
first four tables, then all six) as they were then, in SQLAlchemy Core: the same DDL
create_all emitted. They do not follow the code's tables as those change: that is the point.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    create_engine,
    insert,
)

from tests.support.legacy_rows import monitoring_rows, registry_rows

__all__ = ["write_legacy_monitoring", "write_legacy_registry"]


def _registry_tables(schema_version: int) -> MetaData:
    meta = MetaData()
    when = DateTime(timezone=True)
    Table(
        "mlgate_meta",
        meta,
        Column("key", String(64), primary_key=True),
        Column("value", String(256), nullable=False),
    )
    Table(
        "models",
        meta,
        Column("id", Integer, primary_key=True),
        Column("name", String(64), nullable=False, unique=True),
        Column("created_at", when, nullable=False),
    )
    Table(
        "versions",
        meta,
        Column("id", Integer, primary_key=True),
        Column("model_id", ForeignKey("models.id"), nullable=False, index=True),
        Column("number", Integer, nullable=False),
        Column("status", String(16), nullable=False),
        Column("source_format", String(16), nullable=False),
        Column("created_at", when, nullable=False),
        Column("created_by", String(256), nullable=False),
        Column("description", Text, nullable=False),
        Column("signature", JSON, nullable=False),
        Column("lineage", JSON, nullable=False),
        Column("parent_version_id", ForeignKey("versions.id"), nullable=True),
        Column("task_id", String(64), nullable=True),
        UniqueConstraint("model_id", "number"),
    )
    Table(
        "artifacts",
        meta,
        Column("id", Integer, primary_key=True),
        Column("version_id", ForeignKey("versions.id"), nullable=False, index=True),
        Column("kind", String(16), nullable=False),
        Column("digest", String(64), nullable=False, index=True),
        Column("manifest", JSON, nullable=False),
        Column("status", String(16), nullable=False),
        Column("details", JSON, nullable=False),
        Column("parity", JSON, nullable=True),
        Column("created_at", when, nullable=False),
    )
    Table(
        "datasets",
        meta,
        Column("id", Integer, primary_key=True),
        Column("version_id", ForeignKey("versions.id"), nullable=False, index=True),
        Column("name", String(128), nullable=False),
        Column("role", String(32), nullable=False),
        Column("digest", String(64), nullable=False, index=True),
        Column("source", Text, nullable=False),
        Column("rows", Integer, nullable=True),
    )
    Table(
        "aliases",
        meta,
        Column("id", Integer, primary_key=True),
        Column("model_id", ForeignKey("models.id"), nullable=False, index=True),
        Column("name", String(64), nullable=False),
        Column("version_id", ForeignKey("versions.id"), nullable=False),
        Column("updated_at", when, nullable=False),
        UniqueConstraint("model_id", "name"),
    )
    Table(
        "alias_events",
        meta,
        Column("id", Integer, primary_key=True),
        Column("model_id", ForeignKey("models.id"), nullable=False, index=True),
        Column("alias", String(64), nullable=False),
        Column("from_version", Integer, nullable=True),
        Column("to_version", Integer, nullable=False),
        Column("at", when, nullable=False),
        Column("actor", String(256), nullable=False),
        Column("reason", Text, nullable=False),
    )
    if schema_version >= 2:
        Table(
            "serving_configs",
            meta,
            Column("version_id", ForeignKey("versions.id"), primary_key=True),
            Column("config", JSON, nullable=False),
            Column("updated_at", when, nullable=False),
            Column("updated_by", String(256), nullable=False),
        )
    return meta


def _monitoring_tables(with_quality: bool) -> MetaData:
    meta = MetaData()
    when = DateTime(timezone=True)
    drift = Table(
        "drift_checks",
        meta,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("model", String(200), nullable=False),
        Column("version", Integer, nullable=False),
        Column("checked_at", when, nullable=False),
        Column("window_start", when, nullable=False),
        Column("window_end", when, nullable=False),
        Column("rows", Integer, nullable=False),
        Column("reference_digest", String(64), nullable=False),
        Column("share", Float, nullable=False),
        Column("detected", Boolean, nullable=False),
        Column("consecutive", Integer, nullable=False),
        Column("config", JSON, nullable=False),
        Column("result", JSON, nullable=False),
    )
    Index("ix_drift_checks_model_version", drift.c.model, drift.c.version, drift.c.id)
    tasks = Table(
        "retraining_tasks",
        meta,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("key", String(64), nullable=False, unique=True),
        Column("model", String(200), nullable=False),
        Column("serving_version", Integer, nullable=False),
        Column("reason", String(64), nullable=False),
        Column("status", String(16), nullable=False),
        Column("source", String(32), nullable=False),
        Column("window_start", when, nullable=True),
        Column("window_end", when, nullable=True),
        Column("rows", Integer, nullable=True),
        Column("evidence", JSON, nullable=False),
        Column("duplicate_count", Integer, nullable=False),
        Column("created_at", when, nullable=False),
        Column("updated_at", when, nullable=False),
        Column("claimed_by", String(200), nullable=True),
        Column("candidate_version", Integer, nullable=True),
        Column("outcome", JSON, nullable=False),
        Column("error", Text, nullable=True),
    )
    Index("ix_retraining_tasks_model_status", tasks.c.model, tasks.c.status)
    Table(
        "task_events",
        meta,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("task_id", ForeignKey("retraining_tasks.id"), nullable=False, index=True),
        Column("at", when, nullable=False),
        Column("from_status", String(16), nullable=True),
        Column("to_status", String(16), nullable=False),
        Column("reason", Text, nullable=False),
        Column("actor", String(200), nullable=False),
    )
    feedback = Table(
        "feedback",
        meta,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("model", String(200), nullable=False),
        Column("request_id", String(512), nullable=False),
        Column("row", Integer, nullable=False),
        Column("label", JSON, nullable=False),
        Column("received_at", when, nullable=False),
        Column("known_at", when, nullable=True),
        Column("source", String(64), nullable=False),
        UniqueConstraint("model", "request_id", "row", name="uq_feedback_key"),
    )
    Index("ix_feedback_model_received", feedback.c.model, feedback.c.received_at)
    if with_quality:
        quality = Table(
            "quality_checks",
            meta,
            Column("id", Integer, primary_key=True, autoincrement=True),
            Column("model", String(200), nullable=False),
            Column("version", Integer, nullable=False),
            Column("checked_at", when, nullable=False),
            Column("status", String(16), nullable=False),
            Column("metric", String(32), nullable=True),
            Column("labelled_rows", Integer, nullable=False),
            Column("result", JSON, nullable=False),
        )
        Index("ix_quality_checks_model_version", quality.c.model, quality.c.version, quality.c.id)
        Table(
            "monitor_policies",
            meta,
            Column("id", Integer, primary_key=True, autoincrement=True),
            Column("model", String(200), nullable=False),
            Column("version", Integer, nullable=False),
            Column("settings", JSON, nullable=False),
            Column("updated_at", when, nullable=False),
            Column("updated_by", String(200), nullable=False),
            UniqueConstraint("model", "version", name="uq_monitor_policy"),
        )
    return meta


def _write(url: str, meta: MetaData, rows: dict[str, list[dict[str, Any]]]) -> None:
    engine = create_engine(url)
    try:
        with engine.begin() as connection:
            meta.create_all(connection)
            for name in meta.sorted_tables:
                if rows.get(name.name):
                    connection.execute(insert(name), rows[name.name])
    finally:
        engine.dispose()


def write_legacy_registry(url: str, schema_version: int) -> None:
    """A registry database as mlgate wrote it at schema version 1 or 2, with a model in it."""
    _write(url, _registry_tables(schema_version), registry_rows(schema_version))


def write_legacy_monitoring(url: str, *, with_quality: bool) -> None:
    """Monitoring's tables as mlgate wrote them: the first four, or all six, with rows."""
    _write(url, _monitoring_tables(with_quality), monitoring_rows(with_quality))

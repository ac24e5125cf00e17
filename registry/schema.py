"""The registry's tables (SQLAlchemy 2 ORM). Rows are plain data; rules live in `store.py`.

models ─┬─ versions ─┬─ artifacts        (source weights, reference data, exports)
        │            ├─ datasets         (lineage: what each version was trained on)
        │            ├─ serving_configs  (how the gateway serves it: batching, runtime)
        │            └─ batch_runs       (files scored with it: digests, counts, time)
        ├─ aliases                       (alias → exactly one version)
        ├─ shadows                       (alias → a version run on a copy of its traffic)
        ├─ canaries                      (alias → a version given a share of its traffic)
        └─ alias_events                  (append-only audit log of alias moves)
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import JSON, DateTime, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

__all__ = [
    "ADDITIVE_UPGRADES",
    "SCHEMA_VERSION",
    "AliasEventRow",
    "AliasRow",
    "ArtifactRow",
    "Base",
    "BatchRunRow",
    "CanaryRow",
    "DatasetRow",
    "MetaRow",
    "ModelRow",
    "ServingConfigRow",
    "ShadowRow",
    "VersionRow",
]

SCHEMA_VERSION = 2
# Versions whose upgrade to SCHEMA_VERSION only adds tables (create_all does it).
ADDITIVE_UPGRADES = {"1"}


class UTCDateTime(TypeDecorator[datetime]):
    """Timestamps stored as UTC and always read back timezone-aware (SQLite drops zones)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the registry; use an aware UTC datetime")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UTCDateTime, dict[str, Any]: JSON}


class MetaRow(Base):
    __tablename__ = "mlgate_meta"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(256))


class ModelRow(Base):
    __tablename__ = "models"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class VersionRow(Base):
    __tablename__ = "versions"
    __table_args__ = (UniqueConstraint("model_id", "number"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    # "registered" until an artifact passes the parity gate, then "ready". A retrained
    # version starts as "candidate" and becomes "ready" when promoted, or "declined".
    status: Mapped[str] = mapped_column(String(16))
    # What was registered: "pytorch" (factory + state dict), "onnx" or "torchscript" file.
    source_format: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str] = mapped_column(String(256))
    description: Mapped[str] = mapped_column(Text, default="")
    signature: Mapped[dict[str, Any]]
    lineage: Mapped[dict[str, Any]]
    parent_version_id: Mapped[int | None] = mapped_column(ForeignKey("versions.id"))
    task_id: Mapped[str | None] = mapped_column(String(64))

    model: Mapped[ModelRow] = relationship()
    artifacts: Mapped[list[ArtifactRow]] = relationship(
        back_populates="version", order_by="ArtifactRow.id"
    )
    datasets: Mapped[list[DatasetRow]] = relationship(order_by="DatasetRow.id")


class ArtifactRow(Base):
    __tablename__ = "artifacts"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("versions.id"), index=True)
    # "source" (what was registered), "reference" (Parquet), "onnx", "torchscript".
    kind: Mapped[str] = mapped_column(String(16))
    # sha256 of the manifest; the artifact's folder in the store is named by it.
    digest: Mapped[str] = mapped_column(String(64), index=True)
    # {"files": [{"name", "sha256", "size"}, ...]}: every file is checked on every read.
    manifest: Mapped[dict[str, Any]]
    # "passed" / "failed" for exports (the parity gate), "stored" for the rest.
    status: Mapped[str] = mapped_column(String(16))
    details: Mapped[dict[str, Any]]
    parity: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    version: Mapped[VersionRow] = relationship(back_populates="artifacts")


class DatasetRow(Base):
    __tablename__ = "datasets"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("versions.id"), index=True)
    name: Mapped[str] = mapped_column(String(128))
    role: Mapped[str] = mapped_column(String(32))
    digest: Mapped[str] = mapped_column(String(64), index=True)
    source: Mapped[str] = mapped_column(Text)
    rows: Mapped[int | None] = mapped_column(Integer)


class AliasRow(Base):
    __tablename__ = "aliases"
    __table_args__ = (UniqueConstraint("model_id", "name"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id"), index=True)
    name: Mapped[str] = mapped_column(String(64))
    version_id: Mapped[int] = mapped_column(ForeignKey("versions.id"))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    version: Mapped[VersionRow] = relationship()


class AliasEventRow(Base):
    """Append-only: the registry inserts these and never updates or deletes them."""

    __tablename__ = "alias_events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id"), index=True)
    alias: Mapped[str] = mapped_column(String(64))
    from_version: Mapped[int | None] = mapped_column(Integer)
    to_version: Mapped[int] = mapped_column(Integer)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    actor: Mapped[str] = mapped_column(String(256))
    reason: Mapped[str] = mapped_column(Text)


class ServingConfigRow(Base):
    """How the gateway serves a version (batching, runtime), set at promotion or load."""

    __tablename__ = "serving_configs"
    version_id: Mapped[int] = mapped_column(ForeignKey("versions.id"), primary_key=True)
    config: Mapped[dict[str, Any]]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_by: Mapped[str] = mapped_column(String(256))


class BatchRunRow(Base):
    """One file scored with one version (`mlgate predict`, or a gateway's batch job): what
    went in, what came out. Written when the run starts and updated as it goes."""

    __tablename__ = "batch_runs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("versions.id"), index=True)
    # "running", then "succeeded" or "failed" (with `error`): a failed run wrote no output.
    status: Mapped[str] = mapped_column(String(16))
    # Where it runs: "local" (in the command's process) or "gateway <host>".
    runner: Mapped[str] = mapped_column(String(512))
    input_uri: Mapped[str] = mapped_column(Text)
    # sha256 of the input, known once the file has been read through.
    input_digest: Mapped[str | None] = mapped_column(String(64), index=True)
    output_uri: Mapped[str] = mapped_column(Text)
    output_digest: Mapped[str | None] = mapped_column(String(64))
    rejects_uri: Mapped[str | None] = mapped_column(Text)
    rejects_digest: Mapped[str | None] = mapped_column(String(64))
    rows: Mapped[int] = mapped_column(Integer, default=0)
    scored: Mapped[int] = mapped_column(Integer, default=0)
    rejected: Mapped[int] = mapped_column(Integer, default=0)
    # The share of the input read so far, 0 to 1.
    progress: Mapped[float] = mapped_column(default=0.0)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    seconds: Mapped[float] = mapped_column(default=0.0)
    actor: Mapped[str] = mapped_column(String(256))
    error: Mapped[str | None] = mapped_column(Text)
    # The run's settings and runtime: chunk rows, batch size, artifact kind and digest.
    details: Mapped[dict[str, Any]]


class ShadowRow(Base):
    """A version that runs on a copy (`rate`, 0 to 1) of the traffic an alias answers; its
    answers go to the inference log only. One per alias; who set it last, when and why."""

    __tablename__ = "shadows"
    __table_args__ = (UniqueConstraint("model_id", "alias"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id"), index=True)
    alias: Mapped[str] = mapped_column(String(64))
    version_id: Mapped[int] = mapped_column(ForeignKey("versions.id"))
    rate: Mapped[float]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    actor: Mapped[str] = mapped_column(String(256))
    reason: Mapped[str] = mapped_column(Text)


class CanaryRow(Base):
    """A version that answers `weight` of the traffic an alias routes, while it is `running`;
    it ends `rolled_back` (by the gateway's rule, or a person), `stopped` or `completed`
    (the alias moved to it). Kept after it ends: the history of an alias's canaries."""

    __tablename__ = "canaries"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id"), index=True)
    alias: Mapped[str] = mapped_column(String(64))
    version_id: Mapped[int] = mapped_column(ForeignKey("versions.id"))
    weight: Mapped[float]
    status: Mapped[str] = mapped_column(String(16))
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    actor: Mapped[str] = mapped_column(String(256))
    reason: Mapped[str] = mapped_column(Text)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    ended_by: Mapped[str | None] = mapped_column(String(256))
    ended_reason: Mapped[str | None] = mapped_column(Text)
    evidence: Mapped[dict[str, Any] | None] = mapped_column(JSON)

"""The registry: versions, artifacts, aliases with their audit log, and lineage queries.

A version becomes visible in one database transaction, after all of its files are in
the artifact store; a crash at any point before that commit leaves no trace a reader can
see. Version numbers are allocated inside that transaction (SQLite: under BEGIN
IMMEDIATE; PostgreSQL: with the model row locked), so concurrent writers never collide.
"""

from __future__ import annotations

import getpass
import socket
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from registry.artifacts import ArtifactStore, Manifest
from registry.db import Database
from registry.errors import (
    AliasNotFound,
    AliasUnchanged,
    ArtifactNotFound,
    BadRequest,
    ModelNotFound,
    NotServable,
    VersionNotFound,
)
from registry.lineage import Dataset
from registry.names import LATEST, ModelRef, check_alias, check_model_name, parse_ref
from registry.records import AliasEvent, ArtifactInfo, ModelSummary, ModelVersion
from registry.schema import (
    AliasEventRow,
    AliasRow,
    ArtifactRow,
    DatasetRow,
    ModelRow,
    VersionRow,
    utcnow,
)
from registry.settings import RegistrySettings
from registry.signature import Signature

__all__ = ["Registry", "StagedArtifact"]

Progress = Callable[[str], None]


class StagedArtifact:
    """An artifact already in the store, waiting to be attached to a version."""

    def __init__(
        self,
        kind: str,
        manifest: Manifest,
        *,
        status: str = "stored",
        details: Mapping[str, Any] | None = None,
        parity: Mapping[str, Any] | None = None,
    ) -> None:
        self.kind = kind
        self.manifest = manifest
        self.status = status
        self.details = dict(details or {})
        self.parity = dict(parity) if parity is not None else None


class Registry:
    """Model versions and their artifacts, in a SQL database plus a local artifact store.

    `Registry()` uses `MLGATE_HOME` (default `./.mlgate`): `registry.db` and `artifacts/`.
    Pass `url=` for another database (e.g. `postgresql+psycopg://...`).
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        home: str | Path | None = None,
        artifacts_dir: str | Path | None = None,
        settings: RegistrySettings | None = None,
    ) -> None:
        overrides: dict[str, Any] = {}
        if home is not None:
            overrides["home"] = Path(home)
        if url is not None:
            overrides["registry_url"] = url
        if artifacts_dir is not None:
            overrides["artifacts_dir"] = Path(artifacts_dir)
        base = settings or RegistrySettings()
        self.settings = base.model_copy(update=overrides) if overrides else base
        self.db = Database(
            self.settings.database_url(), sqlite_busy_timeout_s=self.settings.sqlite_busy_timeout_s
        )
        self.store = ArtifactStore(self.settings.artifact_root())

    def close(self) -> None:
        self.db.dispose()

    # ------------------------------------------------------------------ registration

    def register(self, model: Any, name: str, example_inputs: Any, **options: Any) -> ModelVersion:
        """Register a `torch.nn.Module`; see `registry.registration.register_module`."""
        from registry.registration import register_module

        return register_module(self, model, name, example_inputs, **options)

    @contextmanager
    def stage(self) -> Iterator[Path]:
        """A private folder for writing an artifact; pass it to `commit_artifact`."""
        with self.store.staging() as folder:
            yield folder

    def commit_artifact(self, folder: Path, kind: str, **fields: Any) -> StagedArtifact:
        return StagedArtifact(kind, self.store.commit(folder), **fields)

    def create_version(
        self,
        name: str,
        *,
        source_format: str,
        signature: Signature,
        lineage: Mapping[str, Any],
        artifacts: Sequence[StagedArtifact],
        datasets: Sequence[Dataset] = (),
        parent: str | None = None,
        task_id: str | None = None,
        description: str = "",
        created_by: str | None = None,
        progress: Progress | None = None,
    ) -> ModelVersion:
        """Insert a version whose files are already stored. All or nothing."""
        check_model_name(name)
        if progress:
            progress("database")
        with self.db.write() as session:
            parent_row = self._resolve(session, parse_ref(parent)) if parent else None
            model = self._get_or_create_model(session, name)
            number = (
                session.scalar(
                    select(func.max(VersionRow.number)).where(VersionRow.model_id == model.id)
                )
                or 0
            ) + 1
            row = VersionRow(
                model_id=model.id,
                number=number,
                status="registered",
                source_format=source_format,
                created_at=utcnow(),
                created_by=created_by or self.actor(),
                description=description,
                signature=signature.to_json(),
                lineage={
                    **lineage,
                    "parent": f"{parent_row.model.name}:{parent_row.number}"
                    if parent_row
                    else None,
                },
                parent_version_id=parent_row.id if parent_row else None,
                task_id=task_id,
            )
            session.add(row)
            session.flush()
            for staged in artifacts:
                self._add_artifact_row(session, row, staged)
            for dataset in datasets:
                session.add(
                    DatasetRow(
                        version_id=row.id,
                        name=dataset.name,
                        role=dataset.role,
                        digest=dataset.digest,
                        source=dataset.source,
                        rows=dataset.rows,
                    )
                )
            session.flush()
            return self._record(session, row)

    def add_artifact(self, ref: str | ModelRef, staged: StagedArtifact) -> ArtifactInfo:
        """Attach an artifact (an export and its parity report) to an existing version."""
        with self.db.write() as session:
            row = self._resolve(session, _as_ref(ref))
            artifact = self._add_artifact_row(session, row, staged)
            return ArtifactInfo.from_row(artifact)

    def _add_artifact_row(
        self, session: Session, version: VersionRow, staged: StagedArtifact
    ) -> ArtifactRow:
        artifact = ArtifactRow(
            version_id=version.id,
            kind=staged.kind,
            digest=staged.manifest.digest,
            manifest=staged.manifest.to_json(),
            status=staged.status,
            details=staged.details,
            parity=staged.parity,
            created_at=utcnow(),
        )
        session.add(artifact)
        if staged.status == "passed":
            version.status = "ready"
        session.flush()
        return artifact

    def _get_or_create_model(self, session: Session, name: str) -> ModelRow:
        query = select(ModelRow).where(ModelRow.name == name).with_for_update()
        model = session.scalar(query)
        if model is not None:
            return model
        try:
            with session.begin_nested():
                model = ModelRow(name=name, created_at=utcnow())
                session.add(model)
        except IntegrityError:
            # Another writer created it between our read and insert (PostgreSQL only;
            # SQLite writers are already serialised by BEGIN IMMEDIATE).
            model = session.scalar(query)
            if model is None:
                raise
        return model

    # ------------------------------------------------------------------ reading

    def get(self, ref: str | ModelRef) -> ModelVersion:
        """`name` (newest), `name:3`, `name@production`, or `name@latest` (newest ready)."""
        with self.db.read() as session:
            return self._record(session, self._resolve(session, _as_ref(ref)))

    def versions(self, name: str) -> list[ModelVersion]:
        with self.db.read() as session:
            model = self._model(session, name)
            rows = session.scalars(
                _version_query().where(VersionRow.model_id == model.id).order_by(VersionRow.number)
            ).all()
            return [self._record(session, row) for row in rows]

    def models(self) -> list[ModelSummary]:
        with self.db.read() as session:
            summaries = []
            for model in session.scalars(select(ModelRow).order_by(ModelRow.name)):
                numbers = session.execute(
                    select(VersionRow.number, VersionRow.status).where(
                        VersionRow.model_id == model.id
                    )
                ).all()
                ready = [n for n, status in numbers if status == "ready"]
                aliases = session.execute(
                    select(AliasRow.name, VersionRow.number)
                    .join(VersionRow, AliasRow.version_id == VersionRow.id)
                    .where(AliasRow.model_id == model.id)
                ).all()
                summaries.append(
                    ModelSummary(
                        name=model.name,
                        created_at=model.created_at,
                        versions=len(numbers),
                        latest_version=max((n for n, _ in numbers), default=None),
                        latest_ready=max(ready, default=None),
                        aliases={alias: number for alias, number in aliases},
                    )
                )
            return summaries

    def versions_trained_on(self, digest: str) -> list[str]:
        """Lineage the other way round: which versions used a dataset with this digest."""
        with self.db.read() as session:
            rows = session.execute(
                select(ModelRow.name, VersionRow.number)
                .join(VersionRow, VersionRow.model_id == ModelRow.id)
                .join(DatasetRow, DatasetRow.version_id == VersionRow.id)
                .where(DatasetRow.digest == digest)
                .distinct()
                .order_by(ModelRow.name, VersionRow.number)
            ).all()
            return [f"{name}:{number}" for name, number in rows]

    def lineage(self, ref: str | ModelRef) -> dict[str, Any]:
        """The version's lineage, its artifacts and its chain of parents, as plain data."""
        version = self.get(ref)
        chain = []
        parent = version.parent
        seen = {version.ref}
        while parent and parent not in seen:
            seen.add(parent)
            ancestor = self.get(parent)
            chain.append(
                {
                    "ref": ancestor.ref,
                    "created_at": ancestor.created_at.isoformat(),
                    "task_id": ancestor.task_id,
                }
            )
            parent = ancestor.parent
        return {
            "ref": version.ref,
            "status": version.status,
            "source_format": version.source_format,
            "created_at": version.created_at.isoformat(),
            "created_by": version.created_by,
            "aliases": list(version.aliases),
            "signature": version.signature.to_json(),
            **version.lineage,
            "task_id": version.task_id,
            "ancestors": chain,
            "artifacts": [
                {
                    "kind": a.kind,
                    "status": a.status,
                    "digest": a.digest,
                    "files": a.manifest.to_json()["files"],
                    "details": a.details,
                    "parity": a.parity,
                }
                for a in version.artifacts
            ],
        }

    # ------------------------------------------------------------------ artifacts

    def open_artifact(self, artifact: ArtifactInfo) -> Path:
        """The artifact's folder, every file checked against its sha256 first."""
        return self.store.open(artifact.manifest)

    def open_servable(
        self, ref: str | ModelRef, kind: str
    ) -> tuple[ModelVersion, ArtifactInfo, Path]:
        """An exported artifact that passed the parity gate; anything else is refused."""
        version = self.get(ref)
        artifact = version.artifact(kind)
        if artifact is None:
            raise ArtifactNotFound(
                f"{version.ref} has no {kind} artifact; run `mlgate export` first"
            )
        if not artifact.servable:
            raise NotServable(
                f"{version.ref}'s {kind} artifact {artifact.status} the parity gate and can "
                "never be served; fix the model or the export and export again"
            )
        return version, artifact, self.open_artifact(artifact)

    # ------------------------------------------------------------------ aliases

    def set_alias(
        self,
        name: str,
        alias: str,
        version: int,
        *,
        reason: str,
        actor: str | None = None,
    ) -> AliasEvent:
        """Point `alias` at `name:version`, recording who, when and why."""
        check_model_name(name)
        check_alias(alias)
        if not reason or not reason.strip():
            raise BadRequest(
                f"a reason is required to move alias {alias!r}; say why, e.g. --reason"
            )
        with self.db.write() as session:
            target = self._resolve(session, ModelRef(name, version=version))
            record = self._record(session, target)
            if not record.servable_formats:
                failed = [
                    f"{a.kind}: {a.status}"
                    for a in record.artifacts
                    if a.kind in ("onnx", "torchscript")
                ]
                detail = f" (exports: {', '.join(failed)})" if failed else " (nothing exported yet)"
                raise NotServable(
                    f"{record.ref} has no artifact that passed the parity gate{detail}; it "
                    f"cannot be promoted to {alias!r}"
                )
            current = session.scalar(
                select(AliasRow).where(AliasRow.model_id == target.model_id, AliasRow.name == alias)
            )
            previous = current.version.number if current is not None else None
            if current is not None and current.version_id == target.id:
                raise AliasUnchanged(f"alias {alias!r} already points to {name}:{version}")
            at = utcnow()
            if current is None:
                session.add(
                    AliasRow(
                        model_id=target.model_id, name=alias, version_id=target.id, updated_at=at
                    )
                )
            else:
                current.version_id = target.id
                current.updated_at = at
            event = AliasEventRow(
                model_id=target.model_id,
                alias=alias,
                from_version=previous,
                to_version=version,
                at=at,
                actor=actor or self.actor(),
                reason=reason.strip(),
            )
            session.add(event)
            session.flush()
            return AliasEvent.from_row(event, name)

    def alias_history(self, name: str, alias: str | None = None) -> list[AliasEvent]:
        with self.db.read() as session:
            model = self._model(session, name)
            query = select(AliasEventRow).where(AliasEventRow.model_id == model.id)
            if alias is not None:
                query = query.where(AliasEventRow.alias == alias)
            rows = session.scalars(query.order_by(AliasEventRow.id)).all()
            return [AliasEvent.from_row(row, name) for row in rows]

    def actor(self) -> str:
        if self.settings.user:
            return self.settings.user
        try:
            user = getpass.getuser()
        except (KeyError, OSError):
            user = "unknown"
        return f"{user}@{socket.gethostname()}"

    # ------------------------------------------------------------------ internals

    def _model(self, session: Session, name: str) -> ModelRow:
        check_model_name(name)
        model = session.scalar(select(ModelRow).where(ModelRow.name == name))
        if model is None:
            raise ModelNotFound(f"model {name!r} is not registered")
        return model

    def _resolve(self, session: Session, ref: ModelRef) -> VersionRow:
        model = self._model(session, ref.name)
        query = _version_query().where(VersionRow.model_id == model.id)
        if ref.version is not None:
            row = session.scalar(query.where(VersionRow.number == ref.version))
            if row is None:
                newest = session.scalar(
                    select(func.max(VersionRow.number)).where(VersionRow.model_id == model.id)
                )
                raise VersionNotFound(
                    f"model {ref.name!r} has no version {ref.version} (newest: {newest})"
                )
            return row
        if ref.alias == LATEST:
            row = session.scalar(
                query.where(VersionRow.status == "ready")
                .order_by(VersionRow.number.desc())
                .limit(1)
            )
            if row is None:
                raise VersionNotFound(
                    f"model {ref.name!r} has no ready version (none passed the parity gate)"
                )
            return row
        if ref.alias is not None:
            alias = session.scalar(
                select(AliasRow).where(AliasRow.model_id == model.id, AliasRow.name == ref.alias)
            )
            if alias is None:
                known = session.scalars(
                    select(AliasRow.name).where(AliasRow.model_id == model.id)
                ).all()
                raise AliasNotFound(
                    f"model {ref.name!r} has no alias {ref.alias!r} (aliases: "
                    f"{', '.join(sorted(known)) or 'none'})"
                )
            return session.scalars(query.where(VersionRow.id == alias.version_id)).one()
        row = session.scalar(query.order_by(VersionRow.number.desc()).limit(1))
        if row is None:
            raise VersionNotFound(f"model {ref.name!r} has no versions")
        return row

    def _record(self, session: Session, row: VersionRow) -> ModelVersion:
        aliases = session.scalars(select(AliasRow.name).where(AliasRow.version_id == row.id)).all()
        parent = None
        if row.parent_version_id is not None:
            parent_row = session.get(VersionRow, row.parent_version_id)
            if parent_row is not None:
                parent = f"{parent_row.model.name}:{parent_row.number}"
        return ModelVersion.from_row(row, list(aliases), parent)


def _version_query() -> Any:
    return select(VersionRow).options(
        selectinload(VersionRow.artifacts), selectinload(VersionRow.model)
    )


def _as_ref(ref: str | ModelRef) -> ModelRef:
    return ref if isinstance(ref, ModelRef) else parse_ref(ref)

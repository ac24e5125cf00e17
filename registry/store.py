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

from sqlalchemy import case, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from registry.aliases import alias_events, move_alias
from registry.artifacts import ArtifactStore
from registry.batch_runs import BatchRuns
from registry.canaries import Canaries
from registry.db import Database
from registry.errors import ArtifactNotFound, BadRequest, Conflict, NotServable
from registry.lineage import Dataset
from registry.names import ModelRef, check_model_name, parse_ref
from registry.queries import as_ref, find_model, resolve, to_record, version_query
from registry.records import (
    AliasEvent,
    ArtifactInfo,
    ModelSummary,
    ModelVersion,
    StagedArtifact,
    lineage_document,
)
from registry.remote_artifacts import RemoteArtifacts
from registry.schema import AliasRow, ArtifactRow, DatasetRow, ModelRow, VersionRow, utcnow
from registry.serving import (
    alias_targets,
    config_stamps,
    read_serving_config,
    write_serving_config,
)
from registry.settings import RegistrySettings
from registry.shadows import Shadows
from registry.signature import Signature

__all__ = ["Registry", "StagedArtifact"]

Progress = Callable[[str], None]


class Registry:
    """Model versions and their artifacts, in a SQL database plus a local artifact store.

    `Registry()` uses `MLGATE_HOME` (default `./.mlgate`): `registry.db` and `artifacts/`.
    Pass `url=` for another database (e.g. `postgresql+psycopg://...`) and `artifacts_url=`
    for a shared artifact store (any fsspec URL; see `registry.remote_artifacts`).
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        home: str | Path | None = None,
        artifacts_dir: str | Path | None = None,
        artifacts_url: str | None = None,
        settings: RegistrySettings | None = None,
    ) -> None:
        overrides: dict[str, Any] = {}
        if home is not None:
            overrides["home"] = Path(home)
        if url is not None:
            overrides["registry_url"] = url
        if artifacts_dir is not None:
            overrides["artifacts_dir"] = Path(artifacts_dir)
        if artifacts_url is not None:
            overrides["artifacts_url"] = artifacts_url
        base = settings or RegistrySettings()
        self.settings = base.model_copy(update=overrides) if overrides else base
        self.db = Database(
            self.settings.database_url(), sqlite_busy_timeout_s=self.settings.sqlite_busy_timeout_s
        )
        url = self.settings.artifacts_url
        remote = RemoteArtifacts(url) if url else None
        self.store = ArtifactStore(self.settings.artifact_root(), remote=remote)
        # Versions given a share of an alias's traffic, or run on a copy of it, and the
        # records of files scored (canaries.py, shadows.py, batch_runs.py).
        self.canaries = Canaries(self.db, self.actor)
        self.shadows = Shadows(self.db, self.actor)
        self.batch_runs = BatchRuns(self.db, self.actor)

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
        status: str = "registered",
        progress: Progress | None = None,
    ) -> ModelVersion:
        """Insert a version whose files are already stored. All or nothing.

        `status` is `registered` (it becomes `ready` when an export passes the gate) or
        `candidate` (a retrained version: it stays out of `@latest` until it is promoted).
        """
        check_model_name(name)
        if status not in ("registered", "candidate"):
            raise BadRequest(f"a new version is registered or a candidate, not {status!r}")
        if progress:
            progress("database")
        with self.db.write() as session:
            parent_row = resolve(session, parse_ref(parent)) if parent else None
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
                status=status,
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
            return to_record(session, row)

    def add_artifact(self, ref: str | ModelRef, staged: StagedArtifact) -> ArtifactInfo:
        """Attach an artifact (an export and its parity report) to an existing version."""
        with self.db.write() as session:
            row = resolve(session, as_ref(ref))
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
        if staged.status == "passed" and version.status == "registered":
            version.status = "ready"  # a candidate stays one until it is promoted
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
            return to_record(session, resolve(session, as_ref(ref)))

    def versions(self, name: str) -> list[ModelVersion]:
        with self.db.read() as session:
            model = find_model(session, name)
            rows = session.scalars(
                version_query().where(VersionRow.model_id == model.id).order_by(VersionRow.number)
            ).all()
            return [to_record(session, row) for row in rows]

    def models(self) -> list[ModelSummary]:
        """One row per model, in two queries however many models and versions there are."""
        ready = case((VersionRow.status == "ready", VersionRow.number))
        counts = (
            select(
                VersionRow.model_id,
                func.count(VersionRow.id).label("versions"),
                func.max(VersionRow.number).label("latest"),
                func.max(ready).label("latest_ready"),
            )
            .group_by(VersionRow.model_id)
            .subquery()
        )
        with self.db.read() as session:
            rows = session.execute(
                select(ModelRow, counts.c.versions, counts.c.latest, counts.c.latest_ready)
                .outerjoin(counts, counts.c.model_id == ModelRow.id)
                .order_by(ModelRow.name)
            ).all()
            aliases: dict[int, dict[str, int]] = {}
            for model_id, alias, number in session.execute(
                select(AliasRow.model_id, AliasRow.name, VersionRow.number).join(
                    VersionRow, AliasRow.version_id == VersionRow.id
                )
            ):
                aliases.setdefault(model_id, {})[alias] = number
            return [
                ModelSummary(
                    name=model.name,
                    created_at=model.created_at,
                    versions=versions or 0,
                    latest_version=latest,
                    latest_ready=latest_ready,
                    aliases=aliases.get(model.id, {}),
                )
                for model, versions, latest, latest_ready in rows
            ]

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
        ancestors: list[ModelVersion] = []
        parent, seen = version.parent, {version.ref}
        while parent and parent not in seen:
            seen.add(parent)
            ancestors.append(self.get(parent))
            parent = ancestors[-1].parent
        return lineage_document(version, ancestors)

    # ------------------------------------------------------------------ artifacts

    def open_artifact(self, artifact: ArtifactInfo) -> Path:
        """The artifact's folder, every file checked against its sha256 first."""
        return self.store.open(artifact.manifest)

    def open_servable(
        self, ref: str | ModelRef, kind: str
    ) -> tuple[ModelVersion, ArtifactInfo, Path]:
        """An exported artifact that passed the parity gate; anything else is refused."""
        version = self.get(ref)
        artifact = version.servable_artifact(kind)
        if artifact is not None:
            return version, artifact, self.open_artifact(artifact)
        if version.artifact(kind) is None:
            raise ArtifactNotFound(
                f"{version.ref} has no {kind} artifact; run `mlgate export` first"
            )
        raise NotServable(
            f"{version.ref}'s {kind} artifact failed the parity gate and can never be served; "
            "fix the model or the export and export again"
        )

    # ------------------------------------------------------------------ serving

    def set_serving_config(
        self, ref: str | ModelRef, config: Mapping[str, Any], *, actor: str | None = None
    ) -> dict[str, Any]:
        """Store how the gateway serves this version (validated by the gateway first)."""
        with self.db.write() as session:
            return write_serving_config(session, as_ref(ref), config, actor or self.actor())

    def serving_config(self, ref: str | ModelRef) -> dict[str, Any]:
        with self.db.read() as session:
            return read_serving_config(session, as_ref(ref))

    def serving_config_stamps(self, model_names: Sequence[str]) -> dict[tuple[str, int], str]:
        """When each version's serving config last changed (so a gateway can reload it)."""
        with self.db.read() as session:
            return config_stamps(session, model_names)

    def alias_targets(self, aliases: Sequence[str]) -> dict[str, dict[str, int]]:
        """{model: {alias: version}} for these aliases across all models (one query)."""
        with self.db.read() as session:
            return alias_targets(session, aliases)

    # ------------------------------------------------------------------ aliases

    def set_alias(
        self, name: str, alias: str, version: int, *, reason: str, actor: str | None = None
    ) -> AliasEvent:
        """Point `alias` at `name:version`, recording who, when and why (see aliases.py).

        Promoting a candidate (or a declined one, by a person's choice) makes it `ready`.
        """
        with self.db.write() as session:
            return move_alias(
                session, name, alias, version, reason=reason, actor=actor or self.actor()
            )

    def decline(self, ref: str | ModelRef) -> ModelVersion:
        """Mark a candidate `declined`: kept, never `@latest`, promotable only by a person."""
        with self.db.write() as session:
            row = resolve(session, as_ref(ref))
            if row.status not in ("candidate", "declined"):
                raise Conflict(
                    f"{row.model.name}:{row.number} is {row.status}, not a candidate; only a "
                    "retrained candidate can be declined"
                )
            row.status = "declined"
            session.flush()
            return to_record(session, row)

    def alias_history(self, name: str, alias: str | None = None) -> list[AliasEvent]:
        with self.db.read() as session:
            return alias_events(session, name, alias)

    def actor(self) -> str:
        if self.settings.user:
            return self.settings.user
        try:
            user = getpass.getuser()
        except (KeyError, OSError):
            user = "unknown"
        return f"{user}@{socket.gethostname()}"

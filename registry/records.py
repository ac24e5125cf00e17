"""What the registry hands back: frozen records, detached from the database session."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from registry.manifest import Manifest
from registry.quality.problem import Problem
from registry.schema import AliasEventRow, ArtifactRow, VersionRow
from registry.signature import Signature

if TYPE_CHECKING:
    from registry.lineage import Dataset
    from registry.settings import RegistrySettings

__all__ = [
    "AliasEvent",
    "ArtifactInfo",
    "ModelSummary",
    "ModelVersion",
    "StagedArtifact",
    "VersionWriter",
    "lineage_document",
]

SERVABLE_KINDS = ("onnx", "torchscript")


@dataclass(frozen=True, slots=True)
class ArtifactInfo:
    id: int
    kind: str
    digest: str
    status: str
    manifest: Manifest
    details: dict[str, Any]
    parity: dict[str, Any] | None
    created_at: datetime

    @property
    def servable(self) -> bool:
        """Only exported artifacts that passed the parity gate may be served or promoted."""
        return self.kind in SERVABLE_KINDS and self.status == "passed"

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "status": self.status,
            "digest": self.digest,
            "files": self.manifest.to_json()["files"],
            "details": self.details,
            "parity": self.parity,
        }

    @classmethod
    def from_row(cls, row: ArtifactRow) -> ArtifactInfo:
        return cls(
            id=row.id,
            kind=row.kind,
            digest=row.digest,
            status=row.status,
            manifest=Manifest.from_json(row.manifest),
            details=dict(row.details),
            parity=row.parity,
            created_at=row.created_at,
        )


@dataclass(frozen=True, slots=True)
class ModelVersion:
    name: str
    version: int
    status: str
    source_format: str
    created_at: datetime
    created_by: str
    description: str
    signature: Signature
    lineage: dict[str, Any]
    aliases: tuple[str, ...]
    artifacts: tuple[ArtifactInfo, ...]
    parent: str | None
    task_id: str | None

    @property
    def ref(self) -> str:
        return f"{self.name}:{self.version}"

    def artifact(self, kind: str) -> ArtifactInfo | None:
        """The newest artifact of that kind (exports may be redone; history is kept)."""
        matches = [a for a in self.artifacts if a.kind == kind]
        return matches[-1] if matches else None

    def servable_artifact(self, kind: str) -> ArtifactInfo | None:
        """The newest artifact of that kind that passed the gate.

        A later export that fails (stricter tolerances, say) is kept as evidence but does
        not take a verified artifact away from a version that is already serving.
        """
        passed = [a for a in self.artifacts if a.kind == kind and a.servable]
        return passed[-1] if passed else None

    @property
    def problem(self) -> Problem | None:
        """What the version predicts (task, output kind), or None: see `problem_reason`."""
        data = self.lineage.get("problem")
        return None if not data else Problem.from_json(data)

    @property
    def problem_reason(self) -> str:
        """Why the problem is unknown ("" when it is known)."""
        if self.lineage.get("problem"):
            return ""
        return str(
            self.lineage.get("problem_reason")
            or "it was registered before versions recorded their task; register it again "
            "with task= (CLI --task)"
        )

    @property
    def servable_formats(self) -> list[str]:
        return [kind for kind in SERVABLE_KINDS if self.servable_artifact(kind) is not None]

    @classmethod
    def from_row(cls, row: VersionRow, aliases: list[str], parent: str | None) -> ModelVersion:
        return cls(
            name=row.model.name,
            version=row.number,
            status=row.status,
            source_format=row.source_format,
            created_at=row.created_at,
            created_by=row.created_by,
            description=row.description,
            signature=Signature.from_json(row.signature),
            lineage=dict(row.lineage),
            aliases=tuple(sorted(aliases)),
            artifacts=tuple(ArtifactInfo.from_row(a) for a in row.artifacts),
            parent=parent,
            task_id=row.task_id,
        )


@dataclass(frozen=True, slots=True)
class AliasEvent:
    model: str
    alias: str
    from_version: int | None
    to_version: int
    at: datetime
    actor: str
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "alias": self.alias,
            "from_version": self.from_version,
            "to_version": self.to_version,
            "at": self.at.isoformat(),
            "actor": self.actor,
            "reason": self.reason,
        }

    @classmethod
    def from_row(cls, row: AliasEventRow, model: str) -> AliasEvent:
        return cls(
            model=model,
            alias=row.alias,
            from_version=row.from_version,
            to_version=row.to_version,
            at=row.at,
            actor=row.actor,
            reason=row.reason,
        )


@dataclass(frozen=True, slots=True)
class ModelSummary:
    name: str
    created_at: datetime
    versions: int
    latest_version: int | None
    latest_ready: int | None
    aliases: dict[str, int] = field(default_factory=dict)


def lineage_document(version: ModelVersion, ancestors: list[ModelVersion]) -> dict[str, Any]:
    """Everything known about a version, as JSON-ready data (`mlgate show --json`)."""
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
        "ancestors": [
            {"ref": a.ref, "created_at": a.created_at.isoformat(), "task_id": a.task_id}
            for a in ancestors
        ],
        "artifacts": [a.to_json() for a in version.artifacts],
    }


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


class VersionWriter(Protocol):
    """What registering a model needs of a registry (`registry.store.Registry` is one):
    a place to stage artifact files, commit them, and one all-or-nothing version insert.
    `registry.registration` is written against this, not against the store."""

    @property
    def settings(self) -> RegistrySettings: ...

    def get(self, ref: str) -> ModelVersion: ...

    def stage(self) -> AbstractContextManager[Path]: ...

    def commit_artifact(self, folder: Path, kind: str, **fields: Any) -> StagedArtifact: ...

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
        progress: Callable[[str], None] | None = None,
    ) -> ModelVersion: ...

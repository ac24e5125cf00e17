"""What an artifact holds: its files, each with its SHA-256 and size, and the manifest's own
digest (the artifact's identity). Shared by the local store (`artifacts`) and the shared one
(`remote_artifacts`), which import it and not each other."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["FileEntry", "Manifest", "sha256_file"]


def sha256_file(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


@dataclass(frozen=True, slots=True)
class FileEntry:
    name: str
    sha256: str
    size: int


@dataclass(frozen=True, slots=True)
class Manifest:
    files: tuple[FileEntry, ...]

    @property
    def digest(self) -> str:
        canonical = json.dumps(self.to_json(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()

    def to_json(self) -> dict[str, Any]:
        return {"files": [{"name": f.name, "sha256": f.sha256, "size": f.size} for f in self.files]}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Manifest:
        return cls(tuple(FileEntry(f["name"], f["sha256"], int(f["size"])) for f in data["files"]))

    @property
    def total_size(self) -> int:
        return sum(f.size for f in self.files)

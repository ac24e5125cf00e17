"""The shared artifact store: content-addressed artifact folders at an fsspec URL.

Many replicas (gateways, the retrainer, the monitor) share one registry database and one
artifact store. The store is any fsspec URL (`MLGATE_ARTIFACTS_URL`: `s3://bucket/mlgate`,
`gs://...`, `file:///shared/artifacts`, `memory://...` in tests); each process keeps
verified local copies in its own `ArtifactStore` (the runtimes need real files).

Layout, the same as the local store's:

    <url>/<dd>/<digest>/<file>...          the artifact's files
    <url>/<dd>/<digest>/MANIFEST.json      written last: the artifact is complete

Object stores cannot rename a folder into place, so completeness is marked instead: the
manifest is written after every file, under a temporary name that is then moved (one put
on an object store, a rename on a filesystem). A reader that finds no manifest treats the
artifact as absent. Files are content-addressed, so two writers of the same artifact write
the same bytes and neither can spoil the other. Every download is re-hashed against the
manifest the registry database holds (not the one in the store) before it is used.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from registry.errors import ArtifactNotFound
from registry.manifest import Manifest

if TYPE_CHECKING:  # fsspec is imported when a shared store is configured, not by every command
    import fsspec

__all__ = ["MANIFEST_FILE", "RemoteArtifacts"]

MANIFEST_FILE = "MANIFEST.json"


class RemoteArtifacts:
    """Artifact folders at an fsspec URL, addressed by their manifest digest."""

    def __init__(self, url: str, **storage_options: Any) -> None:
        from fsspec.core import url_to_fs

        self.url = url.rstrip("/")
        filesystem, root = url_to_fs(self.url, **storage_options)
        self.fs: fsspec.AbstractFileSystem = filesystem
        self.root = root.rstrip("/")

    def has(self, manifest: Manifest) -> bool:
        return bool(self.fs.exists(self._path(manifest, MANIFEST_FILE)))

    def upload(self, folder: Path, manifest: Manifest) -> None:
        """Copy a committed local artifact folder up; the manifest goes last."""
        if self.has(manifest):
            return
        for entry in manifest.files:
            target = self._path(manifest, entry.name)
            self.fs.makedirs(target.rsplit("/", 1)[0], exist_ok=True)
            self.fs.put_file(str(folder / entry.name), target)
        final = self._path(manifest, MANIFEST_FILE)
        partial = f"{final}.{uuid.uuid4().hex}.tmp"
        self.fs.pipe_file(partial, json.dumps(manifest.to_json(), sort_keys=True).encode())
        self.fs.mv(partial, final)

    def download(self, manifest: Manifest, folder: Path) -> None:
        """Copy a complete artifact's files into `folder` (the caller verifies them)."""
        if not self.has(manifest):
            raise ArtifactNotFound(
                f"artifact {manifest.digest} is not in the shared store {self.url} "
                f"(no {MANIFEST_FILE}: never uploaded, or its upload did not finish)"
            )
        for entry in manifest.files:
            target = folder / entry.name
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                self.fs.get_file(self._path(manifest, entry.name), str(target))
            except FileNotFoundError:
                raise ArtifactNotFound(
                    f"artifact {manifest.digest} in {self.url} lacks its file {entry.name}"
                ) from None

    def _path(self, manifest: Manifest, name: str) -> str:
        digest = manifest.digest
        return f"{self.root}/{digest[:2]}/{digest}/{name}"

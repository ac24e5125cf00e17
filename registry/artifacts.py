"""Content-addressed artifact files on local disk.

An artifact is a folder of one or more files (`model.onnx` + `model.onnx.data` is one
artifact). Its manifest lists every file with its sha256 and size; the manifest's own
sha256 is the artifact's digest and names its folder: `<root>/<dd>/<digest>/`.

Writes are staged in `<root>/.staging/<random>/`, fsynced, and renamed into place in one
step, so a crash leaves at most an invisible staging folder (removed a day later) or an
unreferenced artifact folder, never a half-written one. Reads check every file's size and
sha256 against the manifest and refuse a mismatch, naming the file.

With a shared store (`registry.remote_artifacts`, an fsspec URL), this local store is the
process's verified cache: a commit is uploaded before it returns (so no database row can
name an artifact the other replicas cannot fetch), and an artifact missing here, or whose
copy here fails its check, is downloaded, verified and committed locally before use.
"""

from __future__ import annotations

import os
import shutil
import stat
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from registry.errors import ArtifactCorrupted, ArtifactNotFound
from registry.manifest import FileEntry, Manifest, sha256_file

if TYPE_CHECKING:
    from registry.remote_artifacts import RemoteArtifacts

__all__ = ["ArtifactStore", "FileEntry", "Manifest", "fsync_dir", "sha256_file"]

STAGING = ".staging"
STALE_STAGING_S = 24 * 3600


class ArtifactStore:
    """Artifact folders under `root`, addressed by their manifest digest; with `remote`,
    a verified cache of the shared store."""

    def __init__(self, root: Path, remote: RemoteArtifacts | None = None) -> None:
        self.root = Path(root)
        self.remote = remote

    @contextmanager
    def staging(self) -> Iterator[Path]:
        """A private empty folder to write an artifact into; removed if the block fails."""
        staging_root = self.root / STAGING
        staging_root.mkdir(parents=True, exist_ok=True)
        folder = staging_root / uuid.uuid4().hex
        folder.mkdir()
        try:
            yield folder
        finally:
            # After commit() the folder has been renamed away; otherwise it is garbage.
            if folder.exists():
                shutil.rmtree(folder, ignore_errors=True)

    def commit(self, folder: Path) -> Manifest:
        """Hash, fsync and move a staged folder into the store (and up to the shared store,
        if there is one); returns its manifest."""
        manifest = self._commit_local(folder)
        if self.remote is not None:
            self.remote.upload(self.path_of(manifest), manifest)
        return manifest

    def _commit_local(self, folder: Path) -> Manifest:
        entries = []
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            _fsync_file(path)
            entries.append(
                FileEntry(
                    path.relative_to(folder).as_posix(), sha256_file(path), path.stat().st_size
                )
            )
        if not entries:
            raise ValueError(f"refusing to store an empty artifact from {folder}")
        manifest = Manifest(tuple(entries))
        target = self.path_of(manifest)
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists():
            # Same content already stored (manifest digests match): keep the stored copy
            # if it is intact, otherwise replace it with the fresh one.
            try:
                self._open_local(manifest)
            except ArtifactCorrupted:
                shutil.rmtree(target)
            else:
                shutil.rmtree(folder)
                return manifest
        for path in folder.rglob("*"):
            if path.is_file():
                path.chmod(stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
        fsync_dir(folder)
        try:
            folder.replace(target)
        except OSError:
            # Another process stored the same content between our check and the rename.
            if not target.is_dir():
                raise
            self._open_local(manifest)
            shutil.rmtree(folder)
            return manifest
        fsync_dir(target.parent)
        self._remove_stale_staging()
        return manifest

    def open(self, manifest: Manifest) -> Path:
        """The artifact's folder, after checking every file against the manifest."""
        if self.remote is None:
            return self._open_local(manifest)
        try:
            return self._open_local(manifest)
        except (ArtifactNotFound, ArtifactCorrupted):
            return self._fetch(manifest, self.remote)

    def _fetch(self, manifest: Manifest, remote: RemoteArtifacts) -> Path:
        """Download into staging, then commit: the commit re-hashes every file, and a copy
        whose digest differs from the database's manifest is refused."""
        target = self.path_of(manifest)
        if target.exists():
            shutil.rmtree(target)  # a corrupted or partial cached copy
        with self.staging() as folder:
            remote.download(manifest, folder)
            stored = self._commit_local(folder)
        if stored != manifest:
            raise ArtifactCorrupted(
                f"artifact {manifest.digest} downloaded from {remote.url} does not match the "
                f"registry's manifest (got {stored.digest}); refusing to use it"
            )
        return self._open_local(manifest)

    def _open_local(self, manifest: Manifest) -> Path:
        folder = self.path_of(manifest)
        if not folder.is_dir():
            raise ArtifactNotFound(f"artifact {manifest.digest} is missing from {self.root}")
        for entry in manifest.files:
            path = folder / entry.name
            if not path.is_file():
                raise ArtifactCorrupted(f"artifact file {path} is missing")
            size = path.stat().st_size
            if size != entry.size:
                raise ArtifactCorrupted(
                    f"artifact file {path} is {size} bytes; the manifest says {entry.size}"
                )
            actual = sha256_file(path)
            if actual != entry.sha256:
                raise ArtifactCorrupted(
                    f"artifact file {path} fails its checksum: sha256 {actual}, "
                    f"expected {entry.sha256}; refusing to use it"
                )
        return folder

    def path_of(self, manifest: Manifest) -> Path:
        digest = manifest.digest
        return self.root / digest[:2] / digest

    def _remove_stale_staging(self) -> None:
        cutoff = time.time() - STALE_STAGING_S
        for folder in (self.root / STAGING).iterdir():
            try:
                if folder.stat().st_mtime < cutoff:
                    shutil.rmtree(folder, ignore_errors=True)
            except FileNotFoundError:
                continue


def _fsync_file(path: Path) -> None:
    with path.open("rb") as handle:
        os.fsync(handle.fileno())


def fsync_dir(path: Path) -> None:
    """Make a created, renamed or deleted name in `path` survive a power cut."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)

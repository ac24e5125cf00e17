"""What the deploy writers (Triton repository, BentoML service) share.

- `ServingSettings`: the batching settings a version is served with, carried over to the
  peer server's own knobs. The gateway resolves them (`services.gateway.deployment`); the
  exporters may not import the gateway, so callers pass a `SettingsFor`, and
  `stored_settings` (the registry's stored serving config over these defaults, which a
  test keeps equal to `GatewaySettings`') is what a caller without a gateway gets.
- Writing an output folder all or nothing: everything is written into a hidden sibling
  of OUT, checked there, then renamed into place entry by entry, the replaced entries
  moved aside first and put back if a rename fails. A failed write leaves OUT as it was.
- Copying an artifact's files, each re-hashed as it is copied, so the copy is known to be
  the bytes that passed the parity gate (not only the file that was checked on open).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from registry.artifacts import Manifest, fsync_dir
from registry.errors import ArtifactCorrupted, BadRequest, Conflict
from registry.records import ModelVersion

__all__ = [
    "OutputNotEmpty",
    "OutputNotUsable",
    "ServingSettings",
    "SettingsFor",
    "copy_verified",
    "prepare_output",
    "publish",
    "staging_folder",
    "stored_settings",
]

_COPY_CHUNK = 1 << 20


class OutputNotEmpty(Conflict):
    """OUT already holds files and --force was not given."""


class OutputNotUsable(BadRequest):
    """OUT is a file, or cannot be written."""


@dataclass(frozen=True, slots=True)
class ServingSettings:
    """How one version is served, as far as another server can take it over."""

    max_batch_size: int = 32
    max_queue_delay_ms: float = 5.0
    max_queue: int = 1024
    slo_ms: float = 250.0
    intra_op_threads: int = 1

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any], base: ServingSettings) -> ServingSettings:
        """`base` with the known keys of `values` (a stored serving config) applied."""
        known = {f.name for f in fields(cls)}
        update = {key: value for key, value in values.items() if key in known}
        return cls(**{**{f.name: getattr(base, f.name) for f in fields(cls)}, **update})


SettingsFor = Callable[[ModelVersion], ServingSettings]


def stored_settings(registry: Any, defaults: ServingSettings | None = None) -> SettingsFor:
    """Each version's stored serving config over `defaults` (the gateway's own defaults)."""
    base = defaults or ServingSettings()

    def settings_for(version: ModelVersion) -> ServingSettings:
        return ServingSettings.from_mapping(registry.serving_config(version.ref), base)

    return settings_for


def prepare_output(out: Path, *, force: bool, replacing: Sequence[str] | None = None) -> None:
    """Refuse OUT before any work: a file, or a folder with files in it and no --force.

    `replacing` (with --force) are the entries about to be replaced; only they are touched.
    """
    if out.exists() and not out.is_dir():
        raise OutputNotUsable(f"{out} is a file; expected a folder (new or empty)")
    if out.is_dir() and any(out.iterdir()) and not force:
        entries = sorted(p.name for p in out.iterdir())
        shown = ", ".join(entries[:5]) + (", ..." if len(entries) > 5 else "")
        kept = f" ({', '.join(replacing)})" if replacing else ""
        raise OutputNotEmpty(
            f"{out} is not empty ({shown}); pass --force to replace what this writes{kept} "
            "and keep the rest"
        )


@contextmanager
def staging_folder(out: Path) -> Iterator[Path]:
    """A new hidden sibling of OUT (same file system, so renames are atomic); removed after."""
    parent = out.absolute().parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        folder = parent / f".{out.name}.mlgate-{uuid.uuid4().hex[:12]}"
        folder.mkdir()
    except OSError as exc:
        raise OutputNotUsable(f"cannot write beside {out}: {exc.strerror or exc}") from exc
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def publish(staging: Path, out: Path, entries: Sequence[str]) -> None:
    """Move `entries` from `staging` into OUT, replacing entries of the same names.

    A new or empty OUT is replaced by the staging folder in one rename. Otherwise the old
    entries are moved aside first; if any rename fails, what was moved is put back.
    """
    out = out.absolute()
    if not out.exists() or (out.is_dir() and not any(out.iterdir())):
        whole = staging.parent / f"{staging.name}.new"
        whole.mkdir()
        try:
            for name in entries:
                (staging / name).rename(whole / name)
            whole.replace(out)  # rename(2) replaces an empty folder in one step
        finally:
            shutil.rmtree(whole, ignore_errors=True)  # gone already unless the rename failed
        fsync_dir(out.parent)
        return
    aside = staging.parent / f"{staging.name}.old"
    aside.mkdir()
    moved_aside: list[str] = []
    moved_in: list[str] = []
    try:
        for name in entries:
            if (out / name).exists() or (out / name).is_symlink():
                (out / name).rename(aside / name)
                moved_aside.append(name)
        for name in entries:
            (staging / name).rename(out / name)
            moved_in.append(name)
    except OSError:
        for name in moved_in:
            _remove(out / name)
        for name in moved_aside:
            (aside / name).rename(out / name)
        raise
    finally:
        shutil.rmtree(aside, ignore_errors=True)
    fsync_dir(out)


def copy_verified(source: Path, manifest: Manifest, target: Path) -> list[Path]:
    """Copy every file of an artifact into `target`, hashing each copy against the manifest."""
    copied = []
    for entry in manifest.files:
        destination = target / entry.name
        destination.parent.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256()
        with (source / entry.name).open("rb") as reader, destination.open("wb") as writer:
            while chunk := reader.read(_COPY_CHUNK):
                digest.update(chunk)
                writer.write(chunk)
            writer.flush()
            os.fsync(writer.fileno())
        if digest.hexdigest() != entry.sha256:
            raise ArtifactCorrupted(
                f"artifact file {entry.name!r} changed while it was copied: sha256 "
                f"{digest.hexdigest()[:12]}…, the manifest says {entry.sha256[:12]}…"
            )
        copied.append(destination)
    return copied


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)

"""Write a Triton model repository from registered versions whose export passed the gate.

    write_triton_repository(registry, ["credit-risk@production"], Path("repo"))
    tritonserver --model-repository=repo

Layout: `<repo>/<model>/config.pbtxt` and one folder per version, named by the registry's
version number: `<N>/model.onnx` (a folder `<N>/model.onnx/` holding `model.onnx` and its
external data files when the artifact has any, as Triton requires for multi-file ONNX) or
`<N>/model.pt` (TorchScript). One Triton model has one config, so all versions written for
a model share a format and a signature.

Which versions: each reference as `Registry.get` resolves it (`name` is the newest version,
`name:3`, `name@alias`); one that has no gate-passed artifact of the format is an error.
With no reference, every version that one of `aliases` (the gateway's serving aliases)
points to; those without a usable artifact are skipped, each with a reason.

Format: `fmt="auto"` takes, per model, the format that covers most of its versions, ONNX on
a tie (onnxruntime needs no TorchScript); or `"onnx"` / `"torchscript"`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from exporters.deploy_common import (
    ServingSettings,
    SettingsFor,
    copy_verified,
    prepare_output,
    publish,
    staging_folder,
    stored_settings,
)
from exporters.triton_checks import check_model_file, check_repository
from exporters.triton_config import (
    BACKENDS,
    MODEL_FILES,
    InstanceKind,
    ModelEntry,
    build_config,
    config_text,
)
from registry.errors import (
    BadRequest,
    Conflict,
    ExportFailed,
    MlgateError,
    NotFound,
    NotServable,
)
from registry.records import ArtifactInfo, ModelVersion
from registry.store import Registry

__all__ = ["TritonRepository", "WrittenModel", "check_repository", "write_triton_repository"]

TritonFormat = Literal["auto", "onnx", "torchscript"]


@dataclass(frozen=True, slots=True)
class WrittenModel:
    name: str
    fmt: str
    backend: str
    versions: dict[int, str]
    """{version: artifact digest}"""
    layout: dict[int, str]
    """{version: "file" | "directory"}: the ONNX directory form holds external data."""
    settings: ServingSettings
    settings_from: int
    """The version whose serving settings the config carries (the newest written)."""

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "format": self.fmt,
            "backend": self.backend,
            "versions": {str(k): v for k, v in self.versions.items()},
            "layout": {str(k): v for k, v in self.layout.items()},
            "max_batch_size": self.settings.max_batch_size,
            "max_queue_delay_ms": self.settings.max_queue_delay_ms,
            "max_queue": self.settings.max_queue,
            "settings_from": self.settings_from,
        }


@dataclass(frozen=True, slots=True)
class TritonRepository:
    out: Path
    models: list[WrittenModel]
    skipped: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "out": str(self.out),
            "models": [m.to_json() for m in self.models],
            "skipped": self.skipped,
        }


@dataclass(frozen=True, slots=True)
class _Wanted:
    version: ModelVersion
    explicit: bool
    via: str


def write_triton_repository(
    registry: Registry,
    refs: Sequence[str],
    out: Path,
    *,
    fmt: TritonFormat = "auto",
    instance_kind: InstanceKind = "cpu",
    instance_count: int = 1,
    force: bool = False,
    aliases: Sequence[str] = ("production",),
    serving: SettingsFor | None = None,
) -> TritonRepository:
    """Write (or with `force`, replace) the models for `refs` in the repository at `out`.

    All or nothing: written beside `out`, every config parsed with Triton's schema and
    every file re-hashed, then renamed into place. `serving` gives each version's batching
    settings (default: its stored serving config over `ServingSettings()`).
    """
    if fmt not in ("auto", *MODEL_FILES):
        raise BadRequest(f"format {fmt!r}: expected auto, onnx or torchscript")
    if instance_kind not in ("cpu", "gpu"):
        raise BadRequest(f"instance kind {instance_kind!r}: expected cpu or gpu")
    if instance_count < 1:
        raise BadRequest(f"instance count {instance_count}: expected at least 1")
    out = Path(out)
    prepare_output(out, force=force)
    wanted = _select(registry, refs, aliases)
    skipped: list[str] = []
    plans = _plan(wanted, fmt, skipped)
    if not plans:
        raise NotFound("nothing to write: " + "; ".join(skipped))
    settings_for = serving or stored_settings(registry)
    written = []
    with staging_folder(out) as staging:
        for name, kind, versions in plans:
            written.append(
                _write_model(
                    registry,
                    staging,
                    name,
                    kind,
                    versions,
                    settings_for(versions[-1]),
                    instance_kind,
                    instance_count,
                )
            )
        problems = check_repository(staging, [m.name for m in written])
        if problems:
            raise ExportFailed("the written repository is not valid: " + "; ".join(problems))
        prepare_output(out, force=force)  # again: someone may have written there meanwhile
        publish(staging, out, [m.name for m in written])
    return TritonRepository(out, written, skipped)


def _select(registry: Registry, refs: Sequence[str], aliases: Sequence[str]) -> list[_Wanted]:
    if refs:
        return [_Wanted(registry.get(ref), True, ref) for ref in refs]
    if not aliases:
        raise BadRequest("no model references and no serving aliases: nothing to select")
    targets = registry.alias_targets(list(aliases))
    if not targets:
        raise NotFound(
            f"no model has a serving alias ({', '.join(aliases)}); name versions "
            "(NAME, NAME:VERSION or NAME@ALIAS) or promote one first"
        )
    wanted = []
    for model in sorted(targets):
        for alias in aliases:
            if alias in targets[model]:
                version = registry.get(f"{model}:{targets[model][alias]}")
                wanted.append(_Wanted(version, False, f"{model}@{alias}"))
    return wanted


def _plan(
    wanted: list[_Wanted], fmt: TritonFormat, skipped: list[str]
) -> list[tuple[str, str, list[ModelVersion]]]:
    """Per model: (name, format, versions oldest first) after dropping what cannot go in."""
    by_model: dict[str, dict[int, _Wanted]] = {}
    for item in wanted:
        versions = by_model.setdefault(item.version.name, {})
        if item.version.version not in versions or item.explicit:
            versions[item.version.version] = item
    plans = []
    for name, items in by_model.items():
        kind = fmt if fmt != "auto" else _best_format(list(items.values()))
        kept: list[_Wanted] = []
        for number in sorted(items, reverse=True):  # newest first: it sets the signature
            item = items[number]
            refusal = _unusable(item.version, kind, kept[0].version if kept else None)
            if refusal is None:
                kept.append(item)
            elif item.explicit:
                raise refusal
            else:
                skipped.append(f"{item.via} ({item.version.ref}): {refusal}")
        if kept:
            plans.append((name, kind, [k.version for k in reversed(kept)]))
    return plans


def _best_format(items: list[_Wanted]) -> str:
    onnx_count = sum(1 for i in items if i.version.servable_artifact("onnx") is not None)
    torchscript_count = sum(
        1 for i in items if i.version.servable_artifact("torchscript") is not None
    )
    return "torchscript" if torchscript_count > onnx_count else "onnx"


def _unusable(version: ModelVersion, kind: str, newest: ModelVersion | None) -> MlgateError | None:
    """Why this version cannot go into the model (an error to raise or a reason to skip)."""
    if version.servable_artifact(kind) is None:
        has = version.servable_formats
        other = f"; it has {', '.join(has)} (choose it with --format)" if has else ""
        return NotServable(
            f"{version.ref} has no {kind} artifact that passed the parity gate{other}; "
            f"`mlgate export {version.ref} --format {kind}`, or NAME@latest for the newest "
            "version that has one"
        )
    if newest is not None:
        ours, theirs = version.signature, newest.signature
        if (ours.inputs, ours.outputs) != (theirs.inputs, theirs.outputs):
            return Conflict(
                f"{version.ref}'s signature differs from {newest.ref}'s, and one Triton "
                "model has one config; write them to separate repositories"
            )
    return None


def _write_model(
    registry: Registry,
    staging: Path,
    name: str,
    kind: str,
    versions: list[ModelVersion],
    settings: ServingSettings,
    instance_kind: InstanceKind,
    instance_count: int,
) -> WrittenModel:
    folder = staging / name
    digests: dict[int, str] = {}
    layout: dict[int, str] = {}
    for version in versions:
        _, artifact, source = registry.open_servable(version.ref, kind)
        target = folder / str(version.version)
        layout[version.version] = _place(artifact, source, target, kind)
        check_model_file(version, kind, target / MODEL_FILES[kind])
        digests[version.version] = artifact.digest
    entry = ModelEntry(name, kind, versions[-1].signature, digests, settings)
    config = build_config(entry, instance_kind=instance_kind, instance_count=instance_count)
    refs = ", ".join(v.ref for v in versions)
    header = [f"Written by `mlgate triton-repo` from {refs} ({kind} artifacts that passed"]
    header.append("the parity gate). Tensor names and order are the registry signature's.")
    (folder / "config.pbtxt").write_text(config_text(config, header))
    return WrittenModel(name, kind, BACKENDS[kind], digests, layout, settings, versions[-1].version)


def _place(artifact: ArtifactInfo, source: Path, target: Path, kind: str) -> str:
    files = [entry.name for entry in artifact.manifest.files]
    if kind == "onnx" and files != ["model.onnx"]:
        # External data: Triton loads a folder named model.onnx holding all the files.
        copy_verified(source, artifact.manifest, target / "model.onnx")
        return "directory"
    if files != [MODEL_FILES[kind]]:
        raise ExportFailed(f"a {kind} artifact holds {files}; expected [{MODEL_FILES[kind]!r}]")
    copy_verified(source, artifact.manifest, target)
    return "file"

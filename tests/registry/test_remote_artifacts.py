"""The shared artifact store at an fsspec URL, with each process's verified local cache.

`memory://` is fsspec's in-process filesystem (a real fsspec backend, not a mock); the
cross-process case over `file://` runs in tests/e2e/test_replicas.py.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import fsspec
import numpy as np
import pandas as pd
import pytest
import torch

from registry import Registry
from registry.artifacts import ArtifactStore, Manifest
from registry.errors import ArtifactCorrupted, ArtifactNotFound
from registry.reference import REFERENCE_FILE, read_reference
from registry.remote_artifacts import MANIFEST_FILE, RemoteArtifacts
from tests.fixtures import make_mlp


@pytest.fixture
def shared_url() -> Iterator[str]:
    url = f"memory://mlgate-{uuid.uuid4().hex}"
    yield url
    filesystem = fsspec.filesystem("memory")
    if filesystem.exists(url):
        filesystem.rm(url, recursive=True)


def _stored(store: ArtifactStore, data: bytes = b"weights") -> Manifest:
    with store.staging() as folder:
        (folder / "model.onnx").write_bytes(b"graph")
        (folder / "sub").mkdir()
        (folder / "sub" / "model.onnx.data").write_bytes(data)
        return store.commit(folder)


def _remote_path(url: str, manifest: Manifest, name: str) -> str:
    return f"{url}/{manifest.digest[:2]}/{manifest.digest}/{name}"


def test_a_commit_is_uploaded_with_its_manifest_last(tmp_path: Path, shared_url: str) -> None:
    writer = ArtifactStore(tmp_path / "a", RemoteArtifacts(shared_url))
    manifest = _stored(writer)
    filesystem = fsspec.filesystem("memory")
    for name in ("model.onnx", "sub/model.onnx.data", MANIFEST_FILE):
        assert filesystem.exists(_remote_path(shared_url, manifest, name))
    assert not [p for p in filesystem.find(shared_url) if p.endswith(".tmp")]


def test_another_replica_downloads_and_verifies(tmp_path: Path, shared_url: str) -> None:
    manifest = _stored(ArtifactStore(tmp_path / "a", RemoteArtifacts(shared_url)))
    reader = ArtifactStore(tmp_path / "b", RemoteArtifacts(shared_url))
    folder = reader.open(manifest)
    assert folder.is_relative_to(tmp_path / "b")
    assert (folder / "sub" / "model.onnx.data").read_bytes() == b"weights"
    assert reader.open(manifest) == folder  # the second open uses the cache


def test_a_tampered_shared_copy_is_refused_and_nothing_is_cached(
    tmp_path: Path, shared_url: str
) -> None:
    manifest = _stored(ArtifactStore(tmp_path / "a", RemoteArtifacts(shared_url)))
    fsspec.filesystem("memory").pipe_file(
        _remote_path(shared_url, manifest, "sub/model.onnx.data"), b"weighs!"
    )
    reader = ArtifactStore(tmp_path / "b", RemoteArtifacts(shared_url))
    with pytest.raises(ArtifactCorrupted, match="does not match the registry's manifest"):
        reader.open(manifest)
    assert not reader.path_of(manifest).exists()
    assert not any((tmp_path / "b" / ".staging").iterdir())


def test_an_unfinished_upload_is_not_an_artifact(tmp_path: Path, shared_url: str) -> None:
    manifest = _stored(ArtifactStore(tmp_path / "a", RemoteArtifacts(shared_url)))
    fsspec.filesystem("memory").rm(_remote_path(shared_url, manifest, MANIFEST_FILE))
    reader = ArtifactStore(tmp_path / "b", RemoteArtifacts(shared_url))
    with pytest.raises(ArtifactNotFound, match="upload did not finish"):
        reader.open(manifest)


def test_a_shared_copy_missing_a_file_is_not_found(tmp_path: Path, shared_url: str) -> None:
    manifest = _stored(ArtifactStore(tmp_path / "a", RemoteArtifacts(shared_url)))
    fsspec.filesystem("memory").rm(_remote_path(shared_url, manifest, "sub/model.onnx.data"))
    reader = ArtifactStore(tmp_path / "b", RemoteArtifacts(shared_url))
    with pytest.raises(ArtifactNotFound, match=r"lacks its file sub/model\.onnx\.data"):
        reader.open(manifest)
    assert not reader.path_of(manifest).exists()


def test_a_corrupted_cached_copy_is_fetched_again(tmp_path: Path, shared_url: str) -> None:
    manifest = _stored(ArtifactStore(tmp_path / "a", RemoteArtifacts(shared_url)))
    reader = ArtifactStore(tmp_path / "b", RemoteArtifacts(shared_url))
    cached = reader.open(manifest) / "model.onnx"
    cached.chmod(0o600)
    cached.write_bytes(b"grapH")
    assert (reader.open(manifest) / "model.onnx").read_bytes() == b"graph"


def test_without_a_shared_store_a_missing_artifact_stays_missing(tmp_path: Path) -> None:
    manifest = _stored(ArtifactStore(tmp_path / "a"))
    with pytest.raises(ArtifactNotFound):
        ArtifactStore(tmp_path / "b").open(manifest)


def test_registries_on_two_homes_share_versions_through_the_url(
    registry_url: str, tmp_path: Path, shared_url: str
) -> None:
    """What two replicas see: one database, one shared store, two local caches."""
    features = [f"f{i}" for i in range(6)]
    frame = pd.DataFrame(np.random.default_rng(0).standard_normal((200, 6)), columns=features)
    first = Registry(url=registry_url, home=tmp_path / "one", artifacts_url=shared_url)
    second = Registry(url=registry_url, home=tmp_path / "two", artifacts_url=shared_url)
    try:
        version = first.register(
            make_mlp(), "churn", torch.randn(8, 6), feature_names=features, reference=frame
        )
        with first.stage() as folder:
            (folder / "model.onnx").write_bytes(b"not really onnx")
            staged = first.commit_artifact(folder, "onnx", status="passed", parity={"ok": 1})
        first.add_artifact(version.ref, staged)
        opened, _, folder = second.open_servable(version.ref, "onnx")
        assert opened.version == version.version
        assert folder.is_relative_to((tmp_path / "two").resolve())
        assert (folder / "model.onnx").read_bytes() == b"not really onnx"
        reference = opened.artifact("reference")
        assert reference is not None
        stored = read_reference(second.open_artifact(reference) / REFERENCE_FILE)
        assert len(next(iter(stored.inputs.values()))) == 200
    finally:
        first.close()
        second.close()

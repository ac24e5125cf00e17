from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from registry.artifacts import ArtifactStore, Manifest, sha256_file
from registry.errors import ArtifactCorrupted, ArtifactNotFound


def _store_two_files(store: ArtifactStore, data: bytes = b"weights") -> Manifest:
    with store.staging() as folder:
        (folder / "model.onnx").write_bytes(b"graph")
        (folder / "model.onnx.data").write_bytes(data)
        return store.commit(folder)


def _flip_one_byte(path: Path) -> None:
    path.chmod(stat.S_IRUSR | stat.S_IWUSR)
    content = bytearray(path.read_bytes())
    content[len(content) // 2] ^= 0x01
    path.write_bytes(bytes(content))


def test_a_multi_file_artifact_is_one_manifest_addressed_by_its_digest(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    manifest = _store_two_files(store)
    assert [f.name for f in manifest.files] == ["model.onnx", "model.onnx.data"]
    folder = store.open(manifest)
    assert folder.name == manifest.digest
    assert sha256_file(folder / "model.onnx.data") == manifest.files[1].sha256
    assert not any((tmp_path / ".staging").iterdir()), "staging must be empty after commit"


def test_files_are_read_only_once_stored(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    folder = store.open(_store_two_files(store))
    assert not os.access(folder / "model.onnx", os.W_OK) or os.geteuid() == 0
    assert (folder / "model.onnx").stat().st_mode & 0o222 == 0


def test_identical_content_is_stored_once(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    first, second = _store_two_files(store), _store_two_files(store)
    assert first.digest == second.digest
    assert _store_two_files(store, b"other").digest != first.digest


def test_a_flipped_byte_is_refused_naming_the_file(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    manifest = _store_two_files(store, b"0123456789")
    _flip_one_byte(store.path_of(manifest) / "model.onnx.data")
    with pytest.raises(ArtifactCorrupted, match=r"model\.onnx\.data fails its checksum"):
        store.open(manifest)


def test_a_truncated_or_missing_file_is_refused(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    manifest = _store_two_files(store, b"0123456789")
    data = store.path_of(manifest) / "model.onnx.data"
    data.chmod(stat.S_IRUSR | stat.S_IWUSR)
    data.write_bytes(b"0123")
    with pytest.raises(ArtifactCorrupted, match="is 4 bytes; the manifest says 10"):
        store.open(manifest)
    data.unlink()
    with pytest.raises(ArtifactCorrupted, match=r"model\.onnx\.data is missing"):
        store.open(manifest)


def test_a_missing_artifact_folder_is_not_found(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    manifest = _store_two_files(store)
    other = ArtifactStore(tmp_path / "elsewhere")
    with pytest.raises(ArtifactNotFound):
        other.open(manifest)


def test_a_corrupted_stored_copy_is_replaced_by_a_fresh_commit(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    manifest = _store_two_files(store, b"0123456789")
    _flip_one_byte(store.path_of(manifest) / "model.onnx.data")
    assert _store_two_files(store, b"0123456789") == manifest
    store.open(manifest)


def test_a_failed_write_leaves_nothing(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)

    def write_then_crash() -> None:
        with store.staging() as folder:
            (folder / "partial").write_bytes(b"x")
            raise RuntimeError("crash while writing")

    with pytest.raises(RuntimeError):
        write_then_crash()
    assert list((tmp_path / ".staging").iterdir()) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == [".staging"]


def test_an_empty_artifact_is_refused(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    with pytest.raises(ValueError, match="empty artifact"), store.staging() as folder:
        store.commit(folder)

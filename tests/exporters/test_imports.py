from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from exporters import export, import_file, parse_input_spec
from registry import Registry
from registry.errors import ExportFailed, InvalidModelInput
from registry.signature import TensorSpec
from tests.fixtures import make_mlp, onnx_file


def _onnx_file(folder: Path, *, dynamic: bool = True, name: str = "churn.onnx") -> Path:
    return onnx_file(folder / name, dynamic=dynamic)


def test_an_onnx_file_with_external_data_is_one_artifact_and_is_gated(
    sqlite_registry: Registry, tmp_path: Path
) -> None:
    path = _onnx_file(tmp_path / "src")
    assert (tmp_path / "src" / "churn.onnx.data").exists()
    features = [f"f{i}" for i in range(6)]
    reference = pd.DataFrame(
        np.random.default_rng(0).standard_normal((50, 6)).astype(np.float32), columns=features
    )
    result = import_file(
        sqlite_registry, "imported", path, feature_names=features, reference=reference
    )
    assert result.passed, result.report["failures"]
    assert result.report["expected"] == "the same artifact, one row at a time"
    version = sqlite_registry.get(result.version.ref)
    assert version.source_format == "onnx"
    assert version.signature.input_names == ["x"]
    assert version.signature.output_names == ["p"]
    assert version.signature.feature_names == {"x": features}
    names = [f.name for f in result.artifact.manifest.files]
    assert names == ["churn.onnx.data", "model.onnx"]
    assert version.lineage["imported"]["original"] == str(path.resolve())
    assert sqlite_registry.set_alias("imported", "production", 1, reason="imported").to_version == 1
    with pytest.raises(ExportFailed, match="no eager PyTorch model"):
        export(sqlite_registry, version.ref, "torchscript")


def test_a_torchscript_file_needs_its_inputs(sqlite_registry: Registry, tmp_path: Path) -> None:
    path = tmp_path / "m.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.save(torch.jit.script(make_mlp()), str(path))
    with pytest.raises(InvalidModelInput, match="does not record its inputs"):
        import_file(sqlite_registry, "ts", path)
    result = import_file(sqlite_registry, "ts", path, inputs=[parse_input_spec("x:float32:-1,6")])
    assert result.passed, result.report["failures"]
    assert result.version.signature.outputs[0].shape == (-1, 1)
    assert [f.name for f in result.artifact.manifest.files] == ["model.pt"]


def test_a_fixed_batch_onnx_model_is_refused(sqlite_registry: Registry, tmp_path: Path) -> None:
    path = _onnx_file(tmp_path, dynamic=False)
    with pytest.raises(InvalidModelInput, match="fixed first dimension 4"):
        import_file(sqlite_registry, "fixed", path)
    assert sqlite_registry.models() == []


def test_missing_external_data_and_bad_files(sqlite_registry: Registry, tmp_path: Path) -> None:
    path = _onnx_file(tmp_path / "a")
    (tmp_path / "a" / "churn.onnx.data").unlink()
    with pytest.raises(
        InvalidModelInput, match=r"external data file 'churn\.onnx\.data' is missing"
    ):
        import_file(sqlite_registry, "broken", path)
    (tmp_path / "junk.onnx").write_bytes(b"not protobuf at all \x00\xff")
    with pytest.raises(InvalidModelInput, match="not a readable ONNX model"):
        import_file(sqlite_registry, "junk", tmp_path / "junk.onnx")
    with pytest.raises(InvalidModelInput, match="does not exist"):
        import_file(sqlite_registry, "none", tmp_path / "none.onnx")
    (tmp_path / "junk.pt").write_bytes(b"nope")
    with pytest.raises(InvalidModelInput, match="not a TorchScript model"):
        import_file(
            sqlite_registry,
            "junk",
            tmp_path / "junk.pt",
            inputs=[TensorSpec("x", "float32", (-1, 6))],
        )
    assert sqlite_registry.models() == []


def test_renamed_graph_keeps_its_data_file_name(sqlite_registry: Registry, tmp_path: Path) -> None:
    path = _onnx_file(tmp_path / "b", name="weird-name.onnx")
    shutil.copy(path, tmp_path / "b" / "copy.onnx")
    result = import_file(sqlite_registry, "renamed", tmp_path / "b" / "copy.onnx")
    assert result.passed
    assert {f.name for f in result.artifact.manifest.files} == {
        "model.onnx",
        "weird-name.onnx.data",
    }


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("x:float32", "NAME:DTYPE:SHAPE"),
        ("x:floaty:-1,3", "unknown dtype"),
        ("x:float32:-1,a", "integers"),
        ("x:float32:3,3", "must be -1"),
        (":float32:-1,3", "must be -1"),
    ],
)
def test_input_specs(text: str, fragment: str) -> None:
    with pytest.raises(InvalidModelInput, match=fragment):
        parse_input_spec(text)
    assert parse_input_spec("img:uint8:-1,3,8,8") == TensorSpec("img", "uint8", (-1, 3, 8, 8))

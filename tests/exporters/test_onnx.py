from __future__ import annotations

import onnx
import pytest
import torch

from exporters import export
from registry import Registry
from registry.errors import ExportFailed, InvalidModelInput
from tests.exporters.conftest import register_mlp
from tests.fixtures import SmallCNN, TwoInputs, make_mlp


def test_an_mlp_exports_with_a_dynamic_batch_and_passes(sqlite_registry: Registry) -> None:
    version = register_mlp(sqlite_registry)
    result = export(sqlite_registry, version.ref, "onnx")
    assert result.passed
    details = result.artifact.details
    assert details["exporter"] == "torch.export"
    assert details["opset"] == 20
    assert details["checker"] == "passed (full_check)"
    assert "fallback_reason" not in details
    # model.onnx + model.onnx.data: one artifact, both files checksummed.
    assert [f.name for f in result.artifact.manifest.files] == ["model.onnx", "model.onnx.data"]
    folder = sqlite_registry.open_artifact(result.artifact)
    graph = onnx.load(str(folder / "model.onnx"), load_external_data=False).graph
    assert graph.input[0].name == "x"
    assert graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    report = result.report
    assert report["batch_sizes"] == [1, 8, 64]
    assert report["inputs"] == ["random", "reference"]
    assert len(report["cases"]) == 6
    assert report["max_abs_diff"] < 1e-5
    assert report["tolerances"]["float32"] == {"rtol": 1e-4, "atol": 1e-5}
    assert report["failures"] == []
    assert sqlite_registry.get(version.ref).status == "ready"


def test_a_small_cnn_passes(sqlite_registry: Registry) -> None:
    version = sqlite_registry.register(SmallCNN(), "cnn", torch.randn(4, 1, 16, 16))
    result = export(sqlite_registry, version.ref, "onnx")
    assert result.passed, result.report["failures"]
    assert result.report["batch_sizes"] == [1, 4, 64]
    assert result.report["inputs"] == ["random"]  # no reference data was registered


def test_two_named_inputs_and_two_outputs(sqlite_registry: Registry) -> None:
    examples = {"numeric": torch.randn(8, 4), "counts": torch.randint(0, 5, (8, 3))}
    version = sqlite_registry.register(
        TwoInputs(),
        "two",
        examples,
        output_names=["score", "label"],
        reference={k: v.numpy() for k, v in examples.items()},
    )
    result = export(sqlite_registry, version.ref, "onnx")
    assert result.passed, result.report["failures"]
    outputs = result.report["cases"][0]["outputs"]
    assert outputs["label"]["dtype"] == "int64"
    assert outputs["label"]["rtol"] == 0.0  # integers must match exactly
    folder = sqlite_registry.open_artifact(result.artifact)
    graph = onnx.load(str(folder / "model.onnx"), load_external_data=False).graph
    assert [i.name for i in graph.input] == ["numeric", "counts"]
    assert [o.name for o in graph.output] == ["score", "label"]


def test_a_single_row_example_does_not_fix_the_batch(sqlite_registry: Registry) -> None:
    one_row = sqlite_registry.register(
        make_mlp(), "one-row", torch.randn(1, 6), factory="tests.fixtures:make_mlp"
    )
    result = export(sqlite_registry, one_row.ref, "onnx")
    assert result.passed, result.report["failures"]
    assert result.report["batch_sizes"] == [1, 64]


def test_unknown_format_and_unrebuildable_models(sqlite_registry: Registry) -> None:
    version = register_mlp(sqlite_registry)
    with pytest.raises(InvalidModelInput, match="expected one of onnx, torchscript"):
        export(sqlite_registry, version.ref, "tflite")

    class Local(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x + 1

    local = Local()
    registered = sqlite_registry.register(local, "local", torch.randn(3, 2))
    with pytest.raises(ExportFailed, match="cannot be rebuilt") as caught:
        export(sqlite_registry, registered.ref, "onnx")
    assert caught.value.status_code == 422
    assert export(sqlite_registry, registered.ref, "onnx", model=local).passed


def test_a_live_model_must_hold_the_registered_weights(sqlite_registry: Registry) -> None:
    version = register_mlp(sqlite_registry)
    other = torch.nn.Sequential(torch.nn.Linear(6, 1))
    with pytest.raises(InvalidModelInput, match="does not hold mlp:1's registered weights"):
        export(sqlite_registry, version.ref, "onnx", model=other)

from __future__ import annotations

import warnings

import pytest
import torch

from exporters import export
from exporters.runners import load_torchscript
from registry import Registry
from registry.errors import ExportFailed
from tests.exporters.conftest import register_mlp
from tests.fixtures import SmallCNN, TwoInputs


class NotScriptable(torch.nn.Module):
    """`torch.jit.script` rejects the **kwargs; tracing works."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(3, 2)

    def forward(self, x: torch.Tensor, **options: int) -> torch.Tensor:
        return self.linear(x)


@pytest.mark.parametrize("method", ["auto", "script", "trace"])
def test_an_mlp_exports_by_each_method(sqlite_registry: Registry, method: str) -> None:
    version = register_mlp(sqlite_registry)
    result = export(sqlite_registry, version.ref, "torchscript", method=method)  # type: ignore[arg-type]
    assert result.passed, result.report["failures"]
    assert result.artifact.details["method"] == ("script" if method == "auto" else method)
    assert [f.name for f in result.artifact.manifest.files] == ["model.pt"]
    assert result.report["batch_sizes"] == [1, 8, 64]


def test_torchscript_deprecations_are_handled_not_leaked(sqlite_registry: Registry) -> None:
    version = register_mlp(sqlite_registry)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any warning escaping the exporter fails the test
        result = export(sqlite_registry, version.ref, "torchscript")
        folder = sqlite_registry.open_artifact(result.artifact)
        load_torchscript(folder / "model.pt")
    assert result.artifact.details["log"]["torchscript_deprecations_expected"] >= 2


def test_cnn_and_two_inputs(sqlite_registry: Registry) -> None:
    cnn = sqlite_registry.register(SmallCNN(), "cnn", torch.randn(4, 1, 16, 16))
    assert export(sqlite_registry, cnn.ref, "torchscript").passed
    examples = {"numeric": torch.randn(8, 4), "counts": torch.randint(0, 5, (8, 3))}
    two = sqlite_registry.register(TwoInputs(), "two", examples, output_names=["score", "label"])
    result = export(sqlite_registry, two.ref, "torchscript")
    assert result.passed, result.report["failures"]


def test_auto_falls_back_to_trace_and_says_why(sqlite_registry: Registry) -> None:
    model = NotScriptable()
    version = sqlite_registry.register(model, "kw", torch.randn(4, 3))
    result = export(sqlite_registry, version.ref, "torchscript", model=model)
    assert result.passed
    assert result.artifact.details["method"] == "trace"
    assert result.artifact.details["script_error"]
    with pytest.raises(ExportFailed, match=r"torch\.jit\.script failed"):
        export(sqlite_registry, version.ref, "torchscript", model=model, method="script")
    assert [a.kind for a in sqlite_registry.get(version.ref).artifacts].count("torchscript") == 1

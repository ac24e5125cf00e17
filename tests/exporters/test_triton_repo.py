"""The Triton model repository writer: layout, config.pbtxt parsed with Triton's own
protobuf, version selection, all-or-nothing writes, and what Triton's backends accept."""

from __future__ import annotations

import dataclasses
import hashlib
import re
import shutil
import stat
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import onnx
import pytest
import torch
from google.protobuf import text_format  # type: ignore[import-untyped]
from torch import nn
from tritonclient.grpc import model_config_pb2 as pb

from exporters import export, import_file, parse_input_spec
from exporters.deploy_common import (
    OutputNotEmpty,
    OutputNotUsable,
    ServingSettings,
    copy_verified,
)
from exporters.triton_checks import check_model_file, check_repository, libtorch_binding_problem
from exporters.triton_config import InvalidTritonConfig, check_config, config_text, parse_config
from exporters.triton_repo import _place, write_triton_repository
from registry import Registry
from registry.artifacts import FileEntry, Manifest
from registry.errors import (
    ArtifactCorrupted,
    BadRequest,
    Conflict,
    ExportFailed,
    NotFound,
    NotServable,
)
from tests.exporters.conftest import register_mlp
from tests.fixtures import TwoInputs, make_mlp, onnx_file


class DictOutput(nn.Module):
    """Returns a dict: TorchScript keeps it, Triton's pytorch backend cannot return it."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(6, 2)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"score": self.linear(x)}


def _config(path: Path) -> Any:
    """config.pbtxt as Triton reads it: its ModelConfig schema, protobuf's text parser."""
    return text_format.Parse(path.read_text(), pb.ModelConfig())


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _siblings(out: Path) -> list[str]:
    return sorted(p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}."))


@pytest.fixture(scope="module")
def populated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """mlp:1,2 (ONNX with external data + TorchScript; v2 has a serving config), two:1
    (TorchScript only), plain:1 (a single-file ONNX), shape:1,2 (different signatures),
    bare:1 (never exported). production → mlp:2, two:1, shape:2; staging → mlp:1, shape:1;
    solo → two:1."""
    root = tmp_path_factory.mktemp("populated")
    registry = Registry(home=root / "home")
    for _ in range(2):
        version = register_mlp(registry)
        assert export(registry, version.ref, "onnx").passed
        assert export(registry, version.ref, "torchscript").passed
    registry.set_serving_config(
        "mlp:2", {"max_batch_size": 16, "max_queue_delay_ms": 2.5, "max_queue": 100}
    )
    examples = {"numeric": torch.randn(8, 4), "counts": torch.randint(0, 5, (8, 3))}
    two = registry.register(TwoInputs(), "two", examples, output_names=["score", "label"])
    assert export(registry, two.ref, "torchscript").passed
    external = onnx_file(root / "src" / "plain.onnx")
    single = root / "single.onnx"
    onnx.save_model(onnx.load(str(external)), str(single))  # weights inline: one file
    assert import_file(registry, "plain", single).passed
    for features in (6, 5):
        shaped = registry.register(
            make_mlp(n_features=features),
            "shape",
            torch.randn(4, features),
            factory="tests.fixtures:make_mlp",
            factory_kwargs={"n_features": features},
        )
        assert export(registry, shaped.ref, "onnx").passed
    registry.register(make_mlp(), "bare", torch.randn(4, 6))
    for name, number in (("mlp", 2), ("two", 1), ("shape", 2)):
        registry.set_alias(name, "production", number, reason="test")
    registry.set_alias("mlp", "staging", 1, reason="test")
    registry.set_alias("shape", "staging", 1, reason="test")
    registry.set_alias("two", "solo", 1, reason="test")
    yield registry
    registry.close()


def test_onnx_with_external_data_is_written_in_the_directory_form(
    populated: Registry, tmp_path: Path
) -> None:
    out = tmp_path / "repo"
    written = write_triton_repository(populated, ["mlp:2"], out)
    assert [m.name for m in written.models] == ["mlp"]
    version = populated.get("mlp:2")
    artifact = version.servable_artifact("onnx")
    assert artifact is not None
    folder = out / "mlp" / "2" / "model.onnx"
    assert folder.is_dir()  # Triton's form for a multi-file ONNX model
    assert written.models[0].layout == {2: "directory"}
    for entry in artifact.manifest.files:
        assert _sha256(folder / entry.name) == entry.sha256
    assert sorted(p.name for p in folder.iterdir()) == ["model.onnx", "model.onnx.data"]
    config = _config(out / "mlp" / "config.pbtxt")
    assert config.name == "mlp"
    assert config.backend == "onnxruntime"
    assert config.max_batch_size == 16  # from mlp:2's serving config
    assert [(t.name, pb.DataType.Name(t.data_type), list(t.dims)) for t in config.input] == [
        ("x", "TYPE_FP32", [6])  # the batch dimension is implied by max_batch_size > 0
    ]
    assert [(t.name, list(t.dims)) for t in config.output] == [("output", [1])]
    assert config.dynamic_batching.max_queue_delay_microseconds == 2500
    assert config.dynamic_batching.default_queue_policy.max_queue_size == 100
    assert [(g.kind, g.count) for g in config.instance_group] == [
        (pb.ModelInstanceGroup.KIND_CPU, 1)
    ]
    assert list(config.version_policy.specific.versions) == [2]
    assert config.parameters["mlgate_artifact_digest"].string_value == artifact.digest
    assert config.parameters["mlgate_artifact_digest.2"].string_value == artifact.digest
    assert check_repository(out) == []
    assert _siblings(out) == []


def test_a_single_file_onnx_model_is_a_file(populated: Registry, tmp_path: Path) -> None:
    (tmp_path / "repo").mkdir()  # an existing empty folder is fine
    written = write_triton_repository(populated, ["plain"], tmp_path / "repo")
    path = tmp_path / "repo" / "plain" / "1" / "model.onnx"
    assert path.is_file()
    assert written.models[0].layout == {1: "file"}
    config = _config(tmp_path / "repo" / "plain" / "config.pbtxt")
    assert [t.name for t in config.input] == ["x"]
    assert [t.name for t in config.output] == ["p"]
    assert config.max_batch_size == 32  # no stored config: the defaults


def test_torchscript_keeps_forward_names_and_reshapes_batch_only_tensors(
    populated: Registry, tmp_path: Path
) -> None:
    out = tmp_path / "repo"
    written = write_triton_repository(
        populated, ["two:1"], out, instance_kind="gpu", instance_count=2
    )
    assert written.models[0].fmt == "torchscript"  # auto: two:1 has only TorchScript
    assert (out / "two" / "1" / "model.pt").is_file()
    config = _config(out / "two" / "config.pbtxt")
    assert config.backend == "pytorch"
    inputs = [(t.name, pb.DataType.Name(t.data_type), list(t.dims)) for t in config.input]
    assert inputs == [("numeric", "TYPE_FP32", [4]), ("counts", "TYPE_INT64", [3])]
    outputs = {t.name: t for t in config.output}
    assert list(outputs) == ["score", "label"]
    # label is [batch]: Triton needs dims, so [1] per request, reshaped to [].
    assert list(outputs["label"].dims) == [1]
    assert outputs["label"].HasField("reshape")
    assert list(outputs["label"].reshape.shape) == []
    assert [(g.kind, g.count) for g in config.instance_group] == [
        (pb.ModelInstanceGroup.KIND_GPU, 2)
    ]
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning, message=r"`torch\.jit\.")
        module = torch.jit.load(str(out / "two" / "1" / "model.pt"))
    forward = [a.name for a in module.forward.schema.arguments[1:]]
    assert forward == [t.name for t in config.input]  # bound by name in Triton


def test_format_torchscript_is_chosen_explicitly(populated: Registry, tmp_path: Path) -> None:
    written = write_triton_repository(populated, ["mlp:1"], tmp_path / "r", fmt="torchscript")
    assert (tmp_path / "r" / "mlp" / "1" / "model.pt").is_file()
    assert written.models[0].backend == "pytorch"
    artifact = populated.get("mlp:1").servable_artifact("torchscript")
    assert artifact is not None
    assert _sha256(tmp_path / "r" / "mlp" / "1" / "model.pt") == artifact.manifest.files[0].sha256


def test_without_names_the_serving_aliases_are_written_and_the_rest_skipped(
    populated: Registry, tmp_path: Path
) -> None:
    out = tmp_path / "repo"
    written = write_triton_repository(
        populated, [], out, fmt="onnx", aliases=["production", "staging"]
    )
    models = {m.name: m for m in written.models}
    assert sorted(models) == ["mlp", "shape"]
    assert sorted(models["mlp"].versions) == [1, 2]
    assert models["mlp"].settings_from == 2
    assert models["shape"].versions.keys() == {2}
    skipped = "\n".join(written.skipped)
    assert "two@production (two:1): two:1 has no onnx artifact" in skipped
    assert "it has torchscript" in skipped
    assert "shape@staging (shape:1): shape:1's signature differs from shape:2's" in skipped
    config = _config(out / "mlp" / "config.pbtxt")
    assert list(config.version_policy.specific.versions) == [1, 2]
    # Two versions: one digest parameter per version, none for "the" model.
    assert "mlgate_artifact_digest" not in config.parameters
    for number in (1, 2):
        artifact = populated.get(f"mlp:{number}").servable_artifact("onnx")
        assert artifact is not None
        key = f"mlgate_artifact_digest.{number}"
        assert config.parameters[key].string_value == artifact.digest
        assert (out / "mlp" / str(number) / "model.onnx" / "model.onnx").is_file()
    assert not (out / "two").exists()


def test_with_no_alias_target_there_is_nothing_to_write(
    populated: Registry, tmp_path: Path
) -> None:
    with pytest.raises(NotFound, match="no model has a serving alias \\(canary\\)"):
        write_triton_repository(populated, [], tmp_path / "r", aliases=["canary"])
    with pytest.raises(NotFound, match="nothing to write: two@solo"):
        write_triton_repository(populated, [], tmp_path / "r", fmt="onnx", aliases=["solo"])
    assert not (tmp_path / "r").exists()


def test_a_named_version_that_cannot_be_served_is_an_error(
    populated: Registry, tmp_path: Path
) -> None:
    out = tmp_path / "repo"
    with pytest.raises(NotServable, match="bare:1 has no onnx artifact that passed"):
        write_triton_repository(populated, ["mlp:2", "bare"], out)
    with pytest.raises(NotServable, match=r"two:1 has no onnx .*it has torchscript"):
        write_triton_repository(populated, ["two"], out, fmt="onnx")
    with pytest.raises(Conflict, match="shape:1's signature differs from shape:2's"):
        write_triton_repository(populated, ["shape:1", "shape:2"], out)
    assert not out.exists()
    assert _siblings(out) == []


def test_a_non_empty_folder_needs_force_and_keeps_other_models(
    populated: Registry, tmp_path: Path
) -> None:
    out = tmp_path / "repo"
    write_triton_repository(populated, ["mlp:1"], out)
    (out / "theirs").mkdir()
    (out / "theirs" / "config.pbtxt").write_text("name: 'theirs'")
    with pytest.raises(OutputNotEmpty, match=r"is not empty .*pass --force"):
        write_triton_repository(populated, ["mlp:2"], out)
    assert list(_config(out / "mlp" / "config.pbtxt").version_policy.specific.versions) == [1]
    write_triton_repository(populated, ["mlp:2", "plain"], out, force=True)
    assert list(_config(out / "mlp" / "config.pbtxt").version_policy.specific.versions) == [2]
    assert not (out / "mlp" / "1").exists()  # the model is replaced as a whole
    assert (out / "plain" / "1" / "model.onnx").is_file()
    assert (out / "theirs" / "config.pbtxt").read_text() == "name: 'theirs'"
    assert _siblings(out) == []


def test_a_failed_write_leaves_the_folder_as_it_was(
    sqlite_registry: Registry, tmp_path: Path
) -> None:
    version = register_mlp(sqlite_registry)
    assert export(sqlite_registry, version.ref, "onnx").passed
    out = tmp_path / "repo"
    write_triton_repository(sqlite_registry, ["mlp:1"], out)
    before = {p.relative_to(out): _sha256(p) for p in out.rglob("*") if p.is_file()}
    artifact = sqlite_registry.get("mlp:1").servable_artifact("onnx")
    assert artifact is not None
    data = sqlite_registry.store.path_of(artifact.manifest) / "model.onnx.data"
    data.chmod(stat.S_IRUSR | stat.S_IWUSR)
    data.write_bytes(b"\x00" * data.stat().st_size)  # same size, different bytes
    with pytest.raises(ArtifactCorrupted, match=r"model\.onnx\.data"):
        write_triton_repository(sqlite_registry, ["mlp:1"], out, force=True)
    after = {p.relative_to(out): _sha256(p) for p in out.rglob("*") if p.is_file()}
    assert after == before
    assert _siblings(out) == []


def test_bad_arguments_and_outputs(populated: Registry, tmp_path: Path) -> None:
    with pytest.raises(BadRequest, match="format 'tflite'"):
        write_triton_repository(populated, ["mlp"], tmp_path / "r", fmt="tflite")  # type: ignore[arg-type]
    with pytest.raises(BadRequest, match="instance kind 'tpu'"):
        write_triton_repository(populated, ["mlp"], tmp_path / "r", instance_kind="tpu")  # type: ignore[arg-type]
    with pytest.raises(BadRequest, match="instance count 0"):
        write_triton_repository(populated, ["mlp"], tmp_path / "r", instance_count=0)
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputNotUsable, match="is a file"):
        write_triton_repository(populated, ["mlp"], tmp_path / "file")
    with pytest.raises(OutputNotUsable, match="cannot write beside"):
        write_triton_repository(populated, ["mlp:1"], tmp_path / "file" / "repo")
    with pytest.raises(NotFound):
        write_triton_repository(populated, ["nosuch"], tmp_path / "r")


def test_serving_settings_can_be_given(populated: Registry, tmp_path: Path) -> None:
    settings = ServingSettings(max_batch_size=4, max_queue_delay_ms=0, max_queue=2)
    write_triton_repository(populated, ["mlp:2"], tmp_path / "r", serving=lambda v: settings)
    config = _config(tmp_path / "r" / "mlp" / "config.pbtxt")
    assert config.max_batch_size == 4
    assert config.dynamic_batching.max_queue_delay_microseconds == 0
    assert config.dynamic_batching.default_queue_policy.max_queue_size == 4  # ≥ one batch


def test_torchscript_that_triton_cannot_bind_is_refused(
    sqlite_registry: Registry, tmp_path: Path
) -> None:
    version = sqlite_registry.register(DictOutput(), "dicty", torch.randn(4, 6))
    assert export(sqlite_registry, version.ref, "torchscript").passed
    with pytest.raises(ExportFailed, match=r"returns Dict\[str, Tensor\].*tuple of Tensors"):
        write_triton_repository(sqlite_registry, ["dicty"], tmp_path / "r")
    path = tmp_path / "m.pt"
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning, message=r"`torch\.jit\.")
        torch.jit.save(torch.jit.script(make_mlp()), str(path))
    spec = parse_input_spec("a__1:float32:-1,6")  # '__1' would bind it to argument 1
    assert import_file(sqlite_registry, "suffixed", path, inputs=[spec]).passed
    with pytest.raises(ExportFailed, match="suffixes bind them to positions \\[1\\]"):
        write_triton_repository(sqlite_registry, ["suffixed"], tmp_path / "r")
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize(
    ("inputs", "outputs", "forward", "returned", "problem"),
    [
        (["x"], ["y"], ["x"], 1, None),  # forward argument names
        (["a", "b"], ["y"], ["b", "a"], 1, None),  # bound by name, any order
        (["INPUT__0", "INPUT__1"], ["OUTPUT__0"], ["p", "q"], 1, None),  # named index
        (["features"], ["p"], ["x"], 1, None),  # neither: config order
        (["x__1"], ["y"], ["x"], 1, r"positions \[1\]"),
        (["x"], ["a__1", "b__0"], ["x"], 2, r"outputs .* positions \[1, 0\]"),
        (["x", "y"], ["p"], ["x"], 1, "forward takes"),
        (["x"], ["p", "q"], ["x"], 1, "returns 1 tensors"),
    ],
)
def test_libtorch_binding(
    inputs: list[str], outputs: list[str], forward: list[str], returned: int, problem: str | None
) -> None:
    found = libtorch_binding_problem(inputs, outputs, forward, returned)
    if problem is None:
        assert found is None
    else:
        assert found is not None
        assert re.search(problem, found), found


def test_invalid_configs_and_repositories_are_caught(populated: Registry, tmp_path: Path) -> None:
    with pytest.raises(InvalidTritonConfig, match="does not parse"):
        parse_config('name: "m"\nmax_batch_size: "many"\n')
    with pytest.raises(InvalidTritonConfig, match="max_batch_size 0"):
        parse_config('name: "m" backend: "onnxruntime" max_batch_size: 0')
    with pytest.raises(InvalidTritonConfig, match="no inputs; no outputs"):  # never written
        config_text(pb.ModelConfig(name="m", backend="onnxruntime", max_batch_size=1))
    empty = pb.ModelConfig(name="m", backend="tensorflow")
    problems = "; ".join(check_config(empty))
    for fragment in ("backend 'tensorflow'", "no inputs", "no outputs", "not specific"):
        assert fragment in problems
    out = tmp_path / "repo"
    write_triton_repository(populated, ["mlp:1", "two"], out)
    assert check_repository(out) == []
    shutil.rmtree(out / "mlp" / "1")
    text = (out / "two" / "config.pbtxt").read_text()
    (out / "two" / "config.pbtxt").write_text(text.replace('name: "two"', 'name: "other"'))
    problems = "; ".join(check_repository(out))
    assert "mlp: version 1 has no mlp/1/model.onnx" in problems
    assert "two: config names the model 'other'" in problems


def test_an_onnx_graph_that_is_not_the_signature_is_refused(
    populated: Registry, tmp_path: Path
) -> None:
    version = populated.get("mlp:1")
    folder = tmp_path / "repo"
    write_triton_repository(populated, ["mlp:1"], folder)
    model = folder / "mlp" / "1" / "model.onnx"
    check_model_file(version, "onnx", model)  # as written: it agrees
    renamed = dataclasses.replace(
        version.signature,
        inputs=(dataclasses.replace(version.signature.inputs[0], name="features"),),
    )
    with pytest.raises(ExportFailed, match=r"ONNX graph has inputs \['x'\]"):
        check_model_file(dataclasses.replace(version, signature=renamed), "onnx", model)


def test_an_artifact_of_unexpected_files_is_refused(populated: Registry, tmp_path: Path) -> None:
    artifact = populated.get("mlp:1").servable_artifact("onnx")
    assert artifact is not None
    source = populated.open_artifact(artifact)
    with pytest.raises(ExportFailed, match=r"holds \['model.onnx', 'model.onnx.data'\]"):
        _place(artifact, source, tmp_path / "1", "torchscript")


def test_a_copy_that_does_not_match_its_manifest_is_refused(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "model.pt").write_bytes(b"weights")
    good = FileEntry("model.pt", hashlib.sha256(b"weights").hexdigest(), 7)
    copied = copy_verified(tmp_path / "src", Manifest((good,)), tmp_path / "a")
    assert copied == [tmp_path / "a" / "model.pt"]
    stale = FileEntry("model.pt", hashlib.sha256(b"other").hexdigest(), 7)
    with pytest.raises(ArtifactCorrupted, match=r"'model\.pt' changed while it was copied"):
        copy_verified(tmp_path / "src", Manifest((stale,)), tmp_path / "b")

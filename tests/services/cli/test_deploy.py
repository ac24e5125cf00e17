"""`mlgate triton-repo` and `mlgate bento`: exit codes, --json, errors, and the gateway's
serving settings carried into what they write."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from google.protobuf import text_format  # type: ignore[import-untyped]
from tritonclient.grpc import model_config_pb2 as pb
from typer.testing import CliRunner, Result

from exporters import export
from exporters.deploy_common import ServingSettings
from registry import Registry
from services.cli.entry import app
from services.gateway.settings import GatewaySettings
from tests.exporters.conftest import register_mlp

Run = Callable[..., Result]


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """mlp:1 with ONNX and TorchScript, production → 1; mlp:2 registered, never exported."""
    registry = Registry(home=tmp_path / "home")
    version = register_mlp(registry)
    assert export(registry, version.ref, "onnx").passed
    assert export(registry, version.ref, "torchscript").passed
    registry.set_alias("mlp", "production", 1, reason="test")
    register_mlp(registry)
    registry.close()
    return tmp_path / "home"


@pytest.fixture
def mlgate(home: Path) -> Run:
    runner = CliRunner()

    def run(*args: str, code: int = 0) -> Result:
        result = runner.invoke(app, ["--home", str(home), *args])
        assert result.exit_code == code, (result.stdout, result.stderr, result.exception)
        return result

    return run


def _config(path: Path) -> pb.ModelConfig:
    return text_format.Parse(path.read_text(), pb.ModelConfig())


def test_triton_repo_writes_the_serving_aliases_with_the_gateway_settings(
    mlgate: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLGATE_MAX_BATCH_SIZE", "12")  # the gateway's default, from MLGATE_*
    monkeypatch.setenv("MLGATE_MAX_QUEUE_DELAY_MS", "0.5")
    out = tmp_path / "repo"
    result = mlgate("triton-repo", str(out), "--instance-kind", "gpu", "--instances", "2")
    assert "mlp: versions 1 (folder) · onnx (onnxruntime backend) · max_batch_size 12" in (
        result.stdout
    )
    assert f"tritonserver --model-repository={out}" in result.stdout
    config = _config(out / "mlp" / "config.pbtxt")
    assert config.max_batch_size == 12
    assert config.dynamic_batching.max_queue_delay_microseconds == 500
    assert [(g.kind, g.count) for g in config.instance_group] == [
        (pb.ModelInstanceGroup.KIND_GPU, 2)
    ]
    # A stored serving config wins over the defaults, as in the gateway.
    registry = Registry(home=tmp_path / "home")
    registry.set_serving_config("mlp:1", {"max_batch_size": 7})
    registry.close()
    again = mlgate("triton-repo", str(out), "mlp@production", "--force", "--json")
    payload = json.loads(again.stdout)
    assert payload["models"][0]["max_batch_size"] == 7
    assert payload["models"][0]["layout"] == {"1": "directory"}
    assert _config(out / "mlp" / "config.pbtxt").max_batch_size == 7


def test_triton_repo_format_and_skips(mlgate: Run, tmp_path: Path) -> None:
    out = tmp_path / "repo"
    result = mlgate("triton-repo", str(out), "mlp:1", "--format", "torchscript", "--json")
    payload = json.loads(result.stdout)
    assert payload["models"][0]["backend"] == "pytorch"
    assert payload["skipped"] == []
    assert (out / "mlp" / "1" / "model.pt").is_file()


def test_triton_repo_errors(mlgate: Run, tmp_path: Path) -> None:
    out = tmp_path / "repo"
    failed = mlgate("triton-repo", str(out), "mlp", code=1)  # mlp is mlp:2: never exported
    assert "error: mlp:2 has no onnx artifact that passed the parity gate" in failed.stderr
    failed = mlgate("triton-repo", str(out), "mlp:2", "--json", code=1)
    assert "mlp:2 has no onnx artifact" in json.loads(failed.stdout)["error"]
    failed = mlgate("triton-repo", str(out), "--alias", "canary", "--json", code=1)
    assert json.loads(failed.stdout)["error"].startswith("no model has a serving alias (canary)")
    mlgate("triton-repo", str(out), "mlp:1")
    failed = mlgate("triton-repo", str(out), "mlp:1", code=1)
    assert "is not empty (mlp); pass --force" in failed.stderr
    mlgate("triton-repo", str(out), "--format", "tflite", code=2)
    mlgate("triton-repo", str(out), "--instances", "0", code=2)
    mlgate("triton-repo", code=2)


def test_bento_writes_a_service_and_reports_errors(mlgate: Run, tmp_path: Path) -> None:
    out = tmp_path / "bento"
    result = mlgate("bento", "mlp@production", str(out), "--json")
    payload = json.loads(result.stdout)
    assert payload["ref"] == "mlp:1"
    assert payload["service"] == "service:Mlp"
    assert payload["batchable"] is True
    assert payload["max_batch_size"] == GatewaySettings().max_batch_size
    assert payload["max_latency_ms"] == round(GatewaySettings().slo_ms)
    assert (out / "service.py").is_file()
    assert (out / "model" / "model.onnx").is_file()
    text = mlgate("bento", "mlp:1", str(tmp_path / "b2"))
    assert "mlp:1 → " in text.stdout
    assert "bentoml build" in text.stdout
    failed = mlgate("bento", "mlp:1", str(out), code=1)
    assert "pass --force" in failed.stderr
    failed = mlgate("bento", "mlp:2", str(tmp_path / "b3"), "--json", code=1)
    assert "mlp:2 has no onnx artifact" in json.loads(failed.stdout)["error"]
    failed = mlgate("bento", "nosuch", str(tmp_path / "b3"), code=1)
    assert "nosuch" in failed.stderr
    mlgate("bento", "mlp:1", code=2)
    assert not (tmp_path / "b3").exists()


def test_the_exporters_defaults_are_the_gateways() -> None:
    """Without a gateway (exporters may not import it) the writers use these defaults."""
    gateway = GatewaySettings()
    for field in dataclasses.fields(ServingSettings):
        assert getattr(ServingSettings(), field.name) == getattr(gateway, field.name), field.name

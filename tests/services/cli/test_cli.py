"""The `mlgate` CLI, in process (typer's runner) and once as a real subprocess."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import Result

from tests.fixtures import DataDependentBranch, make_mlp, onnx_file
from tests.services.conftest import Run

FEATURES = [f"f{i}" for i in range(6)]


def _model_args(files: dict[str, Path]) -> list[str]:
    """The options naming the model itself: factory, weights, inputs."""
    weights = str(files["weights"])
    factory = ["--factory", "tests.fixtures:make_mlp", "--kwargs", '{"hidden": 8}']
    return [*factory, "--weights", weights, "--input", "x:float32:-1,6"]


def _register(mlgate: Run, files: dict[str, Path], *extra: str) -> Result:
    lineage = [
        f"--reference={files['train']}",
        f"--dataset=train={files['train']}",
        f"--eval-dataset=valid={files['valid']}",
        "--trainer=tests.fixtures:make_mlp",
        "--param=hidden=8",
        "--param=optimizer=adam",
        "--metric=auc=0.83@valid",
    ]
    return mlgate("register", "churn", *_model_args(files), *lineage, *extra)


def test_register_export_promote_show(mlgate: Run, files: dict[str, Path]) -> None:
    registered = _register(mlgate, files, "--json")
    lineage = json.loads(registered.stdout)
    assert lineage["ref"] == "churn:1"
    assert lineage["signature"]["feature_names"] == {"x": FEATURES}  # taken from the reference file
    assert lineage["params"] == {"hidden": 8, "optimizer": "adam"}
    assert lineage["metrics"] == {"auc": {"value": 0.83, "dataset": "valid"}}
    assert [d["role"] for d in lineage["datasets"]] == ["training", "evaluation"]

    exported = mlgate("export", "churn:1", "--format", "onnx", "--format", "torchscript", "--json")
    # The stage spinners draw only in a terminal: captured, stderr stays empty.
    assert (registered.stderr, exported.stderr) == ("", "")
    reports = json.loads(exported.stdout)
    assert [(r["kind"], r["status"]) for r in reports] == [
        ("onnx", "passed"),
        ("torchscript", "passed"),
    ]
    assert reports[0]["parity"]["batch_sizes"] == [1, 8, 64]

    promoted = mlgate(
        "promote", "churn", "1", "--alias", "production", "--reason", "first", "--by", "ci"
    )
    assert "churn@production: → 1 (first)" in promoted.stdout

    shown = mlgate("show", "churn@production")
    for text in (
        "churn:1",
        "train (training)",
        "valid (evaluation)",
        "trainer tests.fixtures:make_mlp",
        "auc = 0.83 on valid",
        "onnx passed",
        "torchscript passed",
        "production: ∅ → 1 by ci: first",
    ):
        assert text in shown.stdout, text
    history = json.loads(mlgate("show", "churn", "--json").stdout)["alias_history"]
    assert history[0]["actor"] == "ci"

    listed = json.loads(mlgate("models", "--json").stdout)
    assert listed[0] | {"created_at": None} == {
        "name": "churn",
        "versions": 1,
        "latest_version": 1,
        "latest_ready": 1,
        "aliases": {"production": 1},
        "created_at": None,
    }
    assert "churn" in mlgate("models").stdout


def test_export_exits_1_when_the_gate_refuses(mlgate: Run, tmp_path: Path) -> None:
    torch.save(DataDependentBranch().state_dict(), tmp_path / "b.pt")
    # Non-negative training rows: the trace records the "no negative value" branch only.
    rows = np.random.default_rng(0).random((100, 4)).astype(np.float32)
    pd.DataFrame(rows, columns=list("abcd")).to_csv(tmp_path / "r.csv", index=False)
    mlgate(
        "register",
        "branchy",
        "--factory",
        "tests.fixtures:DataDependentBranch",
        "--weights",
        str(tmp_path / "b.pt"),
        "--input",
        "x:float32:-1,4",
        "--reference",
        str(tmp_path / "r.csv"),
    )
    refused = mlgate("export", "branchy", "--format", "torchscript", "--method", "trace", code=1)
    assert "failed" in refused.stdout
    assert "elements outside" in refused.stdout
    blocked = mlgate("promote", "branchy", "1", "--reason", "try", code=1)
    assert "no artifact that passed the parity gate" in blocked.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["show", "nope"], "model 'nope' is not registered"),
        (["show", "churn:7"], "no version 7"),
        (["show", "churn@staging"], "has no alias 'staging'"),
        (["show", "../x"], "not allowed"),
        (["promote", "churn", "1", "--alias", "latest", "--reason", "x"], "reserved"),
        (["export", "churn", "--format", "onnx", "--rtol", "-1"], ">= 0"),
    ],
)
def test_bad_input_gets_one_clear_line(
    mlgate: Run, files: dict[str, Path], args: list[str], message: str
) -> None:
    _register(mlgate, files)
    result = mlgate(*args, code=1)
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_json_errors_use_the_envelope(mlgate: Run) -> None:
    result = mlgate("show", "nope", "--json", code=1)
    assert json.loads(result.stdout) == {"error": "model 'nope' is not registered"}


def test_weights_that_are_not_a_state_dict(mlgate: Run, tmp_path: Path) -> None:
    torch.save(make_mlp(), tmp_path / "module.pt")
    result = mlgate(
        "register",
        "m",
        "--factory",
        "tests.fixtures:make_mlp",
        "--weights",
        str(tmp_path / "module.pt"),
        "--input",
        "x:float32:-1,6",
        code=1,
    )
    assert "not a state dict" in result.stderr
    assert json.loads(mlgate("models", "--json").stdout) == []


def test_a_corrupted_artifact_is_refused_on_export(
    mlgate: Run, files: dict[str, Path], tmp_path: Path
) -> None:
    _register(mlgate, files)
    weights = next((tmp_path / "home" / "artifacts").rglob("state_dict.pt"))
    weights.chmod(stat.S_IRUSR | stat.S_IWUSR)
    content = bytearray(weights.read_bytes())
    content[-10] ^= 0xFF
    weights.write_bytes(bytes(content))
    result = mlgate("export", "churn", code=1)
    assert "state_dict.pt fails its checksum" in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "say what to register"),
        (["--factory", "tests.fixtures:make_mlp"], "--factory and --weights go together"),
        (["--onnx", "a.onnx", "--torchscript", "b.pt"], "exactly one"),
        (["--metric", "auc=high@valid"], "not a number"),
        (["--metric", "auc=0.9"], "NAME=VALUE@DATASET"),
        (["--param", "novalue"], "KEY=VALUE"),
        (["--dataset", "train"], "NAME=FILE"),
        (["--kwargs", "{bad"], "not valid JSON"),
        (["--input", "x:float32"], "NAME:DTYPE:SHAPE"),
    ],
)
def test_register_option_errors(
    mlgate: Run, files: dict[str, Path], args: list[str], message: str
) -> None:
    needs_model = args and "--onnx" not in args and args[0] != "--factory"
    base = _model_args(files) if needs_model else []
    result = mlgate("register", "m", *base, *args, code=1)
    assert message in result.stderr


def test_the_console_script_runs(tmp_path: Path) -> None:
    mlgate = Path(sys.executable).parent / "mlgate"
    result = subprocess.run(
        [str(mlgate), "--home", str(tmp_path), "models", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == []
    helped = subprocess.run([str(mlgate), "--help"], capture_output=True, text=True, timeout=120)
    for command in ("register", "export", "promote", "models", "show", "demo"):
        assert command in helped.stdout


def test_register_an_onnx_file(mlgate: Run, tmp_path: Path) -> None:
    path = onnx_file(tmp_path / "m.onnx")
    result = mlgate("register", "fromfile", "--onnx", str(path), "--features", ",".join(FEATURES))
    assert "registered fromfile:1" in result.stdout
    assert "onnx passed" in result.stdout
    shown = json.loads(mlgate("show", "fromfile", "--json").stdout)
    assert shown["source_format"] == "onnx"
    assert shown["signature"]["feature_names"] == {"x": FEATURES}


def test_promote_stores_serving_settings(
    mlgate: Run, files: dict[str, Path], tmp_path: Path
) -> None:
    from registry import Registry

    _register(mlgate, files)
    mlgate("export", "churn:1")
    mlgate(
        "promote", "churn", "1", "--reason", "launch", "--max-batch-size", "16", "--slo-ms", "80"
    )
    registry = Registry(home=tmp_path / "home")
    assert registry.serving_config("churn:1") == {"max_batch_size": 16, "slo_ms": 80.0}
    updated = mlgate("promote", "churn", "1", "--reason", "tune", "--max-queue-delay-ms", "1")
    assert "serving settings updated" in updated.stdout
    assert registry.serving_config("churn:1")["max_queue_delay_ms"] == 1.0
    assert len(registry.alias_history("churn")) == 1  # the alias did not move
    bad = mlgate("promote", "churn", "1", "--reason", "x", "--runtime", "tensorrt", code=1)
    assert "runtime" in bad.stderr
    triton = ["--runtime", "triton", "--triton-url", "triton:8001", "--triton-model", "churn_v1"]
    mlgate("promote", "churn", "1", "--reason", "gpu", *triton)
    assert registry.serving_config("churn:1")["triton_url"] == "triton:8001"
    assert registry.serving_config("churn:1")["triton_model"] == "churn_v1"
    registry.close()

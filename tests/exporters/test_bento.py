"""The BentoML service writer: the files it writes, `bentoml build` on them, the service
served by `bentoml serve` answering as the registry's artifact does, and its input checks.

BentoML runs in its own venv (.venv-peers/bentoml, bentoml 1.4.39), as the peer benchmark's.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import subprocess
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml  # type: ignore[import-untyped]  # PyYAML ships no stubs

from exporters import export
from exporters.bento import _class_name, _parameters, write_bento
from exporters.deploy_common import OutputNotEmpty, ServingSettings
from exporters.runners import onnx_predictor
from load_tests.peers.venvs import python_for
from load_tests.processes import ServerProcess
from registry import Registry
from registry.errors import ArtifactNotFound, NotServable
from services.demo.traffic import free_port
from tests.exporters.conftest import register_mlp
from tests.fixtures import DataDependentBranch, TwoInputs

ROWS = np.random.default_rng(5).standard_normal((7, 6)).astype(np.float32)


def _bentoml(*args: str, home: Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "BENTOML_HOME": str(home), "BENTOML_DO_NOT_TRACK": "True"}
    return subprocess.run(
        [str(python_for("bentoml")), *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def _post(url: str, body: dict[str, Any]) -> tuple[int, Any]:
    request = urllib.request.Request(  # noqa: S310 - a loopback URL built here
        url, json.dumps(body).encode(), {"content-type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def _exported_mlp(registry: Registry) -> str:
    version = register_mlp(registry)
    assert export(registry, version.ref, "onnx").passed
    return version.ref


@pytest.mark.slow
def test_the_service_builds_serves_and_answers_as_the_artifact(
    sqlite_registry: Registry, tmp_path: Path
) -> None:
    ref = _exported_mlp(sqlite_registry)
    sqlite_registry.set_serving_config(ref, {"max_batch_size": 8, "slo_ms": 120.5})
    out = tmp_path / "bento"
    written = write_bento(sqlite_registry, ref, out)
    version = sqlite_registry.get(ref)
    artifact = version.servable_artifact("onnx")
    assert artifact is not None
    assert sorted(p.name for p in out.iterdir()) == [
        "README.txt",
        "bentofile.yaml",
        "model",
        "service.py",
    ]
    assert written.batchable
    assert (written.max_batch_size, written.max_latency_ms) == (8, 121)
    source = (out / "service.py").read_text()
    ast.parse(source)
    assert "batchable=True, batch_dim=0, max_batch_size=8, max_latency_ms=121" in source
    bentofile = yaml.safe_load((out / "bentofile.yaml").read_text())
    assert bentofile["service"] == "service:Mlp"
    assert bentofile["name"] == "mlp"
    assert bentofile["labels"] == {
        "mlgate_model": "mlp",
        "mlgate_version": "1",
        "mlgate_ref": "mlp:1",
        "mlgate_artifact_digest": artifact.digest,
    }
    assert bentofile["include"] == ["service.py", "model/**"]
    # The versions the gate ran (onnxruntime) and the version was registered with (numpy).
    environment = version.lineage["environment"]
    assert bentofile["python"]["packages"] == [
        f"onnxruntime=={environment['onnxruntime']}",
        f"numpy=={environment['numpy']}",
    ]
    assert bentofile["python"]["lock_packages"] is False
    assert f"cd {out} && bentoml build" in (out / "README.txt").read_text()

    home = tmp_path / "bentoml-home"
    # BentoML refuses a bentofile outside its working folder: built from inside OUT.
    built = _bentoml("-m", "bentoml", "build", ".", home=home, cwd=out)
    assert built.returncode == 0, built.stdout + built.stderr
    listed = _bentoml("-m", "bentoml", "list", "-o", "json", home=home)
    tags = [b["tag"] for b in json.loads(listed.stdout)]
    assert len(tags) == 1
    assert tags[0].startswith("mlp:")
    src = home / "bentos" / "mlp" / tags[0].partition(":")[2] / "src"
    for entry in artifact.manifest.files:  # the bento packs the gate-passed bytes
        assert hashlib.sha256((src / "model" / entry.name).read_bytes()).hexdigest() == (
            entry.sha256
        )

    port = free_port()
    server = ServerProcess(
        [
            str(python_for("bentoml")),
            "-m",
            "bentoml",
            "serve",
            tags[0],
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        f"http://127.0.0.1:{port}/readyz",
        env={"BENTOML_HOME": str(home), "BENTOML_DO_NOT_TRACK": "True"},
        log=tmp_path / "serve.log",
    )
    server.start(timeout=60)
    try:
        url = f"http://127.0.0.1:{port}/predict"
        status, body = _post(url, {"x": ROWS.tolist()})
        assert status == 200, body
        folder = sqlite_registry.open_artifact(artifact)
        expected = onnx_predictor(folder / "model.onnx")({"x": ROWS})["output"]
        np.testing.assert_allclose(np.asarray(body, dtype=np.float32), expected, rtol=1e-6)
        status, body = _post(url, {"x": [[1.0, 2.0, 3.0]]})
        assert status == 400
        assert "input 'x': expected shape [batch, 6], got [1, 3]" in json.dumps(body)
    finally:
        server.stop()


def test_inputs_are_checked_against_the_signature(
    sqlite_registry: Registry, tmp_path: Path
) -> None:
    """Two inputs, two outputs: not batchable; its validators run in BentoML's venv."""
    examples = {"numeric": torch.randn(8, 4), "counts": torch.randint(0, 5, (8, 3))}
    version = sqlite_registry.register(
        TwoInputs(), "two.in", examples, output_names=["score", "label"]
    )
    assert export(sqlite_registry, version.ref, "onnx").passed
    out = tmp_path / "bento"
    written = write_bento(sqlite_registry, version.ref, out)
    assert not written.batchable
    assert written.service == "service:TwoIn"
    assert written.parameters == {"numeric": "numeric", "counts": "counts"}
    source = (out / "service.py").read_text()
    assert "    @bentoml.api\n    def predict(" in source
    assert "-> dict[str, np.ndarray]:" in source
    cases = [
        ("numeric", [[1, 2, 3, 4]], "ok float32 [1, 4]"),
        ("numeric", [[1.5, 2, 3, 4], [0, 0, 0, 0]], "ok float32 [2, 4]"),
        ("numeric", [[1, 2, 3]], "input 'numeric': expected shape [batch, 4], got [1, 3]"),
        ("numeric", [1, 2, 3, 4], "input 'numeric': expected shape [batch, 4], got [4]"),
        ("numeric", [["a", "b", "c", "d"]], "input 'numeric': expected float32 values, got text"),
        ("numeric", [[float("nan"), 0, 0, 0]], "input 'numeric': holds NaN or infinity"),
        ("counts", [[1, 2, 3]], "ok int64 [1, 3]"),
        ("counts", [[1.0, 2.0, 3.0]], "ok int64 [1, 3]"),
        ("counts", [[1.5, 2, 3]], "input 'counts': expected int64 values, got float64"),
        ("counts", [[True, False, True]], "input 'counts': expected int64 values, got bool"),
    ]
    script = (
        "import json, sys\n"
        "import service\n"
        "for parameter, value, _ in json.loads(sys.argv[1]):\n"
        "    try:\n"
        "        array = service._checked(parameter).func(value)\n"
        "        print(f'ok {array.dtype} {list(array.shape)}')\n"
        "    except ValueError as exc:\n"
        "        print(exc)\n"
    )
    done = subprocess.run(
        [str(python_for("bentoml")), "-c", script, json.dumps(cases)],
        cwd=out,
        env={**os.environ, "BENTOML_DO_NOT_TRACK": "True", "BENTOML_HOME": str(tmp_path / "h")},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [expected for _, _, expected in cases]


def test_only_a_gate_passed_onnx_artifact_is_written(
    sqlite_registry: Registry, tmp_path: Path
) -> None:
    version = register_mlp(sqlite_registry)
    with pytest.raises(ArtifactNotFound, match="mlp:1 has no onnx artifact"):
        write_bento(sqlite_registry, version.ref, tmp_path / "b")
    assert export(sqlite_registry, version.ref, "torchscript").passed
    with pytest.raises(ArtifactNotFound, match="no onnx artifact"):
        write_bento(sqlite_registry, version.ref, tmp_path / "b")
    # Non-negative examples: the ONNX fallback traces one branch and the gate refuses it.
    branchy = sqlite_registry.register(
        DataDependentBranch(),
        "branchy",
        torch.rand(8, 4),
        factory="tests.fixtures:DataDependentBranch",
    )
    assert not export(sqlite_registry, branchy.ref, "onnx").passed
    with pytest.raises(NotServable, match="failed the parity gate"):
        write_bento(sqlite_registry, branchy.ref, tmp_path / "b")
    assert not (tmp_path / "b").exists()


def test_a_non_empty_folder_needs_force_and_keeps_other_files(
    sqlite_registry: Registry, tmp_path: Path
) -> None:
    ref = _exported_mlp(sqlite_registry)
    out = tmp_path / "bento"
    out.mkdir()
    (out / "notes.md").write_text("mine")
    with pytest.raises(OutputNotEmpty, match=r"not empty \(notes\.md\); pass --force"):
        write_bento(sqlite_registry, ref, out)
    assert sorted(p.name for p in out.iterdir()) == ["notes.md"]
    (out / "model").mkdir()
    (out / "model" / "old.onnx").write_text("stale")
    write_bento(sqlite_registry, ref, out, force=True, settings=ServingSettings(max_batch_size=1))
    assert (out / "notes.md").read_text() == "mine"
    assert sorted(p.name for p in (out / "model").iterdir()) == ["model.onnx", "model.onnx.data"]
    source = (out / "service.py").read_text()
    assert "batchable=True" not in source  # BentoML refuses max_batch_size=1 for batching
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".bento.")]


def test_names_become_python_identifiers() -> None:
    assert _parameters(["x"]) == {"x": "x"}
    assert _parameters(["input.1", "class", "1x", "self", "a-b", "a_b"]) == {
        "input_1": "input.1",
        "class_": "class",
        "input_1x": "1x",
        "self_": "self",
        "a_b": "a-b",
        "a_b_2": "a_b",
    }
    assert _class_name("credit-risk") == "CreditRisk"
    assert _class_name("two.in_v2") == "TwoInV2"
    assert _class_name("3d-model") == "Model3dModel"

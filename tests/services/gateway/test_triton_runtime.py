"""`runtime: triton`: the gateway forwards batches to a real Triton server over gRPC.

The Triton server is PyTriton's tritonserver (Triton 2.51, CPU) from the peer venv, bound
to 127.0.0.1 on free ports, serving the registry's own gate-passed ONNX files through
onnxruntime in its Python backend. PyTriton's docs call several servers on one machine
unsupported; each test worker starts its own (on its own ports and workspace), and up to
three at once have run here without trouble.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import time
import urllib.request
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest
from google.protobuf import json_format, text_format  # type: ignore[import-untyped]
from tritonclient.grpc import model_config_pb2

from exporters.triton_config import DIGEST_PARAMETER
from exporters.triton_repo import write_triton_repository
from load_tests.peers.venvs import libdir, python_for
from load_tests.processes import ServerProcess
from registry import Registry
from registry.errors import InvalidModelInput, NotServable
from registry.signature import Signature, TensorSpec
from services.demo.traffic import free_port
from services.gateway.deployment import parse_overrides
from services.gateway.errors import EngineUnavailable
from services.runtimes.base import RuntimeSettings
from services.runtimes.triton import TritonRuntime
from tests.services.gateway.conftest import Gateway, open_gateway

pytestmark = [pytest.mark.slow, pytest.mark.anyio]

ROOT = Path(__file__).resolve().parents[3]
X = np.random.default_rng(3).standard_normal((5, 6)).astype(np.float32)


@dataclass
class Triton:
    grpc_url: str
    server: ServerProcess
    onnx: Path


def _start_triton(models: list[str], workspace: Path, log: Path) -> tuple[ServerProcess, str]:
    http, grpc, metrics = free_port(), free_port(), free_port()
    server = ServerProcess(
        [
            str(python_for("pytriton")),
            str(ROOT / "load_tests" / "peers" / "pytriton_server.py"),
            str(http),
            str(grpc),
            str(metrics),
            str(workspace),
            *models,
        ],
        f"http://127.0.0.1:{http}/v2/health/ready",
        env={"LD_LIBRARY_PATH": libdir()},
        cwd=ROOT,
        log=log,
    )
    server.start()
    # The server is ready before PyTriton has loaded every bound model: wait for each.
    deadline = time.monotonic() + 120
    for spec in models:
        name, _, version = spec.partition("=")[2].partition(":")
        ready = f"http://127.0.0.1:{http}/v2/models/{name}/versions/{version}/ready"
        while not _answers(ready):
            if time.monotonic() > deadline:
                server.stop()
                raise RuntimeError(f"PyTriton did not load {name}:{version}; see {log}")
            time.sleep(0.2)
    return server, f"127.0.0.1:{grpc}"


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - loopback
            return bool(response.status == 200)
    except OSError:
        return False


@pytest.fixture(scope="module")
def triton(template_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Triton]:
    """mlp v1 as Triton's `mlp` version 1."""
    registry = Registry(home=template_home)
    try:
        mlp = registry.open_servable("mlp:1", "onnx")[2] / "model.onnx"
    finally:
        registry.close()
    scratch = tmp_path_factory.mktemp("pytriton")
    server, url = _start_triton([f"{mlp}=mlp:1"], scratch / "workspace", scratch / "triton.log")
    try:
        yield Triton(url, server, mlp)
    finally:
        server.stop()
        shutil.rmtree(scratch / "workspace", ignore_errors=True)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _deploy(registry: Registry, ref: str, **config: Any) -> None:
    registry.set_serving_config(ref, {"runtime": "triton", **config})


async def _gateway(registry: Registry, **overrides: Any) -> AsyncIterator[Gateway]:
    async for gateway in open_gateway(registry, **overrides):
        yield gateway


def _local(onnx: Path, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(str(onnx), providers=["CPUExecutionProvider"])
    result: np.ndarray = session.run(None, {"x": x})[0]
    return result


async def test_a_version_on_triton_answers_as_the_artifact_does(
    registry: Registry, triton: Triton
) -> None:
    _deploy(registry, "mlp:1", triton_url=triton.grpc_url)
    async for gateway in _gateway(registry):
        response = await gateway.infer("mlp", X)
        assert response.status_code == 200, response.text
        (output,) = response.json()["outputs"]
        got = np.asarray(output["data"], dtype=np.float32).reshape(output["shape"])
        np.testing.assert_allclose(got, _local(triton.onnx, X), rtol=1e-6, atol=1e-6)

        metadata = (await gateway.client.get("/v2/models/mlp")).json()
        assert metadata["platform"] == "triton_grpc"
        runtime = metadata["parameters"]
        assert runtime["runtime"] == "triton"
        assert runtime["url"] == triton.grpc_url
        assert (runtime["triton_model"], runtime["triton_version"]) == ("mlp", "1")
        assert runtime["runtime_version"]  # Triton's own version, from its metadata

        # Many requests at once: the gateway batches, Triton answers each row correctly.
        rows = [X[i : i + 1] for i in range(len(X))] * 8
        answers = await asyncio.gather(*(gateway.infer("mlp", r) for r in rows))
        for row, answer in zip(rows, answers, strict=True):
            assert answer.status_code == 200
            data = answer.json()["outputs"][0]["data"]
            np.testing.assert_allclose(data, _local(triton.onnx, row).ravel(), rtol=1e-6)

        # The gateway's own metrics, log and envelope are kept.
        metrics = (await gateway.client.get("/metrics")).text
        assert 'mlgate_requests_total{code="200",model="mlp",protocol="rest",version="1"}' in (
            metrics
        )
        assert 'mlgate_model_info{alias="production",format="triton",model="mlp"' in metrics
        assert gateway.app.state.monitoring.log.stats()["recorded"] >= len(X) * 9

        bad = await gateway.infer("mlp", np.zeros((2, 5), np.float32))
        assert bad.status_code == 400
        assert "shape" in bad.json()["error"]


async def test_a_triton_model_that_is_not_this_version_is_refused(
    registry: Registry, triton: Triton
) -> None:
    """`two` pointed at Triton's `mlp`: other inputs, other outputs; never served."""
    _deploy(registry, "two:1", triton_url=triton.grpc_url, triton_model="mlp")
    async for gateway in _gateway(registry):
        index = (await gateway.client.post("/v2/repository/index", json={})).json()
        (row,) = [r for r in index if r["name"] == "two"]
        assert row["state"] == "UNAVAILABLE"
        assert "does not match the registry" in row["reason"]
        assert "no input 'numeric'" in row["reason"]
        assert "no outputs ['score', 'label']" in row["reason"]
        response = await gateway.client.get("/v2/models/two/ready")
        assert response.status_code == 503
        # Versions on local runtimes keep serving.
        assert (await gateway.infer("mlp", X)).status_code == 200


async def test_an_unreachable_triton_is_reported_and_the_rest_keeps_serving(
    registry: Registry,
) -> None:
    _deploy(registry, "mlp:1", triton_url=f"127.0.0.1:{free_port()}", triton_timeout_ms=2000)
    async for gateway in _gateway(registry):
        response = await gateway.infer("mlp", X)
        assert response.status_code == 503
        assert "could not reach Triton model 'mlp' version 1" in response.json()["error"]
        assert (await gateway.client.get("/v2/models/two/ready")).status_code == 200


async def test_runtime_triton_without_a_url_is_refused_with_the_setting_named(
    registry: Registry,
) -> None:
    _deploy(registry, "mlp:1")
    async for gateway in _gateway(registry):
        response = await gateway.infer("mlp", X)
        assert response.status_code == 503
        assert "MLGATE_TRITON_URL" in response.json()["error"]


async def test_a_triton_that_goes_away_gives_503_until_it_is_back(
    registry: Registry, triton: Triton, tmp_path: Path
) -> None:
    """Its own Triton server, stopped under the gateway: 503 naming Triton, no 500, and the
    gateway itself keeps serving."""
    server, url = _start_triton(
        [f"{triton.onnx}=mlp:1"], tmp_path / "workspace", tmp_path / "triton.log"
    )
    try:
        _deploy(registry, "mlp:1", triton_url=url, triton_timeout_ms=3000)
        async for gateway in _gateway(registry):
            assert (await gateway.infer("mlp", X)).status_code == 200
            server.stop()
            response = await gateway.infer("mlp", X)
            assert response.status_code == 503
            assert "Triton model 'mlp' version 1" in response.json()["error"]
            assert (await gateway.client.get("/v2/health/live")).status_code == 200
            two = {
                "inputs": [
                    {"name": "numeric", "shape": [1, 4], "datatype": "FP32", "data": [0.0] * 4},
                    {"name": "counts", "shape": [1, 3], "datatype": "INT64", "data": [1, 2, 3]},
                ]
            }
            assert (await gateway.client.post("/v2/models/two/infer", json=two)).status_code == 200
    finally:
        server.stop()
        shutil.rmtree(tmp_path / "workspace", ignore_errors=True)


def _runtime(digests: frozenset[str]) -> TritonRuntime:
    signature = Signature(
        inputs=(TensorSpec("x", "float32", (-1, 6)),),
        outputs=(TensorSpec("y", "float32", (-1, 2)),),
    )
    return TritonRuntime(
        RuntimeSettings(),
        url="127.0.0.1:1",
        model="m",
        version="1",
        signature=signature,
        artifact_digests=digests,
        timeout_s=1.0,
    )


METADATA = {
    "inputs": [{"name": "x", "datatype": "FP32", "shape": ["-1", "6"]}],
    "outputs": [{"name": "y", "datatype": "FP32", "shape": ["-1", "2"]}],
}


def test_the_artifact_digest_in_the_triton_config_must_be_this_versions() -> None:
    runtime = _runtime(frozenset({"a" * 64, "b" * 64}))
    runtime._check(METADATA, {"parameters": {DIGEST_PARAMETER: {"string_value": "b" * 64}}})
    runtime._check(METADATA, {})  # a model written by hand carries no digest
    with pytest.raises(NotServable, match="not one of this version's"):
        runtime._check(METADATA, {"parameters": {DIGEST_PARAMETER: {"string_value": "c" * 64}}})


@pytest.mark.parametrize(
    ("tensors", "message"),
    [
        ({"datatype": "FP64"}, "input 'x' is FP64, the registry says FP32"),
        ({"shape": ["-1", "7"]}, "input 'x' has shape"),
        ({"name": "z"}, "it has no input 'x'"),
    ],
)
def test_inputs_that_differ_from_the_signature_are_refused(
    tensors: dict[str, Any], message: str
) -> None:
    metadata = {**METADATA, "inputs": [{**METADATA["inputs"][0], **tensors}]}
    with pytest.raises(NotServable, match=message):
        _runtime(frozenset())._check(metadata, {})


def test_a_missing_output_is_refused() -> None:
    with pytest.raises(NotServable, match=r"no outputs \['y'\]"):
        _runtime(frozenset())._check({**METADATA, "outputs": []}, {})


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"triton_version": "one"}, "triton_version"),
        ({"triton_url": ""}, "triton_url"),
        ({"triton_timeout_ms": 0}, "triton_timeout_ms"),
        ({"runtime": "tensorrt"}, "runtime"),
    ],
)
def test_bad_triton_serving_settings_are_refused_by_name(
    config: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidModelInput, match=message):
        parse_overrides(config)


async def test_loading_against_nothing_is_engine_unavailable() -> None:
    runtime = _runtime(frozenset())
    runtime.url = f"127.0.0.1:{free_port()}"
    with pytest.raises(EngineUnavailable, match="could not reach"):
        await runtime.load()


def test_a_repository_from_triton_repo_passes_for_its_version_only(
    registry: Registry, tmp_path: Path
) -> None:
    """The config `mlgate triton-repo` writes, read back as tritonclient's get_model_config
    reports it (JSON, proto field names): mlp:1's runtime accepts it, mlp:2's refuses it."""
    written = write_triton_repository(registry, ["mlp:1"], tmp_path / "repo")
    config = text_format.Parse(
        (tmp_path / "repo" / "mlp" / "config.pbtxt").read_text(), model_config_pb2.ModelConfig()
    )
    as_reported = json.loads(json_format.MessageToJson(config, preserving_proto_field_name=True))
    onnx = registry.get("mlp:1").servable_artifact("onnx")
    assert onnx is not None
    assert written.models[0].versions == {1: onnx.digest}

    def runtime_for(ref: str) -> TritonRuntime:
        record = registry.get(ref)
        return TritonRuntime(
            RuntimeSettings(),
            url="127.0.0.1:1",
            model="mlp",
            version="1",
            signature=record.signature,
            artifact_digests=frozenset(
                a.digest for k in record.servable_formats if (a := record.servable_artifact(k))
            ),
            timeout_s=1.0,
        )

    metadata = {
        "inputs": [{"name": "x", "datatype": "FP32", "shape": ["-1", "6"]}],
        "outputs": [{"name": n, "datatype": "FP32", "shape": ["-1", "2"]}
                    for n in registry.get("mlp:1").signature.output_names],
    }  # fmt: skip
    runtime_for("mlp:1")._check(metadata, as_reported)
    with pytest.raises(NotServable, match="not one of this version's"):
        runtime_for("mlp:2")._check(metadata, as_reported)

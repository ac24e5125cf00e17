"""The CUDA paths: TorchScript on cuda:0 and onnxruntime's CUDA provider with IOBinding.

Skipped where there is no GPU (this project's CI machine has none); run on a GPU machine
with `pytest -m gpu`. Each checks, through the gateway's real HTTP path, that the answer
matches the eager model on the CPU and that the version reports the device it runs on.
"""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
import torch

from registry import Registry
from tests.fixtures import make_mlp
from tests.services.gateway.conftest import open_gateway

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here"),
]


def _rows(n: int) -> np.ndarray:
    return np.random.default_rng(n).standard_normal((n, 6)).astype(np.float32)


def _eager(x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return np.asarray(make_mlp(seed=0)(torch.from_numpy(x)).numpy())


async def test_torchscript_runs_on_cuda_and_answers_like_the_eager_model(
    registry: Registry,
) -> None:
    async for gateway in open_gateway(registry, runtime="torchscript", device="cuda"):
        for n in (1, 7, 64):
            response = await gateway.infer("mlp", _rows(n))
            assert response.status_code == 200, response.text
            output = response.json()["outputs"][0]
            got = np.asarray(output["data"], dtype=np.float32).reshape(output["shape"])
            np.testing.assert_allclose(got, _eager(_rows(n)), rtol=1e-4, atol=1e-5)
        stats = (await gateway.client.get("/v2/models/mlp/stats")).json()["model_stats"][0]
        assert stats["inference_count"] == 72
        parameters = (await gateway.client.get("/v2/models/mlp")).json()["parameters"]
        assert parameters["artifact"] == "torchscript"
        assert parameters["device"] == "cuda:0"


@pytest.mark.skipif(
    "CUDAExecutionProvider" not in ort.get_available_providers(),
    reason="this onnxruntime build has no CUDA provider (onnxruntime-gpu is not installed)",
)
async def test_onnxruntime_uses_the_cuda_provider_with_io_binding(registry: Registry) -> None:
    async for gateway in open_gateway(registry, runtime="onnx", device="cuda"):
        response = await gateway.infer("mlp", _rows(5))
        assert response.status_code == 200, response.text
        output = response.json()["outputs"][0]
        got = np.asarray(output["data"], dtype=np.float32).reshape(output["shape"])
        np.testing.assert_allclose(got, _eager(_rows(5)), rtol=1e-4, atol=1e-5)
        parameters = (await gateway.client.get("/v2/models/mlp")).json()["parameters"]
        assert parameters["device"] == "cuda:0"
        assert parameters["io_binding"] is True
        assert parameters["providers"][0] == "CUDAExecutionProvider"

"""The real tritonclient.http against a real mlgate server on a loopback port."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

from tests.fixtures import make_mlp
from tests.services.gateway.conftest import LiveServer


def expected(x: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
        return make_mlp(seed=0)(torch.from_numpy(x)).numpy()


@pytest.fixture
def client(live: LiveServer) -> triton.InferenceServerClient:
    return triton.InferenceServerClient(live.url.removeprefix("http://"))


def test_health_readiness_and_metadata(client: triton.InferenceServerClient) -> None:
    assert client.is_server_live()
    assert client.is_server_ready()
    assert client.is_model_ready("mlp")
    assert client.is_model_ready("mlp", "1")
    assert not client.is_model_ready("mlp", "2")
    assert not client.is_model_ready("ghost")
    metadata = client.get_model_metadata("mlp")
    assert metadata["inputs"] == [{"name": "x", "datatype": "FP32", "shape": [-1, 6]}]
    assert client.get_server_metadata()["name"] == "mlgate"


@pytest.mark.parametrize("binary", [True, False])
def test_infer_with_binary_and_json_tensors(
    client: triton.InferenceServerClient, binary: bool
) -> None:
    x = np.random.default_rng(1).standard_normal((4, 6)).astype(np.float32)
    tensor = triton.InferInput("x", list(x.shape), "FP32")
    tensor.set_data_from_numpy(x, binary_data=binary)
    output = triton.InferRequestedOutput("output", binary_data=binary)
    result = client.infer("mlp", [tensor], outputs=[output], request_id="r-1")
    np.testing.assert_allclose(result.as_numpy("output"), expected(x), rtol=1e-4, atol=1e-5)
    assert result.get_response()["id"] == "r-1"
    everything = client.infer("mlp", [tensor], model_version="1", priority=1, timeout=5_000_000)
    np.testing.assert_allclose(everything.as_numpy("output"), expected(x), rtol=1e-4, atol=1e-5)


def test_compressed_requests(client: triton.InferenceServerClient) -> None:
    x = np.ones((2, 6), np.float32)
    tensor = triton.InferInput("x", [2, 6], "FP32")
    tensor.set_data_from_numpy(x)
    for algorithm in ("gzip", "deflate"):
        result = client.infer("mlp", [tensor], request_compression_algorithm=algorithm)
        np.testing.assert_allclose(result.as_numpy("output"), expected(x), rtol=1e-4, atol=1e-5)


def test_errors_reach_the_client_with_status_and_message(
    client: triton.InferenceServerClient,
) -> None:
    tensor = triton.InferInput("x", [2, 3], "FP32")
    tensor.set_data_from_numpy(np.zeros((2, 3), np.float32))
    with pytest.raises(InferenceServerException) as caught:
        client.infer("mlp", [tensor])
    assert caught.value.status() == "400"
    assert "expected FP32[-1, 6], got FP32[2, 3]" in caught.value.message()
    with pytest.raises(InferenceServerException) as missing:
        client.get_model_metadata("ghost")
    assert missing.value.status() == "404"
    # The connection survives errors: the next call works.
    ok = triton.InferInput("x", [1, 6], "FP32")
    ok.set_data_from_numpy(np.zeros((1, 6), np.float32))
    assert client.infer("mlp", [ok]).as_numpy("output").shape == (1, 1)


def test_repository_api_through_the_client(client: triton.InferenceServerClient) -> None:
    index = client.get_model_repository_index()
    assert {"name": "mlp", "version": "1", "state": "READY", "reason": ""} in index
    client.unload_model("two")
    assert not client.is_model_ready("two")
    client.load_model("two")
    assert client.is_model_ready("two")

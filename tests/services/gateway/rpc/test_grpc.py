"""The real tritonclient.grpc (sync and aio) against a real mlgate server's gRPC port.

Every answer and every error is compared with what REST answers for the same input on the
same server: both transports call one data plane, so they must agree to the byte (and to
the letter of the error message).
"""

from __future__ import annotations

import asyncio
import queue
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc  # type: ignore[import-untyped]
import httpx
import numpy as np
import pytest
import torch
import tritonclient.grpc as triton
import tritonclient.grpc.aio as triton_aio
import tritonclient.http as triton_http
from tritonclient.grpc import service_pb2 as pb2
from tritonclient.grpc import service_pb2_grpc
from tritonclient.utils import InferenceServerException

from registry import Registry
from tests.fixtures import make_mlp
from tests.services.gateway.conftest import LiveServer, wait_until


@pytest.fixture(scope="module")
def server(template_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """One server for the tests that change nothing on it."""
    home = tmp_path_factory.mktemp("grpc") / "home"
    shutil.copytree(template_home, home)
    registry = Registry(home=home)
    try:
        with LiveServer(registry, grpc_port=0) as live:
            yield live
    finally:
        registry.close()
        shutil.rmtree(home)


def grpc_client(live: LiveServer) -> triton.InferenceServerClient:
    return triton.InferenceServerClient(f"127.0.0.1:{live.app.state.grpc_port}")


@pytest.fixture
def client(server: LiveServer) -> Iterator[triton.InferenceServerClient]:
    opened = grpc_client(server)
    yield opened
    opened.close()


@pytest.fixture
def stub(server: LiveServer) -> Iterator[Any]:
    """The generated stub itself, for what tritonclient cannot send (typed contents...)."""
    with grpc.insecure_channel(f"127.0.0.1:{server.app.state.grpc_port}") as channel:
        yield service_pb2_grpc.GRPCInferenceServiceStub(channel)


def rows(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, 6)).astype(np.float32)


def tensor(name: str, array: np.ndarray, datatype: str = "FP32") -> triton.InferInput:
    infer_input = triton.InferInput(name, list(array.shape), datatype)
    infer_input.set_data_from_numpy(array)
    return infer_input


def refused(call: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[str, str]:
    """(gRPC status name, details) of `call(*args, **kwargs)`, which must fail."""
    with pytest.raises(InferenceServerException) as caught:
        call(*args, **kwargs)
    return str(caught.value.status()).removeprefix("StatusCode."), str(caught.value.message())


def rest_error(live: LiveServer, path: str, body: Any = None, **headers: str) -> tuple[int, str]:
    response = httpx.post(f"{live.url}{path}", json=body, headers=headers, timeout=30)
    assert response.status_code >= 400, response.text
    return response.status_code, str(response.json()["error"])


def rest_body(x: np.ndarray, datatype: str = "FP32", **extra: Any) -> dict[str, Any]:
    entry = {"name": "x", "shape": list(x.shape), "datatype": datatype, "data": x.ravel().tolist()}
    return {"inputs": [entry], **extra}


# ---------------------------------------------------------------- health, metadata, config


def config_shape(entry: dict[str, Any]) -> list[int]:
    """A config tensor's full shape: the batch dimension, then dims (or their reshape)."""
    dims = entry["reshape"].get("shape", []) if "reshape" in entry else entry["dims"]
    return [-1, *(int(d) for d in dims)]


def test_health_metadata_and_config_agree_with_rest(
    server: LiveServer, client: triton.InferenceServerClient
) -> None:
    assert client.is_server_live()
    assert client.is_server_ready()
    assert client.is_model_ready("mlp")
    assert client.is_model_ready("mlp", "1")
    assert not client.is_model_ready("mlp", "2")
    assert not client.is_model_ready("ghost")
    rest = httpx.get(f"{server.url}/v2").json()
    assert client.get_server_metadata(as_json=True) == rest

    for model in ("mlp", "two"):
        document = httpx.get(f"{server.url}/v2/models/{model}").json()
        metadata = client.get_model_metadata(model, as_json=True)
        for key in ("name", "versions", "platform"):
            assert metadata[key] == document[key]
        for side in ("inputs", "outputs"):
            assert [{**t, "shape": [int(d) for d in t["shape"]]} for t in metadata[side]] == (
                document[side]
            )

        config = client.get_model_config(model, as_json=True)["config"]
        batching = document["parameters"]["batching"]
        assert config["max_batch_size"] == batching["max_batch_size"]
        delay_us = config["dynamic_batching"]["max_queue_delay_microseconds"]
        assert int(delay_us) == round(batching["max_queue_delay_ms"] * 1000)
        assert config["platform"] == document["platform"]
        for side, entries in (("input", "inputs"), ("output", "outputs")):
            assert [(c["name"], c["data_type"], config_shape(c)) for c in config[side]] == [
                (t["name"], f"TYPE_{t['datatype']}", t["shape"]) for t in document[entries]
            ]
    assert client.get_model_config("two", as_json=True)["config"]["input"][1]["data_type"] == (
        "TYPE_INT64"
    )
    status, message = refused(lambda: client.get_model_config("ghost"))
    assert status == "NOT_FOUND"
    assert message == httpx.get(f"{server.url}/v2/models/ghost").json()["error"]
    assert server.app.state.grpc_port not in (None, 0, server.port)


# ---------------------------------------------------------------- inference


def test_infer_answers_what_rest_answers(
    server: LiveServer, client: triton.InferenceServerClient
) -> None:
    x = rows(5, seed=1)
    result = client.infer(
        "mlp", [tensor("x", x)], request_id="r-7", priority=1, timeout=5_000_000, client_timeout=30
    )
    response = result.get_response()
    assert response.id == "r-7"
    assert (response.model_name, response.model_version) == ("mlp", "1")
    assert len(response.raw_output_contents) == 1  # raw, as Triton answers
    assert not response.outputs[0].HasField("contents")

    http = triton_http.InferenceServerClient(server.url.removeprefix("http://"))
    rest_input = triton_http.InferInput("x", list(x.shape), "FP32")
    rest_input.set_data_from_numpy(x, binary_data=True)
    rest = http.infer("mlp", [rest_input]).as_numpy("output")
    http.close()
    assert np.array_equal(result.as_numpy("output"), rest)
    with torch.inference_mode():
        eager = make_mlp(seed=0)(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(result.as_numpy("output"), eager, rtol=1e-4, atol=1e-5)
    pinned = client.infer("mlp", [tensor("x", x)], model_version="1").as_numpy("output")
    assert np.array_equal(pinned, rest)


def two_request(numeric: np.ndarray, counts: np.ndarray, outputs: list[str]) -> Any:
    """A request with typed contents (fp32_contents, int64_contents), built on the stub."""
    request = pb2.ModelInferRequest(model_name="two", id="typed")
    first = request.inputs.add(name="numeric", datatype="FP32", shape=list(numeric.shape))
    first.contents.fp32_contents.extend(numeric.ravel().tolist())
    second = request.inputs.add(name="counts", datatype="INT64", shape=list(counts.shape))
    second.contents.int64_contents.extend(counts.ravel().tolist())
    for name in outputs:
        request.outputs.add(name=name)
    return request


def test_typed_contents_and_a_subset_of_outputs(
    server: LiveServer, client: triton.InferenceServerClient, stub: Any
) -> None:
    generator = np.random.default_rng(3)
    numeric = generator.standard_normal((4, 4)).astype(np.float32)
    counts = generator.integers(0, 5, (4, 3)).astype(np.int64)
    typed = triton.InferResult(stub.ModelInfer(two_request(numeric, counts, ["label"])))
    assert [o.name for o in typed.get_response().outputs] == ["label"]
    assert typed.get_response().id == "typed"

    raw = client.infer("two", [tensor("numeric", numeric), tensor("counts", counts, "INT64")])
    assert {o.name for o in raw.get_response().outputs} == {"score", "label"}
    assert np.array_equal(typed.as_numpy("label"), raw.as_numpy("label"))
    body: dict[str, Any] = {
        "inputs": [
            {"name": "numeric", "shape": [4, 4], "datatype": "FP32", "data": numeric.tolist()},
            {"name": "counts", "shape": [4, 3], "datatype": "INT64", "data": counts.tolist()},
        ]
    }
    rest = httpx.post(f"{server.url}/v2/models/two/infer", json=body).json()["outputs"]
    for output in rest:
        expected = np.array(output["data"], raw.as_numpy(output["name"]).dtype)
        assert np.array_equal(raw.as_numpy(output["name"]).ravel(), expected)

    body["outputs"] = [{"name": "nothing"}]
    status, message = refused(
        lambda: client.infer(
            "two",
            [tensor("numeric", numeric), tensor("counts", counts, "INT64")],
            outputs=[triton.InferRequestedOutput("nothing")],
        )
    )
    assert status == "INVALID_ARGUMENT"
    assert (400, message) == rest_error(server, "/v2/models/two/infer", body)


def test_the_aio_client(server: LiveServer) -> None:
    x = rows(3, seed=4)

    async def main() -> np.ndarray:
        client = triton_aio.InferenceServerClient(f"127.0.0.1:{server.app.state.grpc_port}")
        try:
            assert await client.is_server_live()
            assert await client.is_model_ready("mlp")
            metadata = await client.get_model_metadata("mlp", as_json=True)
            assert metadata["inputs"][0]["name"] == "x"
            answers = await asyncio.gather(
                *(client.infer("mlp", [tensor("x", x)], request_id=str(i)) for i in range(8))
            )
            assert sorted(a.get_response().id for a in answers) == [str(i) for i in range(8)]
            outputs: np.ndarray = answers[0].as_numpy("output")
            return outputs
        finally:
            await client.close()

    outputs = asyncio.run(main())
    rest = httpx.post(f"{server.url}/v2/models/mlp/infer", json=rest_body(x)).json()
    np.testing.assert_array_equal(outputs.ravel(), np.float32(rest["outputs"][0]["data"]))


# ---------------------------------------------------------------- errors


def works(client: triton.InferenceServerClient) -> None:
    """The server still answers after an error."""
    assert client.infer("mlp", [tensor("x", rows(1))]).as_numpy("output").shape == (1, 1)


def test_bad_requests_get_grpc_codes_and_rest_messages(
    server: LiveServer, client: triton.InferenceServerClient
) -> None:
    x = rows(2)
    cases: list[tuple[str, Callable[[], Any], str, Any, str]] = [
        # what, the gRPC call, the same request over REST (path, body), the gRPC status
        (
            "unknown model",
            lambda: client.infer("ghost", [tensor("x", x)]),
            "/v2/models/ghost/infer",
            rest_body(x),
            "NOT_FOUND",
        ),
        (
            "bad shape",
            lambda: client.infer("mlp", [tensor("x", x[:, :3])]),
            "/v2/models/mlp/infer",
            rest_body(x[:, :3]),
            "INVALID_ARGUMENT",
        ),
        (
            "bad datatype",
            lambda: client.infer("mlp", [tensor("x", x.astype(np.float64), "FP64")]),
            "/v2/models/mlp/infer",
            rest_body(x, "FP64"),
            "INVALID_ARGUMENT",
        ),
        (
            "bad version",
            lambda: client.infer("mlp", [tensor("x", x)], model_version="one"),
            "/v2/models/mlp/versions/one/infer",
            rest_body(x),
            "INVALID_ARGUMENT",
        ),
        (
            "version not served",
            lambda: client.infer("mlp", [tensor("x", x)], model_version="2"),
            "/v2/models/mlp/versions/2/infer",
            rest_body(x),
            "NOT_FOUND",
        ),
        (
            "negative timeout",
            lambda: client.infer("mlp", [tensor("x", x)], timeout=-5),
            "/v2/models/mlp/infer",
            rest_body(x, parameters={"timeout": -5}),
            "INVALID_ARGUMENT",
        ),
        (
            "too many rows",
            lambda: client.infer("mlp", [tensor("x", rows(4097))]),
            "/v2/models/mlp/infer",
            rest_body(rows(4097)),
            "RESOURCE_EXHAUSTED",
        ),
    ]
    for what, call, path, body, expected in cases:
        status, message = refused(call)
        _, rest_message = rest_error(server, path, body)
        assert (what, status, message) == (what, expected, rest_message)
        works(client)
    # JSON has no infinity: the REST side sends it as a binary tensor.
    infinite = np.full((1, 6), np.inf, np.float32)
    status, message = refused(lambda: client.infer("mlp", [tensor("x", infinite)]))
    http = triton_http.InferenceServerClient(server.url.removeprefix("http://"))
    binary = triton_http.InferInput("x", [1, 6], "FP32")
    binary.set_data_from_numpy(infinite, binary_data=True)
    with pytest.raises(InferenceServerException) as caught:
        http.infer("mlp", [binary])
    http.close()
    assert (status, message) == ("INVALID_ARGUMENT", caught.value.message())
    works(client)


def test_a_passed_deadline_is_deadline_exceeded(server: LiveServer, stub: Any) -> None:
    """A `timeout` below the clock's resolution: the deadline is 'now', so it has passed by
    the time it is checked, on both transports alike."""
    x = rows(1)
    request = pb2.ModelInferRequest(model_name="mlp")
    request.inputs.add(name="x", datatype="FP32", shape=[1, 6])
    request.raw_input_contents.append(x.tobytes())
    request.parameters["timeout"].double_param = 1e-9
    with pytest.raises(grpc.RpcError) as caught:
        stub.ModelInfer(request)
    assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    body = rest_body(x, parameters={"timeout": 1e-9})
    assert (504, caught.value.details()) == rest_error(server, "/v2/models/mlp/infer", body)


def test_bytes_and_malformed_tensors_are_invalid_argument(
    client: triton.InferenceServerClient, stub: Any
) -> None:
    words = triton.InferInput("x", [1], "BYTES")
    words.set_data_from_numpy(np.array([b"six"], dtype=np.object_))
    status, message = refused(lambda: client.infer("mlp", [words]))
    assert status == "INVALID_ARGUMENT"
    assert "datatype BYTES is not supported" in message
    short = pb2.ModelInferRequest(model_name="mlp")
    short.inputs.add(name="x", datatype="FP32", shape=[2, 6])
    short.raw_input_contents.append(rows(1).tobytes())
    with pytest.raises(grpc.RpcError) as caught:
        stub.ModelInfer(short)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "holds 24 bytes but shape [2, 6] × FP32 needs 48" in caught.value.details()
    works(client)


def test_unsupported_rpcs_are_unimplemented_with_a_reason(
    client: triton.InferenceServerClient, stub: Any
) -> None:
    calls: dict[str, Callable[[], Any]] = {
        "system shared memory": client.get_system_shared_memory_status,
        "CUDA shared memory": client.get_cuda_shared_memory_status,
        "trace settings": client.get_trace_settings,
        "log settings": client.get_log_settings,
    }
    for feature, call in calls.items():
        status, message = refused(call)
        assert (status, message.split(";")[0]) == (
            "UNIMPLEMENTED",
            f"mlgate does not implement {feature}",
        )
    works(client)


def test_a_stream_answers_each_request_and_errors_only_their_own(
    server: LiveServer, client: triton.InferenceServerClient
) -> None:
    answers: queue.Queue[tuple[Any, Any]] = queue.Queue()
    client.start_stream(callback=lambda result, error: answers.put((result, error)))
    inputs = {f"s-{n}": rows(n, seed=n) for n in (1, 2, 3)}
    for request_id, x in inputs.items():
        client.async_stream_infer("mlp", [tensor("x", x)], request_id=request_id)
    client.async_stream_infer("mlp", [tensor("x", rows(1)[:, :2])], request_id="bad")
    client.async_stream_infer("ghost", [tensor("x", rows(1))], request_id="nobody")
    client.stop_stream()  # waits for every answer
    results, errors = {}, []
    while not answers.empty():
        result, error = answers.get()
        if error is None:
            results[result.get_response().id] = result.as_numpy("output")
        else:
            errors.append(error.message())
    for request_id, x in inputs.items():
        rest = httpx.post(f"{server.url}/v2/models/mlp/infer", json=rest_body(x)).json()
        expected = np.array(rest["outputs"][0]["data"], np.float32)
        assert np.array_equal(results[request_id].ravel(), expected)
    assert sorted(errors) == sorted(
        [
            rest_error(server, "/v2/models/mlp/infer", rest_body(rows(1)[:, :2]))[1],
            rest_error(server, "/v2/models/ghost/infer", rest_body(rows(1)))[1],
        ]
    )
    works(client)


def test_a_shadow_sees_grpc_traffic_too(registry: Registry) -> None:
    """Triton's client over gRPC: the alias answers, the shadow gets the copy, both logged
    under the request id the client sent."""
    registry.shadows.set("mlp", "production", 2, 1.0, reason="gRPC callers too")
    with LiveServer(registry, grpc_port=0) as live:
        manager = live.app.state.dataplane.manager
        wait_until(lambda: manager.traffic.shadow_for("mlp", 1) is not None, "the shadow to load")
        client = grpc_client(live)
        try:
            answers = [
                client.infer("mlp", [tensor("x", rows(2, seed))], request_id=f"g-{seed}")
                for seed in range(5)
            ]
        finally:
            client.close()
        assert {a.get_response().model_version for a in answers} == {"1"}
        report: dict[str, Any] = {}

        def paired() -> bool:
            report.update(httpx.get(f"{live.url}/monitoring/models/mlp/shadow").json())
            return report.get("paired") == 10

        wait_until(paired, "10 paired rows in the log")
    assert report["rows"] == {"1": 10, "2": 10}

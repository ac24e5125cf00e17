"""The REST routes in process: every path, every error path, all in the one envelope."""

from __future__ import annotations

import gzip
from typing import Any

import numpy as np
import orjson
import pytest
import torch

from registry import Registry
from tests.fixtures import make_mlp
from tests.services.gateway.conftest import Gateway, open_gateway

pytestmark = pytest.mark.anyio


def eager(x: np.ndarray, seed: int = 0) -> np.ndarray:
    with torch.inference_mode():
        return make_mlp(seed=seed)(torch.from_numpy(x)).numpy()


def rows(n: int = 3) -> np.ndarray:
    return np.random.default_rng(n).standard_normal((n, 6)).astype(np.float32)


async def test_health_and_server_metadata(gateway: Gateway) -> None:
    assert (await gateway.client.get("/v2/health/live")).json() == {"live": True}
    assert (await gateway.client.get("/v2/health/ready")).json() == {"ready": True}
    metadata = (await gateway.client.get("/v2")).json()
    assert metadata["name"] == "mlgate"
    assert "binary_tensor_data" in metadata["extensions"]


async def test_model_metadata_comes_from_the_signature(gateway: Gateway) -> None:
    for path in ("/v2/models/mlp", "/v2/models/mlp/versions/1"):
        metadata = (await gateway.client.get(path)).json()
        assert metadata["name"] == "mlp"
        assert metadata["versions"] == ["1"]
        assert metadata["platform"] == "onnxruntime_onnx"
        assert metadata["inputs"] == [{"name": "x", "datatype": "FP32", "shape": [-1, 6]}]
        assert metadata["outputs"] == [{"name": "output", "datatype": "FP32", "shape": [-1, 1]}]
        parameters = metadata["parameters"]
        assert parameters["device"] == "cpu"
        assert parameters["providers"] == ["CPUExecutionProvider"]
        assert parameters["feature_names"] == {"x": [f"f{i}" for i in range(6)]}
        assert parameters["batching"]["max_batch_size"] == 32
    ready = await gateway.client.get("/v2/models/mlp/versions/1/ready")
    assert ready.status_code == 200


async def test_json_inference_matches_the_eager_model_and_echoes_the_id(gateway: Gateway) -> None:
    x = rows(3)
    response = await gateway.infer("mlp", x, id="req-42")
    assert response.status_code == 200
    document = response.json()
    assert document["id"] == "req-42"
    assert document["model_name"] == "mlp"
    assert document["model_version"] == "1"
    (output,) = document["outputs"]
    assert output["shape"] == [3, 1]
    np.testing.assert_allclose(
        np.array(output["data"]).reshape(3, 1), eager(x), rtol=1e-4, atol=1e-5
    )


async def test_binary_inputs_and_outputs(gateway: Gateway) -> None:
    x = rows(5)
    header = orjson.dumps(
        {
            "inputs": [
                {
                    "name": "x",
                    "shape": [5, 6],
                    "datatype": "FP32",
                    "parameters": {"binary_data_size": x.nbytes},
                }
            ],
            "outputs": [{"name": "output", "parameters": {"binary_data": True}}],
        }
    )
    response = await gateway.client.post(
        "/v2/models/mlp/infer",
        content=header + x.tobytes(),
        headers={
            "Inference-Header-Content-Length": str(len(header)),
            "Content-Type": "application/octet-stream",
        },
    )
    assert response.status_code == 200, response.text
    split = int(response.headers["inference-header-content-length"])
    document = orjson.loads(response.content[:split])
    assert document["outputs"][0]["parameters"] == {"binary_data_size": 20}
    result = np.frombuffer(response.content[split:], np.float32).reshape(5, 1)
    np.testing.assert_allclose(result, eager(x), rtol=1e-4, atol=1e-5)


async def test_two_inputs_two_outputs_and_output_selection(gateway: Gateway) -> None:
    body = {
        "inputs": [
            {"name": "numeric", "shape": [2, 4], "datatype": "FP32", "data": [0.1] * 8},
            {"name": "counts", "shape": [2, 3], "datatype": "INT64", "data": [1, 2, 3, 4, 5, 6]},
        ],
        "outputs": [{"name": "label"}],
    }
    document = (await gateway.client.post("/v2/models/two/infer", json=body)).json()
    assert [o["name"] for o in document["outputs"]] == ["label"]
    assert document["outputs"][0]["datatype"] == "INT64"
    body["outputs"] = [{"name": "nope"}]
    response = await gateway.client.post("/v2/models/two/infer", json=body)
    assert response.status_code == 400
    assert response.json() == {
        "error": "unknown outputs ['nope']; the model returns ['score', 'label']"
    }


async def test_v1_predict_with_rows_or_feature_dicts(gateway: Gateway) -> None:
    x = rows(2)
    by_rows = (
        await gateway.client.post("/v1/models/mlp:predict", json={"instances": x.tolist()})
    ).json()
    by_name = [{f"f{i}": float(v) for i, v in enumerate(row)} for row in x]
    by_features = (
        await gateway.client.post("/v1/models/mlp:predict", json={"instances": by_name})
    ).json()
    assert by_rows["predictions"] == by_features["predictions"]
    np.testing.assert_allclose(by_rows["predictions"], eager(x)[:, 0], rtol=1e-4, atol=1e-5)
    two = {"instances": [{"numeric": [0.0] * 4, "counts": [1, 1, 1]}]}
    predictions = (await gateway.client.post("/v1/models/two:predict", json=two)).json()[
        "predictions"
    ]
    assert set(predictions[0]) == {"score", "label"}


BAD_V1 = [
    ({"rows": []}, 'the body must be {"instances": [...]}'),
    ({"instances": [[1, 2]]}, "expected FP32[-1, 6], got FP32[1, 2]"),
    ({"instances": [{"f0": 1}]}, "instances lack features"),
    ({"instances": [["a"] * 6]}, "instances must be numbers"),
    ({"instances": [[1, 2], [1]]}, "ragged"),
]


@pytest.mark.parametrize(("body", "fragment"), BAD_V1)
async def test_v1_errors(gateway: Gateway, body: Any, fragment: str) -> None:
    response = await gateway.client.post("/v1/models/mlp:predict", json=body)
    assert response.status_code == 400
    assert fragment in response.json()["error"]


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "fragment"),
    [
        ("post", "/v2/models/nope/infer", {"inputs": []}, 404, "model nope is not served here"),
        ("post", "/v2/models/mlp/versions/2/infer", None, 404, "model mlp:2 is not served here"),
        ("post", "/v2/models/mlp/versions/abc/infer", None, 400, "'abc' is not a positive integer"),
        ("get", "/v2/models/Bad..Name", None, 400, "not allowed"),
        (
            "post",
            "/v2/models/mlp/infer",
            {"inputs": [{"name": "y", "shape": [1, 6], "datatype": "FP32", "data": [0] * 6}]},
            400,
            "unknown inputs ['y']",
        ),
        (
            "post",
            "/v2/models/mlp/infer",
            {"inputs": [{"name": "x", "shape": [1, 6], "datatype": "FP64", "data": [0] * 6}]},
            400,
            "got FP64[1, 6] (datatype differs)",
        ),
        (
            "post",
            "/v2/models/mlp/infer",
            {
                "inputs": [{"name": "x", "shape": [1, 6], "datatype": "FP32", "data": [0] * 6}],
                "parameters": {"timeout": -5},
            },
            400,
            "'timeout' must be",
        ),
        (
            "post",
            "/v2/models/mlp/infer",
            {
                "inputs": [{"name": "x", "shape": [1, 6], "datatype": "FP32", "data": [0] * 6}],
                "parameters": {"priority": "high"},
            },
            400,
            "'priority' must be",
        ),
        ("get", "/v2/nothing-here", None, 404, "Not Found"),
        ("put", "/v2/models/mlp/infer", None, 405, "Method Not Allowed"),
    ],
)
async def test_errors_are_4xx_in_the_envelope(
    gateway: Gateway, method: str, path: str, body: Any, status: int, fragment: str
) -> None:
    response = await gateway.client.request(method, path, json=body)
    assert response.status_code == status, response.text
    assert set(response.json()) == {"error"}
    assert fragment in response.json()["error"]
    assert (await gateway.infer("mlp", rows(1))).status_code == 200  # still serving


async def test_garbage_never_causes_a_500(gateway: Gateway) -> None:
    rng = np.random.default_rng(7)
    bodies = [rng.bytes(int(n)) for n in rng.integers(0, 300, 30)]
    bodies += [
        b"{}",
        b"null",
        b'{"inputs": {}}',
        b'{"inputs": [null]}',
        b'{"inputs": [{"name": 1}]}',
    ]
    for body in bodies:
        for headers in ({}, {"Inference-Header-Content-Length": "2"}):
            response = await gateway.client.post(
                "/v2/models/mlp/infer", content=body, headers=headers
            )
            assert 400 <= response.status_code < 500, (body, response.text)
            assert "error" in response.json()


async def test_gzip_bodies_and_size_limits(registry: Registry) -> None:
    async for gateway in open_gateway(registry, max_body_bytes=2048):
        body = orjson.dumps(
            {"inputs": [{"name": "x", "shape": [1, 6], "datatype": "FP32", "data": [0.5] * 6}]}
        )
        packed = gzip.compress(body)
        ok = await gateway.client.post(
            "/v2/models/mlp/infer", content=packed, headers={"Content-Encoding": "gzip"}
        )
        assert ok.status_code == 200, ok.text
        big = {
            "inputs": [{"name": "x", "shape": [100, 6], "datatype": "FP32", "data": [0.5] * 600}]
        }
        too_big = await gateway.client.post("/v2/models/mlp/infer", json=big)
        assert too_big.status_code == 413
        assert "limit is 2048" in too_big.json()["error"]
        bomb = gzip.compress(orjson.dumps({"pad": "x" * 100_000}))
        exploded = await gateway.client.post(
            "/v2/models/mlp/infer", content=bomb, headers={"Content-Encoding": "gzip"}
        )
        assert exploded.status_code == 413
        assert "decompressed body exceeds" in exploded.json()["error"]
        corrupt = await gateway.client.post(
            "/v2/models/mlp/infer", content=b"\x1f\x8bjunk", headers={"Content-Encoding": "gzip"}
        )
        assert corrupt.status_code == 400
        brotli = await gateway.client.post(
            "/v2/models/mlp/infer", content=body, headers={"Content-Encoding": "br"}
        )
        assert brotli.status_code == 400


async def test_rows_per_request_are_capped(registry: Registry) -> None:
    async for gateway in open_gateway(registry, max_rows_per_request=10):
        response = await gateway.infer("mlp", rows(11))
        assert response.status_code == 413
        assert "at most 10 per request" in response.json()["error"]


async def test_predicted_slo_misses_are_503(registry: Registry) -> None:
    registry.set_serving_config("mlp:1", {"slo_ms": 0.0001})
    async for gateway in open_gateway(registry):
        response = await gateway.infer("mlp", rows(1))
        assert response.status_code == 503
        assert "shed: predicted latency" in response.json()["error"]
        stats = (await gateway.client.get("/v2/models/mlp/stats")).json()["model_stats"][0]
        assert stats["rejected"] == {"shed": 1}
        assert stats["inference_count"] == 0


async def test_a_passed_deadline_is_504(gateway: Gateway) -> None:
    body = {"inputs": [{"name": "x", "shape": [1, 6], "datatype": "FP32", "data": [0] * 6}]}
    response = await gateway.client.post(
        "/v2/models/mlp/infer", json=body, headers={"X-Request-Deadline": "1000000000"}
    )
    assert response.status_code == 504
    assert "deadline had already passed" in response.json()["error"]
    bad = await gateway.client.post(
        "/v2/models/mlp/infer", json=body, headers={"X-Request-Deadline": "soon"}
    )
    assert bad.status_code == 400


async def test_api_keys(registry: Registry) -> None:
    async for gateway in open_gateway(registry, api_keys="alpha,beta"):
        assert (await gateway.infer("mlp", rows(1))).status_code == 401
        gateway.client.headers["X-API-Key"] = "gamma"
        forbidden = await gateway.infer("mlp", rows(1))
        assert forbidden.status_code == 403
        assert forbidden.json() == {"error": "the API key is not valid"}
        gateway.client.headers["X-API-Key"] = "beta"
        assert (await gateway.infer("mlp", rows(1))).status_code == 200
        del gateway.client.headers["X-API-Key"]
        assert (await gateway.client.get("/v2/health/ready")).status_code == 200  # probes stay open


async def test_admin_needs_a_token_or_loopback(registry: Registry) -> None:
    async for remote in open_gateway(registry, client_host="10.1.2.3"):
        response = await remote.client.post("/v2/repository/index")
        assert response.status_code == 403
        assert "loopback clients only" in response.json()["error"]
    async for gateway in open_gateway(registry, admin_token="t0ken", client_host="10.1.2.3"):
        assert (await gateway.client.post("/v2/repository/index")).status_code == 401
        wrong = await gateway.client.post(
            "/v2/repository/index", headers={"Authorization": "Bearer nope"}
        )
        assert wrong.status_code == 403
        right = await gateway.client.post(
            "/v2/repository/index", headers={"Authorization": "Bearer t0ken"}
        )
        assert right.status_code == 200


async def test_repository_index_load_and_unload(gateway: Gateway, registry: Registry) -> None:
    index = (await gateway.client.post("/v2/repository/index")).json()
    assert {"name": "mlp", "version": "1", "state": "READY", "reason": ""} in index
    unloaded = await gateway.client.post("/v2/repository/models/mlp/unload")
    assert unloaded.status_code == 200
    gone = await gateway.infer("mlp", rows(1))
    assert gone.status_code == 503
    assert "was unloaded" in gone.json()["error"]
    ready_only = (await gateway.client.post("/v2/repository/index", json={"ready": True})).json()
    assert [e["name"] for e in ready_only] == ["two"]
    loaded = await gateway.client.post(
        "/v2/repository/models/mlp/load",
        json={"parameters": {"version": 2, "max_batch_size": 8, "runtime": "torchscript"}},
    )
    assert loaded.status_code == 200, loaded.text
    metadata = (await gateway.client.get("/v2/models/mlp/versions/2")).json()
    assert metadata["platform"] == "pytorch_libtorch"
    assert metadata["parameters"]["batching"]["max_batch_size"] == 8
    assert registry.serving_config("mlp:2") == {"max_batch_size": 8, "runtime": "torchscript"}
    response = await gateway.client.post(
        "/v2/models/mlp/versions/2/infer",
        json={
            "inputs": [
                {"name": "x", "shape": [2, 6], "datatype": "FP32", "data": rows(2).ravel().tolist()}
            ]
        },
    )
    assert response.status_code == 200
    np.testing.assert_allclose(
        np.array(response.json()["outputs"][0]["data"]).reshape(2, 1),
        eager(rows(2), seed=1),
        rtol=1e-4,
        atol=1e-5,
    )


@pytest.mark.parametrize(
    ("body", "status", "fragment"),
    [
        (
            {"parameters": {"max_batch_size": 0}},
            400,
            "max_batch_size: Input should be greater than 0",
        ),
        ({"parameters": {"batch": 4}}, 400, "unknown serving settings ['batch']"),
        ({"parameters": {"version": "x"}}, 400, "must be a positive integer"),
        ({"parameters": {"version": 9}}, 404, "no version 9"),
        ({"parameters": []}, 400, "must be a JSON object"),
    ],
)
async def test_bad_load_requests(gateway: Gateway, body: Any, status: int, fragment: str) -> None:
    response = await gateway.client.post("/v2/repository/models/mlp/load", json=body)
    assert response.status_code == status, response.text
    assert fragment in response.json()["error"]
    missing = await gateway.client.post("/v2/repository/models/ghost/load")
    assert missing.status_code == 404


async def test_stats_report_batches(gateway: Gateway) -> None:
    for _ in range(3):
        await gateway.infer("mlp", rows(2))
    stats = (await gateway.client.get("/v2/models/mlp/stats")).json()["model_stats"][0]
    assert stats["inference_count"] == 6
    assert stats["request_count"] == 3
    assert stats["execution_count"] == 3
    assert stats["batch_reasons"] == {"idle": 3}
    assert stats["cost_model"]["fixed_ms"] > 0


async def test_a_streamed_body_over_the_limit_is_413(registry: Registry) -> None:
    async for gateway in open_gateway(registry, max_body_bytes=1024):

        async def chunks() -> Any:
            for _ in range(10):
                yield b"x" * 200

        response = await gateway.client.post("/v2/models/mlp/infer", content=chunks())
        assert response.status_code == 413
        assert "exceeds the 1024-byte limit" in response.json()["error"]


async def test_loading_a_served_version_with_new_settings_reloads_it(gateway: Gateway) -> None:
    before = gateway.manager._served[("mlp", 1)]
    response = await gateway.client.post(
        "/v2/repository/models/mlp/load", json={"parameters": {"version": 1, "max_batch_size": 4}}
    )
    assert response.status_code == 200, response.text
    assert gateway.manager._served[("mlp", 1)] is not before
    assert before.runtime._session is None  # the replaced copy was unloaded
    metadata = (await gateway.client.get("/v2/models/mlp")).json()
    assert metadata["parameters"]["batching"]["max_batch_size"] == 4
    assert (await gateway.infer("mlp", rows(9))).status_code == 200

"""What a client can put in a path, a query, a header or a JSON field that names a number:
the cases schemathesis found as 500s (issue 15), each now a 4xx naming what was wrong."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import numpy as np
import orjson
import pytest

from registry.names import MAX_ID, positive_id, positive_id_text
from tests.services.gateway.conftest import Gateway

pytestmark = pytest.mark.anyio

TOO_BIG = str(MAX_ID + 1)
HUGE = "9" * 30
FEATURES = [f"f{i}" for i in range(6)]
ROW = [0.5] * 6


@pytest.mark.parametrize(
    ("text", "expected"),
    [("1", 1), ("0042", 42), (str(MAX_ID), MAX_ID), ("0", None), ("-3", None), ("+3", None),
     ("³", None), ("٣", None), (TOO_BIG, None), ("9" * 5000, None), ("", None), ("1.0", None)],
)  # fmt: skip
def test_positive_id_text(text: str, expected: int | None) -> None:
    assert positive_id_text(text) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [(3, 3), ("3", 3), (True, None), (False, None), (3.0, None), (0, None), (MAX_ID + 1, None),
     (None, None), ([3], None)],
)  # fmt: skip
def test_positive_id(value: Any, expected: int | None) -> None:
    assert positive_id(value) == expected


@pytest.mark.parametrize(
    "path",
    [
        "/v2/models/mlp/versions/%C2%B3",
        "/v2/models/mlp/versions/%C2%B3/ready",
        "/v2/models/mlp/versions/%C2%B3/stats",
        "/v2/models/mlp/versions/%D9%A3",  # Arabic-Indic three: not version 3
        f"/v2/models/mlp/versions/{HUGE}",
        f"/v2/models/mlp/versions/{TOO_BIG}/ready",
        "/retraining/tasks/%C2%B3",
        "/retraining/tasks/31664377008556687360",
        "/monitoring/models/mlp/drift?version=%C2%B3",
        f"/monitoring/models/mlp/drift?version={HUGE}",
        "/monitoring/models/mlp/drift/report?check=%C2%B3",
        f"/monitoring/models/mlp/drift/report?check={HUGE}",
        f"/monitoring/models/mlp/quality?version={TOO_BIG}",
    ],
)
async def test_numbers_in_paths_and_queries_are_ascii_and_in_range(
    gateway: Gateway, path: str
) -> None:
    response = await gateway.client.get(path)
    assert response.status_code == 400, response.text
    assert "positive integer in ASCII digits" in response.json()["error"]


@pytest.mark.parametrize(
    "path", ["/v2/models/mlp/versions/%C2%B3/infer", f"/v2/models/mlp/versions/{HUGE}/infer"]
)
async def test_an_inference_path_with_a_bad_version_is_400(gateway: Gateway, path: str) -> None:
    body = {"inputs": [{"name": "x", "shape": [1, 6], "datatype": "FP32", "data": ROW}]}
    response = await gateway.client.post(path, json=body)
    assert response.status_code == 400, response.text
    assert "positive integer in ASCII digits" in response.json()["error"]


@pytest.mark.parametrize(
    ("version", "fragment"),
    [(int(HUGE), "positive integer"), (True, "positive integer"), (2.5, "positive integer"),
     ("³", "positive integer")],
)  # fmt: skip
async def test_a_repository_load_takes_only_a_version_number(
    gateway: Gateway, version: Any, fragment: str
) -> None:
    response = await gateway.client.post(
        "/v2/repository/models/mlp/load", json={"parameters": {"version": version}}
    )
    assert response.status_code == 400, response.text
    assert fragment in response.json()["error"]
    assert (await gateway.client.get("/v2/models/mlp/ready")).status_code == 200


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("put", "/v2/models/mlp/infer", "POST"),
        ("delete", "/retraining/tasks/1", "GET, HEAD"),
        ("get", "/v1/models/mlp:predict", "POST"),
        ("post", "/metrics", "GET, HEAD"),
    ],
)
async def test_405_names_the_allowed_methods(
    gateway: Gateway, method: str, path: str, allow: str
) -> None:
    response = await gateway.client.request(method, path)
    assert response.status_code == 405
    assert set(response.headers["allow"].split(", ")) == set(allow.split(", "))
    assert set(response.json()) == {"error"}


@pytest.mark.parametrize(
    "data",
    [[True, 0.5, 0.5, 0.5, 0.5, 0.5], [[0.5, 0.5, 0.5], [0.5, 0.5, False]], [True] * 6],
)
async def test_booleans_are_not_numbers_in_v2_data(gateway: Gateway, data: Any) -> None:
    body = {"inputs": [{"name": "x", "shape": [1, 6], "datatype": "FP32", "data": data}]}
    response = await gateway.client.post("/v2/models/mlp/infer", json=body)
    assert response.status_code == 400, response.text
    assert "must be numbers" in response.json()["error"]


async def test_a_body_that_only_names_true_elsewhere_still_serves(gateway: Gateway) -> None:
    body = {
        "inputs": [{"name": "x", "shape": [1, 6], "datatype": "FP32", "data": ROW}],
        "parameters": {"binary_data_output": False, "note": True},
    }
    response = await gateway.client.post("/v2/models/mlp/infer", json=body)
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    ("instances", "fragment"),
    [
        ([[True, 0.5, 0.5, 0.5, 0.5, 0.5]], "must be numbers, got true/false"),
        ([[True] * 6], "must be numbers, got true/false"),
        ([{**dict(zip(FEATURES, ROW, strict=True)), "f0": False}], "true/false"),
        ([{**dict(zip(FEATURES, ROW, strict=True)), "income": 1.0}], "['income']"),
        ([{**dict(zip(FEATURES, ROW, strict=True)), "F1": 1.0, "zz": 2}], "['F1', 'zz']"),
    ],
)
async def test_v1_refuses_booleans_and_unknown_features(
    gateway: Gateway, instances: Any, fragment: str
) -> None:
    response = await gateway.client.post("/v1/models/mlp:predict", json={"instances": instances})
    assert response.status_code == 400, response.text
    assert fragment in response.json()["error"]


async def test_v1_names_unknown_inputs_of_a_multi_input_model(gateway: Gateway) -> None:
    instance = {"numeric": [0.1] * 4, "counts": [1, 2, 3], "extra": [1]}
    response = await gateway.client.post("/v1/models/two:predict", json={"instances": [instance]})
    assert response.status_code == 400, response.text
    assert "['extra']" in response.json()["error"]


@pytest.mark.parametrize("path", ["/v2/models/mlp/infer", "/v1/models/mlp:predict"])
async def test_every_inference_route_honours_the_deadline_header(
    gateway: Gateway, path: str
) -> None:
    v2 = {"inputs": [{"name": "x", "shape": [1, 6], "datatype": "FP32", "data": ROW}]}
    body = v2 if path.startswith("/v2") else {"instances": [ROW]}
    past = {"X-Request-Deadline": "1"}
    assert (await gateway.client.post(path, json=body, headers=past)).status_code == 504
    future = {"X-Request-Deadline": str(time.time() + 60)}
    assert (await gateway.client.post(path, json=body, headers=future)).status_code == 200


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "1e400", "soon", "Infinity"])
@pytest.mark.parametrize("path", ["/v2/models/mlp/infer", "/v1/models/mlp:predict"])
async def test_a_deadline_that_is_not_a_finite_number_is_400(
    gateway: Gateway, path: str, value: str
) -> None:
    v2 = {"inputs": [{"name": "x", "shape": [1, 6], "datatype": "FP32", "data": ROW}]}
    body = v2 if path.startswith("/v2") else {"instances": [ROW]}
    response = await gateway.client.post(path, json=body, headers={"X-Request-Deadline": value})
    assert response.status_code == 400, response.text
    assert "finite number" in response.json()["error"]


async def test_the_gateway_serves_on_after_all_of_it(gateway: Gateway) -> None:
    await asyncio.gather(
        *(gateway.client.get(f"/v2/models/mlp/versions/{v}") for v in ("%C2%B3", HUGE))
    )
    assert (await gateway.infer("mlp", np.zeros((1, 6), np.float32))).status_code == 200


@pytest.mark.parametrize(
    ("model", "instances", "fragment"),
    [
        ("mlp", [[-3.6e205, 0.5, 0.5, 0.5, 0.5, 0.5]], "outside the float32 range"),
        ("two", [{"numeric": [0.1] * 4, "counts": [1, 2, 1e30]}], "outside the int64 range"),
        ("two", [{"numeric": [0.1] * 4, "counts": [1, 2, -1e19]}], "outside the int64 range"),
        ("two", [{"numeric": [0.1] * 4, "counts": [1, 2.5, 3]}], "whole numbers"),
    ],
)
async def test_v1_values_outside_the_type_are_400_not_a_wrapped_cast(
    gateway: Gateway, model: str, instances: Any, fragment: str
) -> None:
    body = orjson.dumps({"instances": instances})
    response = await gateway.client.post(
        f"/v1/models/{model}:predict", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 400, response.text
    assert fragment in response.json()["error"]


@pytest.mark.parametrize("ready", [{}, "false", 1, None])
async def test_a_repository_index_takes_ready_as_a_boolean(gateway: Gateway, ready: Any) -> None:
    response = await gateway.client.post("/v2/repository/index", json={"ready": ready})
    assert response.status_code == 400, response.text
    assert "'ready' must be true or false" in response.json()["error"]

"""The registry over HTTP: reads with an API key, an audited alias move and opening a task
with the admin token, and a 4xx naming what was wrong for everything else."""

from __future__ import annotations

from typing import Any

import pytest

from registry import Registry
from tests.services.gateway.conftest import Gateway, open_gateway

pytestmark = pytest.mark.anyio

ADMIN = {"Authorization": "Bearer t0ken"}
KEY = {"X-API-Key": "alpha"}


async def test_models_versions_lineage_and_aliases_are_read(gateway: Gateway) -> None:
    models = (await gateway.client.get("/registry/models")).json()["models"]
    by_name = {m["name"]: m for m in models}
    assert by_name["mlp"]["versions"] == 2
    assert by_name["mlp"]["aliases"] == {"production": 1}
    detail = (await gateway.client.get("/registry/models/mlp")).json()
    assert [v["version"] for v in detail["versions"]] == [1, 2]
    assert detail["versions"][0]["aliases"] == ["production"]
    assert set(detail["versions"][1]["formats"]) == {"onnx", "torchscript"}
    lineage = (await gateway.client.get("/registry/models/mlp/versions/2")).json()
    assert lineage["ref"] == "mlp:2"
    reports = {a["kind"]: a["parity"] for a in lineage["artifacts"]}
    assert reports["onnx"]["passed"] is True  # the gate's report, with its figures
    aliases = (await gateway.client.get("/registry/models/mlp/aliases")).json()
    assert aliases["aliases"] == {"production": 1}
    assert [(e["alias"], e["to_version"], e["reason"]) for e in aliases["history"]] == [
        ("production", 1, "fixture")
    ]


async def test_an_alias_move_is_audited_and_reaches_serving(registry: Registry) -> None:
    async for gateway in open_gateway(registry, admin_token="t0ken", client_host="10.0.0.9"):
        body = {"version": 2, "reason": "v2 won the comparison", "actor": "ana"}
        moved = await gateway.client.put(
            "/registry/models/mlp/aliases/production", json=body, headers=ADMIN
        )
        assert moved.status_code == 200, moved.text
        assert moved.json()["from_version"] == 1
        assert moved.json()["to_version"] == 2
        history = (await gateway.client.get("/registry/models/mlp/aliases?alias=production")).json()
        assert history["aliases"] == {"production": 2}
        assert [(e["to_version"], e["actor"]) for e in history["history"]][-1] == (2, "ana")
        event = registry.alias_history("mlp", "production")[-1]
        assert (event.to_version, event.reason) == (2, "v2 won the comparison")


@pytest.mark.parametrize(
    ("path", "body", "status", "fragment"),
    [
        ("/registry/models/mlp/aliases/production", {"reason": "x"}, 400, "'version' must be"),
        ("/registry/models/mlp/aliases/production", {"version": True, "reason": "x"}, 400,
         "'version' must be"),
        ("/registry/models/mlp/aliases/production", {"version": 2}, 400, "'reason'"),
        ("/registry/models/mlp/aliases/production", {"version": 2, "reason": " "}, 400, "'reason'"),
        ("/registry/models/mlp/aliases/latest", {"version": 2, "reason": "x"}, 400, "reserved"),
        ("/registry/models/mlp/aliases/v2", {"version": 2, "reason": "x"}, 400, "reserved"),
        ("/registry/models/mlp/aliases/production", {"version": 9, "reason": "x"}, 404,
         "no version 9"),
        ("/registry/models/nope/aliases/production", {"version": 1, "reason": "x"}, 404,
         "not registered"),
        ("/registry/models/mlp/aliases/production", [1], 400, "JSON object"),
    ],
)  # fmt: skip
async def test_bad_alias_moves_are_4xx_naming_the_field(
    gateway: Gateway, path: str, body: Any, status: int, fragment: str
) -> None:
    response = await gateway.client.put(path, json=body)
    assert response.status_code == status, response.text
    assert fragment in response.json()["error"]
    aliases = (await gateway.client.get("/registry/models/mlp/aliases")).json()["aliases"]
    assert aliases == {"production": 1}  # nothing half written


async def test_a_new_alias_can_point_at_a_gate_passed_version(
    gateway: Gateway, registry: Registry
) -> None:
    versions = (await gateway.client.get("/registry/models/two")).json()["versions"]
    assert versions[0]["formats"] == ["onnx"]
    moved = await gateway.client.put(
        "/registry/models/two/aliases/staging", json={"version": 1, "reason": "ok"}
    )
    assert moved.status_code == 200  # onnx passed the gate
    assert registry.get("two@staging").version == 1


async def test_reads_need_a_key_and_writes_the_admin_token(registry: Registry) -> None:
    async for gateway in open_gateway(
        registry, api_keys="alpha", admin_token="t0ken", client_host="10.0.0.9"
    ):
        assert (await gateway.client.get("/registry/models")).status_code == 401
        assert (await gateway.client.get("/registry/models", headers=KEY)).status_code == 200
        body = {"version": 2, "reason": "x"}
        path = "/registry/models/mlp/aliases/staging"
        assert (await gateway.client.put(path, json=body, headers=KEY)).status_code == 401
        wrong = {"Authorization": "Bearer alpha"}
        assert (await gateway.client.put(path, json=body, headers=wrong)).status_code == 403
        assert (await gateway.client.put(path, json=body, headers=ADMIN)).status_code == 200
        task = {"model": "mlp", "reason": "data_drift"}
        assert (await gateway.client.post("/retraining/tasks", json=task)).status_code == 401


async def test_a_task_is_opened_once_and_listed(gateway: Gateway) -> None:
    body = {"model": "mlp", "reason": "data_drift", "evidence": {"share": 0.6}, "actor": "ana"}
    opened = await gateway.client.post("/retraining/tasks", json=body)
    assert opened.status_code == 201, opened.text
    task = opened.json()["task"]
    assert (task["model"], task["serving_version"], task["status"]) == ("mlp", 2, "open")
    again = await gateway.client.post("/retraining/tasks", json=body)
    assert again.status_code == 200
    assert again.json()["action"] != "created"
    listed = (await gateway.client.get("/retraining/tasks?model=mlp")).json()["tasks"]
    assert [t["id"] for t in listed] == [task["id"]]


@pytest.mark.parametrize(
    ("body", "status", "fragment"),
    [
        ({"reason": "x"}, 400, "'model'"),
        ({"model": "mlp"}, 400, "'reason'"),
        ({"model": "mlp", "reason": "x", "version": "³"}, 400, "'version' must be"),
        ({"model": "mlp", "reason": "x", "evidence": [1]}, 400, "'evidence'"),
        ({"model": "nope", "reason": "x"}, 404, "not registered"),
        ({"model": "mlp", "reason": "x", "version": 7}, 404, "no version 7"),
        ({"model": "Bad Name", "reason": "x"}, 400, "not allowed"),
    ],
)
async def test_bad_task_openings_are_4xx(
    gateway: Gateway, body: Any, status: int, fragment: str
) -> None:
    response = await gateway.client.post("/retraining/tasks", json=body)
    assert response.status_code == status, response.text
    assert fragment in response.json()["error"]
    assert (await gateway.client.get("/retraining/tasks")).json()["tasks"] == []


@pytest.mark.parametrize(
    "path",
    [
        "/registry/models/nope",
        "/registry/models/mlp/versions/9",
        "/registry/models/nope/aliases",
    ],
)
async def test_unknown_models_and_versions_are_404(gateway: Gateway, path: str) -> None:
    response = await gateway.client.get(path)
    assert response.status_code == 404, response.text


@pytest.mark.parametrize(
    "path",
    [
        "/registry/models/mlp/versions/%C2%B3",
        "/registry/models/mlp/versions/99999999999999999999",
        "/registry/models/Bad%20Name",
        "/registry/models/mlp/aliases?alias=latest",
    ],
)
async def test_bad_reads_are_400(gateway: Gateway, path: str) -> None:
    response = await gateway.client.get(path)
    assert response.status_code == 400, response.text

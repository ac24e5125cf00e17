"""Canary splits through a real gateway (in process, its lifespan running): the share a
canary answers, the same route key always reaching the same version, and a canary that
answers worse rolled back by the gateway's own rule, for every replica."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import numpy as np
import pytest

from registry.store import Registry
from services.gateway.errors import EngineFailed
from tests.services.gateway.conftest import PATIENCE_S, Gateway, open_gateway

pytestmark = pytest.mark.anyio


async def _splitting(gateway: Gateway, wanted: bool = True) -> None:
    deadline = time.monotonic() + PATIENCE_S
    while (gateway.manager.traffic.canary_for("mlp") is not None) != wanted:
        assert time.monotonic() < deadline, "the canary split did not change"
        await asyncio.sleep(0.01)


def _rows(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((2, 6)).astype(np.float32)


async def _answered_by(gateway: Gateway, key: str | None = None, **extra: Any) -> str:
    headers = {} if key is None else {"x-route-key": key}
    body = {
        "inputs": [
            {
                "name": "x",
                "shape": [2, 6],
                "datatype": "FP32",
                "data": _rows(len(key or "")).ravel().tolist(),
            }
        ],
        **extra,
    }
    answer = await gateway.client.post("/v2/models/mlp/infer", json=body, headers=headers)
    assert answer.status_code in (200, 422, 502), answer.text
    return str(answer.json().get("model_version", f"failed {answer.status_code}"))


async def test_a_canary_answers_its_share_and_a_key_always_the_same_version(
    registry: Registry,
) -> None:
    registry.canaries.start("mlp", "production", 2, 0.5, reason="half, to see both")
    async for gateway in open_gateway(registry):
        await _splitting(gateway)
        chosen = {k: await _answered_by(gateway, f"customer-{k}") for k in range(24)}
        assert set(chosen.values()) == {"1", "2"}  # 24 keys at 0.5: both sides
        for k, version in chosen.items():  # again, by header and by parameter
            assert await _answered_by(gateway, f"customer-{k}") == version
            by_parameter = await _answered_by(
                gateway, None, parameters={"route_key": f"customer-{k}"}
            )
            assert by_parameter == version
        plane = gateway.app.state.dataplane
        plane.draw = lambda: 0.1  # no key: the draw decides (below the weight: the canary)
        assert await _answered_by(gateway) == "2"
        plane.draw = lambda: 0.9
        assert await _answered_by(gateway) == "1"
        asked = await gateway.client.post(
            "/v2/models/mlp/versions/1/infer",
            json={
                "inputs": [{"name": "x", "shape": [1, 6], "datatype": "FP32", "data": [0.0] * 6}]
            },
            headers={"x-route-key": "customer-0"},
        )
        assert asked.json()["model_version"] == "1"  # a version asked for is never split
        v1 = await gateway.client.post(
            "/v1/models/mlp:predict",
            json={"instances": [[0.0] * 6]},
            headers={"x-route-key": "customer-0"},
        )
        assert v1.json()["model_version"] == chosen[0]
        bad = await gateway.client.post(
            "/v2/models/mlp/infer",
            json={
                "inputs": [{"name": "x", "shape": [1, 6], "datatype": "FP32", "data": [0.0] * 6}],
                "parameters": {"route_key": 5},
            },
        )
        assert bad.status_code == 400
        assert "route key" in bad.json()["error"]
        metrics = (await gateway.client.get("/metrics")).text
        assert 'model="mlp",role="canary",version="2"} 1.0' in metrics


@pytest.mark.parametrize("trouble", ["errors", "latency"])
async def test_a_worse_canary_is_rolled_back_and_traffic_returns(
    registry: Registry, trouble: str
) -> None:
    registry.canaries.start("mlp", "production", 2, 0.5, reason="try v2")
    async for gateway in open_gateway(
        registry, canary_min_requests=30, canary_check_s=3600, inline_max_ms=0
    ):
        await _splitting(gateway)
        judge = gateway.app.state.canary_judge
        assert judge.check() == []  # the baseline: nothing answered yet
        with gateway.manager.acquire("mlp", 2) as served:
            run = served.batcher.execution.run

            async def worse(inputs: Any, run: Any = run) -> Any:
                if trouble == "errors":
                    raise EngineFailed("the canary's engine is down")
                await asyncio.sleep(0.05)
                return await run(inputs)

            served.batcher.execution.run = worse
        answered = [await _answered_by(gateway, f"k{i}") for i in range(120)]
        assert {"1"} < set(answered)
        [rolled] = judge.check()
        assert (rolled.status, rolled.version, rolled.evidence["rule"]) == (
            "rolled_back",
            2,
            trouble,
        )
        assert rolled.ended_reason.startswith(trouble)
        await _splitting(gateway, wanted=False)  # the next poll: no split anywhere
        assert {await _answered_by(gateway, f"k{i}") for i in range(20)} == {"1"}
        assert judge.check() == []


async def test_a_healthy_canary_keeps_running(registry: Registry) -> None:
    registry.canaries.start("mlp", "production", 2, 0.5, reason="try v2")
    async for gateway in open_gateway(registry, canary_min_requests=30, canary_check_s=3600):
        await _splitting(gateway)
        judge = gateway.app.state.canary_judge
        judge.check()
        for i in range(120):
            await _answered_by(gateway, f"k{i}")
        assert judge.check() == []
        [running] = registry.canaries.running(["production"])["mlp"].values()
        assert running.status == "running"


async def test_canaries_over_http_started_read_promoted_and_rolled_back(
    registry: Registry,
) -> None:
    path = "/registry/models/mlp/aliases/production/canary"
    async for gateway in open_gateway(registry):
        started = await gateway.client.put(path, json={"version": 2, "weight": 0.1, "reason": "a"})
        assert started.status_code == 200, started.text
        assert (started.json()["status"], started.json()["weight"]) == ("running", 0.1)
        cases = [
            ({"version": 2, "weight": 0, "reason": "r"}, 400, "above 0 and below 1"),
            ({"version": 2, "weight": 1, "reason": "r"}, 400, "above 0 and below 1"),
            ({"version": 2, "weight": "x", "reason": "r"}, 400, "above 0 and below 1"),
            ({"version": 1, "weight": 0.1, "reason": "r"}, 400, "what 'production' points to"),
            ({"version": 9, "weight": 0.1, "reason": "r"}, 404, "9"),
            ({"version": 2, "weight": 0.1}, 400, "reason"),
        ]
        for body, status, message in cases:
            answer = await gateway.client.put(path, json=body)
            assert answer.status_code == status, (body, answer.text)
            assert message in answer.json()["error"], (body, answer.text)
        missing = await gateway.client.put(
            "/registry/models/mlp/aliases/staging/canary",
            json={"version": 2, "weight": 0.1, "reason": "r"},
        )
        assert missing.status_code == 404
        replaced = await gateway.client.put(path, json={"version": 2, "weight": 0.2, "reason": "b"})
        assert replaced.json()["weight"] == 0.2
        state = (await gateway.client.get(path)).json()
        assert state["running"]["weight"] == 0.2
        assert [c["status"] for c in state["history"]] == ["running", "stopped"]
        assert state["history"][1]["ended_reason"] == "replaced by mlp:2"

        rolled = await gateway.client.post(f"{path}/rollback", json={"reason": "not now"})
        assert (rolled.json()["status"], rolled.json()["ended_reason"]) == (
            "rolled_back",
            "not now",
        )
        assert (
            await gateway.client.post(f"{path}/rollback", json={"reason": "x"})
        ).status_code == 404
        await gateway.client.put(path, json={"version": 2, "weight": 0.3, "reason": "again"})
        promoted = await gateway.client.post(f"{path}/promote", json={"reason": "it held"})
        assert promoted.status_code == 200, promoted.text
        assert promoted.json()["canary"]["status"] == "completed"
        assert promoted.json()["alias_event"]["to_version"] == 2
        history = registry.alias_history("mlp", "production")
        assert (history[-1].to_version, history[-1].reason) == (2, "canary completed: it held")
        assert (await gateway.client.get(path)).json()["running"] is None
    async for remote in open_gateway(registry, client_host="10.0.0.5"):
        refused = await remote.client.put(path, json={"version": 1, "weight": 0.1, "reason": "r"})
        assert refused.status_code == 403
        assert (
            await remote.client.post(f"{path}/promote", json={"reason": "r"})
        ).status_code == 403
        assert (await remote.client.get(path)).status_code == 200


def test_quality_that_is_significantly_worse_is_a_reason_to_roll_back(
    registry: Registry,
) -> None:
    from datetime import UTC, datetime

    from monitors.quality.store import QualityCheck, QualityStore
    from services.gateway.canary_judge import CanaryJudge

    def realised(value: float, lower: float, upper: float, higher: bool = True) -> dict[str, Any]:
        return {"realised": {"value": value, "lower": lower, "upper": upper, "n": 400,
                             "higher_is_better": higher}}  # fmt: skip

    store = QualityStore(registry.db)
    judge = CanaryJudge(registry, None, None, interval_s=1, min_requests=1)  # type: ignore[arg-type]
    now = datetime.now(UTC)
    for version, result in ((1, realised(0.80, 0.77, 0.83)), (2, realised(0.79, 0.75, 0.82))):
        store.add(QualityCheck("mlp", version, now, "ok", "roc_auc", 400, result))
    assert judge._quality_worse("mlp", 1, 2) is None  # the intervals overlap: no verdict
    store.add(QualityCheck("mlp", 2, now, "ok", "roc_auc", 400, realised(0.70, 0.66, 0.74)))
    reason = judge._quality_worse("mlp", 1, 2)
    assert reason is not None
    assert reason.startswith("quality: 0.700 [0.660, 0.740] against 0.800")
    for version, result in (
        (1, realised(0.2, 0.18, 0.22, False)),
        (2, realised(0.3, 0.27, 0.33, False)),
    ):
        store.add(QualityCheck("mlp", version, now, "ok", "mae", 400, result))
    assert judge._quality_worse("mlp", 1, 2) is not None  # lower is better: higher is worse

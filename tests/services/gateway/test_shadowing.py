"""Shadow versions through a real gateway (in process, its lifespan running): callers get
only the alias's answers, the shadow's are logged under the same request ids and compared,
and a shadow that is slow or failing changes nothing callers receive."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from monitors.quality.agreement import compare_versions
from monitors.settings import MonitorSettings
from registry.errors import BadRequest, NotFound, NotServable
from registry.store import Registry
from services.cli import app
from tests.services.gateway.conftest import PATIENCE_S, Gateway, open_gateway

pytestmark = pytest.mark.anyio


def _monitor(home: Path) -> MonitorSettings:
    return MonitorSettings(home=home, log_flush_interval_s=0.05, drift_interval_s=3600)


async def _shadowing(manager: Any, check: Callable[[Any], bool]) -> None:
    """Until the gateway's manager has loaded the shadow and mirrors to it."""
    deadline = time.monotonic() + PATIENCE_S
    while not check(manager.traffic.shadow_for("mlp", 1)):
        assert time.monotonic() < deadline, "the shadow did not load"
        await asyncio.sleep(0.01)


def _rows(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((3, 6)).astype(np.float32)


async def _mirrored(gateway: Gateway, count: int) -> list[dict[str, Any]]:
    answers = []
    for i in range(count):
        response = await gateway.infer("mlp", _rows(i), id=f"req-{i}")
        assert response.status_code == 200, response.text
        answers.append(response.json())
    await gateway.app.state.dataplane.shadowing.drained()
    return answers


async def test_a_shadow_sees_a_copy_of_the_traffic_and_never_answers(
    registry: Registry, tmp_path: Path
) -> None:
    registry.shadows.set("mlp", "production", 2, 1.0, reason="v2 before it serves")
    home = registry.settings.home
    async for gateway in open_gateway(registry, monitor=_monitor(home)):
        manager = gateway.manager
        await _shadowing(manager, lambda found: found == (2, 1.0))
        answers = await _mirrored(gateway, 20)
        assert {a["model_version"] for a in answers} == {"1"}
        assert [a["id"] for a in answers] == [f"req-{i}" for i in range(20)]
        explicit = await gateway.client.post(  # a version asked for by number: not mirrored
            "/v2/models/mlp/versions/1/infer",
            json={
                "inputs": [{"name": "x", "shape": [1, 6], "datatype": "FP32", "data": [0.0] * 6}],
                "id": "asked",
            },
        )
        assert explicit.status_code == 200
        await gateway.app.state.dataplane.shadowing.drained()
        gateway.app.state.monitoring.log.flush()

        report = (await gateway.client.get("/monitoring/models/mlp/shadow")).json()
        assert report["shadow"]["version"] == 2
        assert report["serving_version"] == 1
        assert report["rows"] == {"1": 61, "2": 60}  # 20 requests of 3 rows; v1 also "asked"
        assert report["paired"] == 60
        agreement = report["agreement"]
        assert agreement["kind"] in ("decisions", "differences")
        metrics = (await gateway.client.get("/metrics")).text
        assert 'mlgate_shadow_requests_total{model="mlp",outcome="ok",version="2"} 20.0' in metrics
        assert 'alias="",format="onnx",model="mlp",role="shadow",version="2"} 1.0' in metrics

    # The same comparison offline, from the log, and through the CLI.
    direct = compare_versions(registry, home / "inference_log", "mlp", 1, 2)
    assert direct["paired"] == 60
    shown = CliRunner().invoke(app, ["--home", str(home), "compare", "mlp", "1", "2", "--json"])
    assert shown.exit_code == 0, shown.stderr
    assert json.loads(shown.stdout)["paired"] == 60
    text = CliRunner().invoke(app, ["--home", str(home), "compare", "mlp", "1", "2"])
    assert "60 requests answered by both" in text.stdout
    same = CliRunner().invoke(app, ["--home", str(home), "compare", "mlp", "2", "2"])
    assert same.exit_code == 1
    assert "not 2 with itself" in same.stderr


@pytest.mark.parametrize("trouble", ["failing", "slow"])
async def test_a_failing_or_slow_shadow_changes_nothing_callers_get(
    registry: Registry, trouble: str
) -> None:
    registry.shadows.set("mlp", "production", 2, 1.0, reason="test")
    async for gateway in open_gateway(registry, monitor=_monitor(registry.settings.home)):
        manager = gateway.manager
        await _shadowing(manager, lambda found: found is not None)
        release = asyncio.Event()
        with manager.acquire("mlp", 2) as served:

            async def broken(inputs: Any, gate: asyncio.Event = release) -> Any:
                if trouble == "failing":
                    raise RuntimeError("the shadow broke")
                await gate.wait()
                raise RuntimeError("released")

            served.batcher.execution.run, served.batcher.execution.run_inline = broken, None
        alone: list[dict[str, Any]] = []
        async for plain in open_gateway(registry, monitor=_monitor(registry.settings.home)):
            for i in range(5):
                alone.append((await plain.infer("mlp", _rows(i), id=f"req-{i}")).json())
        # Each answer comes back while the shadow's batch is still held (slow) or failed.
        for i in range(5):
            answer = (await gateway.infer("mlp", _rows(i), id=f"req-{i}")).json()
            assert answer["outputs"] == alone[i]["outputs"]
            assert answer["model_version"] == "1"
        release.set()
        await gateway.app.state.dataplane.shadowing.drained()
        metrics = (await gateway.client.get("/metrics")).text
        outcomes = {
            line.split('outcome="')[1].split('"')[0]: float(line.rsplit(" ", 1)[1])
            for line in metrics.splitlines()
            if line.startswith("mlgate_shadow_requests_total{")
        }
        assert outcomes.get("ok", 0) == 0
        assert outcomes.get("error", 0) + outcomes.get("shed", 0) == 5
        assert outcomes.get("error", 0) >= 1


async def test_shadows_are_set_and_cleared_over_http_with_their_rules(
    registry: Registry,
) -> None:
    async for gateway in open_gateway(registry):
        path = "/registry/models/mlp/aliases/production/shadow"
        set_ = await gateway.client.put(path, json={"version": 2, "rate": 0.25, "reason": "try"})
        assert set_.status_code == 200, set_.text
        assert (set_.json()["version"], set_.json()["rate"]) == (2, 0.25)
        assert (await gateway.client.get(path)).json()["reason"] == "try"
        cases = [
            ({"version": 2, "rate": 0, "reason": "r"}, 400, "above 0 and at most 1"),
            ({"version": 2, "rate": 1.5, "reason": "r"}, 400, "above 0 and at most 1"),
            ({"version": 2, "rate": True, "reason": "r"}, 400, "above 0 and at most 1"),
            ({"version": 2, "rate": "half", "reason": "r"}, 400, "above 0 and at most 1"),
            ({"version": 1, "rate": 0.5, "reason": "r"}, 400, "what 'production' points to"),
            ({"version": 9, "rate": 0.5, "reason": "r"}, 404, "9"),
            ({"version": 2, "rate": 0.5}, 400, "reason"),
            ({"rate": 0.5, "reason": "r"}, 400, "'version' must be"),
        ]
        for body, status, message in cases:
            answer = await gateway.client.put(path, json=body)
            assert answer.status_code == status, (body, answer.text)
            assert message in answer.json()["error"], (body, answer.text)
        missing = await gateway.client.put(
            "/registry/models/mlp/aliases/staging/shadow",
            json={"version": 2, "rate": 0.5, "reason": "r"},
        )
        assert missing.status_code == 404
        assert "no alias 'staging'" in missing.json()["error"]
        assert (await gateway.client.delete(path)).status_code == 204
        assert (await gateway.client.delete(path)).status_code == 404
        assert (await gateway.client.get(path)).status_code == 404
        assert (await gateway.client.get("/monitoring/models/mlp/shadow")).status_code == 404
    async for remote in open_gateway(registry, client_host="10.0.0.5"):
        refused = await remote.client.put(path, json={"version": 2, "rate": 1, "reason": "r"})
        assert refused.status_code == 403


def test_a_shadow_needs_a_version_that_can_serve(registry: Registry) -> None:
    import torch

    from tests.fixtures import make_mlp

    registry.register(make_mlp(seed=3), "mlp", torch.randn(4, 6))  # v3: nothing exported
    with pytest.raises(NotServable, match="no artifact that passed the parity gate"):
        registry.shadows.set("mlp", "production", 3, 0.5, reason="r")
    with pytest.raises(BadRequest, match="a reason is required"):
        registry.shadows.set("mlp", "production", 2, 0.5, reason=" ")
    with pytest.raises(NotFound, match="has no shadow"):
        registry.shadows.clear("mlp", "production")
    assert registry.shadows.of("mlp") == []


async def test_only_rows_the_log_took_are_mirrored_and_each_has_its_pair(
    registry: Registry,
) -> None:
    registry.shadows.set("mlp", "production", 2, 1.0, reason="test")
    home = registry.settings.home
    sampled = MonitorSettings(
        home=home, log_flush_interval_s=0.05, drift_interval_s=3600, log_sample_rate=0.5
    )
    async for gateway in open_gateway(registry, monitor=sampled):
        await _shadowing(gateway.manager, lambda found: found is not None)
        await _mirrored(gateway, 40)
        gateway.app.state.monitoring.log.flush()
        report = (await gateway.client.get("/monitoring/models/mlp/shadow")).json()
    logged = report["rows"]["1"]
    assert 0 < logged < 120  # half the requests, drawn at random
    assert report["rows"]["2"] == logged == report["paired"]

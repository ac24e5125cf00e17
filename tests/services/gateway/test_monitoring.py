"""Monitoring through the gateway: logged rows → a drift check → JSON, gauges, HTML report."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from monitors.settings import MonitorSettings
from registry import Registry
from tests.services.gateway.conftest import Gateway, open_gateway
from tests.services.gateway.test_metrics_endpoint import get, scrape

pytestmark = pytest.mark.anyio
FLUSH_S = 0.05


def monitor_settings(home: Path, **overrides: object) -> MonitorSettings:
    values: dict[str, object] = {
        "home": home,
        "log_flush_interval_s": FLUSH_S,
        "drift_interval_s": 3600,  # the test runs the rounds itself (tick)
        "drift_min_rows": 100,
        **overrides,
    }
    return MonitorSettings(**values)  # type: ignore[arg-type]


async def traffic(gateway: Gateway, rows: int, seed: int, shift: float = 0.0) -> None:
    x = np.random.default_rng(seed).standard_normal((rows, 6)).astype(np.float32)
    x[:, :4] += shift
    for start in range(0, rows, 10):
        chunk = x[start : start + 10]
        assert (await gateway.infer("mlp", chunk, id=f"s{seed}-{start}")).status_code == 200


async def settle_and_tick(gateway: Gateway) -> None:
    monitoring = gateway.app.state.monitoring
    await asyncio.to_thread(monitoring.log.flush, 10)
    await asyncio.sleep(3 * FLUSH_S)  # past the window's end margin
    await asyncio.to_thread(monitoring.tick)


async def test_drift_is_found_published_and_reported(registry: Registry) -> None:
    settings = monitor_settings(registry.settings.home)
    async for gateway in open_gateway(registry, monitor=settings):
        missing = await gateway.client.get("/monitoring/models/mlp/drift")
        assert missing.status_code == 404
        assert "no drift check has run for mlp yet" in missing.json()["error"]

        await traffic(gateway, 200, seed=1)
        await settle_and_tick(gateway)
        clean = (await gateway.client.get("/monitoring/models/mlp/drift")).json()
        assert clean["detected"] is False
        assert clean["window"]["rows"] == 200
        reference = registry.get("mlp:1").artifact("reference")
        assert reference is not None
        assert clean["reference_digest"] == reference.digest
        assert clean["config"]["drift"]["drift_share"] == 0.5

        await traffic(gateway, 300, seed=2, shift=3.0)
        await settle_and_tick(gateway)
        drifted = (await gateway.client.get("/monitoring/models/mlp/drift?version=1")).json()
        assert drifted["detected"] is True
        assert drifted["window"]["start"] == clean["window"]["end"]
        assert drifted["share"] == pytest.approx(4 / 6)
        flagged = {f["column"] for f in drifted["result"]["features"] if f["drifted"]}
        assert {"f0", "f1", "f2", "f3"} <= flagged

        samples = await scrape(gateway)
        assert get(samples, "mlgate_drift_detected", model="mlp", version="1") == 1.0
        assert get(samples, "mlgate_drift_share", model="mlp", version="1") == pytest.approx(4 / 6)
        assert get(samples, "mlgate_drift_consecutive_detections", model="mlp", version="1") == 1
        severity = get(samples, "mlgate_drift_score", model="mlp", version="1", feature="f0")
        assert severity is not None
        assert severity >= 1.0  # drifted: at least at its threshold
        assert get(samples, "mlgate_drift_score", model="mlp", version="1", feature="f5") < 1.0  # type: ignore[operator]

        report = await gateway.client.get("/monitoring/models/mlp/drift/report")
        assert report.status_code == 200
        assert report.headers["content-type"].startswith("text/html")
        assert "f0" in report.text
        first = await gateway.client.get(f"/monitoring/models/mlp/drift/report?check={clean['id']}")
        assert first.status_code == 200
        # Serving went on: inference still answers.
        assert (await gateway.infer("mlp", np.zeros((1, 6), np.float32))).status_code == 200


async def test_monitoring_errors_are_clear(registry: Registry) -> None:
    settings = monitor_settings(registry.settings.home)
    async for gateway in open_gateway(registry, monitor=settings):
        cases = {
            "/monitoring/models/nope/drift": (404, "nope"),
            "/monitoring/models/two/drift": (404, "no drift check has run for two"),
            "/monitoring/models/mlp/drift?version=abc": (400, "'abc'"),
            "/monitoring/models/mlp/drift?version=9": (404, "mlp"),
            "/monitoring/models/mlp/drift/report?check=0": (400, "'check'"),
            "/monitoring/models/mlp/drift/report?check=999": (404, "no drift check 999"),
            "/monitoring/models/bad%20name/drift": (400, "bad name"),
        }
        for path, (status, text) in cases.items():
            answer = await gateway.client.get(path)
            assert answer.status_code == status, (path, answer.text)
            assert text in answer.json()["error"], (path, answer.text)


async def test_an_external_monitor_is_only_published(registry: Registry) -> None:
    """drift_monitor=external: the gateway runs no check itself, but shows stored ones."""
    from monitors.loop import Monitor

    settings = monitor_settings(registry.settings.home, drift_monitor="external")
    async for gateway in open_gateway(registry, monitor=settings):
        await traffic(gateway, 200, seed=3)
        await settle_and_tick(gateway)
        assert (await gateway.client.get("/monitoring/models/mlp/drift")).status_code == 404
        assert (await gateway.client.get("/monitoring/models/mlp/quality")).status_code == 404
        # What `mlgate monitor` does in its own process:
        stored = await asyncio.to_thread(Monitor(registry, settings).run_once)
        assert [(r.model, r.version) for r in stored] == [("mlp", 1)]
        await asyncio.to_thread(gateway.app.state.monitoring.tick)
        latest = (await gateway.client.get("/monitoring/models/mlp/drift")).json()
        assert stored[0].drift is not None
        assert latest["id"] == stored[0].drift.id
        quality = (await gateway.client.get("/monitoring/models/mlp/quality")).json()
        assert quality["id"] == stored[0].quality.id
        samples = await scrape(gateway)
        assert get(samples, "mlgate_drift_detected", model="mlp", version="1") == 0.0

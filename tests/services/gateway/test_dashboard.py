"""GET /dashboard's routes in process: the page, its data, its assets, and every refusal.

The page itself, in headless Chromium against a live gateway: test_dashboard_browser.py.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import httpx
import numpy as np
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.registry import Collector
from starlette.applications import Starlette

from monitors.metrics.collectors import GatewayMetrics, ServedView, ServingCollector
from registry import Registry
from services.gateway.dashboard import DIST, Dashboard
from services.gateway.settings import GatewaySettings
from tests.services.gateway.conftest import Gateway, open_gateway

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"
CHARTS = ("requests", "latency", "batch-size", "queue", "drift")


def require_bundle() -> None:
    assert Dashboard(CollectorRegistry(), interval_s=1, dist=DIST).built(), (
        f"the dashboard bundle is not built in {DIST}: run `make setup`"
    )


class Parts:
    """A Dashboard on a real registry with the gateway's collectors, mounted in an app."""

    def __init__(self, dist: Path, interval_s: float = 1.0) -> None:
        self.registry = CollectorRegistry()
        self.metrics = GatewayMetrics(self.registry)
        views = [ServedView("mlp", 1, "onnx", ("production",), 0, 1024)]
        self.registry.register(ServingCollector(lambda: views))
        self.dashboard = Dashboard(self.registry, interval_s=interval_s, dist=dist)
        self.app = Starlette(routes=self.dashboard.routes())

    @property
    def client(self) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=self.app)
        return httpx.AsyncClient(transport=transport, base_url="http://gateway")


def fake_bundle(dist: Path) -> Path:
    dist.mkdir(parents=True)
    (dist / "index.html").write_text("<!doctype html><title>page</title>")
    (dist / "dashboard.js").write_text("console.log('js');")
    (dist / "dashboard.css").write_text("body{}")
    (dist / "dashboard.js.map").write_text("{}")
    (dist / "notes.txt").write_text("not an asset type")
    (dist / "sub").mkdir()
    (dist / "sub" / "inner.js").write_text("nested")
    (dist.parent / "secret.js").write_text("outside dist")
    return dist


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def raw_get(app: Any, raw_path: str) -> tuple[int, bytes]:
    """GET with the path exactly as a client may send it (httpx would normalize `..`),
    decoded the way uvicorn builds the ASGI scope."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": unquote(raw_path),
        "raw_path": raw_path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"gateway")],
        "client": ("127.0.0.1", 50000),
        "server": ("gateway", 80),
    }
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return sent[0]["status"], body


@pytest.mark.anyio
async def test_page_and_assets_come_from_the_build(tmp_path: Path) -> None:
    parts = Parts(fake_bundle(tmp_path / "dist"))
    async with parts.client as client:
        page = await client.get("/dashboard")
        assert page.status_code == 200
        assert page.headers["content-type"] == "text/html; charset=utf-8"
        assert page.text == "<!doctype html><title>page</title>"
        assert "default-src 'none'" in page.headers["content-security-policy"]
        assert "connect-src 'self'" in page.headers["content-security-policy"]
        expected = {
            "dashboard.js": ("text/javascript; charset=utf-8", "console.log('js');"),
            "dashboard.css": ("text/css; charset=utf-8", "body{}"),
            "dashboard.js.map": ("application/json", "{}"),
        }
        for name, (content_type, body) in expected.items():
            asset = await client.get(f"/dashboard/assets/{name}")
            assert asset.status_code == 200, name
            assert asset.headers["content-type"] == content_type
            assert asset.headers["x-content-type-options"] == "nosniff"
            assert asset.text == body


@pytest.mark.anyio
@pytest.mark.parametrize(
    "name",
    [
        "missing.js",
        "notes.txt",  # in dist/, but not a bundle file type
        "index.html",  # the page lives at /dashboard
        "sub",
        "%2e%2e",
        "..%5csecret.js",
    ],
)
async def test_anything_but_a_bundle_file_is_404_in_the_envelope(tmp_path: Path, name: str) -> None:
    parts = Parts(fake_bundle(tmp_path / "dist"))
    async with parts.client as client:
        response = await client.get(f"/dashboard/assets/{name}")
    assert response.status_code == 404
    assert set(response.json()) == {"error"}


@pytest.mark.anyio
@pytest.mark.parametrize(
    "path",
    [
        "/dashboard/assets/..",
        "/dashboard/assets/.",
        "/dashboard/assets/..%2fsecret.js",
        "/dashboard/assets/%2e%2e%2fsecret.js",
        "/dashboard/assets/sub%2finner.js",
        "/dashboard/assets/sub/inner.js",
    ],
)
async def test_paths_out_of_the_folder_reach_no_file(tmp_path: Path, path: str) -> None:
    """Sent raw: `..` and `.` reach the asset route and are no bundle file; a slash, even
    encoded, makes two segments, which the one-segment route does not match."""
    parts = Parts(fake_bundle(tmp_path / "dist"))
    status, body = await raw_get(parts.app, path)
    assert status == 404
    assert b"outside dist" not in body
    assert b"nested" not in body


@pytest.mark.anyio
async def test_traversal_through_the_real_gateway_reaches_nothing() -> None:
    """The real app (router 404s included) over the real bundle, whose parent holds files."""
    require_bundle()
    assert (DIST.parent / "package.json").is_file()
    from services.gateway.app import create_app

    app = create_app(GatewaySettings())  # routes only: no lifespan, no registry opened
    for path in (
        "/dashboard/assets/..",
        "/dashboard/assets/../package.json",
        "/dashboard/assets/..%2fpackage.json",
        "/dashboard/assets/%2e%2e%2fpackage.json",
        "/dashboard/assets/..%2f..%2fdashboard.py",
        "/dashboard/assets/package.json",
        "/dashboard/assets/",
    ):
        status, body = await raw_get(app, path)
        assert status == 404, path
        assert set(json.loads(body)) == {"error"}, path
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        page = await client.get("/dashboard")
        assert page.status_code == 200
        assert 'src="dashboard/assets/dashboard.js"' in page.text
        script = await client.get("/dashboard/assets/dashboard.js")
        assert script.status_code == 200
        assert script.headers["content-type"] == "text/javascript; charset=utf-8"


@pytest.mark.anyio
@pytest.mark.parametrize("files", [(), ("index.html",), ("dashboard.js", "dashboard.css")])
async def test_without_a_complete_bundle_the_page_is_503(
    tmp_path: Path, files: tuple[str, ...]
) -> None:
    dist = tmp_path / "dist"
    if files:
        dist.mkdir()
    for name in files:
        (dist / name).write_text("x")
    parts = Parts(dist)
    async with parts.client as client:
        page = await client.get("/dashboard")
        assert page.status_code == 503
        assert "make setup" in page.json()["error"]
        assert (await client.get("/dashboard/assets/index.html")).status_code == 404
        data = await client.get("/dashboard/data")  # the data does not need the bundle
        assert data.status_code == 200
        assert data.json()["models"] == {}


@pytest.mark.anyio
async def test_data_is_the_history_snapshot_and_never_cached(tmp_path: Path) -> None:
    parts = Parts(tmp_path / "no-build")
    parts.dashboard.history.sample()
    for _ in range(20):
        parts.metrics.observe_request("mlp", "1", "rest", 200, 0.004)
    time.sleep(0.01)
    parts.dashboard.history.sample()
    async with parts.client as client:
        response = await client.get("/dashboard/data")
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["content-type"] == "application/json"
    served = response.json()
    expected = parts.dashboard.history.snapshot()
    assert served["interval_s"] == 1.0
    assert served["models"] == json.loads(json.dumps(expected["models"]))
    assert served["models"]["mlp"]["request_rate"][0] > 0


@pytest.mark.anyio
async def test_the_sampler_keeps_its_interval_and_stops(tmp_path: Path) -> None:
    parts = Parts(tmp_path, interval_s=0.02)
    await parts.dashboard.start()
    await parts.dashboard.start()  # already running: still one task
    parts.metrics.observe_request("mlp", "1", "rest", 200, 0.01)
    started = time.monotonic()
    deadline = started + 30
    while samples(parts) < 5:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.01)
    await parts.dashboard.stop()
    elapsed = time.monotonic() - started
    taken = samples(parts)
    # Never a busy loop: no more samples than 20 ms intervals passed (a slow machine only
    # takes fewer), plus the first one and the one under way.
    assert taken <= elapsed / 0.02 + 2
    await asyncio.sleep(0.1)
    assert samples(parts) == taken
    await parts.dashboard.stop()  # stopping twice is harmless


def samples(parts: Parts) -> int:
    return len(parts.dashboard.history.snapshot()["models"].get("mlp", {}).get("t", []))


class FailsOnce(Collector):
    """A real collector whose first collect raises, as a broken scrape-time read would."""

    def __init__(self) -> None:
        self.calls = 0

    def collect(self) -> Iterator[Any]:
        self.calls += 1
        if self.calls == 1:
            raise RuntimeError("the served-versions read failed")
        return iter(())

    def describe(self) -> Iterator[Any]:
        return iter(())


@pytest.mark.anyio
async def test_a_failed_sample_is_logged_and_sampling_goes_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    parts = Parts(tmp_path, interval_s=0.02)
    parts.registry.register(FailsOnce())
    parts.metrics.observe_request("mlp", "1", "rest", 200, 0.01)
    with caplog.at_level(logging.ERROR, logger="mlgate.gateway"):
        await parts.dashboard.start()
        deadline = time.monotonic() + 30
        while samples(parts) < 2:  # sampling went on after the failed one
            assert time.monotonic() < deadline
            await asyncio.sleep(0.01)
        await parts.dashboard.stop()
    assert "dashboard sampling failed" in caplog.text


def test_the_interval_must_be_positive() -> None:
    with pytest.raises(ValueError, match="interval_s"):
        Dashboard(CollectorRegistry(), interval_s=0)


@pytest.fixture
async def sampled_gateway(registry: Registry) -> AsyncIterator[Gateway]:
    async for opened in open_gateway(registry, dashboard_interval_s=0.05):
        yield opened


@pytest.mark.anyio
async def test_the_gateway_charts_its_own_traffic(sampled_gateway: Gateway) -> None:
    """create_app wires it: the lifespan samples, and /dashboard/data shows the requests."""
    gateway = sampled_gateway
    x = np.random.default_rng(0).standard_normal((2, 6)).astype(np.float32)
    deadline = time.monotonic() + 30
    while True:
        assert (await gateway.infer("mlp", x)).status_code == 200
        snapshot = (await gateway.client.get("/dashboard/data")).json()
        mlp = snapshot["models"].get("mlp", {})
        if any(rate > 0 for rate in mlp.get("request_rate", [])):
            break
        assert time.monotonic() < deadline, snapshot
        await asyncio.sleep(0.02)
    assert snapshot["interval_s"] == 0.05
    assert mlp["versions"] == [
        {"version": "1", "format": "onnx", "aliases": ["production"], "role": "serving"}
    ]
    assert any(p is not None for p in mlp["p99"])
    require_bundle()
    assert (await gateway.client.get("/dashboard")).status_code == 200

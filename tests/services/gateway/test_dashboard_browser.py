"""/dashboard in headless Chromium: live traffic drawn, quality read back, the empty states
worded.

Debian's /usr/bin/chromium, driven by Playwright (never `playwright install`; installed
through apt by `ensure_chromium` when missing). The main test sends real inference traffic
over HTTP to a live gateway while the page polls, reads back what each chart drew (the data
attributes the page sets after every uPlot draw, and the canvas pixels), checks that no
request left the loopback host and nothing was logged as an error, and saves a screenshot
to tests/artifacts/dashboard.png. The quality test trains a scenario model, serves it,
sends labelled requests and reads the quality panel back against what /metrics publishes
from the gateway's own evaluation (tests/artifacts/dashboard-quality.png).
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import numpy as np
import pytest
import uvicorn
from playwright.sync_api import Page, sync_playwright
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette

from examples.scenarios.data import FEATURES as SCENARIO_FEATURES
from examples.scenarios.data import LABEL, generate
from examples.scenarios.train import TRAINER, train
from exporters import export
from monitors.metrics.collectors import GatewayMetrics, ServedView, ServingCollector
from monitors.settings import MonitorSettings
from monitors.tasks.store import TaskStore
from registry import Registry
from services.demo.traffic import free_port
from services.gateway.dashboard import DIST, Dashboard
from tests.services.gateway.conftest import FEATURES, LiveServer, wait_until
from tests.support.chromium import LAUNCH_ARGS, ensure_chromium

pytestmark = pytest.mark.slow

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"
CHARTS = ("requests", "latency", "batch-size", "queue", "drift")
REQUESTS_BLUE = (0x25, 0x63, 0xEB)  # the request-rate line's colour in dashboard.js

CHARTS_DRAWN = """
(charts) => document.body.dataset.state === 'ready' && charts.every((id) => {
  const el = document.querySelector(`[data-chart="${id}"]`);
  return el && el.querySelector('canvas') && Number(el.dataset.points) >= 1;
})
"""
SHADOW_SHOWN = """
() => {
  const el = document.querySelector('[data-chart="shadow"]');
  return el && el.dataset.shadows === '1'
    && [...el.querySelectorAll('tbody td.num')].some((td) => Number(td.textContent) > 0);
}
"""
ENOUGH_POINTS = "(n) => Number(document.querySelector('[data-chart=requests]').dataset.points) >= n"
# Canvas pixels close to a series colour: the line itself was painted, not only the axes.
PAINTED = """
([id, rgb]) => {
  const canvas = document.querySelector(`[data-chart="${id}"] canvas`);
  const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
  let n = 0;
  for (let i = 0; i < data.length; i += 4) {
    const off = Math.abs(data[i] - rgb[0]) + Math.abs(data[i + 1] - rgb[1])
      + Math.abs(data[i + 2] - rgb[2]);
    if (off < 40 && data[i + 3] > 200) n++;
  }
  return n;
}
"""


class Browsed:
    """A page, every URL its context requested, and every console error or page error."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.requested: list[str] = []
        self.errors: list[str] = []

    def drawn(self, chart: str, which: str = "latest") -> dict[str, float]:
        """What the chart drew: each series' latest (or max) value, from its data attribute."""
        text = self.page.get_attribute(f'[data-chart="{chart}"]', f"data-{which}")
        assert text is not None, (chart, which)
        values: dict[str, float] = json.loads(text)
        return values

    def foreign(self, port: int) -> list[str]:
        return [
            url
            for url in self.requested
            if urlsplit(url).netloc != f"127.0.0.1:{port}" and not url.startswith("data:")
        ]


@contextlib.contextmanager
def chromium_page() -> Iterator[Browsed]:
    assert Dashboard(CollectorRegistry(), interval_s=1).built(), (
        f"the dashboard bundle is not built in {DIST}: run `make setup`"
    )
    chromium = ensure_chromium()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(chromium), args=LAUNCH_ARGS)
        try:
            context = browser.new_context(viewport={"width": 1360, "height": 900})
            browsed = Browsed(context.new_page())
            context.on("request", lambda request: browsed.requested.append(request.url))
            browsed.page.on(
                "console",
                lambda message: (
                    browsed.errors.append(message.text) if message.type == "error" else None
                ),
            )
            browsed.page.on("pageerror", lambda error: browsed.errors.append(str(error)))
            yield browsed
        finally:
            browser.close()


class Traffic:
    """Real HTTP inference from a few threads until stopped (a minute at most), about
    150 requests a second in all: a steady stream, not a flood on a shared machine.
    Every 10th request is bad (5 features instead of 6: a 400 from validation)."""

    def __init__(self, url: str, threads: int = 4, pause_s: float = 0.02) -> None:
        self.url = url
        self.stop = threading.Event()
        self.codes: list[int] = []
        self.pause_s = pause_s
        self.deadline = time.monotonic() + 60
        self.pool = ThreadPoolExecutor(threads)
        self.futures = [self.pool.submit(self._run, i) for i in range(threads)]

    def _run(self, seed: int) -> None:
        rng = np.random.default_rng(seed)
        with httpx.Client(base_url=self.url, timeout=30) as client:
            n = 0
            while not self.stop.is_set() and time.monotonic() < self.deadline:
                n += 1
                width = 5 if n % 10 == 0 else 6
                rows = int(rng.integers(1, 4))
                x = rng.standard_normal((rows, width)).astype(np.float32)
                tensor = {"name": "x", "shape": [rows, width], "datatype": "FP32"}
                body = {"inputs": [{**tensor, "data": x.ravel().tolist()}]}
                self.codes.append(client.post("/v2/models/mlp/infer", json=body).status_code)
                self.stop.wait(self.pause_s)

    def finish(self) -> None:
        self.stop.set()
        for future in self.futures:
            future.result()
        self.pool.shutdown()


ERRORS_DRAWN = """() => {
    const max = document.querySelector('[data-chart="requests"]')?.dataset.max;
    return max !== undefined && JSON.parse(max).errors > 0;
}"""


def publish_drift_checks(metrics: GatewayMetrics, scores: dict[str, float]) -> None:
    """Three checks of mlp v1, the share stepping up, as the drift loop would publish them."""
    for share in (0.0, 1 / 6, 0.5):
        metrics.set_drift(
            "mlp",
            1,
            scores=scores,
            share=share,
            detected=share >= 0.5,
            consecutive=int(share >= 0.5),
            checked_at=time.time(),
        )
        time.sleep(0.6)


def test_the_dashboard_draws_live_traffic(registry: Registry) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    screenshot = ARTIFACTS / "dashboard.png"
    scores = {f: round(0.05 + 0.07 * i, 2) for i, f in enumerate(FEATURES)} | {"output": 0.12}
    registry.shadows.set("mlp", "production", 2, 1.0, reason="the dashboard shows it")
    with LiveServer(registry, dashboard_interval_s=0.2) as live:
        app: Any = live.server.config.app
        traffic = Traffic(live.url)
        try:
            TaskStore(registry.db).open(
                "mlp", 1, "data_drift", evidence={"drift_share": 0.5}, source="test", actor="t"
            )
            publish_drift_checks(app.state.metrics, scores)
            with chromium_page() as browsed:
                page = browsed.page
                opened = page.goto(f"{live.url}/dashboard")
                assert opened is not None
                assert opened.status == 200
                page.wait_for_function(CHARTS_DRAWN, arg=list(CHARTS), timeout=30_000)
                page.wait_for_function(ENOUGH_POINTS, arg=8, timeout=30_000)
                # Every tenth request is a 400; on a busy machine the first points may all
                # fall between two of them: wait for the chart to have drawn one.
                page.wait_for_function(ERRORS_DRAWN, timeout=30_000)
                shown = {chart: browsed.drawn(chart) for chart in CHARTS}
                errors_max = browsed.drawn("requests", "max")["errors"]
                painted = page.evaluate(PAINTED, ["requests", list(REQUESTS_BLUE)])
                # Read in one evaluation: the table is redrawn every poll, and a row read
                # while it is being replaced has no rendered cells (innerText loses its tabs).
                rows = page.eval_on_selector_all(
                    '[data-chart="top-drift"] tbody tr',
                    "rows => rows.map(row => [...row.cells].map(c => c.textContent).join('\\t'))",
                )
                served = httpx.get(f"{live.url}/dashboard/data").json()["models"]["mlp"]
                tasks_open = page.get_attribute('[data-chart="tasks"]', "data-open")
                page.wait_for_function(SHADOW_SHOWN, timeout=30_000)
                shadow_rows = page.eval_on_selector_all(
                    '[data-chart="shadow"] tbody tr',
                    "rows => rows.map(row => [...row.cells].map(c => c.textContent))",
                )
                chips = page.inner_text("#info")
                # Two models are served: the selector is shown and switches the charts.
                assert page.is_visible("#model")
                page.select_option("#model", "two")
                page.wait_for_function("() => document.body.dataset.model === 'two'")
                page.select_option("#model", "mlp")
                page.wait_for_function(CHARTS_DRAWN, arg=list(CHARTS))
                page.wait_for_timeout(600)  # a few more polls: the shot shows lines moving
                page.screenshot(path=str(screenshot), full_page=True)
            # A stream of traffic, counted rather than assumed from the time that passed.
            wait_until(lambda: len(traffic.codes) >= 200, "200 answered requests")
        finally:
            traffic.finish()
    print(f"dashboard screenshot: {screenshot}")

    assert not browsed.errors, browsed.errors
    assert not browsed.foreign(live.port)
    assert {f"{live.url}/dashboard", f"{live.url}/dashboard/data"} <= set(browsed.requested)
    assert {200, 400} <= set(traffic.codes)

    assert shown["requests"]["requests"] > 0
    assert errors_max > 0  # one interval may hold no bad request; the window does
    assert painted > 50
    latency = shown["latency"]
    assert 0 < latency["p50"] <= latency["p95"] <= latency["p99"]
    # The page shows the served numbers (seconds in the data, milliseconds on the axis).
    assert any(latency["p99"] == pytest.approx(v * 1000) for v in served["p99"] if v)
    assert shown["batch-size"]["since start"] > 0
    assert set(shown["queue"]) == {"queue depth", "queue full", "shed", "overload", "deadline"}
    assert shown["drift"] == {"drifted": 50.0}
    assert tasks_open == "1"
    [(shadow, *counts)] = shadow_rows  # mirrored requests: answered, shed or failed
    assert shadow == "v2"
    assert sum(int(n) for n in counts) > 0
    assert "v2 · onnx · shadow" in chips
    # Highest score first; the top 10 of 7 columns is all of them.
    ranked = sorted(scores, key=lambda feature: -scores[feature])
    assert [row.split("\t")[0] for row in rows] == ranked
    assert screenshot.stat().st_size > 20_000


# ------------------------------------------------------------------ quality

QUALITY = "quality-demo"
QUALITY_ROWS = 400
# The quality chart drew the figures the test expects (each within 1e-9), and the state line
# is set: the page has caught up with the evaluation.
QUALITY_DRAWN = """
(expected) => {
  const el = document.querySelector('[data-chart="quality"]');
  if (!el || !el.dataset.latest || !el.querySelector('.state')?.dataset.state) return false;
  const latest = JSON.parse(el.dataset.latest);
  return Object.entries(expected).every(([k, v]) => Math.abs((latest[k] ?? NaN) - v) < 1e-9);
}
"""


def register_scenario_model(registry: Registry) -> int:
    """A small binary classifier with labelled evaluation data (so a baseline), as ONNX,
    promoted to production: what the quality monitor needs to judge it."""
    result = train(generate("binary", 3000, seed=1), {"task": "binary", "epochs": 4}, seed=0)
    version = result.register(registry, QUALITY, trainer=TRAINER)
    assert export(registry, version.ref, "onnx").passed
    registry.set_alias(QUALITY, "production", version.version, reason="dashboard test")
    return version.version


def published(url: str) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """/metrics's samples of the quality model: name -> labels (sorted, no model) -> value."""
    found: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    text = httpx.get(f"{url}/metrics", timeout=30).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.labels.get("model") == QUALITY:
                labels = tuple(sorted((k, v) for k, v in sample.labels.items() if k != "model"))
                found.setdefault(sample.name, {})[labels] = sample.value
    return found


def evaluated(url: str, version: int, timeout_s: float = 120) -> dict[str, Any]:
    """Polls /metrics until the gateway's own evaluation has joined every label: then its
    figures stay as they are (no more predictions or labels arrive). What it published."""
    deadline = time.monotonic() + timeout_s
    key = (("version", str(version)),)
    while True:
        metrics = published(url)
        labelled = metrics.get("mlgate_quality_labelled_rows", {}).get(key)
        baselines = metrics.get("mlgate_quality_baseline", {})
        if labelled == QUALITY_ROWS and baselines and metrics.get("mlgate_quality"):
            break
        assert time.monotonic() < deadline, f"no complete quality evaluation: {metrics}"
        time.sleep(0.2)
    ((labels, baseline),) = baselines.items()
    metric = dict(labels)["metric"]
    primary = (("metric", metric), ("version", str(version)))

    def figure(name: str) -> float | None:
        return metrics.get(name, {}).get(primary)

    return {
        "metric": metric,
        "chart": {
            "realised": figure("mlgate_quality"),
            "realised lower": figure("mlgate_quality_lower"),
            "realised upper": figure("mlgate_quality_upper"),
            "estimated": figure("mlgate_quality_estimated"),
            "estimated lower": figure("mlgate_quality_estimated_lower"),
            "estimated upper": figure("mlgate_quality_estimated_upper"),
            "baseline": baseline,
        },
        "coverage": metrics["mlgate_label_coverage"][key],
        "degraded": metrics["mlgate_quality_degraded"][key],
        "finding": metrics["mlgate_drift_finding"][key],
        "breaches": metrics.get("mlgate_data_quality_breaches", {}).get(key, 0.0),
    }


def js_number(value: float) -> str:
    """A figure as the page writes it (fmt: three significant digits)."""
    return f"{float(f'{value:.3g}'):g}"


def test_the_quality_panel_shows_a_live_evaluation(registry: Registry) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    screenshot = ARTIFACTS / "dashboard-quality.png"
    version = register_scenario_model(registry)
    data = generate("binary", QUALITY_ROWS, seed=7)
    rows = data[SCENARIO_FEATURES].to_numpy(np.float32)
    # A round every half second, one-second buckets, judged from 50 labels.
    monitor = MonitorSettings(
        drift_interval_s=0.5,
        log_flush_interval_s=0.1,
        quality_bucket_s=1,
        quality_min_labels=50,
        drift_min_rows=100,
    )
    with LiveServer(registry, monitor=monitor, dashboard_interval_s=0.2) as live:
        with httpx.Client(base_url=live.url, timeout=30) as client:
            for i, row in enumerate(rows):
                tensor = {"name": "features", "shape": [1, 12], "datatype": "FP32"}
                body = {"id": f"r-{i}", "inputs": [{**tensor, "data": row.tolist()}]}
                answer = client.post(f"/v2/models/{QUALITY}/infer", json=body)
                assert answer.status_code == 200, answer.text
            labels = [{"id": f"r-{i}", "label": int(y)} for i, y in enumerate(data[LABEL])]
            answer = client.post(f"/v1/models/{QUALITY}/feedback", json={"feedback": labels})
            assert answer.status_code == 200, answer.text
        expected = evaluated(live.url, version)
        judged = httpx.get(f"{live.url}/monitoring/models/{QUALITY}/quality", timeout=30).json()
        chart = {k: v for k, v in expected["chart"].items() if v is not None}
        with chromium_page() as browsed:
            page = browsed.page
            opened = page.goto(f"{live.url}/dashboard#model={QUALITY}")
            assert opened is not None
            assert opened.status == 200
            page.wait_for_function(QUALITY_DRAWN, arg=chart, timeout=60_000)
            shown = browsed.drawn("quality")
            counted = browsed.drawn("labels")
            state = page.get_attribute('[data-chart="quality"] .state', "data-state")
            line = page.inner_text('[data-chart="quality"] .state')
            page.locator('[data-chart="quality"]').screenshot(path=str(screenshot))
    print(f"quality panel screenshot: {screenshot}")

    assert not browsed.errors, browsed.errors
    assert not browsed.foreign(live.port)
    # A real evaluation: realised and estimated figures with intervals, and a baseline.
    assert set(chart) == set(expected["chart"])
    assert shown == pytest.approx(chart, abs=1e-9)
    assert shown["realised lower"] <= shown["realised"] <= shown["realised upper"]
    assert shown["estimated lower"] <= shown["estimated"] <= shown["estimated upper"]
    assert counted == pytest.approx(
        {"labelled rows": QUALITY_ROWS, "coverage": 100 * expected["coverage"]}
    )
    assert judged["labelled_rows"] == QUALITY_ROWS
    assert judged["metric"] == expected["metric"]
    # Same population as the training data: the gateway judged quality holding, and the
    # page's line says so with the realised figure against the baseline.
    assert judged["status"] == "holding"
    assert (expected["degraded"], expected["finding"], expected["breaches"]) == (0, 0, 0)
    assert state == "holding"
    assert line.startswith(f"v{version} · Holding: realised {expected['metric']} ")
    assert f"realised {expected['metric']} {js_number(chart['realised'])} [" in line
    assert f"on {QUALITY_ROWS} labels" in line
    assert line.endswith(f"not significantly below the baseline {js_number(chart['baseline'])}.")
    assert screenshot.stat().st_size > 5_000


@contextlib.contextmanager
def serve(dashboard: Dashboard) -> Iterator[str]:
    """The dashboard alone, sampling, on a free loopback port; yields its base URL."""

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        await dashboard.start()
        yield
        await dashboard.stop()

    port = free_port()
    app = Starlette(routes=dashboard.routes(), lifespan=lifespan)
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive(), "the server stopped while starting"
        assert time.monotonic() < deadline, "the server did not start in 30 s"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def test_the_empty_states_say_what_to_wait_for() -> None:
    bare = CollectorRegistry()
    served = CollectorRegistry()
    GatewayMetrics(served)
    views = [ServedView("mlp", 1, "onnx", ("production",), 0, 1024)]
    served.register(ServingCollector(lambda: views))
    cases = [
        (bare, "No model has reported metrics yet", ""),
        # One sample taken at start and the next an hour away: a model, but no point yet.
        (served, "Waiting for the first interval", "v1 · onnx · production"),
    ]
    with chromium_page() as browsed:
        for metrics_registry, message, info in cases:
            with serve(Dashboard(metrics_registry, interval_s=3600)) as url:
                browsed.page.goto(f"{url}/dashboard")
                browsed.page.wait_for_function("() => document.body.dataset.state === 'empty'")
                assert message in browsed.page.inner_text("#empty")
                assert info in browsed.page.inner_text("#info")
                assert not browsed.page.is_visible("#panels")
                assert not browsed.page.is_visible("#picker")  # one model or none: no selector
    assert not browsed.errors, browsed.errors
    hosts = {urlsplit(url).hostname for url in browsed.requested if not url.startswith("data:")}
    assert hosts == {"127.0.0.1"}

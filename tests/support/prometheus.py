"""A real, throwaway Prometheus server for the tests, on a free loopback port.

    with prometheus_server(["127.0.0.1:8000"], rules=Path("deploy/prometheus/rules.yml")) as url:
        query(url, "up")

`ensure_prometheus()` finds Debian's `prometheus` and `promtool` on PATH and installs the
`prometheus` package when they are missing (root with apt-get only; otherwise a clear
error). `prometheus_server` writes a config into a temporary folder, starts Prometheus
bound to 127.0.0.1 with its TSDB in that folder, waits for `/-/ready`, and afterwards stops
it by its PID (SIGTERM, then SIGKILL) and deletes the folder, the same shape as
`pgserver.py`. Scrapes and rule evaluations run every `scrape_interval` (1 s by default),
so a test sees new samples and rule results within seconds.

`query` runs an instant PromQL query through the HTTP API and raises `PrometheusError`
with Prometheus's own message when the query is rejected, so a test that checks a
dashboard expression shows the parse error itself.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from services.demo.traffic import free_port
from tests.support.debian import apt_install

__all__ = ["PrometheusError", "api_get", "ensure_prometheus", "prometheus_server", "query"]

START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 10.0


class PrometheusError(RuntimeError):
    """Prometheus is missing, did not start, or answered a request with an error."""


def _binaries() -> tuple[Path, Path] | None:
    server, tool = shutil.which("prometheus"), shutil.which("promtool")
    return (Path(server), Path(tool)) if server and tool else None


def ensure_prometheus() -> tuple[Path, Path]:
    """Paths of the `prometheus` and `promtool` binaries, installing them if needed."""
    found = _binaries()
    if found:
        return found
    try:
        apt_install("prometheus", "prometheus and promtool are not on PATH")
    except RuntimeError as exc:
        raise PrometheusError(str(exc)) from None
    found = _binaries()
    if found is None:
        raise PrometheusError("installed Debian's prometheus package but found no binaries")
    return found


def _config(targets: list[str], rules: Path | None, scrape_interval: str) -> dict[str, Any]:
    # Evaluating as often as we scrape lets a test wait seconds, not minutes, for rules.
    config: dict[str, Any] = {
        "global": {"scrape_interval": scrape_interval, "evaluation_interval": scrape_interval},
        "scrape_configs": [{"job_name": "mlgate", "static_configs": [{"targets": list(targets)}]}],
    }
    if rules is not None:
        config["rule_files"] = [str(rules.resolve())]
    return config


@contextlib.contextmanager
def prometheus_server(
    targets: list[str], *, rules: Path | None = None, scrape_interval: str = "1s"
) -> Iterator[str]:
    """Start Prometheus scraping `targets` (host:port); yields its base URL."""
    server_bin, _ = ensure_prometheus()
    folder = Path(tempfile.mkdtemp(prefix="mlgate-prometheus-"))
    try:
        config_file = folder / "prometheus.yml"
        # JSON is YAML, and needs no YAML writer.
        config_file.write_text(json.dumps(_config(targets, rules, scrape_interval), indent=2))
        port = free_port()
        log_path = folder / "server.log"
        with log_path.open("wb") as log:
            server = subprocess.Popen(
                [
                    str(server_bin),
                    f"--config.file={config_file}",
                    f"--storage.tsdb.path={folder / 'data'}",
                    f"--web.listen-address=127.0.0.1:{port}",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=folder,
            )
            try:
                base_url = f"http://127.0.0.1:{port}"
                _wait_ready(base_url, server, log_path)
                yield base_url
            finally:
                _stop(server)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _wait_ready(base_url: str, server: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise PrometheusError(
                f"prometheus exited with {server.returncode}: {log.read_text()[-3000:]}"
            )
        try:
            if httpx.get(f"{base_url}/-/ready", timeout=2.0).status_code == 200:
                return
        except httpx.TransportError:
            pass  # not listening yet
        time.sleep(0.1)
    raise PrometheusError(
        f"prometheus was not ready within {START_TIMEOUT_S}s: {log.read_text()[-3000:]}"
    )


def _stop(server: subprocess.Popen[bytes]) -> None:
    if server.poll() is not None:
        return
    # SIGTERM lets Prometheus close the TSDB cleanly; the folder is deleted anyway, so a
    # server that hangs on shutdown is killed rather than waited for.
    os.kill(server.pid, signal.SIGTERM)
    try:
        server.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.kill(server.pid, signal.SIGKILL)
        server.wait()


def api_get(base_url: str, path: str, params: dict[str, str] | None = None) -> Any:
    """GET `/api/v1/<path>` and return its `data`; raises PrometheusError on an error."""
    response = httpx.get(f"{base_url}/api/v1/{path}", params=params, timeout=10.0)
    try:
        body = response.json()
    except json.JSONDecodeError:
        raise PrometheusError(
            f"GET /api/v1/{path}: HTTP {response.status_code}, not JSON: {response.text[:500]}"
        ) from None
    if response.status_code != 200 or body.get("status") != "success":
        raise PrometheusError(
            f"GET /api/v1/{path} {params or ''}: HTTP {response.status_code}, "
            f"{body.get('errorType')}: {body.get('error')}"
        )
    return body["data"]


def query(base_url: str, promql: str) -> list[dict[str, Any]]:
    """Run an instant query; one dict per series (`metric`, `value`).

    A scalar or string result comes back as a single series with empty labels, so callers
    always get the same shape.
    """
    data = api_get(base_url, "query", {"query": promql})
    result = data["result"]
    if data["resultType"] in ("scalar", "string"):
        return [{"metric": {}, "value": result}]
    return list(result)

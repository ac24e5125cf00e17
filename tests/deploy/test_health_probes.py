"""The health checks deploy/ declares, run against a real `mlgate serve`.

The Dockerfile's HEALTHCHECK command (exec form, run as it is, with this environment's
python) must pass against a ready gateway and fail against a stopped one or one that
answers 503; every HTTP probe path of the gateway Deployment in deploy/k8s must answer
200 on the same gateway. A path renamed in the gateway, or a typo in a manifest, fails
here rather than as a pod that never becomes ready.
"""

from __future__ import annotations

import http.server
import json
import os
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dockerfile_parse import DockerfileParser  # type: ignore[import-untyped]  # no stubs

from services.demo.traffic import GatewayProcess, free_port
from tests.deploy.deploy_support import DEPLOY, load_yaml_all


def _healthcheck_command() -> list[str]:
    parser = DockerfileParser(path=str(DEPLOY / "Dockerfile"))
    (value,) = [i["value"] for i in parser.structure if i["instruction"] == "HEALTHCHECK"]
    command: list[str] = json.loads(value.split(" CMD ", 1)[1])
    assert command[0] == "python"
    return [sys.executable, *command[1:]]


def _run_healthcheck(port: int) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MLGATE_PORT": str(port)}
    return subprocess.run(
        _healthcheck_command(), env=env, capture_output=True, text=True, timeout=30, check=False
    )


def _gateway_probe_paths() -> set[str]:
    (deployment,) = [
        doc for doc in load_yaml_all(DEPLOY / "k8s" / "gateway.yaml") if doc["kind"] == "Deployment"
    ]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return {
        container[probe]["httpGet"]["path"]
        for probe in ("startupProbe", "readinessProbe", "livenessProbe")
    }


@pytest.mark.slow
def test_healthcheck_and_probes_pass_on_a_ready_gateway_and_fail_once_it_stops(
    tmp_path: Path,
) -> None:
    # Its own gRPC port, so parallel tests never share one.
    env = {"MLGATE_GRPC_PORT": str(free_port())}
    with GatewayProcess(tmp_path / "home", None, env=env) as gateway:
        done = _run_healthcheck(gateway.port)
        assert done.returncode == 0, done.stderr
        for path in sorted(_gateway_probe_paths()):
            with urllib.request.urlopen(f"{gateway.url}{path}", timeout=10) as response:  # noqa: S310 - loopback
                assert response.status == 200, path
    stopped = _run_healthcheck(gateway.port)
    assert stopped.returncode != 0
    assert "Connection refused" in stopped.stderr


class _NotReady(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # the name http.server calls
        body = b'{"error": "the gateway is still loading its models"}'
        self.send_response(503)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args: Any) -> None:
        pass  # quiet: the test reads the status, not the log


@pytest.fixture
def not_ready_port() -> Iterator[int]:
    """A loopback server whose readiness answer is the gateway's 503 while loading."""
    server = http.server.HTTPServer(("127.0.0.1", 0), _NotReady)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_healthcheck_fails_while_the_gateway_answers_503(not_ready_port: int) -> None:
    done = _run_healthcheck(not_ready_port)
    assert done.returncode != 0
    assert "HTTP Error 503" in done.stderr

"""`mlgate serve` with gRPC: the flags, the line saying where it listens, a taken port."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import tritonclient.grpc as triton

from services.cli.serve import DEFAULT_GRPC_PORT, serve_grpc_port
from services.demo.traffic import free_port
from services.gateway.settings import GatewaySettings


def test_the_grpc_port_serve_chooses(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLGATE_GRPC_PORT", raising=False)
    assert serve_grpc_port(GatewaySettings(), None, no_grpc=False) == DEFAULT_GRPC_PORT == 8001
    assert serve_grpc_port(GatewaySettings(), 9100, no_grpc=False) == 9100
    assert serve_grpc_port(GatewaySettings(), 0, no_grpc=False) is None
    assert serve_grpc_port(GatewaySettings(), 9100, no_grpc=True) is None
    monkeypatch.setenv("MLGATE_GRPC_PORT", "9200")
    assert serve_grpc_port(GatewaySettings(), None, no_grpc=False) == 9200
    assert serve_grpc_port(GatewaySettings(), 9100, no_grpc=False) == 9100
    monkeypatch.setenv("MLGATE_GRPC_PORT", "0")
    assert serve_grpc_port(GatewaySettings(), None, no_grpc=False) is None


@contextmanager
def serving(home: Path, log: Path, *grpc_flags: str) -> Iterator[subprocess.Popen[bytes]]:
    """`mlgate serve` in its own process group, stopped by PID."""
    port = free_port()
    command = [sys.executable, "-m", "services.cli", "--home", str(home), "serve"]
    command += ["--port", str(port), "--log-level", "warning", *grpc_flags]
    env = {k: v for k, v in os.environ.items() if k != "MLGATE_GRPC_PORT"}
    with log.open("wb") as sink:
        process = subprocess.Popen(command, stderr=sink, env=env, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while process.poll() is None and time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/v2/health/ready").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        yield process
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=60)


@pytest.mark.slow
def test_serve_listens_where_it_says_and_refuses_a_taken_port(home: Path, tmp_path: Path) -> None:
    log = tmp_path / "serve.log"
    grpc_port = free_port()
    with serving(home, log, "--grpc-port", str(grpc_port)) as process:
        assert process.poll() is None, log.read_text()
        client = triton.InferenceServerClient(f"127.0.0.1:{grpc_port}")
        assert client.is_model_ready("mlp")
        client.close()
    assert f"and gRPC on 127.0.0.1:{grpc_port}" in log.read_text()

    with serving(home, log, "--grpc-port", str(grpc_port), "--no-grpc") as process:
        assert process.poll() is None, log.read_text()
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", grpc_port), timeout=5).close()
    assert "and no gRPC" in log.read_text()

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with serving(home, log, "--grpc-port", str(port)) as process:
            assert process.wait(timeout=120) != 0
    assert f"cannot listen for gRPC on 127.0.0.1:{port}" in log.read_text()

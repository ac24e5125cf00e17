"""The demo's second half: start a real gateway process, send it traffic, report latency.

`GatewayProcess` runs `mlgate serve` as a child process on a free loopback port and stops
it by its PID; `send` drives it with concurrent HTTP clients (Open Inference Protocol,
JSON, aiohttp: a client light enough not to hide the gateway behind its own overhead)
and measures each request's latency as the client sees it.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import orjson

__all__ = ["GatewayProcess", "TrafficReport", "free_port", "gateway_ready", "send"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class GatewayProcess:
    """`mlgate serve` in a child process, ready when entered, stopped by PID on exit."""

    def __init__(
        self, home: Path | None, registry_url: str | None, env: dict[str, str] | None = None
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        command = [sys.executable, "-m", "services.cli"]
        if home is not None:
            command += ["--home", str(home)]
        if registry_url is not None:
            command += ["--registry-url", registry_url]
        command += ["serve", "--port", str(self.port), "--no-grpc", "--log-level", "warning"]
        self._command = command
        # One worker unless asked: the demo's and benchmarks' figures are per process.
        self._env = {"MLGATE_WORKERS": "1", **os.environ, **(env or {})}
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        if self._process is None:
            raise RuntimeError("the gateway process is not running")
        return self._process.pid

    def __enter__(self) -> GatewayProcess:
        self._process = subprocess.Popen(
            self._command,
            env=self._env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                stderr = self._process.stderr.read().decode() if self._process.stderr else ""
                if self._process.stderr is not None:
                    self._process.stderr.close()
                raise RuntimeError(
                    f"mlgate serve exited with {self._process.returncode}: {stderr[-2000:]}"
                )
            if gateway_ready(self.url):
                return self
            time.sleep(0.1)
        self.__exit__()
        raise RuntimeError("mlgate serve did not become ready within 120 s")

    def __exit__(self, *_exc: object) -> None:
        if self._process is None:
            return
        if self._process.poll() is not None:  # already gone (a test may have killed it)
            if self._process.stderr is not None:
                self._process.stderr.close()
            return
        os.killpg(self._process.pid, signal.SIGTERM)
        try:
            self._process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self._process.pid, signal.SIGKILL)
            self._process.wait()
        finally:
            if self._process.stderr is not None:
                self._process.stderr.close()


@dataclass
class TrafficReport:
    requests: int
    concurrency: int
    seconds: float
    statuses: dict[int, int]
    latencies_ms: list[float] = field(repr=False)
    stats: dict[str, Any] = field(default_factory=dict)

    def percentile(self, q: float) -> float:
        return float(np.percentile(self.latencies_ms, q)) if self.latencies_ms else float("nan")

    def summary(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "concurrency": self.concurrency,
            "statuses": self.statuses,
            "throughput_rps": round(self.requests / self.seconds, 1),
            "p50_ms": round(self.percentile(50), 3),
            "p99_ms": round(self.percentile(99), 3),
            "mean_batch_size": self.stats.get("mean_batch_size"),
            "batch_reasons": self.stats.get("batch_reasons"),
        }


def infer_body(input_name: str, rows: np.ndarray, request_id: str | None = None) -> bytes:
    return orjson.dumps(
        {
            **({"id": request_id} if request_id is not None else {}),
            "inputs": [
                {
                    "name": input_name,
                    "shape": list(rows.shape),
                    "datatype": "FP32",
                    "data": rows.ravel(),
                }
            ],
        },
        option=orjson.OPT_SERIALIZE_NUMPY,
    )


def binary_infer_body(input_name: str, rows: np.ndarray, outputs: list[str]) -> tuple[bytes, int]:
    """An FP32 request in the binary tensor extension, asking for `outputs` in binary too;
    and the JSON header's length (the Inference-Header-Content-Length to send)."""
    data = np.ascontiguousarray(rows, dtype=np.float32)
    header = orjson.dumps(
        {
            "inputs": [
                {
                    "name": input_name,
                    "shape": list(data.shape),
                    "datatype": "FP32",
                    "parameters": {"binary_data_size": data.nbytes},
                }
            ],
            "outputs": [{"name": name, "parameters": {"binary_data": True}} for name in outputs],
        }
    )
    return header + data.tobytes(), len(header)


async def _drive(
    url: str, model: str, bodies: Sequence[bytes], concurrency: int, advance: Callable[[], None]
) -> tuple[list[float], Counter[int], float]:
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    pending = list(reversed(bodies))
    target = f"{url}/v2/models/{model}/infer"
    headers = {"content-type": "application/json"}
    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def worker() -> None:
            while pending:
                body = pending.pop()
                started = time.perf_counter()
                async with session.post(target, data=body, headers=headers) as response:
                    await response.read()
                latencies.append((time.perf_counter() - started) * 1000)
                statuses[response.status] += 1
                advance()

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return latencies, statuses, time.perf_counter() - started


def send(
    url: str, model: str, bodies: Sequence[bytes], *, concurrency: int, advance: Callable[[], None]
) -> TrafficReport:
    latencies, statuses, seconds = asyncio.run(_drive(url, model, bodies, concurrency, advance))
    stats = _get_json(f"{url}/v2/models/{model}/stats")["model_stats"][0]
    return TrafficReport(len(bodies), concurrency, seconds, dict(statuses), latencies, stats)


def _get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - our own loopback URL
        return orjson.loads(response.read())


def gateway_ready(url: str) -> bool:
    """Whether the gateway at `url` answers /v2/health/ready with 200 (within a second)."""
    try:
        with urllib.request.urlopen(f"{url}/v2/health/ready", timeout=1) as response:  # noqa: S310
            return bool(response.status == 200)
    except OSError:
        return False

"""How to start each server in the peer benchmark, what to send it, and how to read its batches.

Every server gets the same ONNX file, one core (`cpu`), one onnxruntime thread, loopback
ports and a one-row request in its own JSON protocol: the Open Inference Protocol for
mlgate, Triton and the naive FastAPI app, `{"x": [[...]]}` for BentoML. mlgate alone can
also run unpinned (`cpu=None`) with several worker processes (`workers`), for the workers
comparison.
"""

from __future__ import annotations

import re
import sys
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import orjson

from load_tests.peers.venvs import libdir, python_for
from load_tests.processes import ServerProcess
from services.demo.traffic import free_port, infer_body

__all__ = ["BatchProbe", "Peer", "bentoml", "fastapi_naive", "mlgate", "triton"]

ROOT = Path(__file__).resolve().parents[2]
# (rows, batches) executed so far, read from the server's own statistics.
BatchProbe = Callable[[], tuple[float, float]]


@dataclass
class Peer:
    name: str
    server: ServerProcess
    url: str
    body: bytes
    batches: BatchProbe | None  # None: one row per batch by construction
    # PyTriton's tritonserver does not survive SIGSTOP/SIGCONT of its tree reliably (after
    # a resume it sometimes never answered again), so it is left running while idle.
    pausable: bool = True
    grpc: str | None = None  # host:port of its gRPC endpoint, where it has one


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 (loopback)
        body: bytes = response.read()
    return body


_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def _prometheus_sums(
    url: str, rows: str, batches: str, labels: dict[str, str] | None = None
) -> tuple[float, float]:
    """Two series from a Prometheus text page, each summed over its samples (those whose
    labels include `labels`, where given)."""
    found = {rows: 0.0, batches: 0.0}
    for line in _get(url).decode().splitlines():
        name = re.split(r"[{ ]", line, maxsplit=1)[0]
        if name not in found:
            continue
        if labels:
            given = dict(_LABEL.findall(line.partition("{")[2].rpartition("}")[0]))
            if any(given.get(key) != value for key, value in labels.items()):
                continue
        found[name] += float(line.rsplit(" ", 1)[1])
    return found[rows], found[batches]


def mlgate(
    home: Path,
    model: str,
    row: np.ndarray,
    cpu: int | None,
    log: Path,
    max_batch: int,
    name: str = "mlgate",
    workers: int = 1,
) -> Peer:
    """`mlgate serve` with its defaults (inference log and drift checks on), except the
    largest batch, which every batching peer is given alike. The version's stored serving
    config applies (runtime triton, for one). `cpu=None`: not pinned. `workers`: gateway
    processes on the port, as MLGATE_WORKERS (serve's own default is one per core) and, when
    not 1, as `--workers N` too (a gateway without the option then fails to start, loudly).

    Batches are read from /metrics (`mlgate_batch_size` sum and count over the model's
    samples), not /v2/models/{m}/stats: with several workers, the stats answer from
    whichever worker takes the request, while /metrics adds up across workers."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    argv = [sys.executable, "-m", "services.cli", "--home", str(home), "serve"]
    options = ["--port", str(port), "--no-grpc", "--log-level", "warning"]
    if workers != 1:
        options += ["--workers", str(workers)]
    server = ServerProcess(
        [*argv, *options],
        f"{url}/v2/health/ready",
        env={"MLGATE_MAX_BATCH_SIZE": str(max_batch), "MLGATE_WORKERS": str(workers)},
        cpu=cpu,
        cwd=ROOT,
        log=log,
    )

    def batches() -> tuple[float, float]:
        return _prometheus_sums(
            f"{url}/metrics",
            "mlgate_batch_size_sum",
            "mlgate_batch_size_count",
            labels={"model": model},
        )

    return Peer(name, server, f"{url}/v2/models/{model}/infer", infer_body("x", row), batches)


def bentoml(
    onnx: Path, row: np.ndarray, cpu: int, log: Path, max_batch: int, latency_ms: int
) -> Peer:
    """BentoML 1.4, one worker, a batchable API with mlgate's max batch and SLO."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    python = python_for("bentoml")
    server = ServerProcess(
        [
            str(python),
            "-m",
            "bentoml",
            "serve",
            "load_tests.peers.bentoml_service:OnnxModel",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        f"{url}/readyz",
        env={
            "MLGATE_PEER_MODEL": str(onnx),
            "MLGATE_PEER_INPUT": "x",
            "MLGATE_PEER_MAX_BATCH": str(max_batch),
            "MLGATE_PEER_LATENCY_MS": str(latency_ms),
            "BENTOML_HOME": str(log.parent / "bentoml-home"),
            "BENTOML_DO_NOT_TRACK": "true",
        },
        cpu=cpu,
        cwd=ROOT,
        log=log,
    )

    def batches() -> tuple[float, float]:
        return _prometheus_sums(
            f"{url}/metrics",
            "bentoml_service_adaptive_batch_size_sum",
            "bentoml_service_adaptive_batch_size_count",
        )

    return Peer("bentoml", server, f"{url}/predict", orjson.dumps({"x": row.tolist()}), batches)


def triton(onnx: Path, row: np.ndarray, cpu: int, log: Path, workspace: Path) -> Peer:
    """PyTriton: a real tritonserver, dynamic batching, onnxruntime in its Python backend."""
    http, grpc, metrics = free_port(), free_port(), free_port()
    url = f"http://127.0.0.1:{http}"
    python = python_for("pytriton")
    server = ServerProcess(
        [
            str(python),
            str(ROOT / "load_tests" / "peers" / "pytriton_server.py"),
            str(http),
            str(grpc),
            str(metrics),
            str(workspace),
            str(onnx),
        ],
        f"{url}/v2/health/ready",
        env={"LD_LIBRARY_PATH": libdir()},
        cpu=cpu,
        cwd=ROOT,
        log=log,
    )

    def batches() -> tuple[float, float]:
        return _prometheus_sums(
            f"http://127.0.0.1:{metrics}/metrics", "nv_inference_count", "nv_inference_exec_count"
        )

    return Peer(
        "triton",
        server,
        f"{url}/v2/models/model/infer",
        infer_body("x", row),
        batches,
        pausable=False,
        grpc=f"127.0.0.1:{grpc}",
    )


def fastapi_naive(onnx: Path, row: np.ndarray, cpu: int, log: Path) -> Peer:
    """FastAPI + uvicorn, onnxruntime once per request, no batching."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = ServerProcess(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            "load_tests.peers.fastapi_naive:create_app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--no-access-log",
        ],
        f"{url}/v2/health/ready",
        env={"MLGATE_PEER_MODEL": str(onnx)},
        cpu=cpu,
        cwd=ROOT,
        log=log,
    )
    return Peer("fastapi", server, f"{url}/v2/models/model/infer", infer_body("x", row), None)

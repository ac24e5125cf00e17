"""mlgate against BentoML, Triton (PyTriton), a naive FastAPI app and the in-process limit.

    python -m load_tests.bench_peers [--models tiny,wide] [--peers mlgate,bentoml,triton,fastapi]
                                     [--seconds 6] [--repeats 3]

One run on one machine, side by side. For each model (tiny: an overhead-bound 16→64→64→4
MLP; wide: the compute-bound examples/wide_mlp) the same gate-passed ONNX file is served
by every peer, each pinned to core 0 with one onnxruntime thread; the load generator runs
on core 1. Every load shape runs every peer in a rotating order each repeat (A B C D,
B C D A, …) while the others are paused (SIGSTOP), and the tables hold medians:

    closed loop  wrk (C, Debian's), 1 / 8 / 64 connections, one-row JSON requests
    open loop    load_tests.openloop at 50 / 90 / 150 % of mlgate's closed-loop saturation
                 throughput measured earlier in the same run (latency from the due time)

The in-process limit is onnxruntime alone on core 0 (load_tests.limit). Results go to
load_tests/results/<date>-peers-<model>.{md,json,png}. A benchmark, not a test: it
asserts nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from examples.wide_mlp.model import TINY_WIDTHS, WIDTHS, register
from load_tests import openloop
from load_tests.peer_report import write_report
from load_tests.peers import servers
from load_tests.peers.servers import Peer
from load_tests.wrk import ensure_wrk, run_wrk
from registry import Registry

MODELS = {"tiny": ("tiny-mlp", TINY_WIDTHS), "wide": ("wide-mlp", WIDTHS)}
PEERS = ("mlgate", "bentoml", "triton", "fastapi")
CONNECTIONS = (1, 8, 64)
OPEN_SHARES = (0.5, 0.9, 1.5)
SERVER_CPU, CLIENT_CPU = 0, 1
MAX_BATCH, SLO_MS = 64, 250  # mlgate's defaults, given to the peers that batch
RESULTS = Path(__file__).parent / "results"
ROOT = Path(__file__).resolve().parent.parent


def prepare(home: Path, name: str, widths: tuple[int, ...]) -> tuple[Path, np.ndarray]:
    """Register the model through the parity gate; the ONNX file every peer serves, and a row."""
    registry = Registry(home=home)
    register(registry, name, seed=0, widths=widths)
    _, _, folder = registry.open_servable(f"{name}@production", "onnx")
    registry.close()
    row = np.random.default_rng(11).standard_normal((1, widths[0])).astype(np.float32)
    return folder / "model.onnx", row


def start(name: str, home: Path, model: str, onnx: Path, row: np.ndarray, work: Path) -> Peer:
    log = work / f"{name}.log"
    if name == "mlgate":
        peer = servers.mlgate(home, model, row, SERVER_CPU, log, MAX_BATCH)
    elif name == "bentoml":
        peer = servers.bentoml(onnx, row, SERVER_CPU, log, MAX_BATCH, SLO_MS)
    elif name == "triton":
        peer = servers.triton(onnx, row, SERVER_CPU, log, work / "pytriton")
    else:
        peer = servers.fastapi_naive(onnx, row, SERVER_CPU, log)
    peer.server.start()
    run_wrk(
        peer.url,
        peer.body,
        connections=8,
        seconds=2,
        header_length=None,
        content_type="application/json",
        cpu=CLIENT_CPU,
    )  # warm-up, not reported
    if peer.pausable:
        peer.server.pause()
    return peer


def ready_again(peer: Peer, timeout: float = 60) -> None:
    """After SIGCONT, wait until the peer answers an inference again (its helper processes
    resume in some order), so no run starts on a half-woken server."""
    deadline = time.monotonic() + timeout
    request = urllib.request.Request(  # noqa: S310 (loopback http)
        peer.url, data=peer.body, headers={"Content-Type": "application/json"}
    )
    while True:
        try:
            with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{peer.name} did not answer after resuming; see its log")
        time.sleep(0.1)


@contextlib.contextmanager
def measured(peer: Peer) -> Iterator[dict[str, Any]]:
    """Resume the peer for one run; record its CPU and batches around the run."""
    if peer.pausable:
        peer.server.resume()
    ready_again(peer)
    extra: dict[str, Any] = {}
    before = peer.batches() if peer.batches else None
    cpu = peer.server.cpu_seconds()
    try:
        yield extra
    finally:
        extra["server_cpu_s"] = round(peer.server.cpu_seconds() - cpu, 3)
        if before is not None and peer.batches is not None:
            rows, batches = (a - b for a, b in zip(peer.batches(), before, strict=True))
            extra["mean_batch"] = round(rows / batches, 2) if batches else None
        else:
            extra["mean_batch"] = 1.0
        # An overloaded peer with an unbounded queue is still working through its backlog:
        # let it finish before pausing it, so the next run finds it idle (not counted).
        try:
            ready_again(peer, timeout=180)
        except RuntimeError:
            extra["drain_failed"] = True
        if peer.pausable:
            peer.server.pause()


def closed(peer: Peer, connections: int, seconds: float) -> dict[str, Any]:
    with measured(peer) as extra:
        result = run_wrk(
            peer.url,
            peer.body,
            connections=connections,
            seconds=seconds,
            header_length=None,
            content_type="application/json",
            cpu=CLIENT_CPU,
        )
    statuses = dict(result.statuses)
    errors = {k: v for k, v in statuses.items() if k != "200" and v}
    if result.socket_errors:
        errors["socket"] = result.socket_errors
    return {
        "shape": "closed",
        "load": connections,
        "ok_rps": round(statuses["200"] / result.seconds, 1),
        "p50_ms": result.p50_ms,
        "p99_ms": result.p99_ms,
        "errors": errors,
        "generator_cpu_s": result.wrk_cpu_s,
        "requests": result.requests,
        **extra,
    }


def open_loop(peer: Peer, rate: float, seconds: float, work: Path) -> dict[str, Any]:
    body = work / f"{peer.name}.body"
    body.write_bytes(peer.body)
    with measured(peer) as extra:
        data = openloop.run_pinned(peer.url, body, rate=rate, seconds=seconds, cpu=CLIENT_CPU)
    errors = {k: v for k, v in data["statuses"].items() if k != "200"}
    for key in ("unfinished", "connect_errors"):
        if data[key]:
            errors[key] = data[key]
    return {
        "shape": "open",
        "load": data["offered_rps"],
        "errors": errors,
        "requests": data["sent"],
        **{
            k: data[k]
            for k in (
                "ok_rps",
                "p50_ms",
                "p99_ms",
                "all_p99_ms",
                "send_lag_p99_ms",
                "tick_lag_p99_ms",
                "generator_cpu_s",
            )
        },
        **extra,
    }


def median_row(runs: list[dict[str, Any]]) -> dict[str, Any]:
    def med(key: str) -> float | None:
        values = [r[key] for r in runs if r.get(key) is not None]
        return round(statistics.median(values), 3) if values else None

    errors: dict[str, int] = {}
    for run in runs:
        for key, value in run["errors"].items():
            errors[key] = errors.get(key, 0) + value
    return {
        "ok_rps": med("ok_rps"),
        "p50_ms": med("p50_ms"),
        "p99_ms": med("p99_ms"),
        "mean_batch": med("mean_batch"),
        "errors": errors,
        "requests": sum(r["requests"] for r in runs),
        # the server's CPU (whole process tree) per answered request
        "server_cpu_us": round(
            statistics.median(
                r["server_cpu_s"] * 1e6 / max(1.0, r["ok_rps"] * r["seconds"]) for r in runs
            ),
            1,
        ),
        "generator_cpu_s": med("generator_cpu_s"),
        "send_lag_p99_ms": med("send_lag_p99_ms"),
        "repeats": len(runs),
    }


def one_model(key: str, peers: list[str], seconds: float, repeats: int) -> dict[str, Any]:
    model, widths = MODELS[key]
    work = Path(tempfile.mkdtemp(prefix=f"mlgate-peers-{key}-"))
    try:
        home = work / "home"
        onnx, row = prepare(home, model, widths)
        limit = json.loads(
            subprocess.run(
                [sys.executable, "-m", "load_tests.limit", str(onnx), "--cpu", str(SERVER_CPU)],
                capture_output=True,
                text=True,
                check=True,
                cwd=ROOT,
            ).stdout
        )
        print(f"[{key}] in-process limit: {limit}", flush=True)
        started: dict[str, Peer] = {}
        try:
            for name in peers:
                started[name] = start(name, home, model, onnx, row, work)
                print(f"[{key}] {name} ready", flush=True)
            runs: list[dict[str, Any]] = []
            order = list(peers)
            for connections in CONNECTIONS:
                for r in range(repeats):
                    for name in order[r % len(order) :] + order[: r % len(order)]:
                        run = closed(started[name], connections, seconds)
                        run.update(peer=name, repeat=r, seconds=seconds)
                        runs.append(run)
                        print(
                            f"[{key}] {name} c{connections}: {run['ok_rps']} ok/s "
                            f"p99 {run['p99_ms']} ms batch {run['mean_batch']}",
                            flush=True,
                        )
            saturation = (
                max(
                    statistics.median(
                        x["ok_rps"] for x in runs if x["peer"] == "mlgate" and x["load"] == c
                    )
                    for c in CONNECTIONS
                )
                if "mlgate" in peers
                else 1000.0
            )
            for share in OPEN_SHARES:
                for r in range(repeats):
                    for name in order[r % len(order) :] + order[: r % len(order)]:
                        run = open_loop(started[name], saturation * share, seconds, work)
                        run.update(peer=name, repeat=r, seconds=seconds, share=share)
                        runs.append(run)
                        print(
                            f"[{key}] {name} {share:.0%}: {run['ok_rps']} ok/s "
                            f"p99 {run['p99_ms']} ms errors {run['errors']}",
                            flush=True,
                        )
        finally:
            for peer in started.values():
                peer.server.stop()
        summary: dict[str, Any] = {}
        for name in peers:
            for shape, loads in (("closed", CONNECTIONS), ("open", OPEN_SHARES)):
                for load in loads:
                    field = "load" if shape == "closed" else "share"
                    chosen = [
                        x
                        for x in runs
                        if x["peer"] == name and x["shape"] == shape and x.get(field) == load
                    ]
                    label = f"c{load}" if shape == "closed" else f"{load:.0%}"
                    summary.setdefault(name, {})[label] = {
                        **median_row(chosen),
                        **({"offered_rps": chosen[0]["load"]} if shape == "open" else {}),
                    }
        return {
            "key": key,
            "model": model,
            "widths": list(widths),
            "limit": limit,
            "saturation_rps": saturation,
            "summary": summary,
            "runs": runs,
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="tiny,wide")
    parser.add_argument("--peers", default=",".join(PEERS))
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    ensure_wrk()
    peers = [p for p in args.peers.split(",") if p]
    unknown = set(peers) - set(PEERS)
    if unknown:
        parser.error(f"unknown peers: {sorted(unknown)} (known: {', '.join(PEERS)})")
    date = datetime.now(UTC).date().isoformat()
    RESULTS.mkdir(exist_ok=True)
    for key in args.models.split(","):
        if key not in MODELS:
            parser.error(f"unknown model {key!r} (known: {', '.join(MODELS)})")
        result = one_model(key, peers, args.seconds, args.repeats)
        result.update(
            date=date,
            seconds=args.seconds,
            repeats=args.repeats,
            command=" ".join(["python -m load_tests.bench_peers", *sys.argv[1:]]),
        )
        stem = RESULTS / f"{date}-peers-{key}"
        stem.with_suffix(".json").write_text(json.dumps(result, indent=1) + "\n")
        write_report(result, stem)
        print(f"wrote {stem}.md", flush=True)


if __name__ == "__main__":
    main()

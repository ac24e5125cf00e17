"""What a promotion costs the requests in flight: the tail with alias moves against without.

    python -m load_tests.bench_swap [--model tiny|wide] [--repeats 3] [--seconds 10]

Registers two versions of a `bench_peers` model and serves them with `mlgate serve` (one
worker, pinned to core 0; the registry polled every second, the default). wrk sends one-row
JSON requests at 16 connections from core 1 for `--seconds`; in a `moves` run the
production alias is moved to the other version at a third and at two thirds of the run
(each move makes the gateway load one version and drain and unload the other), in a `still`
run it stays. Runs alternate; prints each run and the medians of p99, throughput and the
answers other than 200. A benchmark, not a test.
"""

from __future__ import annotations

import statistics
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from examples.wide_mlp.model import register
from load_tests.bench_ab import model_parser, serve
from load_tests.bench_peers import MODELS
from load_tests.wrk import ensure_wrk, run_wrk_json
from registry import Registry
from services.demo.traffic import infer_body

CONNECTIONS = 16


def seen_after(url: str, body: bytes, version: int, timeout_s: float = 10.0) -> float:
    """Seconds until an answer names `version` (the gateway polls the registry)."""
    moved = time.monotonic()
    while time.monotonic() - moved < timeout_s:
        request = urllib.request.Request(  # noqa: S310 -- the gateway on loopback
            url, body, {"content-type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            if orjson.loads(response.read())["model_version"] == str(version):
                return round(time.monotonic() - moved, 2)
        time.sleep(0.05)
    raise RuntimeError(f"version {version} did not answer within {timeout_s} s of the move")


def main() -> None:
    parser = model_parser(__doc__, seconds=10.0)
    args = parser.parse_args()
    ensure_wrk()
    name, widths = MODELS[args.model]
    work = Path(tempfile.mkdtemp(prefix="mlgate-swap-"))
    home = work / "home"
    registry = Registry(home=home)
    for seed in (0, 1):  # versions 1 and 2; each registration points production at itself
        register(registry, name, seed=seed, widths=widths)
    registry.set_alias(name, "production", 1, reason="swap benchmark")
    row = np.random.default_rng(11).standard_normal((1, widths[0])).astype(np.float32)
    body = infer_body("x", row)
    server, port = serve(Path(__file__).resolve().parent.parent, home, work / "gateway.log")
    url = f"http://127.0.0.1:{port}/v2/models/{name}/infer"
    runs: list[dict[str, Any]] = []
    serving = 1
    try:
        run_wrk_json(url, body, connections=CONNECTIONS, seconds=2)  # warm
        for repeat in range(args.repeats):
            for kind in ("moves", "still") if repeat % 2 == 0 else ("still", "moves"):
                moved: list[float] = []

                def mover(moved: list[float] = moved) -> None:
                    nonlocal serving
                    for _ in range(2):  # at a third and at two thirds of the run
                        time.sleep(args.seconds / 3)
                        serving = 3 - serving
                        registry.set_alias(name, "production", serving, reason="swap benchmark")
                        moved.append(seen_after(url, body, serving))

                thread = threading.Thread(target=mover) if kind == "moves" else None
                if thread is not None:
                    thread.start()
                result = run_wrk_json(url, body, connections=CONNECTIONS, seconds=args.seconds)
                if thread is not None:
                    thread.join()
                time.sleep(2.0)  # the last move's old version drains and unloads off the record
                statuses = result.to_json()["statuses"]
                run = {
                    "kind": kind,
                    "moves": len(moved),
                    "answered_by_new_version_after_s": moved,
                    "rps": result.rps,
                    "p50_ms": result.p50_ms,
                    "p99_ms": result.p99_ms,
                    "not_200": sum(v for k, v in statuses.items() if k != "200"),
                    "socket_errors": result.socket_errors,
                }
                runs.append(run)
                print(run, flush=True)
    finally:
        server.stop()
        registry.close()
    for kind in ("moves", "still"):
        mine = [r for r in runs if r["kind"] == kind]
        print(
            kind,
            {k: statistics.median(r[k] for r in mine) for k in ("rps", "p50_ms", "p99_ms")},
            "answers other than 200:",
            sum(r["not_200"] for r in mine),
            "socket errors:",
            sum(r["socket_errors"] for r in mine),
            flush=True,
        )


if __name__ == "__main__":
    main()

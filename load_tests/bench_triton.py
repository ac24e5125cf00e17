"""What the gateway costs in front of Triton: the same model three ways, side by side.

    python -m load_tests.bench_triton [--model tiny|wide] [--seconds 4] [--repeats 2]

- `triton`: PyTriton's tritonserver (Triton 2.51, onnxruntime in its Python backend,
  dynamic batching up to 64), called directly over HTTP;
- `mlgate→triton`: `mlgate serve` with the version deployed as `runtime: triton`, each
  batch forwarded to that same Triton over gRPC (validation, batching, the inference log,
  drift and metrics in the gateway);
- `mlgate`: `mlgate serve` running the same ONNX file itself (onnxruntime).

Triton and the gateway share core 0 (one core of serving hardware, as in bench_peers);
wrk runs on core 1. Server CPU per request counts the gateway and, for `mlgate→triton`,
the Triton behind it. Closed loop at 1 and 16 connections; runs interleaved by rotation and
medians reported. Prints a Markdown table; writes load_tests/results/<date>-triton-<model>.json.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from examples.wide_mlp.model import TINY_WIDTHS, WIDTHS
from load_tests.bench_peers import CLIENT_CPU, MAX_BATCH, RESULTS, SERVER_CPU, closed, prepare
from load_tests.peers import servers
from load_tests.peers.servers import Peer
from load_tests.wrk import ensure_wrk, run_wrk
from registry import Registry

CONNECTIONS = (1, 16)


def _warm(peer: Peer) -> None:
    run_wrk(peer.url, peer.body, connections=8, seconds=2, header_length=None,
            content_type="application/json", cpu=CLIENT_CPU)  # fmt: skip


def run(model: str, seconds: float, repeats: int) -> dict[str, Any]:
    ensure_wrk()
    widths = TINY_WIDTHS if model == "tiny" else WIDTHS
    work = Path(tempfile.mkdtemp(prefix="mlgate-triton-"))
    local_home, forward_home = work / "local", work / "forward"
    peers: list[Peer] = []
    try:
        onnx, row = prepare(local_home, model, widths)
        shutil.copytree(local_home, forward_home)
        triton = servers.triton(onnx, row, SERVER_CPU, work / "triton.log", work / "pytriton")
        peers.append(triton)
        triton.server.start()
        registry = Registry(home=forward_home)
        registry.set_serving_config(
            f"{model}@production",
            {"runtime": "triton", "triton_url": triton.grpc, "triton_model": "model",
             "triton_version": "1"},
        )  # fmt: skip
        registry.close()
        forward = servers.mlgate(forward_home, model, row, SERVER_CPU, work / "forward.log",
                                 MAX_BATCH, name="mlgate→triton")  # fmt: skip
        local = servers.mlgate(local_home, model, row, SERVER_CPU, work / "local.log", MAX_BATCH)
        for peer in (forward, local):
            peers.append(peer)
            peer.server.start()
        for peer in peers:
            _warm(peer)
            if peer.pausable:
                peer.server.pause()
        runs: dict[tuple[str, int], list[dict[str, Any]]] = {}
        for repeat in range(repeats):
            order = peers[repeat % len(peers) :] + peers[: repeat % len(peers)]
            for connections in CONNECTIONS:
                for peer in order:
                    engine = triton.server.cpu_seconds()
                    measured = closed(peer, connections, seconds)
                    if peer is forward:  # the Triton behind it works for it: count both
                        measured["server_cpu_s"] += triton.server.cpu_seconds() - engine
                    runs.setdefault((peer.name, connections), []).append(measured)
    finally:
        for peer in peers:
            peer.server.stop()
        shutil.rmtree(work, ignore_errors=True)
    rows = []
    for (name, connections), found in runs.items():
        rows.append({
            "server": name,
            "connections": connections,
            "ok_rps": statistics.median(r["ok_rps"] for r in found),
            "p50_ms": statistics.median(r["p50_ms"] for r in found),
            "p99_ms": statistics.median(r["p99_ms"] for r in found),
            "server_cpu_ms_per_req": statistics.median(
                1000 * r["server_cpu_s"] / max(r["requests"], 1) for r in found
            ),
            "mean_batch": statistics.median(r["mean_batch"] or 0 for r in found),
            "errors": [r["errors"] for r in found if r["errors"]],
        })  # fmt: skip
    return {"model": model, "seconds": seconds, "repeats": repeats, "rows": rows}


def table(result: dict[str, Any]) -> str:
    lines = [
        f"model {result['model']}, {result['seconds']} s × {result['repeats']} runs, medians",
        "",
        "| server | conns | req/s | p50 ms | p99 ms | server CPU ms/req | mean batch | errors |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in sorted(result["rows"], key=lambda r: (r["connections"], r["server"])):
        lines.append(
            f"| {r['server']} | {r['connections']} | {r['ok_rps']:,.0f} | {r['p50_ms']:.2f} | "
            f"{r['p99_ms']:.2f} | {r['server_cpu_ms_per_req']:.3f} | {r['mean_batch']:.1f} | "
            f"{r['errors'] or '-'} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", choices=["tiny", "wide"], default="tiny")
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    result = run(args.model, args.seconds, args.repeats)
    result["command"] = " ".join(["python -m load_tests.bench_triton", *sys.argv[1:]])
    date = datetime.now(UTC).strftime("%Y-%m-%d")
    (RESULTS / f"{date}-triton-{args.model}.json").write_text(json.dumps(result, indent=2))
    print(table(result))


if __name__ == "__main__":
    main()

"""Batching on vs off, and the gateway's added latency, on a compute-bound model.

    python -m load_tests.bench_batching [--seconds 8] [--repeats 3]

One run on one machine, side by side: the same gateway code serves the same registered
model (examples/wide_mlp) twice, in two processes that differ only in
MLGATE_MAX_BATCH_SIZE (64 vs 1). wrk drives each in turn, interleaved (on, off, off, on,
...) at 1, 8 and 64 connections with one-row binary Open Inference Protocol requests; the
medians over the repeats are reported. In-process onnxruntime at batch 1 (same session
options as the gateway) is the floor for low-load latency. Results go to
load_tests/results/<date>-batching.{md,json}. This is a benchmark, not a test: it asserts
nothing about speed.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import orjson

from examples.wide_mlp.model import WIDTHS, register
from load_tests.processes import tree_cpu_seconds
from load_tests.wrk import WrkResult, ensure_wrk, run_wrk
from registry import Registry
from services.demo.traffic import GatewayProcess, binary_infer_body

CONNECTIONS = (1, 8, 64)
MODES = {"on": "64", "off": "1"}
RESULTS = Path(__file__).parent / "results"


def session_for(model_file: Path) -> ort.InferenceSession:
    """The gateway's own session options: one intra-op thread, no spinning."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(model_file), options, providers=["CPUExecutionProvider"])


def batch1_p50_ms(session: ort.InferenceSession, runs: int = 300) -> float:
    x = np.random.default_rng(2).standard_normal((1, WIDTHS[0])).astype(np.float32)
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        session.run(None, {"x": x})
        samples.append(time.perf_counter() - started)
    return statistics.median(samples) * 1000


def in_process(session: ort.InferenceSession, runs: int = 400) -> dict[str, float]:
    timings: dict[int, list[float]] = {}
    for batch in (1, 64):
        x = np.random.default_rng(0).standard_normal((batch, WIDTHS[0])).astype(np.float32)
        for _ in range(20):
            session.run(None, {"x": x})
        samples = []
        for _ in range(runs if batch == 1 else runs // 8):
            started = time.perf_counter()
            session.run(None, {"x": x})
            samples.append(time.perf_counter() - started)
        timings[batch] = samples
    p50_1 = statistics.median(timings[1]) * 1000
    p50_64 = statistics.median(timings[64]) * 1000
    return {
        "batch1_p50_ms": round(p50_1, 3),
        "batch1_p99_ms": round(float(np.percentile(timings[1], 99)) * 1000, 3),
        "batch64_p50_ms": round(p50_64, 3),
        "per_row_ratio_1_vs_64": round(p50_1 / (p50_64 / 64), 2),
    }


def request_body() -> tuple[bytes, int]:
    x = np.random.default_rng(1).standard_normal((1, WIDTHS[0])).astype(np.float32)
    return binary_infer_body("x", x, ["output"])


def stats(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"{url}/v2/models/wide-mlp/stats", timeout=10) as response:  # noqa: S310
        document: dict[str, Any] = orjson.loads(response.read())
    first: dict[str, Any] = document["model_stats"][0]
    return first


def one_run(
    gateway: GatewayProcess, body: bytes, header: int, connections: int, seconds: float
) -> dict[str, Any]:
    before, cpu_before = stats(gateway.url), tree_cpu_seconds(gateway.pid)
    result: WrkResult = run_wrk(
        f"{gateway.url}/v2/models/wide-mlp/infer",
        body,
        connections=connections,
        seconds=seconds,
        header_length=header,
    )
    after, cpu_after = stats(gateway.url), tree_cpu_seconds(gateway.pid)
    batches = after["execution_count"] - before["execution_count"]
    rows = after["inference_count"] - before["inference_count"]
    return {
        **result.to_json(),
        "mean_batch_size": round(rows / batches, 2) if batches else None,
        "gateway_cpu_s": round(cpu_after - cpu_before, 2),
    }


def median_of(runs: list[dict[str, Any]], key: str) -> float:
    return float(statistics.median(r[key] for r in runs if r[key] is not None))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    ensure_wrk()
    started = datetime.now(UTC)
    with tempfile.TemporaryDirectory(prefix="mlgate-bench-") as home:
        registry = Registry(home=home)
        ref = register(registry)
        _, _, folder = registry.open_servable(ref, "onnx")
        registry.close()
        session = session_for(folder / "model.onnx")
        floor = in_process(session)
        print(f"in-process onnxruntime: {floor}")
        body, header = request_body()
        runs: list[dict[str, Any]] = []
        gateways = {
            mode: GatewayProcess(Path(home), None, env={"MLGATE_MAX_BATCH_SIZE": size})
            for mode, size in MODES.items()
        }
        with gateways["on"], gateways["off"]:
            for gateway in gateways.values():
                run_wrk(
                    f"{gateway.url}/v2/models/wide-mlp/infer",
                    body,
                    connections=8,
                    seconds=2,
                    header_length=header,
                )  # warm-up, discarded
            for repeat in range(args.repeats):
                for connections in CONNECTIONS:
                    order = ["on", "off"] if (repeat + connections) % 2 == 0 else ["off", "on"]
                    for mode in order:
                        run = one_run(gateways[mode], body, header, connections, args.seconds)
                        run.update(mode=mode, repeat=repeat)
                        if connections == 1:
                            # The floor, measured right next to the run it is compared with.
                            run["in_process_p50_ms"] = round(batch1_p50_ms(session), 3)
                            run["added_p50_ms"] = round(run["p50_ms"] - run["in_process_p50_ms"], 3)
                        runs.append(run)
                        print(
                            f"batching {mode:3} c={connections:2}: {run['rps']:8.1f} req/s "
                            f"p50 {run['p50_ms']:7.2f} ms p99 {run['p99_ms']:7.2f} ms "
                            f"batch {run['mean_batch_size']} statuses {run['statuses']}"
                        )
    summary = summarise(runs, floor)
    write(args.out, started, floor, runs, summary, args)


def summarise(runs: list[dict[str, Any]], floor: dict[str, float]) -> dict[str, Any]:
    table: dict[str, Any] = {}
    for mode in MODES:
        for connections in CONNECTIONS:
            group = [r for r in runs if r["mode"] == mode and r["connections"] == connections]
            table[f"{mode}/{connections}"] = {
                key: round(median_of(group, key), 3)
                for key in (
                    "rps",
                    "p50_ms",
                    "p99_ms",
                    "mean_batch_size",
                    "wrk_cpu_s",
                    "gateway_cpu_s",
                )
            } | {
                "errors": sum(
                    r["socket_errors"] + r["requests"] - r["statuses"]["200"] for r in group
                )
            }
    ratios = {
        f"throughput_on_vs_off_c{c}": round(table[f"on/{c}"]["rps"] / table[f"off/{c}"]["rps"], 2)
        for c in CONNECTIONS
    }
    low_load = [r["added_p50_ms"] for r in runs if r["mode"] == "on" and r["connections"] == 1]
    ratios["added_latency_p50_ms_at_1_client"] = round(statistics.median(low_load), 3)
    return {"table": table, "ratios": ratios}


def write(
    out: Path,
    started: datetime,
    floor: dict[str, float],
    runs: list[dict[str, Any]],
    summary: dict[str, Any],
    args: argparse.Namespace,
) -> None:
    out.mkdir(parents=True, exist_ok=True)
    stem = out / f"{started:%Y-%m-%d}-batching"
    document = {
        "started": started.isoformat(),
        "seconds": args.seconds,
        "repeats": args.repeats,
        "cpus": os.cpu_count(),
        "in_process": floor,
        "summary": summary,
        "runs": runs,
    }
    stem.with_suffix(".json").write_text(json.dumps(document, indent=2))
    lines = [
        f"# Batching on vs off: wide MLP (768→3072→3072→768→16), {started:%Y-%m-%d}",
        "",
        f"`python -m load_tests.bench_batching --seconds {args.seconds:g} "
        f"--repeats {args.repeats}` on {os.cpu_count()} CPUs; wrk, 1 thread, one-row binary "
        "OIP requests; medians of "
        f"{args.repeats} interleaved runs of {args.seconds:g} s each.",
        "",
        f"In-process onnxruntime (1 thread): batch 1 p50 {floor['batch1_p50_ms']} ms, "
        f"batch 64 p50 {floor['batch64_p50_ms']} ms: batch 64 is "
        f"{floor['per_row_ratio_1_vs_64']}× cheaper per row.",
        "",
        "| batching | connections | req/s | p50 ms | p99 ms | mean batch | errors "
        "| wrk CPU s | gateway CPU s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for key, row in summary["table"].items():
        mode, connections = key.split("/")
        lines.append(
            f"| {mode} | {connections} | {row['rps']:.0f} | {row['p50_ms']:.2f} "
            f"| {row['p99_ms']:.2f} | {row['mean_batch_size']:.2f} | {row['errors']} "
            f"| {row['wrk_cpu_s']:.2f} | {row['gateway_cpu_s']:.2f} |"
        )
    lines += [
        "",
        "Added latency at 1 client: the gateway's p50 (wrk, loopback HTTP, batching on) minus "
        "in-process onnxruntime's batch-1 p50 measured right after each run; median over runs.",
        "",
        "Ratios:",
        "",
    ]
    lines += [f"- {key}: {value}" for key, value in summary["ratios"].items()]
    stem.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()

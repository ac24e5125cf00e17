"""Serving throughput with monitoring on vs off, side by side in one run.

    python -m load_tests.bench_monitoring [--seconds 8] [--repeats 5]
        [--model credit-risk|tiny|wide] [--workers N] [--modes on,off] [--connections 64]

The same gateway code serves the same registered model (the credit-risk demo model: small,
so the gateway's own per-request work, monitoring included, is most of the cost) in four
processes that differ only in monitoring:

    on     the defaults: every request's rows offered to the inference log (rate 1.0,
           capped at 1000 rows/s), the log's writer thread, and in-process monitoring
           rounds every 60 s (drift and data quality, quality buckets and estimates, the
           decision; a round lands in about one run in seven: their cost, amortised)
    on-5s  the same with a check every 5 s (12 times the default rate: an upper bound)
    log    the inference log only (MLGATE_DRIFT_MONITOR=off)
    off    MLGATE_LOG_SAMPLE_RATE=0 and MLGATE_DRIFT_MONITOR=off

`--model tiny|wide` serves `bench_peers`' overhead-bound or compute-bound MLP instead, and
`--workers N` runs every gateway with N worker processes (then the gateways are not pinned:
their workers share both cores with wrk, which stays on core 1).

Prometheus metrics are counted in all of them (they cannot be turned off); the event-loop
lag shedder is off in all of them. Throughput is goodput: answers 200 per second, with
refusals counted apart. wrk drives one
gateway at a time with one-row JSON requests, at 8 and 64 connections, the modes in a
rotating order each repeat; the gateways not being measured are paused (SIGSTOP), so their
background work cannot steal the measured one's CPU. Every gateway thread is pinned to
core 0 and wrk to core 1 (taskset), so monitoring's threads compete with serving for the
one core serving has, as they would on a busy replica, and the two processes never trade
cores between runs. Reported: median throughput and p99,
and the gateway's CPU time per request (psutil), which shared-machine noise moves far
less than throughput. Results go to load_tests/results/<date>-monitoring.{md,json}. A
benchmark, not a test: it asserts nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import statistics
import subprocess
import tempfile
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from examples.credit_risk.data import FEATURES, generate, source_uri
from examples.credit_risk.train import TRAINER
from exporters import export
from load_tests.bench_peers import MODELS
from load_tests.bench_peers import prepare as prepare_mlp
from load_tests.processes import tree_cpu_seconds
from load_tests.wrk import ensure_wrk, run_wrk
from registry import Registry
from registry.entrypoints import resolve_entrypoint
from services.demo.traffic import GatewayProcess, infer_body

CONNECTIONS = (8, 64)
NAME = "credit-risk"
RESULTS = Path(__file__).parent / "results"
SERVER_CPU, CLIENT_CPU = 0, 1
# The event-loop-lag shedder is off in every mode: it refuses a share of requests that
# depends on scheduling noise, and the comparison is of monitoring's cost, not of shedding.
_COMMON = {"MLGATE_LOOP_LAG_SHED_MS": "0"}
MODES: dict[str, dict[str, str]] = {
    "on": {**_COMMON},
    "on-5s": {**_COMMON, "MLGATE_DRIFT_INTERVAL_S": "5"},
    "log": {**_COMMON, "MLGATE_DRIFT_MONITOR": "off"},
    "off": {**_COMMON, "MLGATE_LOG_SAMPLE_RATE": "0", "MLGATE_DRIFT_MONITOR": "off"},
}


def prepare(home: Path, model: str) -> tuple[str, bytes]:
    """Register `model`; its served name and a one-row request body."""
    if model in MODELS:
        name, widths = MODELS[model]
        _, row = prepare_mlp(home, name, widths)
        return name, infer_body("x", row)
    registry = Registry(home=home)
    data = generate(20_000, seed=7)
    trainer = resolve_entrypoint(TRAINER, "trainer entrypoint")
    version = trainer(data, seed=7, source=source_uri(20_000, 7)).register(
        registry, NAME, trainer=TRAINER
    )
    assert export(registry, version.ref, "onnx").passed
    registry.set_alias(NAME, "production", version.version, reason="monitoring benchmark")
    registry.close()
    return NAME, request_body()


def request_body() -> bytes:
    row = generate(1, seed=11)[FEATURES].to_numpy(dtype="float32")
    return orjson.dumps(
        {
            "inputs": [
                {
                    "name": "features",
                    "shape": [1, len(FEATURES)],
                    "datatype": "FP32",
                    "data": row.ravel().tolist(),
                }
            ]
        }
    )


def scrape(url: str) -> dict[str, float]:
    """The few series the report needs, summed over their labels."""
    with urllib.request.urlopen(f"{url}/metrics", timeout=10) as response:  # noqa: S310
        text = response.read().decode()
    wanted = {
        'mlgate_inference_log_rows_total{outcome="recorded"}': "log_recorded",
        'mlgate_inference_log_rows_total{outcome="flushed"}': "log_flushed",
        'mlgate_inference_log_rows_total{outcome="capped"}': "log_capped",
    }
    found: dict[str, float] = {"drift_last_check": 0.0}
    for line in text.splitlines():
        key, _, value = line.rpartition(" ")
        if key in wanted:
            found[wanted[key]] = float(value)
        elif key.startswith("mlgate_drift_last_check_timestamp_seconds{"):
            found["drift_last_check"] = max(found["drift_last_check"], float(value))
    return found


def checks_stored(url: str, name: str) -> int:
    try:
        with urllib.request.urlopen(  # noqa: S310
            f"{url}/monitoring/models/{name}/drift", timeout=10
        ) as response:
            return int(orjson.loads(response.read())["id"])
    except urllib.error.HTTPError:
        return 0


@contextlib.contextmanager
def paused(gateways: list[GatewayProcess]) -> Iterator[None]:
    for gateway in gateways:
        os.killpg(gateway.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        for gateway in gateways:
            os.killpg(gateway.pid, signal.SIGCONT)


def pin(pid: int, cpu: int) -> None:
    """Every thread of the process (and those it starts later) on one core."""
    subprocess.run(
        ["/usr/bin/taskset", "-a", "-p", "-c", str(cpu), str(pid)],
        check=True,
        capture_output=True,
    )


def one_run(
    gateway: GatewayProcess, name: str, body: bytes, connections: int, seconds: float
) -> dict[str, Any]:
    before, checks_before = scrape(gateway.url), checks_stored(gateway.url, name)
    cpu_before = tree_cpu_seconds(gateway.pid)
    result = run_wrk(
        f"{gateway.url}/v2/models/{name}/infer",
        body,
        connections=connections,
        seconds=seconds,
        header_length=None,
        content_type="application/json",
        cpu=CLIENT_CPU,
    )
    cpu = tree_cpu_seconds(gateway.pid) - cpu_before
    after, checks_after = scrape(gateway.url), checks_stored(gateway.url, name)
    statuses = result.to_json()["statuses"]
    answered = sum(statuses.values())
    return {
        **result.to_json(),
        "goodput": round(statuses.get("200", 0) / seconds, 1),
        "refused": answered - statuses.get("200", 0),
        "gateway_cpu_s": round(cpu, 3),
        "cpu_us_per_request": round(cpu / answered * 1e6, 2) if answered else None,
        "log_rows_recorded": after.get("log_recorded", 0) - before.get("log_recorded", 0),
        "log_rows_capped": after.get("log_capped", 0) - before.get("log_capped", 0),
        "drift_checks": checks_after - checks_before,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--model", choices=["credit-risk", *MODELS], default="credit-risk")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--connections", default=",".join(map(str, CONNECTIONS)))
    args = parser.parse_args()
    modes = {mode: MODES[mode] for mode in args.modes.split(",")}
    if "off" not in modes:
        parser.error("--modes must include off: every ratio is to it")
    connection_counts = tuple(int(c) for c in args.connections.split(","))
    ensure_wrk()
    started = datetime.now(UTC)
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="mlgate-bench-") as folder:
        home = Path(folder)
        name, body = prepare(home, args.model)
        workers = {"MLGATE_WORKERS": str(args.workers)}
        gateways = {
            mode: GatewayProcess(home, None, env={**env, **workers}) for mode, env in modes.items()
        }

        def others(mode: str) -> list[GatewayProcess]:
            return [g for m, g in gateways.items() if m != mode]

        with contextlib.ExitStack() as running:
            for gateway in gateways.values():
                running.enter_context(gateway)
                if args.workers == 1:
                    pin(gateway.pid, SERVER_CPU)
            for mode, gateway in gateways.items():
                with paused(others(mode)):
                    run_wrk(
                        f"{gateway.url}/v2/models/{name}/infer",
                        body,
                        connections=8,
                        seconds=2,
                        header_length=None,
                        content_type="application/json",
                        cpu=CLIENT_CPU,
                    )  # warm-up, discarded
            for repeat in range(args.repeats):
                for connections in connection_counts:
                    order = list(modes)
                    shift = (repeat + connections) % len(order)
                    for mode in order[shift:] + order[:shift]:
                        with paused(others(mode)):
                            run = one_run(gateways[mode], name, body, connections, args.seconds)
                        run.update(mode=mode, repeat=repeat)
                        runs.append(run)
                        print(
                            f"monitoring {mode:5} c={connections:2}: {run['goodput']:8.1f} 200/s "
                            f"p50 {run['p50_ms']:6.2f} ms p99 {run['p99_ms']:6.2f} ms "
                            f"cpu {run['cpu_us_per_request']} us/req "
                            f"log rows {run['log_rows_recorded']:.0f} "
                            f"drift checks {run['drift_checks']} statuses {run['statuses']}"
                        )
    summary = summarise(runs, modes, connection_counts)
    write(args.out, started, runs, summary, args, modes)


def summarise(
    runs: list[dict[str, Any]], modes: dict[str, Any], connection_counts: tuple[int, ...]
) -> dict[str, Any]:
    table: dict[str, Any] = {}
    for connections in connection_counts:
        row: dict[str, Any] = {}
        for mode in modes:
            group = [r for r in runs if r["mode"] == mode and r["connections"] == connections]
            row[mode] = {
                key: round(statistics.median(r[key] for r in group), 3)
                for key in ("rps", "goodput", "p50_ms", "p99_ms", "cpu_us_per_request")
            }
            row[mode]["refused"] = sum(r["refused"] for r in group)
            row[mode]["drift_checks"] = sum(r["drift_checks"] for r in group)
            row[mode]["log_rows_recorded"] = sum(r["log_rows_recorded"] for r in group)
        for mode in (m for m in modes if m != "off"):
            row[f"throughput_{mode}_off"] = round(row[mode]["goodput"] / row["off"]["goodput"], 3)
            row[f"cpu_per_request_{mode}_off"] = round(
                row[mode]["cpu_us_per_request"] / row["off"]["cpu_us_per_request"], 3
            )
        table[str(connections)] = row
    return table


def write(
    out: Path,
    started: datetime,
    runs: list[dict[str, Any]],
    summary: dict[str, Any],
    args: Any,
    modes: dict[str, Any],
) -> None:
    out.mkdir(parents=True, exist_ok=True)
    suffix = "" if args.model == "credit-risk" else f"-{args.model}"
    suffix += "" if args.workers == 1 else f"-w{args.workers}"
    stem = out / f"{started:%Y-%m-%d}-monitoring{suffix}"
    stem.with_suffix(".json").write_text(
        json.dumps({"started": started.isoformat(), "summary": summary, "runs": runs}, indent=2)
    )
    lines = [
        f"# Monitoring overhead, {started:%Y-%m-%d}",
        "",
        f"`python -m load_tests.bench_monitoring --seconds {args.seconds:g} "
        f"--repeats {args.repeats} --model {args.model} --workers {args.workers} "
        f"--modes {args.modes} --connections {args.connections}` on 2 shared cores (noisy); "
        f"wrk, one-row JSON requests to the {args.model} model; medians of {args.repeats} "
        "runs per cell, modes in rotating order, the idle gateways paused.",
        "",
        "| connections | mode | goodput (200/s) | ÷ off | refused | p99 ms | "
        "gateway CPU µs/request | ÷ off | drift checks | log rows |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for connections, row in summary.items():
        for mode in modes:
            cell = row[mode]
            ratio = "1" if mode == "off" else f"{row[f'throughput_{mode}_off']:.3f}"
            cpu_ratio = "1" if mode == "off" else f"{row[f'cpu_per_request_{mode}_off']:.3f}"
            lines.append(
                f"| {connections} | {mode} | {cell['goodput']:.0f} | {ratio} | {cell['refused']} | "
                f"{cell['p99_ms']:.2f} | {cell['cpu_us_per_request']:.1f} | {cpu_ratio} | "
                f"{cell['drift_checks']} | {cell['log_rows_recorded']:.0f} |"
            )
    stem.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print(stem.with_suffix(".md").read_text())


if __name__ == "__main__":
    main()

"""What a refusal costs the gateway against a success, measured directly.

    python -m load_tests.bench_refusal [--model tiny|wide] [--repeats 3] [--seconds 6]

Two `mlgate serve` on the same registered model, both pinned to core 0 (the one not
measured paused), wrk on core 1 at 64 connections: one as shipped, where every request is
answered 200, and one whose door is nearly always closed (`MLGATE_LOOP_LAG_SHED_MS=0.0001`:
any lateness of the event loop at all is too much), where most inference is refused with
503 at the door, inside uvicorn's protocol, before any ASGI work (the door opens whenever
two probes in a row wake exactly on time, so some requests are still answered). The CPU
per success and per refusal are the least-squares fit of server CPU (the process tree)
= success × answered + refusal × refused over every run; the ratio is what a refusal
costs as a share of an answer, which bounds the goodput an overloaded gateway can keep
(`docs/benchmarks.md`, Capacity). A benchmark, not a test.
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from load_tests.bench_ab import model_parser, rotation, start_all
from load_tests.bench_peers import MODELS, RESULTS, prepare
from load_tests.wrk import ensure_wrk, run_wrk_json
from services.demo.traffic import infer_body

ROOT = Path(__file__).resolve().parent.parent
SETUPS = {"answered": {}, "refused": {"MLGATE_LOOP_LAG_SHED_MS": "0.0001"}}


def main() -> None:
    parser = model_parser(__doc__)
    args = parser.parse_args()
    ensure_wrk()
    name, widths = MODELS[args.model]
    work = Path(tempfile.mkdtemp(prefix="mlgate-refusal-"))
    _, row = prepare(work / "home", name, widths)
    body = infer_body("x", row)
    runs: list[dict[str, Any]] = []
    servers = start_all(SETUPS, work / "home", work, name)
    try:
        for repeat, label, server, url in rotation(servers, args.repeats):
            cpu = server.cpu_seconds()
            result = run_wrk_json(url, body, connections=64, seconds=args.seconds)
            used = server.cpu_seconds() - cpu
            runs.append(
                {
                    "setup": label,
                    "repeat": repeat,
                    "requests": result.requests,
                    "statuses": result.statuses,
                    "rps": result.rps,
                    "server_cpu_s": round(used, 3),
                    "cpu_us_per_request": round(used / max(1, result.requests) * 1e6, 1),
                    "refusals_without_retry_after": result.refusals_without_retry_after,
                }
            )
            print(json.dumps(runs[-1]), flush=True)
    finally:
        for server, _ in servers.values():
            server.stop()
    summary = {
        label: {
            "cpu_us_per_request": statistics.median(
                r["cpu_us_per_request"] for r in runs if r["setup"] == label
            ),
            "rps": statistics.median(r["rps"] for r in runs if r["setup"] == label),
        }
        for label in SETUPS
    }
    answered = np.array([[r["statuses"].get("200", 0) for r in runs]], dtype=float).T
    refused = np.array([[r["statuses"].get("503", 0) for r in runs]], dtype=float).T
    spent = np.array([r["server_cpu_s"] for r in runs])
    (success_s, refusal_s), *_ = np.linalg.lstsq(np.hstack([answered, refused]), spent, rcond=None)
    summary["fit"] = {
        "cpu_us_per_success": round(float(success_s) * 1e6, 1),
        "cpu_us_per_refusal": round(float(refusal_s) * 1e6, 1),
    }
    ratio = float(refusal_s / success_s)
    date = datetime.now(UTC).date().isoformat()
    out = {
        "date": date,
        "model": name,
        "command": " ".join(["python -m load_tests.bench_refusal", *sys.argv[1:]]),
        "summary": summary,
        "refusal_over_success": round(ratio, 3),
        "runs": runs,
    }
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{date}-refusal-{args.model}.json"
    path.write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps({k: out[k] for k in ("summary", "refusal_over_success")}), flush=True)
    print(f"wrote {path}", flush=True)


if __name__ == "__main__":
    main()

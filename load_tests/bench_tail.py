"""The tail at one connection: the gateway as shipped against the same gateway with the
inference log and the drift monitor off, side by side.

    python -m load_tests.bench_tail [--model tiny|wide] [--repeats 3] [--seconds 8]
                                    [--rate R] [--setup 'LABEL:NAME=VALUE,...' ...]

Both `mlgate serve` pinned to core 0 (the one not measured paused), wrk with one
connection on core 1 (or, with --rate, the open-loop generator at R requests a second),
the two alternated (and any `--setup` given: a label and its extra environment, e.g.
`--setup 'log 100:MLGATE_DRIFT_MONITOR=off,MLGATE_LOG_MAX_ROWS_PER_S=100'`); prints p50
and p99 per run and the medians. A benchmark, not a test.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path
from typing import Any

from load_tests import openloop
from load_tests.bench_ab import model_parser, rotation, start_all
from load_tests.bench_peers import MODELS, prepare
from load_tests.wrk import ensure_wrk, run_wrk_json
from services.demo.traffic import infer_body

ROOT = Path(__file__).resolve().parent.parent
SETUPS = {
    "monitoring on": {},
    "monitoring off": {"MLGATE_DRIFT_MONITOR": "off", "MLGATE_LOG_SAMPLE_RATE": "0"},
}


def main() -> None:
    parser = model_parser(__doc__, seconds=8.0)
    parser.add_argument("--rate", type=float, default=0.0)
    parser.add_argument("--setup", action="append", default=[], type=_setup)
    args = parser.parse_args()
    setups = {**SETUPS, **dict(args.setup)}
    ensure_wrk()
    name, widths = MODELS[args.model]
    work = Path(tempfile.mkdtemp(prefix="mlgate-tail-"))
    _, row = prepare(work / "home", name, widths)
    body = infer_body("x", row)
    (work / "body").write_bytes(body)
    runs: list[dict[str, Any]] = []
    servers = start_all(setups, work / "home", work, name)
    try:
        for _, label, _server, url in rotation(servers, args.repeats):
            run_wrk_json(url, body, connections=1, seconds=1)  # warm, not reported
            if args.rate:
                found = openloop.run_pinned(
                    url, work / "body", rate=args.rate, seconds=args.seconds, cpu=1
                )
                run = {k: found[k] for k in ("ok_rps", "p50_ms", "p99_ms", "statuses")}
            else:
                result = run_wrk_json(url, body, connections=1, seconds=args.seconds)
                run = {"ok_rps": result.rps, "p50_ms": result.p50_ms, "p99_ms": result.p99_ms}
            runs.append({"setup": label, **run})
            print(json.dumps(runs[-1]), flush=True)
    finally:
        for server, _ in servers.values():
            server.stop()
    for label in setups:
        mine = [r for r in runs if r["setup"] == label]
        medians = {k: statistics.median(r[k] for r in mine) for k in ("ok_rps", "p50_ms", "p99_ms")}
        print(label, json.dumps(medians), flush=True)


def _setup(text: str) -> tuple[str, dict[str, str]]:
    label, _, pairs = text.partition(":")
    env = dict(pair.split("=", 1) for pair in pairs.split(",") if pair)
    if not label.strip() or "/" in label:
        raise argparse.ArgumentTypeError(f"{text!r}: expected 'LABEL:NAME=VALUE,...'")
    return label.strip(), env


if __name__ == "__main__":
    main()

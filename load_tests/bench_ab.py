"""Two checkouts of the gateway side by side: before and after a change, same model, one run.

    git worktree add /tmp/before <commit>
    python -m load_tests.bench_ab /tmp/before . [--model tiny|wide] [--repeats 3] [--rate 8000]
                                                [--binary]

Registers the model in a temporary home, starts `mlgate serve` from each checkout (both
pinned to core 0, the one not measured paused), and alternates them (before/after, then
after/before): wrk at 64 connections, then, with --rate, the open-loop generator at that
rate. With --binary the closed-loop requests use the binary tensor extension (input and
output as raw bytes after a JSON header) instead of JSON. Reports medians of throughput,
the gateway's CPU µs per request, and the open loop's answered/s, p99 and refusals. A
benchmark, not a test.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from load_tests import openloop
from load_tests.bench_peers import MODELS, prepare
from load_tests.processes import ServerProcess
from load_tests.wrk import run_wrk, run_wrk_json
from services.demo.traffic import binary_infer_body, free_port, infer_body


def model_parser(
    doc: str | None, *, model: str = "tiny", seconds: float | None = 6.0
) -> argparse.ArgumentParser:
    """The benchmarks' common options: `--model` (a `bench_peers` model), `--repeats`, and
    `--seconds` a run (unless `seconds` is None); the description is the docstring's
    first paragraph."""
    parser = argparse.ArgumentParser(description=(doc or "").split("\n\n")[0])
    parser.add_argument("--model", choices=sorted(MODELS), default=model)
    parser.add_argument("--repeats", type=int, default=3)
    if seconds is not None:
        parser.add_argument("--seconds", type=float, default=seconds)
    return parser


def serve(
    root: Path, home: Path, log: Path, env: dict[str, str] | None = None
) -> tuple[ServerProcess, int]:
    """`mlgate serve` from the checkout at `root`, one worker, pinned to core 0, started."""
    port = free_port()
    argv = [sys.executable, "-m", "services.cli", "--home", str(home), "serve"]
    server = ServerProcess(
        [*argv, "--port", str(port), "--no-grpc", "--log-level", "warning"],
        f"http://127.0.0.1:{port}/v2/health/ready",
        env={"MLGATE_MAX_BATCH_SIZE": "64", "MLGATE_WORKERS": "1", **(env or {})},
        cpu=0,
        cwd=root,  # `python -m services.cli` imports the checkout it runs in
        log=log,
    )
    server.start()
    return server, port


def start_all(
    setups: dict[str, dict[str, str]], home: Path, work: Path, model: str
) -> dict[str, tuple[ServerProcess, str]]:
    """One paused gateway per setup (its extra `MLGATE_*` environment), from this checkout,
    on the model registered in `home`: label → (server, inference URL)."""
    root = Path(__file__).resolve().parent.parent
    servers: dict[str, tuple[ServerProcess, str]] = {}
    for label, env in setups.items():
        log = work / f"{label.replace(' ', '-')}.log"
        server, port = serve(root, home, log, env)
        server.pause()
        servers[label] = (server, f"http://127.0.0.1:{port}/v2/models/{model}/infer")
    return servers


def rotation(
    servers: dict[str, tuple[ServerProcess, str]], repeats: int
) -> Iterator[tuple[int, str, ServerProcess, str]]:
    """Each gateway in turn, resumed while the caller measures it and paused after; the
    order reversed every other repeat."""
    for repeat in range(repeats):
        order = list(servers) if repeat % 2 == 0 else list(reversed(servers))
        for label in order:
            server, url = servers[label]
            server.resume()
            time.sleep(0.5)
            try:
                yield repeat, label, server, url
            finally:
                server.pause()


def main() -> None:
    parser = model_parser(__doc__)
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    parser.add_argument("--rate", type=float, default=0.0)
    parser.add_argument("--binary", action="store_true")
    args = parser.parse_args()
    name, widths = MODELS[args.model]
    work = Path(tempfile.mkdtemp(prefix="mlgate-ab-"))
    _, row = prepare(work / "home", name, widths)
    body = infer_body("x", row)
    (work / "body").write_bytes(body)  # the open loop's: JSON
    closed_body, closed_header, closed_type = body, None, "application/json"
    if args.binary:
        closed_body, header = binary_infer_body("x", row, ["output"])
        closed_header, closed_type = header, "application/octet-stream"
    servers: dict[str, tuple[ServerProcess, str]] = {}
    results: dict[str, dict[str, list[Any]]] = {}
    try:
        for label in ("before", "after"):
            root = getattr(args, label).resolve()
            server, port = serve(root, work / "home", work / f"{label}.log")
            url = f"http://127.0.0.1:{port}/v2/models/{name}/infer"
            run_wrk_json(url, body, connections=8, seconds=2)  # warm-up
            server.pause()
            servers[label] = (server, url)
            results[label] = {"c64": [], "cpu_us": [], "open": []}
        for repeat in range(args.repeats):
            for label in ("before", "after") if repeat % 2 == 0 else ("after", "before"):
                server, url = servers[label]
                server.resume()
                time.sleep(0.3)
                cpu = server.cpu_seconds()
                closed = run_wrk(
                    url,
                    closed_body,
                    connections=64,
                    seconds=args.seconds,
                    header_length=closed_header,
                    content_type=closed_type,
                    cpu=1,
                )
                results[label]["c64"].append(closed.rps)
                results[label]["cpu_us"].append(
                    (server.cpu_seconds() - cpu) / max(1, closed.requests) * 1e6
                )
                if args.rate:
                    results[label]["open"].append(
                        openloop.run_pinned(
                            url, work / "body", rate=args.rate, seconds=args.seconds, cpu=1
                        )
                    )
                server.pause()
    finally:
        for server, _ in servers.values():
            server.stop()
    for label, found in results.items():
        line: dict[str, Any] = {
            "c64_rps": statistics.median(found["c64"]),
            "cpu_us_per_request": round(statistics.median(found["cpu_us"]), 1),
        }
        if found["open"]:
            line["open_ok_rps"] = statistics.median(r["ok_rps"] for r in found["open"])
            line["open_p99_ms"] = statistics.median(r["p99_ms"] for r in found["open"])
            line["open_refused"] = [
                {k: v for k, v in r["statuses"].items() if k != "200"} for r in found["open"]
            ]
            line["open_unfinished"] = [r["unfinished"] for r in found["open"]]
        print(label, json.dumps(line), flush=True)


if __name__ == "__main__":
    main()

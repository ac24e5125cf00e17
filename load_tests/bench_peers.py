"""mlgate against BentoML, Triton (PyTriton), a naive FastAPI app and the in-process limit,
at and past capacity, and mlgate with one worker process against two.

    python -m load_tests.bench_peers [--models tiny,wide] [--peers mlgate,bentoml,triton,fastapi]
                                     [--shapes closed,open,workers] [--seconds 6] [--repeats 3]

One run on one machine, side by side. For each model (tiny: an overhead-bound 16→64→64→4
MLP; wide: the compute-bound examples/wide_mlp) the same gate-passed ONNX file is served
by every peer, each pinned to core 0 with one onnxruntime thread; the load generator runs
on core 1. Every load shape runs every peer in a rotating order each repeat (A B C D,
B C D A, …) while the others are paused (SIGSTOP; Triton stays running), and the tables
hold medians:

    closed    wrk (C, Debian's), 1 / 8 / 64 / 256 connections, one-row JSON requests
    open      load_tests.openloop at 50 / 90 / 150 / 300 % of mlgate's closed-loop
              saturation throughput measured earlier in the same run (latency from the
              due time; with --shapes open alone, a closed-loop probe of mlgate at 64 and
              256 connections measures it)
    workers   after the peers are stopped: `mlgate serve --workers 1` against
              `--workers 2`, wrk at 64 connections; neither server nor wrk is pinned (the
              workers use both cores, and wrk shares them); each from its own copy of the
              registry home

Every row keeps goodput and refusals apart: `ok_rps` (200s per second) is the throughput;
`refused_rps` (429s and 503s per second), the refusals by status and those without a
Retry-After header are reported beside it, never in it. p99 is of the 200s in the open
loop, of every answer in the closed loop (wrk's), flagged where that includes refusals.
The server's CPU (its whole process tree) gives CPU µs per success, in rows without
refusals, and a derived CPU µs per refusal in overloaded rows (load_tests.peer_summary).

A run that fails (a peer that does not answer after resuming, a load generator that fails)
is recorded with its reason and the server's log tail, the peer is restarted if it no
longer answers, and the benchmark goes on (load_tests.peer_runs); failures are listed in
the JSON and the report. The in-process limit is onnxruntime alone on core 0
(load_tests.limit). Results go to load_tests/results/<date>-peers-<model>.{md,json,png}.
A benchmark, not a test: it asserts nothing.
"""

from __future__ import annotations

import argparse
import functools
import json
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from examples.wide_mlp.model import TINY_WIDTHS, WIDTHS, register
from load_tests.peer_report import write_report
from load_tests.peer_runs import (
    CLIENT_CPU,
    MAX_BATCH,
    SERVER_CPU,
    SLO_MS,
    Runner,
    closed,
    open_loop,
)
from load_tests.peer_summary import (
    MIN_REFUSED_SHARE,
    REFERENCE,
    label,
    saturation,
    summarize,
    workers_summary,
)
from load_tests.peers import servers
from load_tests.peers.servers import Peer
from load_tests.wrk import ensure_wrk
from registry import Registry

# bench_triton and bench_ab import these from here
__all__ = [
    "CLIENT_CPU",
    "MAX_BATCH",
    "MODELS",
    "RESULTS",
    "SERVER_CPU",
    "SLO_MS",
    "closed",
    "main",
    "one_model",
    "prepare",
]

MODELS = {"tiny": ("tiny-mlp", TINY_WIDTHS), "wide": ("wide-mlp", WIDTHS)}
PEERS = ("mlgate", "bentoml", "triton", "fastapi")
SHAPES = ("closed", "open", "workers")
CONNECTIONS = (1, 8, 64, 256)
OPEN_SHARES = (0.5, 0.9, 1.5, 3.0)
WORKERS, WORKERS_CONNECTIONS = (1, 2), 64
FALLBACK_RPS = 1000.0  # the open loop's 100 % without a closed-loop run of mlgate
RESULTS = Path(__file__).parent / "results"
ROOT = Path(__file__).resolve().parent.parent
Measure = Callable[[Peer], dict[str, Any]]
CPU_METHOD = (
    "per success: server CPU ÷ 200s, in rows without refusals; per refusal (derived): "
    "(server CPU − 200s × P) ÷ refusals, P the same peer's CPU per success in its "
    f"{REFERENCE} runs without a refusal, in runs where refusals are ≥ "
    f"{MIN_REFUSED_SHARE:.0%} of the answers, median over runs"
)  # peer_summary's docstring says more


def prepare(home: Path, name: str, widths: tuple[int, ...]) -> tuple[Path, np.ndarray]:
    """Register the model through the parity gate; the ONNX file every peer serves, and a row."""
    registry = Registry(home=home)
    register(registry, name, seed=0, widths=widths)
    _, _, folder = registry.open_servable(f"{name}@production", "onnx")
    registry.close()
    row = np.random.default_rng(11).standard_normal((1, widths[0])).astype(np.float32)
    return folder / "model.onnx", row


def make_peer(name: str, home: Path, model: str, onnx: Path, row: np.ndarray, work: Path) -> Peer:
    """The peer `name`, not started, pinned to the server core."""
    log = work / f"{name}.log"
    if name == "mlgate":
        return servers.mlgate(home, model, row, SERVER_CPU, log, MAX_BATCH)
    if name == "bentoml":
        return servers.bentoml(onnx, row, SERVER_CPU, log, MAX_BATCH, SLO_MS)
    if name == "triton":
        return servers.triton(onnx, row, SERVER_CPU, log, work / "pytriton")
    return servers.fastapi_naive(onnx, row, SERVER_CPU, log)


def rotated(order: list[str], repeat: int) -> list[str]:
    """A B C D, then B C D A, …: no peer always runs first (or right after another)."""
    shift = repeat % len(order) if order else 0
    return order[shift:] + order[:shift]


def _say(key: str, run: dict[str, Any]) -> None:
    where = f"[{key}] {run['peer']} {label(run) if run['shape'] != 'probe' else 'probe'}"
    if run["status"] != "ok":
        print(f"{where}: FAILED {run['reason']}", flush=True)
        return
    print(
        f"{where}: {run['ok_rps']} ok/s, {run['refused_rps']} refused/s "
        f"{run['refused'] or ''} p99 {run['p99_ms']} ms batch {run['mean_batch']} "
        f"errors {run['errors']}",
        flush=True,
    )


def _limit(onnx: Path) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "load_tests.limit", str(onnx), "--cpu", str(SERVER_CPU)],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    found: dict[str, Any] = json.loads(done.stdout)
    return found


def peer_shapes(
    key: str, runner: Runner, peers: list[str], shapes: list[str], args: Any
) -> tuple[list[dict[str, Any]], float, str]:
    """The closed and open shapes over the started peers: (runs, saturation, its source)."""
    repeats, seconds, work = args.repeats, args.seconds, args.work
    runs: list[dict[str, Any]] = []

    def run(name: str, shape: str, load: float, measure: Measure, **tags: Any) -> None:
        done = runner.attempt(name, shape, load, measure, seconds=seconds, **tags)
        runs.append(done)
        _say(key, done)

    if "closed" in shapes:
        for connections in CONNECTIONS:
            for r in range(repeats):
                for name in rotated(peers, r):
                    measure = functools.partial(closed, connections=connections, seconds=seconds)
                    run(name, "closed", connections, measure, repeat=r)
    elif "mlgate" in peers:  # open alone: measure the saturation it is a share of
        for connections in (64, 256):
            measure = functools.partial(closed, connections=connections, seconds=seconds)
            run("mlgate", "probe", connections, measure, repeat=0)
    top, source = saturation(runs)
    if top is None:
        top, source = FALLBACK_RPS, f"fixed {FALLBACK_RPS:,.0f} req/s ({source})"
    if "open" in shapes:
        for share in OPEN_SHARES:
            rate = round(top * share, 1)
            for r in range(repeats):
                for name in rotated(peers, r):
                    measure = functools.partial(open_loop, rate=rate, seconds=seconds, work=work)
                    run(name, "open", rate, measure, repeat=r, share=share)
    return runs, top, source


def workers_shape(
    key: str, runner: Runner, homes: dict[int, Path], model: str, row: np.ndarray, args: Any
) -> list[dict[str, Any]]:
    """mlgate --workers 1 against --workers 2, unpinned, wrk unpinned, 64 connections."""
    names = {count: f"mlgate-w{count}" for count in WORKERS}
    for count, name in names.items():
        factory = functools.partial(
            servers.mlgate,
            homes[count],
            model,
            row,
            None,  # not pinned: the workers may use every core
            args.work / f"{name}.log",
            MAX_BATCH,
            name=name,
            workers=count,
        )
        runner.add(name, factory, client_cpu=None)
    runs = []
    by_name = {name: count for count, name in names.items()}
    for r in range(args.repeats):
        for name in rotated(list(by_name), r):
            measure = functools.partial(
                closed, connections=WORKERS_CONNECTIONS, seconds=args.seconds, cpu=None
            )
            tags = {"repeat": r, "seconds": args.seconds, "workers": by_name[name]}
            done = runner.attempt(name, "workers", WORKERS_CONNECTIONS, measure, **tags)
            runs.append(done)
            _say(key, done)
    runner.stop(list(by_name))
    return runs


def one_model(key: str, peers: list[str], shapes: list[str], args: Any) -> dict[str, Any]:
    model, widths = MODELS[key]
    work = Path(tempfile.mkdtemp(prefix=f"mlgate-peers-{key}-"))
    args = argparse.Namespace(**{**vars(args), "work": work})
    runner = Runner(lambda line: print(f"[{key}] {line}", flush=True))
    try:
        home = work / "home"
        onnx, row = prepare(home, model, widths)
        homes = {n: work / f"home-w{n}" for n in WORKERS}
        if "workers" in shapes:  # copies of the fresh home: no log or lock shared
            for copy in homes.values():
                shutil.copytree(home, copy)
        limit: dict[str, Any] | None = None
        try:
            limit = _limit(onnx)
            print(f"[{key}] in-process limit: {limit}", flush=True)
        except (subprocess.SubprocessError, ValueError) as exc:
            detail = str(getattr(exc, "stderr", "") or "")[-2000:]
            runner.failures.append(
                {"peer": "limit", "shape": "limit", "reason": str(exc), "diagnostic": detail}
            )
        runs: list[dict[str, Any]] = []
        top, source = None, "not measured (no closed or open shape)"
        try:
            if {"closed", "open"} & set(shapes):
                for name in peers:
                    factory = functools.partial(make_peer, name, home, model, onnx, row, work)
                    runner.add(name, factory, client_cpu=CLIENT_CPU)
                found, top, source = peer_shapes(key, runner, peers, shapes, args)
                runs += found
                runner.stop()
            if "workers" in shapes:
                runs += workers_shape(key, runner, homes, model, row, args)
        finally:
            runner.stop()
        summary, references = summarize(runs, peers)
        return {
            "key": key,
            "model": model,
            "widths": list(widths),
            "limit": limit,
            "shapes": shapes,
            "connections": list(CONNECTIONS),
            "open_shares": list(OPEN_SHARES),
            "saturation_rps": top,
            "saturation_from": source,
            "summary": summary,
            "cpu_reference": references,
            "workers": workers_summary(runs),
            "cpu_method": CPU_METHOD,
            "failures": runner.failures,
            "events": runner.events,
            "runs": runs,
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="tiny,wide")
    parser.add_argument("--peers", default=",".join(PEERS))
    parser.add_argument("--shapes", default=",".join(SHAPES), help="closed,open,workers")
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    peers = [p for p in args.peers.split(",") if p]
    unknown = set(peers) - set(PEERS)
    if unknown:
        parser.error(f"unknown peers: {sorted(unknown)} (known: {', '.join(PEERS)})")
    asked = {s for s in args.shapes.split(",") if s}
    shapes = [s for s in SHAPES if s in asked]
    if not shapes or asked - set(SHAPES):
        parser.error(f"--shapes takes a comma-separated subset of {', '.join(SHAPES)}")
    models = args.models.split(",")
    for key in models:
        if key not in MODELS:
            parser.error(f"unknown model {key!r} (known: {', '.join(MODELS)})")
    ensure_wrk()
    date = datetime.now(UTC).date().isoformat()
    RESULTS.mkdir(exist_ok=True)
    for key in models:
        result = one_model(key, peers, shapes, args)
        result.update(
            date=date,
            seconds=args.seconds,
            repeats=args.repeats,
            command=" ".join(["python -m load_tests.bench_peers", *sys.argv[1:]]),
        )
        stem = RESULTS / f"{date}-peers-{key}"
        stem.with_suffix(".json").write_text(json.dumps(result, indent=1) + "\n")
        write_report(result, stem)
        failed = len(result["failures"])
        print(f"wrote {stem}.md" + (f" ({failed} failures, listed there)" if failed else ""))


if __name__ == "__main__":
    main()

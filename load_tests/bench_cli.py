"""How fast the `mlgate` command starts: `--help`, `models`, and `serve` until it answers.

    python -m load_tests.bench_cli [CHECKOUT ...] [--runs 9] [--workers 1] [--home DIR]

Each CHECKOUT (default: the current directory) is a work tree of this repository; every
command runs as `python -m services.cli ...` with the checkout as its working directory,
so the checkout's packages are the ones imported (`git worktree add /tmp/before <commit>`
gives a before to compare with). Runs alternate between checkouts, so a busy machine slows
them alike. Figures are the median (and min, max) wall time of `--runs` runs of:

    --help   `python -m services.cli --help`, to its exit
    models   `python -m services.cli models` on a registry home holding the demo model, to
             its exit
    serve    `python -m services.cli serve --no-grpc` on the demo model, with `--workers`
             worker processes (MLGATE_WORKERS; one by default, as the demo runs it): from
             the start of the process to its first 200 on /v2/health/ready (polled every
             10 ms; `ready`) and to the answer of one inference after it (`answered`)

The home is prepared once with what the first half of `mlgate demo` does (credit-risk
trained on 20,000 generated rows, registered, exported to ONNX and TorchScript through the
parity gate, promoted to production), by the first checkout, in a temporary folder unless
`--home` names one that already holds it. Every command gets it as MLGATE_HOME.
A benchmark, not a test: it prints figures and asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

from services.demo.traffic import free_port, gateway_ready

MODEL = "credit-risk"
# Run in the checkout: the demo's first half, with the checkout's own code.
PREPARE = """
import sys
from pathlib import Path

from registry.store import Registry
from services.demo.register import run_demo

registry = Registry(home=Path(sys.argv[1]))
run_demo(registry, rows=20_000, seed=7, name=sys.argv[2], progress=lambda _: None, log=print)
registry.close()
"""
# The production version's first input: its name and one row of zeros of its shape.
FIRST_INPUT = """
import json, sys
from pathlib import Path

from registry.store import Registry

spec = Registry(home=Path(sys.argv[1])).get(sys.argv[2] + "@production").signature.inputs[0]
print(json.dumps({"name": spec.name, "shape": [1, *spec.shape[1:]], "dtype": spec.dtype}))
"""
_JSON = {"content-type": "application/json"}
DATATYPES = {"float32": "FP32", "float64": "FP64", "int64": "INT64", "int32": "INT32"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkouts", nargs="*", type=Path, default=[Path.cwd()])
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--workers", type=int, default=1, help="mlgate serve's workers")
    parser.add_argument("--home", type=Path, help="a home already holding the demo model")
    args = parser.parse_args()
    checkouts = [c.resolve() for c in args.checkouts]
    with tempfile.TemporaryDirectory(prefix="bench-cli-") as scratch:
        home = args.home or Path(scratch) / "home"
        if args.home is None:
            print(f"preparing {home} with {checkouts[0]} ...", flush=True)
            _python(checkouts[0], home, "-c", PREPARE, str(home), MODEL)
        body = _infer_body(checkouts[0], home)
        workers = {"MLGATE_WORKERS": str(args.workers)}
        figures: dict[tuple[str, str], list[float]] = {}
        for run in range(args.runs):
            for checkout in checkouts:
                for name, seconds in measure(checkout, home, body, workers).items():
                    figures.setdefault((str(checkout), name), []).append(seconds)
            print(f"run {run + 1}/{args.runs} done", flush=True)
    report(figures, args.runs, args.workers)


def measure(checkout: Path, home: Path, body: bytes, env: dict[str, str]) -> dict[str, float]:
    return {
        "--help": _timed(lambda: _python(checkout, home, "-m", "services.cli", "--help")),
        "models": _timed(lambda: _python(checkout, home, "-m", "services.cli", "models")),
        **serve(checkout, home, body, env),
    }


def serve(checkout: Path, home: Path, body: bytes, env: dict[str, str]) -> dict[str, float]:
    """Seconds from starting `mlgate serve` to ready, and to one inference answered."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "services.cli", "serve", "--port", str(port)]
    started = time.perf_counter()
    process = subprocess.Popen(
        [*command, "--no-grpc", "--log-level", "warning"],
        cwd=checkout,
        env={**_env(home), **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,  # its process group is stopped as one below
    )
    try:
        while not gateway_ready(url):
            if process.poll() is not None:
                raise RuntimeError(f"mlgate serve exited: {process.communicate()[1][-2000:]!r}")
            if time.perf_counter() - started > 120:
                raise RuntimeError("mlgate serve was not ready within 120 s")
            time.sleep(0.01)
        ready = time.perf_counter() - started
        infer = f"{url}/v2/models/{MODEL}/infer"
        request = urllib.request.Request(infer, data=body, headers=_JSON)  # noqa: S310 - loopback
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - loopback
            response.read()
        answered = time.perf_counter() - started
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.communicate(timeout=60)
    return {"serve: ready": ready, "serve: answered": answered}


def report(figures: dict[tuple[str, str], list[float]], runs: int, workers: int) -> None:
    print(
        f"\n{runs} runs each, {sys.executable}, {os.cpu_count()} cores, serve with {workers} "
        f"worker{'s' if workers > 1 else ''}; load average before the report "
        f"{os.getloadavg()[0]:.1f}\n"
    )
    print("| checkout | command | median s | min s | max s |\n|---|---|---|---|---|")
    for (checkout, name), values in figures.items():
        print(
            f"| {checkout} | {name} | {statistics.median(values):.2f} | "
            f"{min(values):.2f} | {max(values):.2f} |"
        )


def _infer_body(checkout: Path, home: Path) -> bytes:
    first = json.loads(_python(checkout, home, "-c", FIRST_INPUT, str(home), MODEL))
    count = 1
    for size in first["shape"]:
        count *= size
    tensor = {
        "name": first["name"],
        "shape": first["shape"],
        "datatype": DATATYPES[first["dtype"]],
        "data": [0] * count,
    }
    return json.dumps({"inputs": [tensor]}).encode()


def _python(checkout: Path, home: Path, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, *args], cwd=checkout, env=_env(home), capture_output=True, text=True
    )
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args[:3])} failed in {checkout}: {done.stderr[-2000:]}")
    return done.stdout


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # it shadows the checkout
    return {**env, "MLGATE_HOME": str(home)}


def _timed(run: Callable[[], object]) -> float:
    started = time.perf_counter()
    run()
    return time.perf_counter() - started


if __name__ == "__main__":
    main()

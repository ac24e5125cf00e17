"""What one monitoring round costs on a model of `bench_peers`, by the rows logged since the
previous round and the model's width.

    python -m load_tests.bench_round [--model tiny|wide] [--rows 60000] [--repeats 3]
    PYTHONPATH=/tmp/before python -m load_tests.bench_round   # another checkout

Registers the model (its reference data included) in a fresh home, logs `--rows` one-row
predictions through a real `InferenceLog` (60,000 is a minute at the log's default cap),
and times `Monitor.run_once()`: the drift check and data quality of the window, and the
quality round (no labels). Prints the round's wall time and the process CPU it used,
medians of `--repeats` fresh homes, after Evidently is imported. A benchmark, not a test.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

from load_tests.bench_ab import model_parser
from load_tests.bench_peers import MODELS, prepare
from monitors.log.inference_log import InferenceLog
from monitors.loop import Monitor
from monitors.monitor import preload
from monitors.settings import MonitorSettings
from registry import Registry
from services.gateway.monitoring import log_settings

CHUNK = 100  # rows run through the model at once; each row is logged as its own request


def one_round(model: str, rows: int) -> tuple[float, float]:
    name, widths = MODELS[model]
    with tempfile.TemporaryDirectory(prefix="mlgate-round-") as folder:
        home = Path(folder)
        onnx, _ = prepare(home, name, widths)
        registry = Registry(home=home)
        version = registry.get(f"{name}@production")
        signature = version.signature
        settings = MonitorSettings(home=home)
        log = InferenceLog(
            log_settings(MonitorSettings(home=home, log_max_rows_per_s=1e9), "bench")
        )
        log.start()
        session = ort.InferenceSession(str(onnx))
        feed = session.get_inputs()[0].name
        rng = np.random.default_rng(0)
        logged = signature.inputs[0].name
        for chunk in range(rows // CHUNK):
            x = rng.standard_normal((CHUNK, widths[0])).astype(np.float32)
            outputs = dict(zip(signature.output_names, session.run(None, {feed: x}), strict=True))
            for j in range(CHUNK):
                one = {k: v[j : j + 1] for k, v in outputs.items()}
                log.record(name, version.version, signature, None, {logged: x[j : j + 1]}, one, 0.0)
            if chunk % 10 == 9:  # a write cycle per 1,000 rows, as at the default cap
                log.flush()
        log.close()
        monitor = Monitor(registry, settings)
        cpu, wall = time.process_time(), time.perf_counter()
        monitor.run_once()
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        registry.close()
        return wall, cpu


def main() -> None:
    parser = model_parser(__doc__, model="wide", seconds=None)
    parser.add_argument("--rows", type=int, default=60_000)
    args = parser.parse_args()
    preload()
    runs = [one_round(args.model, args.rows) for _ in range(args.repeats)]
    wall = statistics.median(r[0] for r in runs)
    cpu = statistics.median(r[1] for r in runs)
    print(
        f"{args.model}, {args.rows} rows logged: a round took {wall:.2f} s "
        f"({cpu:.2f} s of CPU), median of {args.repeats}"
    )


if __name__ == "__main__":
    main()

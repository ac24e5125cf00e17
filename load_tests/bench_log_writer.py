"""The inference log writer's CPU per cycle, in a quiet process: what one flush of queued
one-row records costs the thread that shares the GIL with the event loop.

    python -m load_tests.bench_log_writer [--features 16] [--records 1000] [--cycles 12]
    PYTHONPATH=/tmp/before python -m load_tests.bench_log_writer   # another checkout

Queues `--records` one-row records the way the data plane does (`InferenceLog.record`),
then times one write cycle (Arrow batches, the stream segment with its fsync, the recent
request ids) in process CPU time, the caller waiting idle in `flush()`; prints the median
over the cycles after two warm-up ones. A benchmark, not a test.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from monitors.log.inference_log import InferenceLog, LogSettings
from registry.signature import Signature, TensorSpec


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--features", type=int, default=16)
    parser.add_argument("--records", type=int, default=1000)
    parser.add_argument("--cycles", type=int, default=12)
    args = parser.parse_args()
    signature = Signature(
        (TensorSpec("x", "FP32", (-1, args.features)),), (TensorSpec("y", "FP32", (-1, 4)),)
    )
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory(prefix="mlgate-logbench-") as folder:
        settings = LogSettings(directory=Path(folder), max_rows_per_s=1e9, flush_interval_s=3600)
        log = InferenceLog(settings)
        log.start()
        costs = []
        for _ in range(args.cycles):
            for _ in range(args.records):
                inputs = {"x": rng.random((1, args.features), dtype=np.float32)}
                outputs = {"y": rng.random((1, 4), dtype=np.float32)}
                log.record("m", 1, signature, None, inputs, outputs, 0.001)
            started = time.process_time()
            log.flush()
            costs.append(time.process_time() - started)
        log.close()
    print(
        f"{args.records} one-row records of {args.features} features: writer cycle "
        f"{statistics.median(costs[2:]) * 1e3:.2f} ms of CPU (median of {len(costs) - 2})"
    )


if __name__ == "__main__":
    main()

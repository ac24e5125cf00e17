"""The in-process limit: onnxruntime alone, no HTTP, at its best batch size, on one core.

    python -m load_tests.limit MODEL.onnx [--cpu 0]

The ceiling no server can beat on the same core with the same session options (one
intra-op thread, no spinning, as mlgate and every peer use): rows/s for batch sizes
1, 2, 4 … 256, each the median of timed runs after a warm-up. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

__all__ = ["measure"]

BATCHES = (1, 2, 4, 8, 16, 32, 64, 128, 256)


def measure(model: Path, seconds_per_batch: float = 0.5) -> dict[str, Any]:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
    feed = session.get_inputs()[0]
    rows_per_s: dict[int, float] = {}
    for batch in BATCHES:
        x = np.random.default_rng(batch).standard_normal((batch, feed.shape[1])).astype(np.float32)
        for _ in range(5):
            session.run(None, {feed.name: x})
        samples: list[float] = []
        deadline = time.perf_counter() + seconds_per_batch
        while time.perf_counter() < deadline or len(samples) < 5:
            started = time.perf_counter()
            session.run(None, {feed.name: x})
            samples.append(time.perf_counter() - started)
        rows_per_s[batch] = batch / statistics.median(samples)
    best = max(rows_per_s, key=rows_per_s.__getitem__)
    return {
        "rows_per_s": {str(b): round(v, 1) for b, v in rows_per_s.items()},
        "best_batch": best,
        "best_rows_per_s": round(rows_per_s[best], 1),
        "per_row_ratio_1_vs_64": round(rows_per_s[64] / rows_per_s[1], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("--cpu", type=int, default=None)
    args = parser.parse_args()
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})
    sys.stdout.write(json.dumps(measure(args.model)) + "\n")


if __name__ == "__main__":
    main()

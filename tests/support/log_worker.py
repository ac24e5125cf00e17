"""A process that writes the inference log, for the crash and disk-error tests.

    python -m tests.support.log_worker DIR --replica NAME [--requests N] [--flush-every K]
        [--max-file-bytes B]

Records requests of model `crash`, version 1, two rows each, with request ids
`00000000`, `00000001`, ... and inputs that `expected_inputs` rebuilds from the id. After
every K requests it calls `flush()` and prints `FLUSHED <rows flushed> <last request>`
(line-buffered). With --requests 0 it runs until killed. With --max-file-bytes, files it
writes may not grow past B bytes (RLIMIT_FSIZE, so writes fail with EFBIG, as on a full
disk); it closes the log at the end and prints `STATS <json>`.
"""

from __future__ import annotations

import argparse
import json
import resource
import signal
import sys
from pathlib import Path

import numpy as np

from monitors.log.inference_log import InferenceLog, LogSettings
from registry.signature import Signature, TensorSpec

MODEL = "crash"
ROWS_PER_REQUEST = 2
SIGNATURE = Signature(
    (TensorSpec("x", "float32", (-1, 3)),),
    (TensorSpec("score", "float64", (-1,)),),
    {"x": ["a", "b", "c"]},
)


def request_id(index: int) -> str:
    return f"{index:08d}"


def expected_inputs(index: int) -> np.ndarray:
    """The `x` rows of request `index`."""
    return (np.arange(ROWS_PER_REQUEST * 3, dtype=np.float32).reshape(-1, 3) + index) / 7


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("directory", type=Path)
    parser.add_argument("--replica", required=True)
    parser.add_argument("--requests", type=int, default=0)
    parser.add_argument("--flush-every", type=int, default=50)
    parser.add_argument("--max-file-bytes", type=int)
    args = parser.parse_args()
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    if args.max_file_bytes:
        # A write past the limit raises EFBIG instead of killing us with SIGXFSZ.
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (args.max_file_bytes, args.max_file_bytes))
    log = InferenceLog(
        LogSettings(
            args.directory,
            replica=args.replica,
            max_rows_per_s=1e9,
            flush_interval_s=0.05,
            max_pending_rows=10_000_000,
        )
    )
    log.start()
    index = 0
    while args.requests == 0 or index < args.requests:
        x = expected_inputs(index)
        log.record(
            MODEL, 1, SIGNATURE, request_id(index), {"x": x}, {"score": x.sum(axis=1)}, index / 1e3
        )
        if (index + 1) % args.flush_every == 0:
            print(f"FLUSHED {log.flush()} {index}")
        index += 1
    log.close()
    print(f"STATS {json.dumps(log.stats())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

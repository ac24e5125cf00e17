"""`mlgate predict`'s throughput against onnxruntime run in process on the same rows, at the
same batch size and threads: what reading, validating and writing the file cost.

    python -m load_tests.bench_predict [--model tiny|wide] [--rows 1000000]
        [--batch-size 1024] [--threads 1] [--format parquet|csv] [--repeats 3]

Registers the model in a fresh home, writes `--rows` generated rows (Parquet with a list
column for the model's one input, or CSV with its values as `x_0`, `x_1`, …), then, per
repeat: `score_locally` (the path `mlgate predict` takes: the registry, the runtime serving
would build, chunks, validation, the output and the run record) and a bare loop of
`InferenceSession.run` over the same rows already in memory as float32. Prints rows per
second for both, medians over repeats, and their ratio. The time of `score_locally`
includes opening the registry and loading the runtime. A benchmark, not a test.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from load_tests.bench_peers import MODELS, prepare
from registry import Registry
from services.scoring.job import ScoreOptions
from services.scoring.local import score_locally


def _write(folder: Path, rows: np.ndarray, fmt: str) -> Path:
    if fmt == "parquet":
        path = folder / "rows.parquet"
        values = pa.array(rows.ravel())
        column = pa.FixedSizeListArray.from_arrays(values, rows.shape[1])
        pq.write_table(pa.table({"x": column}), path, row_group_size=100_000)
        return path
    path = folder / "rows.csv"
    pcsv.write_csv(pa.table({f"x_{i}": rows[:, i] for i in range(rows.shape[1])}), path)
    return path


def _bare(onnx: Path, rows: np.ndarray, batch: int, threads: int) -> float:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(onnx), options, providers=["CPUExecutionProvider"])
    feed = session.get_inputs()[0].name
    started = time.perf_counter()
    for start in range(0, len(rows), batch):
        session.run(None, {feed: rows[start : start + batch]})
    return len(rows) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=sorted(MODELS), default="tiny")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--format", choices=("parquet", "csv"), default="parquet")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    name, widths = MODELS[args.model]
    with tempfile.TemporaryDirectory(prefix="mlgate-predict-") as folder:
        home = Path(folder)
        onnx, _ = prepare(home, name, widths)
        rows = np.random.default_rng(0).standard_normal((args.rows, widths[0])).astype(np.float32)
        source = _write(home, rows, args.format)
        registry = Registry(home=home)
        ours, bare = [], []
        try:
            for repeat in range(args.repeats):
                output = home / f"scores-{repeat}.{args.format}"
                options = ScoreOptions(batch_size=args.batch_size)
                started = time.perf_counter()
                run, _ = score_locally(
                    registry, f"{name}@production", source, output, options, threads=args.threads
                )
                ours.append(run.rows / (time.perf_counter() - started))
                bare.append(_bare(onnx, rows, args.batch_size, args.threads))
        finally:
            registry.close()
    result = {
        "model": args.model,
        "rows": args.rows,
        "format": args.format,
        "batch_size": args.batch_size,
        "threads": args.threads,
        "mlgate_predict_rows_per_s": round(statistics.median(ours)),
        "onnxruntime_rows_per_s": round(statistics.median(bare)),
        "ratio": round(statistics.median(o / b for o, b in zip(ours, bare, strict=True)), 3),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()

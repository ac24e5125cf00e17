"""What one quality round costs against the rows logged since the previous one.

    python -m load_tests.bench_quality_round [--repeats 3] [--out load_tests/results]

A real registry holds the binary scenario model (examples/scenarios, registered with its
evaluation data: baseline and calibration); an inference log receives N predictions with
request ids (1k, 10k, 60k: the last is a minute at the log's default 1000 rows/s cap), and
the labels of half of them are posted. Then one `QualityMonitor.evaluate` is timed: it
reads the N new rows from the log, folds them into the hourly bucket's sample (at most
2000 kept), fetches the labels of the rows that entered the sample, and computes the
realised and estimated figures and the bucket's summary. A second round with nothing new
shows the floor. Medians of `--repeats` fresh homes each. Results go to
load_tests/results/<date>-quality-round.{md,json}. A benchmark, not a test: it asserts
nothing.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from threadpoolctl import ThreadpoolController

from examples.scenarios.data import FEATURES, LABEL, generate
from examples.scenarios.train import TRAINER, train
from exporters import export
from exporters.runners import onnx_predictor
from monitors.log.inference_log import InferenceLog, LogSettings
from monitors.loop import quality_settings
from monitors.quality.feedback import FeedbackStore
from monitors.quality.feedback_body import FeedbackItem
from monitors.quality.monitor import QualityMonitor
from monitors.settings import MonitorSettings
from registry import Registry

RESULTS = Path(__file__).parent / "results"
ROWS = (1_000, 10_000, 60_000)


def one(rows: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as folder:
        home = Path(folder)
        registry = Registry(home=home)
        version = train(generate("binary", 4000, seed=1), {"epochs": 4}, seed=0).register(
            registry, "sensor", trainer=TRAINER
        )
        assert export(registry, version.ref, "onnx").passed
        data = generate("binary", rows, seed=2)
        x = data[FEATURES].to_numpy(np.float32)
        _, _, artifact = registry.open_servable(version.ref, "onnx")
        p = onnx_predictor(artifact / "model.onnx")({"features": x})["prediction"]
        log = InferenceLog(
            LogSettings(directory=home / "inference_log", max_rows_per_s=1e9, flush_interval_s=0.1)
        )
        log.start()
        for i in range(rows):
            one_row = {"features": x[i : i + 1]}
            log.record("sensor", 1, version.signature, f"r{i}", one_row,
                       {"prediction": p[i : i + 1]}, 0.001)  # fmt: skip
        log.close(60)
        labels = [FeedbackItem(f"r{i}", int(v)) for i, v in enumerate(data[LABEL]) if i % 2 == 0]
        store = FeedbackStore(registry.db)
        for start in range(0, len(labels), 4096):
            store.add("sensor", labels[start : start + 4096])
        time.sleep(0.5)  # past the window's end margin (2 flush intervals)
        settings = MonitorSettings(home=home, log_flush_interval_s=0.1)
        monitor = QualityMonitor(registry, quality_settings(settings))
        started = time.perf_counter()
        first = monitor.evaluate("sensor", 1)
        first_s = time.perf_counter() - started
        started = time.perf_counter()
        monitor.evaluate("sensor", 1)
        idle_s = time.perf_counter() - started
        registry.close()
        return {
            "rows": rows,
            "round_s": first_s,
            "idle_round_s": idle_s,
            "labelled_in_window": first.result["realised"]["rows"],
            "status": first.status,
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    started = datetime.now(UTC)
    runs = []
    with ThreadpoolController().limit(limits=1, user_api="blas"):  # as the monitor runs
        for rows in ROWS:
            for _ in range(args.repeats):
                runs.append(one(rows))
                print(runs[-1], flush=True)
    summary = [
        {
            "rows": rows,
            "round_ms": round(
                1000 * statistics.median(r["round_s"] for r in runs if r["rows"] == rows), 1
            ),
            "idle_round_ms": round(
                1000 * statistics.median(r["idle_round_s"] for r in runs if r["rows"] == rows), 1
            ),
            "labelled": next(r["labelled_in_window"] for r in runs if r["rows"] == rows),
        }
        for rows in ROWS
    ]
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / f"{started:%Y-%m-%d}-quality-round"
    stem.with_suffix(".json").write_text(json.dumps({"summary": summary, "runs": runs}, indent=2))
    lines = [
        f"# One quality round against rows since the previous one, {started:%Y-%m-%d}",
        "",
        f"`python -m load_tests.bench_quality_round --repeats {args.repeats}` on 2 shared "
        "cores; the binary scenario model; half the rows labelled; medians.",
        "",
        "| new rows | round ms | labelled rows in the realised figure | "
        "next round, nothing new, ms |",
        "|---|---|---|---|",
        *(
            f"| {s['rows']:,} | {s['round_ms']} | {s['labelled']} | {s['idle_round_ms']} |"
            for s in summary
        ),
    ]
    stem.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print(stem.with_suffix(".md").read_text())


if __name__ == "__main__":
    main()

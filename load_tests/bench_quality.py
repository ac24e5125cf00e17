"""Quality scoring time against window size: realised metrics, estimates, calibration.

    python -m load_tests.bench_quality [--quick] [--runs 5] [--out load_tests/results]

`score` (realised metrics with intervals, registry/quality/metrics.py), `estimate` (CBPE,
monitors/quality/estimate.py, on calibrated probabilities) and `fit_calibration`
(registry/quality/calibration.py: 10 stratified splits of isotonic fits, then a refit)
on 1k, 10k and 100k rows of a binary, a 3-class and a regression model's outputs.
Outputs are synthetic: labels from a known model, probabilities a little overconfident so
that calibration is applied. Each figure is the median of `--runs` runs after one
discarded warm-up run, in one process, with BLAS limited to `--blas-threads` threads (1,
as monitors/monitor.py runs its checks: on a busy machine OpenBLAS's spinning threads
made the small matrix products here several times slower). `--quick` runs 1k and 10k once and writes
`<date>-quality-quick.*`. Results go to load_tests/results/<date>-quality.{md,json}.
A benchmark, not a test: it asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
from collections.abc import Callable
from contextlib import nullcontext
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import scipy
import sklearn
from threadpoolctl import ThreadpoolController

from load_tests.bench_drift import timed
from monitors.quality.estimate import estimate
from registry.quality.calibration import calibrated_proba, fit_calibration
from registry.quality.metrics import score
from registry.quality.problem import Predictions

RESULTS = Path(__file__).parent / "results"
ROWS = (1_000, 10_000, 100_000)
TASKS = ("binary", "multiclass", "regression")


def rows(task: str, n: int, seed: int = 0) -> tuple[Predictions, np.ndarray]:
    """A model's outputs on n rows and their labels; classifiers 1.5× too sure."""
    rng = np.random.default_rng(seed)
    if task == "regression":
        truth = rng.normal(0, 3, n)
        return Predictions("regression", truth + rng.normal(0, 1, n), None, None), truth
    classes = 2 if task == "binary" else 3
    logits = rng.normal(0, 1.5, (n, classes))
    true_proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    truth = (rng.random((n, 1)) > true_proba.cumsum(axis=1)).sum(axis=1)
    sharpened = np.exp(1.5 * logits)
    proba = sharpened / sharpened.sum(axis=1, keepdims=True)
    score_column = proba[:, 1] if task == "binary" else None
    return Predictions(task, proba.argmax(axis=1), proba, score_column), truth


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1k and 10k rows, one run each")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--blas-threads", type=int, default=1, help="0: the library default")
    args = parser.parse_args()
    runs = 1 if args.quick else args.runs
    rows_list = ROWS[:2] if args.quick else ROWS
    started = datetime.now(UTC)
    blas = ThreadpoolController()
    limited = args.blas_threads > 0
    with blas.limit(limits=args.blas_threads, user_api="blas") if limited else nullcontext():
        results = run_all(runs, rows_list)
    write(args, started, runs, rows_list, results)


def run_all(runs: int, rows_list: tuple[int, ...]) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = []
    for task in TASKS:
        for n in rows_list:
            predictions, truth = rows(task, n)
            calibration = fit_calibration(predictions, truth)
            calibrated = calibrated_proba(calibration, predictions)
            actions: dict[str, Callable[[], object]] = {
                "score": partial(score, predictions, truth),
                "estimate": partial(estimate, predictions, calibrated),
            }
            if task != "regression":
                actions["fit_calibration"] = partial(fit_calibration, predictions, truth)
                actions["calibrated_proba"] = partial(calibrated_proba, calibration, predictions)
            for name, action in actions.items():
                action()  # warm-up, discarded
                timing = timed(action, runs)
                entry = {"function": name, "task": task, "rows": n} | timing
                if name == "fit_calibration":
                    entry |= {"applied": calibration.applied, "reason": calibration.reason}
                results.append(entry)
                print(f"{name:>16} {task:>10} {n:>7}: {timing['median_s'] * 1000:8.1f} ms")
    return results


def write(
    args: argparse.Namespace,
    started: datetime,
    runs: int,
    rows_list: tuple[int, ...],
    results: list[dict[str, Any]],
) -> None:
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / f"{started:%Y-%m-%d}-quality{'-quick' if args.quick else ''}"
    command = "python -m load_tests.bench_quality" + (" --quick" if args.quick else "")
    if args.runs != 5:
        command += f" --runs {args.runs}"
    if args.blas_threads != 1:
        command += f" --blas-threads {args.blas_threads}"
    machine = (
        f"{os.cpu_count()} shared cores, noisy (other jobs ran beside it); "
        f"{platform.python_implementation()} {platform.python_version()}, "
        f"numpy {np.__version__}, scipy {scipy.__version__}, scikit-learn {sklearn.__version__}"
    )
    document = {
        "started": started.isoformat(),
        "command": command,
        "machine": machine,
        "runs": runs,
        "results": results,
    }
    stem.with_suffix(".json").write_text(json.dumps(document, indent=2) + "\n")

    cell = {(r["function"], r["task"], r["rows"]): r for r in results}
    lines = [
        f"# Quality scoring time: score, estimate, fit_calibration, {started:%Y-%m-%d}",
        "",
        f"`{command}` — machine: {machine}.",
        "",
        f"Median wall milliseconds of {runs} run(s) after a discarded warm-up, and in "
        "brackets the median CPU milliseconds of the process (on a shared, busy machine the "
        "steadier number; min–max in the JSON). "
        f"BLAS threads: {args.blas_threads or 'library default'}. "
        "Binary: P(y=1) outputs, 5 metrics (ROC AUC by DeLong, F1 by a 2000-resample cell "
        "bootstrap, ECE by a 200-resample bootstrap of at most 2000 row groups); 3-class: "
        "accuracy, macro F1, log loss; regression: MAE, RMSE, R² (bootstrap as the ECE's). "
        "`estimate` includes "
        "its 200 label draws for the AUC and F1 intervals. Classifier outputs are 1.5× too "
        "sure, so `fit_calibration` applies isotonic (10 splits + refit; 3-class: per class).",
        "",
        "| function | task | " + " | ".join(f"{n:,} rows" for n in rows_list) + " |",
        "|---|---|" + "---|" * len(rows_list),
    ]
    for function in ("score", "estimate", "fit_calibration", "calibrated_proba"):
        for task in TASKS:
            if (function, task, rows_list[0]) not in cell:
                continue
            cells = [
                f"{cell[function, task, n]['median_s'] * 1000:.1f} "
                f"({cell[function, task, n]['cpu_median_s'] * 1000:.1f})"
                for n in rows_list
            ]
            lines.append(f"| {function} | {task} | " + " | ".join(cells) + " |")
    stem.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()

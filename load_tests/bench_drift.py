"""Drift check time against window size and column count, and Evidently's Report beside it.

    python -m load_tests.bench_drift [--quick] [--runs 3] [--out load_tests/results]

`compute_drift` (Evidently's stat tests called directly, monitors/drift/__init__.py) on current
windows of 1k, 10k and 50k rows × 10, 30 and 100 columns against a 10k-row reference;
columns are 80 % numerical (float32 normal) and 20 % categorical (8 integer levels), a
third of each kind shifted in the current window. Each figure is the median of `--runs`
runs after one discarded warm-up run, in one process, after Evidently has been imported
once (its import time is reported on its own). Beside it, Evidently's full
`Report([DataDriftPreset(...)], include_tests=True).run(...)` on the same data at
10k × 10 and 10k × 30, and `render_report` (a check plus Evidently's HTML) at 10k × 30.
`--quick` runs a small subset once and writes `<date>-drift-quick.*`. Results go to
load_tests/results/<date>-drift.{md,json}. A benchmark, not a test: it asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from monitors.drift import DriftConfig, compute_drift
from monitors.drift.columns import DriftColumn
from monitors.drift.methods import evidently_stattests
from monitors.drift.report import render_report

RESULTS = Path(__file__).parent / "results"
REFERENCE_ROWS = 10_000
ROWS = (1_000, 10_000, 50_000)
COLUMNS = (10, 30, 100)
EVIDENTLY_COLUMNS = (10, 30)
RENDER_COLUMNS = 30


def windows(
    rows: int, columns: int, seed: int = 0
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, DriftColumn]]:
    """A 10k-row reference and a `rows`-row current window; a third of each kind shifted."""
    rng = np.random.default_rng(seed)
    numerical = round(columns * 0.8)
    reference: dict[str, np.ndarray] = {}
    current: dict[str, np.ndarray] = {}
    kinds: dict[str, DriftColumn] = {}
    for index in range(columns):
        shifted = index % 3 == 0
        if index < numerical:
            name = f"num_{index}"
            reference[name] = rng.normal(0, 1, REFERENCE_ROWS).astype(np.float32)
            current[name] = rng.normal(0.3 if shifted else 0, 1, rows).astype(np.float32)
            kinds[name] = DriftColumn(name, "input", "num")
        else:
            name = f"cat_{index}"
            calm = np.full(8, 1 / 8)
            moved = np.array([0.3, *([0.1] * 7)])
            reference[name] = rng.choice(8, REFERENCE_ROWS, p=calm)
            current[name] = rng.choice(8, rows, p=moved if shifted else calm)
            kinds[name] = DriftColumn(name, "input", "cat")
    return pd.DataFrame(reference), pd.DataFrame(current), kinds


def timed(action: Callable[[], object], runs: int) -> dict[str, Any]:
    walls, cpus = [], []
    for _ in range(runs):
        wall, cpu = time.perf_counter(), time.process_time()
        action()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return {
        "median_s": round(statistics.median(walls), 4),
        "min_s": round(min(walls), 4),
        "max_s": round(max(walls), 4),
        "cpu_median_s": round(statistics.median(cpus), 4),
        "runs_s": [round(w, 4) for w in walls],
    }


def evidently_report(
    reference: pd.DataFrame, current: pd.DataFrame, columns: dict[str, DriftColumn]
) -> object:
    """Evidently's own way: a Report with DataDriftPreset over the same columns."""
    from evidently import DataDefinition, Dataset, Report  # type: ignore[import-untyped]
    from evidently.presets import DataDriftPreset  # type: ignore[import-untyped]

    definition = DataDefinition(
        numerical_columns=[n for n, c in columns.items() if c.kind == "num"],
        categorical_columns=[n for n, c in columns.items() if c.kind == "cat"],
    )
    report = Report([DataDriftPreset(columns=list(columns))], include_tests=True)
    return report.run(
        Dataset.from_pandas(current, data_definition=definition),
        Dataset.from_pandas(reference, data_definition=definition),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a small subset, one run each")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    runs = 1 if args.quick else args.runs
    rows_list = ROWS[:2] if args.quick else ROWS
    columns_list = COLUMNS[:2] if args.quick else COLUMNS
    started = datetime.now(UTC)
    config = DriftConfig()

    wall = time.perf_counter()
    evidently_stattests()
    import_s = round(time.perf_counter() - wall, 3)
    print(f"Evidently import (once per process): {import_s} s")

    checks: list[dict[str, Any]] = []
    for columns in columns_list:
        for rows in rows_list:
            reference, current, kinds = windows(rows, columns)
            result = compute_drift(reference, current, kinds, config)  # warm-up, discarded
            timing = timed(partial(compute_drift, reference, current, kinds, config), runs)
            checks.append(
                {"rows": rows, "columns": columns, "drifted": result.drifted_count} | timing
            )
            print(f"compute_drift {rows:>6} × {columns:>3}: {timing['median_s']:.3f} s")

    evidently: list[dict[str, Any]] = []
    for columns in EVIDENTLY_COLUMNS[:1] if args.quick else EVIDENTLY_COLUMNS:
        reference, current, kinds = windows(10_000, columns)
        with np.errstate(divide="ignore", invalid="ignore"):  # as in render_report
            evidently_report(reference, current, kinds)  # warm-up, discarded
            timing = timed(partial(evidently_report, reference, current, kinds), runs)
        evidently.append({"rows": 10_000, "columns": columns} | timing)
        print(f"Evidently Report 10000 × {columns:>3}: {timing['median_s']:.3f} s")

    render_columns = EVIDENTLY_COLUMNS[0] if args.quick else RENDER_COLUMNS
    reference, current, kinds = windows(10_000, render_columns)
    html = render_report(reference, current, kinds, config)  # warm-up, discarded
    render = {"rows": 10_000, "columns": render_columns, "html_bytes": len(html.encode())}
    render |= timed(partial(render_report, reference, current, kinds, config), runs)
    print(f"render_report 10000 × {render_columns}: {render['median_s']:.3f} s")

    write(args, started, runs, import_s, checks, evidently, render)


def write(
    args: argparse.Namespace,
    started: datetime,
    runs: int,
    import_s: float,
    checks: list[dict[str, Any]],
    evidently: list[dict[str, Any]],
    render: dict[str, Any],
) -> None:
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / f"{started:%Y-%m-%d}-drift{'-quick' if args.quick else ''}"
    command = "python -m load_tests.bench_drift" + (" --quick" if args.quick else "")
    if args.runs != 3:
        command += f" --runs {args.runs}"
    machine = (
        f"{os.cpu_count()} shared cores, noisy (other jobs ran beside it); "
        f"{platform.python_implementation()} {platform.python_version()}, "
        f"pandas {pd.__version__}, numpy {np.__version__}"
    )
    document = {
        "started": started.isoformat(),
        "command": command,
        "machine": machine,
        "runs": runs,
        "reference_rows": REFERENCE_ROWS,
        "evidently_import_s": import_s,
        "compute_drift": checks,
        "evidently_report": evidently,
        "render_report": render,
    }
    stem.with_suffix(".json").write_text(json.dumps(document, indent=2) + "\n")

    row_values = sorted({c["rows"] for c in checks})
    column_values = sorted({c["columns"] for c in checks})
    cell = {(c["rows"], c["columns"]): c for c in checks}
    lines = [
        f"# Drift check time: compute_drift vs Evidently's Report, {started:%Y-%m-%d}",
        "",
        f"`{command}` — machine: {machine}.",
        "",
        f"Current window rows × columns against a {REFERENCE_ROWS:,}-row reference; 80 % "
        "float32 normal / 20 % 8-level integer columns, a third of each shifted. Median "
        f"wall seconds of {runs} run(s) (min–max), Evidently already imported. Evidently's "
        f"import costs {import_s} s once per process.",
        "",
        "## compute_drift (Evidently's stat tests, called directly)",
        "",
        "| current rows | " + " | ".join(f"{c} columns" for c in column_values) + " |",
        "|---|" + "---|" * len(column_values),
    ]
    for rows in row_values:
        cells = [
            f"{cell[rows, c]['median_s']:.3f} ({cell[rows, c]['min_s']:.3f}–"
            f"{cell[rows, c]['max_s']:.3f})"
            for c in column_values
        ]
        lines.append(f"| {rows:,} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "## The same check as Evidently's Report, and the HTML report",
        "",
        "| what | rows × columns | median s | min–max s | CPU s | vs compute_drift |",
        "|---|---|---|---|---|---|",
    ]
    for entry in evidently:
        ours = cell.get((entry["rows"], entry["columns"]))
        ratio = f"{entry['median_s'] / ours['median_s']:.0f}×" if ours else "—"
        if ours:
            lines.append(
                f"| compute_drift | {entry['rows']:,} × {entry['columns']} | "
                f"{ours['median_s']:.3f} | {ours['min_s']:.3f}–{ours['max_s']:.3f} | "
                f"{ours['cpu_median_s']:.3f} | 1× |"
            )
        lines.append(
            f"| Report(DataDriftPreset).run, include_tests | {entry['rows']:,} × "
            f"{entry['columns']} | {entry['median_s']:.3f} | {entry['min_s']:.3f}–"
            f"{entry['max_s']:.3f} | {entry['cpu_median_s']:.3f} | {ratio} |"
        )
    lines += [
        f"| render_report (check + Report + HTML, {render['html_bytes'] / 1e6:.1f} MB) | "
        f"{render['rows']:,} × {render['columns']} | {render['median_s']:.3f} | "
        f"{render['min_s']:.3f}–{render['max_s']:.3f} | {render['cpu_median_s']:.3f} | — |",
        "",
        "Per-column scores and flags of compute_drift equal the Report's "
        "(tests/monitors/drift/test_drift.py checks it); the difference is the Report's plot "
        "building and its second and third pass over every column.",
    ]
    stem.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()

"""Drift detection on bounded windows: Evidently's statistics without Evidently's cost.

The public API of the drift engine; pure computation, no I/O. A check runs in three steps:

1. `drift_frame` (monitors/drift/columns.py) turns a window's tensors, rebuilt from the
   reference file or the inference log with the layout both share, into scalar columns:
   named features as is, unnamed columns as is up to a cap, images and other tensors as
   per-channel mean/std summaries, outputs as prediction columns plus the argmax class.
2. `compute_drift` (monitors/drift/check.py) compares each column of the current window
   with the reference using Evidently's own stat tests and default method choice
   (monitors/drift/methods.py), called directly: the same scores and flags as Evidently's
   Report (a test runs both), about 20× faster here, because the Report spends most of
   its time building plots. Dataset drift: at least `drift_share` of the input columns
   drifted (Evidently's rule); prediction drift: any prediction column drifted.
3. `render_report` (monitors/drift/report.py) builds Evidently's HTML report for the same
   windows and settings, only when someone asks for it.

Settings are a `DriftConfig`; results a `DriftResult` of `FeatureDrift`s (result.py),
both with `to_json`/`from_json`. Evidently is imported on first use, never at import.
Timings: load_tests/bench_drift.py and load_tests/results/*-drift.md.
"""

from __future__ import annotations

from monitors.drift.check import DriftConfig, compute_drift
from monitors.drift.columns import DEFAULT_MAX_COLUMNS, DriftColumn, drift_frame
from monitors.drift.report import render_report
from monitors.drift.result import DriftResult, FeatureDrift

__all__ = [
    "DEFAULT_MAX_COLUMNS",
    "DriftColumn",
    "DriftConfig",
    "DriftResult",
    "FeatureDrift",
    "compute_drift",
    "drift_frame",
    "render_report",
]

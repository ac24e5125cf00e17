"""Evidently's HTML drift report for the same windows, columns and settings as a check.

Built only when someone asks for it (it takes seconds and megabytes: Evidently draws a
plot per column). Input columns go into one `DataDriftPreset`, so the report's "share of
drifted columns" is the check's `share`; prediction columns get one `ValueDrift` each,
outside the preset, because the check keeps them out of the share too. Methods and
thresholds are passed exactly as configured, so Evidently resolves defaults the same way
`compute_drift` does.

A column `compute_drift` could not compare (no finite values in a window, a method that
fails on the data) would make Evidently's Report raise, so it is left out of the report.
Evidently does no network I/O here (see drift_methods.evidently_stattests).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np

from monitors.drift.check import DriftConfig, compute_drift
from monitors.drift.columns import DriftColumn
from monitors.drift.methods import evidently_stattests
from registry.errors import BadRequest

if TYPE_CHECKING:  # pandas is imported where a function needs it, not by the gateway
    import pandas as pd

__all__ = ["render_report"]


def render_report(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    columns: Mapping[str, DriftColumn],
    config: DriftConfig,
) -> str:
    """A standalone Evidently HTML page: drift per column, with tests, current vs reference."""
    result = compute_drift(reference, current, columns, config)
    shown = {f.column: columns[f.column] for f in result.features if f.computed}
    if not shown:
        reasons = {f.column: f.reason for f in result.features}
        raise BadRequest(f"no column could be compared, so there is no report: {reasons}")
    evidently_stattests()  # the first Evidently import, with its warnings handled
    from evidently import DataDefinition, Dataset, Report  # type: ignore[import-untyped]
    from evidently.metrics import ValueDrift  # type: ignore[import-untyped]
    from evidently.presets import DataDriftPreset  # type: ignore[import-untyped]

    inputs = [name for name, column in shown.items() if column.role == "input"]
    predictions = [name for name, column in shown.items() if column.role == "prediction"]
    items: list[DataDriftPreset | ValueDrift] = []
    if inputs:
        items.append(
            DataDriftPreset(
                columns=inputs,
                drift_share=config.drift_share,
                method=config.method,
                threshold=config.threshold,
                per_column_method={
                    k: v for k, v in config.per_feature_method.items() if k in inputs
                },
                per_column_threshold={
                    k: v for k, v in config.per_feature_threshold.items() if k in inputs
                },
            )
        )
    items += [
        ValueDrift(
            column=name,
            method=config.per_feature_method.get(name, config.method),
            threshold=config.per_feature_threshold.get(name, config.threshold),
        )
        for name in predictions
    ]
    definition = DataDefinition(
        numerical_columns=[name for name, column in shown.items() if column.kind == "num"],
        categorical_columns=[name for name, column in shown.items() if column.kind == "cat"],
    )
    names = list(shown)
    # Evidently's own numpy warnings: np.corrcoef over a constant column divides by a zero
    # std (its correlation plots), and chi-square divides by the zero expected count of a
    # category new in the current window (that is how it reaches p = 0). Both results are
    # the intended ones; errstate is per thread, so this does not leak.
    with np.errstate(divide="ignore", invalid="ignore"):
        snapshot = Report(items, include_tests=True).run(
            Dataset.from_pandas(current[names], data_definition=definition),
            Dataset.from_pandas(reference[names], data_definition=definition),
        )
        html: str = snapshot.get_html_str(as_iframe=False)
    return html

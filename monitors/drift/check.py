"""One drift check: a current window against a version's reference, and its settings.

`compute_drift` compares two tables built by `drift_frame`. Per column it runs Evidently's
own stat test with Evidently's own method choice (monitors/drift/methods.py), so every
score and flag equals what `Report([ValueDrift(...)], include_tests=True)` gives for that
column. Dataset drift follows Evidently's rule over input columns only; cleaning follows
Evidently's (NaN and ±inf dropped per column and window). Where Evidently would raise (a
window with nothing left, a method that fails on the data) the column is reported as not
computed, with the reason, and the check goes on. monitors/drift/__init__.py has the overview.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from monitors.drift.columns import DEFAULT_MAX_COLUMNS, DriftColumn
from monitors.drift.methods import METHODS, check_method, column_statistic, method_for_kind
from monitors.drift.result import DriftResult, FeatureDrift
from registry.errors import BadRequest

if TYPE_CHECKING:  # pandas is imported where a function needs it, not by the gateway
    import pandas as pd

__all__ = ["DriftConfig", "compute_drift"]


@dataclass(frozen=True)
class DriftConfig:
    """How columns are compared. None means Evidently's default for the column."""

    method: str | None = None
    """One Evidently stat-test name for every column ("psi", "ks", ...)."""
    threshold: float | None = None
    """One threshold for every column; else each method's default (0.05 p-value, 0.1 distance)."""
    per_feature_method: dict[str, str] = field(default_factory=dict)
    per_feature_threshold: dict[str, float] = field(default_factory=dict)
    drift_share: float = 0.5
    """Dataset drift when at least this share of input columns drifted (Evidently's rule)."""
    max_columns: int = DEFAULT_MAX_COLUMNS
    """An unnamed 2-D input or output wider than this is summarised per row (drift_frame)."""

    def __post_init__(self) -> None:
        if self.method is not None:
            check_method(self.method, "method")
        methods = _mapping(self.per_feature_method, "per_feature_method")
        for column, name in methods.items():
            check_method(name, f"per_feature_method[{column!r}]")
        thresholds = {
            column: _positive(value, f"per_feature_threshold[{column!r}]")
            for column, value in _mapping(
                self.per_feature_threshold, "per_feature_threshold"
            ).items()
        }
        threshold = None if self.threshold is None else _positive(self.threshold, "threshold")
        share = _number(self.drift_share, "drift_share")
        if not 0 < share <= 1:
            raise BadRequest(f"drift_share must be in (0, 1], got {self.drift_share!r}")
        if isinstance(self.max_columns, bool) or not isinstance(self.max_columns, int):
            raise BadRequest(f"max_columns must be an integer, got {self.max_columns!r}")
        if self.max_columns < 1:
            raise BadRequest(f"max_columns must be at least 1, got {self.max_columns}")
        # Own copies, so that the caller's dicts changing later cannot change this config.
        object.__setattr__(self, "per_feature_method", dict(methods))
        object.__setattr__(self, "per_feature_threshold", thresholds)
        object.__setattr__(self, "threshold", threshold)
        object.__setattr__(self, "drift_share", share)

    def to_json(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "threshold": self.threshold,
            "per_feature_method": dict(self.per_feature_method),
            "per_feature_threshold": dict(self.per_feature_threshold),
            "drift_share": self.drift_share,
            "max_columns": self.max_columns,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> DriftConfig:
        if not isinstance(data, Mapping):
            raise BadRequest(f"a drift config is a JSON object, got {type(data).__name__}")
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - known)
        if unknown:
            raise BadRequest(f"unknown drift config keys {unknown}; known keys: {sorted(known)}")
        return cls(**data)


def compute_drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    columns: Mapping[str, DriftColumn],
    config: DriftConfig,
) -> DriftResult:
    """Evidently's drift score and flag for each of `columns`, current against reference."""
    started = time.perf_counter()
    methods = _check_request(reference, current, columns, config)
    features = [
        _feature(reference[name], current[name], column, methods[name], config)
        for name, column in columns.items()
    ]
    inputs = [f for f in features if f.role == "input" and f.computed]
    drifted = sum(f.drifted for f in inputs)
    share = drifted / len(inputs) if inputs else 0.0
    return DriftResult(
        features=tuple(features),
        share=share,
        drifted_count=drifted,
        input_columns=len(inputs),
        drift_share=config.drift_share,
        dataset_drift=bool(inputs) and share >= config.drift_share,
        prediction_drift=any(f.drifted for f in features if f.role == "prediction"),
        rows_current=len(current),
        rows_reference=len(reference),
        seconds=time.perf_counter() - started,
    )


def _check_request(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    columns: Mapping[str, DriftColumn],
    config: DriftConfig,
) -> dict[str, str | None]:
    """Each column's configured method (None: Evidently's default); BadRequest if unusable."""
    import pandas as pd

    if not columns:
        raise BadRequest("no columns to compare")
    for window, frame in (("current", current), ("reference", reference)):
        if len(frame) == 0:
            raise BadRequest(f"the {window} window is empty; drift needs at least one row")
        missing = [name for name in columns if name not in frame.columns]
        if missing:
            raise BadRequest(f"the {window} window lacks drift columns {missing}")
    for setting in ("per_feature_method", "per_feature_threshold"):
        unknown = sorted(set(getattr(config, setting)) - set(columns))
        if unknown:
            raise BadRequest(f"{setting} names columns that are not compared: {unknown}")
    methods: dict[str, str | None] = {}
    for name, column in columns.items():
        for frame in (reference, current):
            if column.kind == "num" and not pd.api.types.is_numeric_dtype(frame[name]):
                raise BadRequest(f"numerical drift column {name!r} holds {frame[name].dtype}")
        method = config.per_feature_method.get(name, config.method)
        methods[name] = None if method is None else method_for_kind(method, column.kind, name)
    return methods


def _feature(
    reference: pd.Series[Any],
    current: pd.Series[Any],
    column: DriftColumn,
    method: str | None,
    config: DriftConfig,
) -> FeatureDrift:
    def skipped(reason: str, chosen: str | None = method) -> FeatureDrift:
        direction = None if chosen is None else METHODS[chosen].higher_is_worse
        return FeatureDrift(
            column.name, column.role, column.kind, chosen, None, None, False, direction, reason
        )

    reference, current = _finite(reference), _finite(current)
    for window, values in (("reference", reference), ("current", current)):
        if values.empty:
            return skipped(f"no finite values in the {window} window")
    threshold = config.per_feature_threshold.get(column.name, config.threshold)
    try:
        statistic = column_statistic(reference, current, column.kind, method, threshold)
    except (ValueError, ArithmeticError) as exc:
        # Evidently's tests raise these on data they cannot handle (Anderson-Darling on a
        # constant column, g-test with a category absent from the reference, ...).
        return skipped(f"{method or 'the default method'} failed: {exc}")
    if not math.isfinite(statistic.score):
        return skipped(f"{statistic.method} is undefined on this data ({statistic.score})")
    return FeatureDrift(
        column=column.name,
        role=column.role,
        kind=column.kind,
        method=statistic.method,
        threshold=statistic.threshold,
        score=statistic.score,
        drifted=statistic.drifted,
        higher_is_worse=METHODS[statistic.method].higher_is_worse,
        notes=statistic.notes,
    )


def _finite(values: pd.Series[Any]) -> pd.Series[Any]:
    """The values Evidently keeps: NaN and ±inf dropped."""
    import pandas as pd

    if values.dtype.kind == "f":
        array = values.to_numpy()
        mask = np.isfinite(array)
        return values if mask.all() else pd.Series(array[mask], name=values.name)
    if values.dtype.kind in "iub":
        return values  # integers and bools hold no NaN
    return values.replace([-np.inf, np.inf], np.nan).dropna()


def _mapping(value: object, name: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise BadRequest(f"{name} must map column names to values, got {value!r}")
    return value


def _number(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BadRequest(f"{name} must be a number, got {value!r}")
    return float(value)


def _positive(value: object, name: str) -> float:
    number = _number(value, name)
    if not (math.isfinite(number) and number > 0):
        raise BadRequest(f"{name} must be a finite number > 0, got {value!r}")
    return number

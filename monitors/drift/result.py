"""What one drift check found: a score and a flag per column, and the dataset-level verdict.

Scores point two ways: p-value methods (K-S, chi-square, Z-test, ...) flag drift when the
score falls below the threshold, distance methods (Wasserstein, Jensen-Shannon, PSI, ...)
when it reaches it. `FeatureDrift.higher_is_worse` records which, and `severity` puts both
on one scale, how many times past its threshold a column is (> 1: past it), so that
`top_features` can rank columns measured by different methods.

A column whose statistic could not be computed (no finite values left in a window, a
method that fails on the data, an undefined score) has `score` None and a `reason`; it
counts neither as drifted nor in the share's denominator.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from monitors.drift.columns import Kind, Role

__all__ = ["DriftResult", "FeatureDrift"]


@dataclass(frozen=True, slots=True)
class FeatureDrift:
    column: str
    role: Role
    kind: Kind
    method: str | None
    """Evidently's stat-test name ("wasserstein", "ks", ...); None if it was never chosen."""
    threshold: float | None
    score: float | None
    drifted: bool
    higher_is_worse: bool | None
    reason: str | None = None
    """Why `score` is None."""
    notes: tuple[str, ...] = ()
    """Warnings the stat test raised while computing `score`."""

    @property
    def computed(self) -> bool:
        return self.score is not None

    @property
    def severity(self) -> float:
        """Times past the threshold, either direction: > 1 past it, 0 if not computed."""
        if self.score is None or self.threshold is None:
            return 0.0
        if self.higher_is_worse:
            return self.score / self.threshold
        return math.inf if self.score == 0 else self.threshold / self.score

    def to_json(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["notes"] = list(self.notes)
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> FeatureDrift:
        return cls(
            column=str(data["column"]),
            role=data["role"],
            kind=data["kind"],
            method=data["method"],
            threshold=_float_or_none(data["threshold"]),
            score=_float_or_none(data["score"]),
            drifted=bool(data["drifted"]),
            higher_is_worse=data["higher_is_worse"],
            reason=data.get("reason"),
            notes=tuple(data.get("notes", ())),
        )


@dataclass(frozen=True, slots=True)
class DriftResult:
    features: tuple[FeatureDrift, ...]
    share: float
    """Drifted input columns / computed input columns (0 when none was computed)."""
    drifted_count: int
    """Drifted input columns."""
    input_columns: int
    """Input columns whose drift was computed."""
    drift_share: float
    """The configured share at or above which the dataset counts as drifted."""
    dataset_drift: bool
    prediction_drift: bool
    """Any prediction column drifted."""
    rows_current: int
    rows_reference: int
    seconds: float

    def feature(self, column: str) -> FeatureDrift:
        for feature in self.features:
            if feature.column == column:
                return feature
        raise KeyError(column)

    def top_features(self, n: int = 10) -> list[FeatureDrift]:
        """The `n` computed columns furthest past (or closest to) their thresholds."""
        ranked = sorted(
            (f for f in self.features if f.computed),
            key=lambda f: (not f.drifted, -f.severity, f.column),
        )
        return ranked[:n]

    def to_json(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["features"] = [f.to_json() for f in self.features]
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> DriftResult:
        return cls(
            features=tuple(FeatureDrift.from_json(f) for f in data["features"]),
            share=float(data["share"]),
            drifted_count=int(data["drifted_count"]),
            input_columns=int(data["input_columns"]),
            drift_share=float(data["drift_share"]),
            dataset_drift=bool(data["dataset_drift"]),
            prediction_drift=bool(data["prediction_drift"]),
            rows_current=int(data["rows_current"]),
            rows_reference=int(data["rows_reference"]),
            seconds=float(data["seconds"]),
        )


def _float_or_none(value: Any) -> float | None:
    return None if value is None else float(value)

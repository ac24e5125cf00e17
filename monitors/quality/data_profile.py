"""What the data-quality checks remember of a version's reference data, per input feature.

A profile is small (a few numbers per feature, at most `max_discrete` values for a
discrete one) and JSON, so it can be computed once per version and cached or stored,
instead of re-reading the reference for every window. It is built from the table the
drift check compares (`monitors.drift.drift_frame` of the reference, input columns only:
the checks are about what callers send, and predictions are the model's own output).

Per feature:
- `minimum`/`maximum` of the finite values: the range a live value should fall in;
- `values` for a discrete feature, one whose finite values are whole numbers with at most
  `max_discrete` distinct ones (counts, codes, flags, an integer input): a live value not
  among them is "unseen";
- what a window drawn from the reference's own distribution would show by chance, so the
  checks do not warn on noise: a fresh value falls outside the range of n reference values
  with probability 2/(n+1) (any of the n+1 values is equally likely to be the extreme);
  it is unseen with probability about singletons/n (Good–Turing); a window of m rows is
  constant with probability about top_share**m; NaN appears at `missing_share`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from monitors.drift.columns import DriftColumn
from registry.errors import BadRequest

if TYPE_CHECKING:  # pandas is imported where a function needs it, not by the gateway
    import pandas as pd

__all__ = ["DEFAULT_MAX_DISCRETE", "FeatureProfile", "ReferenceProfile", "profile_reference"]

DEFAULT_MAX_DISCRETE = 20
"""Whole-number features with at most this many distinct values are checked for unseen ones:
beyond about 20, a value missing from the reference is more likely rare than new."""


@dataclass(frozen=True, slots=True)
class FeatureProfile:
    name: str
    present: int
    """Reference values that are not NaN."""
    missing_share: float
    minimum: float | None
    """None when the reference holds no finite value of the feature."""
    maximum: float | None
    values: tuple[int, ...] | None
    """The distinct values of a discrete feature, sorted; None for a continuous one."""
    singletons: int
    """Discrete values seen exactly once: the Good–Turing estimate of unseen is this/present."""
    top_share: float
    """Share of the most common finite value: how likely a window is constant by chance."""
    distinct: int

    @property
    def discrete(self) -> bool:
        return self.values is not None

    @property
    def varies(self) -> bool:
        return self.distinct > 1

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "present": self.present,
            "missing_share": self.missing_share,
            "minimum": self.minimum,
            "maximum": self.maximum,
            "values": None if self.values is None else list(self.values),
            "singletons": self.singletons,
            "top_share": self.top_share,
            "distinct": self.distinct,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> FeatureProfile:
        values = data["values"]
        return cls(
            name=str(data["name"]),
            present=int(data["present"]),
            missing_share=float(data["missing_share"]),
            minimum=None if data["minimum"] is None else float(data["minimum"]),
            maximum=None if data["maximum"] is None else float(data["maximum"]),
            values=None if values is None else tuple(int(v) for v in values),
            singletons=int(data["singletons"]),
            top_share=float(data["top_share"]),
            distinct=int(data["distinct"]),
        )


@dataclass(frozen=True, slots=True)
class ReferenceProfile:
    rows: int
    max_discrete: int
    features: dict[str, FeatureProfile]

    def to_json(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "max_discrete": self.max_discrete,
            "features": [f.to_json() for f in self.features.values()],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ReferenceProfile:
        try:
            features = [FeatureProfile.from_json(f) for f in data["features"]]
            return cls(int(data["rows"]), int(data["max_discrete"]), {f.name: f for f in features})
        except (KeyError, TypeError, ValueError) as exc:
            raise BadRequest(f"not a reference profile: {exc!r}") from None


def profile_reference(
    frame: pd.DataFrame,
    columns: Mapping[str, DriftColumn],
    *,
    max_discrete: int = DEFAULT_MAX_DISCRETE,
) -> ReferenceProfile:
    """The profile of `frame`'s input columns (`columns` as `drift_frame` returns them)."""
    features: dict[str, FeatureProfile] = {}
    for name, column in columns.items():
        if column.role != "input":
            continue
        if name not in frame.columns:
            raise BadRequest(f"the reference frame lacks its drift column {name!r}")
        features[name] = _profile(name, frame[name].to_numpy(dtype=np.float64), max_discrete)
    return ReferenceProfile(len(frame), max_discrete, features)


def _profile(name: str, values: np.ndarray, max_discrete: int) -> FeatureProfile:
    missing = np.isnan(values)
    present = int(len(values) - missing.sum())
    finite = values[np.isfinite(values)]
    if len(finite) == 0:
        return FeatureProfile(
            name, present, _share(len(values) - present, len(values)), None, None, None, 0, 0.0, 0
        )
    distinct, counts = np.unique(finite, return_counts=True)
    whole = bool(np.all(distinct == np.round(distinct)))
    discrete = whole and len(distinct) <= max_discrete
    return FeatureProfile(
        name=name,
        present=present,
        missing_share=_share(len(values) - present, len(values)),
        minimum=float(distinct[0]),
        maximum=float(distinct[-1]),
        values=tuple(int(v) for v in distinct) if discrete else None,
        singletons=int((counts == 1).sum()) if discrete else 0,
        top_share=float(counts.max() / len(finite)),
        distinct=len(distinct),
    )


def _share(part: int, whole: int) -> float:
    return part / whole if whole else 0.0

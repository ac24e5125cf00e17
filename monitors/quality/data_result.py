"""What a data-quality check decides with, and what it returns: thresholds and results.

Kept apart from the checks (`data_quality`, which re-exports these) so that whatever
stores or shows a result (the monitor, the routes, the dashboard) reads one small module.
All have `to_json`/`from_json`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal

__all__ = ["Check", "DataQualityResult", "DataQualityThresholds", "FeatureQuality", "Finding"]

Check = Literal["refused", "out_of_range", "unseen", "constant", "missing"]


@dataclass(frozen=True)
class DataQualityThresholds:
    # A breach: healthy clients send tensors the model takes; when 1 row in 20 is refused, a
    # caller is broken (a schema change upstream), not drifting. SageMaker's type check: 10%.
    max_refused_share: float = 0.05
    # A warning: a few percent past the reference's extremes is what drift looks like (a
    # tail grows, a new segment of customers); worth showing, not paging.
    warn_out_of_range_share: float = 0.01
    # A breach: when half the values lie further outside the reference's range than the
    # range is wide, the feature is broken (a unit change: cents for euros, grams for
    # kilograms), not drifting: a shifted mean puts values just past the edge, not there.
    max_out_of_range_share: float = 0.5
    # A warning: a new category or count appears (NannyML alerts on any unseen value; 1%
    # keeps one odd row from raising it).
    warn_unseen_share: float = 0.01
    # A breach: most values are new codes: the encoding changed upstream.
    max_unseen_share: float = 0.5
    # A breach: NaN beyond the reference's own rate means an upstream stopped filling the
    # field (an outage, a join that lost its table); 5% is Evidently's ±10% made absolute.
    max_missing_share: float = 0.05
    # Below this many rows a share is too noisy to decide on (1 of 20 rows is 5%).
    min_rows: int = 100

    def __post_init__(self) -> None:
        for item in fields(self):
            value = getattr(self, item.name)
            if item.name != "min_rows" and not 0.0 <= value <= 1.0:
                raise ValueError(f"{item.name} must be a share within [0, 1], got {value}")
        if self.min_rows < 0:
            raise ValueError(f"min_rows must be >= 0, got {self.min_rows}")
        for warn, breach in (("out_of_range", "out_of_range"), ("unseen", "unseen")):
            if getattr(self, f"warn_{warn}_share") > getattr(self, f"max_{breach}_share"):
                raise ValueError(f"warn_{warn}_share must not exceed max_{breach}_share")

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> DataQualityThresholds:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass(frozen=True)
class Finding:
    check: Check
    feature: str | None
    figure: float
    threshold: float
    message: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Finding:
        feature = data.get("feature")
        return cls(
            data["check"],
            None if feature is None else str(feature),
            float(data["figure"]),
            float(data["threshold"]),
            str(data["message"]),
        )


@dataclass(frozen=True)
class FeatureQuality:
    feature: str
    present: int
    missing_share: float
    below_share: float
    above_share: float
    unseen_share: float | None  # None for a continuous feature
    top_unseen: list[tuple[float, int]] = field(default_factory=list)
    constant: bool = False  # one value in the window while the reference varies
    far_share: float = 0.0
    """Values further outside the reference's range than the range is wide: not a tail
    that grew (drift), but numbers on another scale (a unit change)."""

    @property
    def out_of_range_share(self) -> float:
        return self.below_share + self.above_share

    def to_json(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "out_of_range_share": self.out_of_range_share,
            "top_unseen": [list(pair) for pair in self.top_unseen],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> FeatureQuality:
        unseen = data.get("unseen_share")
        return cls(
            str(data["feature"]),
            int(data["present"]),
            float(data["missing_share"]),
            float(data["below_share"]),
            float(data["above_share"]),
            None if unseen is None else float(unseen),
            [(float(v), int(c)) for v, c in data.get("top_unseen", [])],
            bool(data.get("constant", False)),
            float(data.get("far_share", 0.0)),
        )


@dataclass(frozen=True)
class DataQualityResult:
    rows: int
    """Logged (sampled) rows in the window: what the per-feature checks saw."""
    answered_rows: int
    refused_rows: dict[str, int]
    refused_share: float
    features: dict[str, FeatureQuality]
    breaches: list[Finding]
    warnings: list[Finding]

    @property
    def breached(self) -> bool:
        return bool(self.breaches)

    def to_json(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "answered_rows": self.answered_rows,
            "refused_rows": dict(self.refused_rows),
            "refused_share": self.refused_share,
            "breached": self.breached,
            "features": {name: f.to_json() for name, f in self.features.items()},
            "breaches": [f.to_json() for f in self.breaches],
            "warnings": [f.to_json() for f in self.warnings],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> DataQualityResult:
        features = [FeatureQuality.from_json(f) for f in data["features"].values()]
        return cls(
            int(data["rows"]),
            int(data["answered_rows"]),
            {str(k): int(v) for k, v in data["refused_rows"].items()},
            float(data["refused_share"]),
            {f.feature: f for f in features},
            [Finding.from_json(f) for f in data["breaches"]],
            [Finding.from_json(f) for f in data["warnings"]],
        )

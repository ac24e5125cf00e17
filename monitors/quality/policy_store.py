"""Per-model and per-version overrides of the decision thresholds (`mlgate policy`).

Every threshold has a default and an `MLGATE_*` setting (`monitors/settings.py`); a model
can override some for all its versions, and a version for itself:

    effective = settings  ←  model-wide overrides  ←  the version's overrides

Stored in `monitor_policies` (one row per model, version 0 meaning "every version"), in
the database every replica shares, so one monitor and every gateway agree. Unknown keys
and out-of-range values are refused with what is allowed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from monitors.quality.data_result import DataQualityThresholds
from monitors.quality.figures import QualityThresholds
from monitors.quality.policy import PolicyLimits
from monitors.schema import MonitorPolicyRow, ensure_tables
from monitors.settings import MonitorSettings
from registry.db import Database
from registry.errors import BadRequest
from registry.quality.metrics import HIGHER_IS_BETTER

__all__ = ["KEYS", "Limits", "PolicyStore", "effective_limits"]


def _share(value: Any) -> float:
    number = float(value)
    if not 0 <= number <= 1:
        raise ValueError("must be within [0, 1]")
    return number


def _positive(value: Any) -> float:
    number = float(value)
    if number <= 0:
        raise ValueError("must be positive")
    return number


def _count(value: Any) -> int:
    if isinstance(value, bool) or int(value) != float(value) or int(value) < 1:
        raise ValueError("must be a whole number >= 1")
    return int(value)


def _non_negative(value: Any) -> float:
    number = float(value)
    if number < 0:
        raise ValueError("must be >= 0")
    return number


def _metric(value: Any) -> str:
    if value not in HIGHER_IS_BETTER:
        raise ValueError(f"must be one of {', '.join(HIGHER_IS_BETTER)}")
    return str(value)


# key → (parser, the MonitorSettings field it overrides)
KEYS: dict[str, tuple[Callable[[Any], Any], str]] = {
    "quality_metric": (_metric, "quality_metric"),
    "quality_tolerance": (_non_negative, "quality_tolerance"),
    "quality_relative_tolerance": (_non_negative, "quality_relative_tolerance"),
    "quality_min_labels": (_count, "quality_min_labels"),
    "quality_min_coverage": (_share, "quality_min_coverage"),
    "quality_min_rows": (_count, "quality_min_rows"),
    "quality_window_rows": (_count, "quality_window_rows"),
    "quality_consecutive": (_count, "quality_consecutive"),
    "drift_importance": (_share, "policy_drift_importance"),
    "drift_consecutive": (_count, "alert_consecutive_checks"),
    "schedule_s": (_positive, "retrain_schedule_s"),
    "dq_max_refused_share": (_share, "dq_max_refused_share"),
    "dq_warn_out_of_range_share": (_share, "dq_warn_out_of_range_share"),
    "dq_max_out_of_range_share": (_share, "dq_max_out_of_range_share"),
    "dq_warn_unseen_share": (_share, "dq_warn_unseen_share"),
    "dq_max_unseen_share": (_share, "dq_max_unseen_share"),
    "dq_max_missing_share": (_share, "dq_max_missing_share"),
}


@dataclass(frozen=True)
class Limits:
    """Everything the monitor applies to one version."""

    quality: QualityThresholds
    policy: PolicyLimits
    data: DataQualityThresholds
    overrides: dict[str, Any]


def effective_limits(settings: MonitorSettings, overrides: Mapping[str, Any]) -> Limits:
    value = {field: getattr(settings, field) for _, field in KEYS.values()}
    value.update({KEYS[k][1]: v for k, v in overrides.items() if k in KEYS})
    quality = QualityThresholds(
        metric=value["quality_metric"],
        tolerance=value["quality_tolerance"],
        relative_tolerance=value["quality_relative_tolerance"],
        min_labels=value["quality_min_labels"],
        min_coverage=value["quality_min_coverage"],
        window_rows=value["quality_window_rows"],
        min_rows=value["quality_min_rows"],
        consecutive=value["quality_consecutive"],
    )
    policy = PolicyLimits(
        consecutive=value["quality_consecutive"],
        drift_consecutive=value["alert_consecutive_checks"],
        drift_importance=value["policy_drift_importance"],
        feature_thresholds=dict(settings.alert_feature_thresholds),
        schedule_s=value["retrain_schedule_s"],
    )
    data = DataQualityThresholds(
        max_refused_share=value["dq_max_refused_share"],
        warn_out_of_range_share=value["dq_warn_out_of_range_share"],
        max_out_of_range_share=value["dq_max_out_of_range_share"],
        warn_unseen_share=value["dq_warn_unseen_share"],
        max_unseen_share=value["dq_max_unseen_share"],
        max_missing_share=value["dq_max_missing_share"],
    )
    return Limits(quality, policy, data, dict(overrides))


class PolicyStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def overrides(self, model: str, version: int | None = None) -> dict[str, Any]:
        """The model-wide overrides, then the version's on top (version None: model-wide)."""
        ensure_tables(self.db)
        with self.db.read() as session:
            rows = session.scalars(
                select(MonitorPolicyRow).where(
                    MonitorPolicyRow.model == model,
                    MonitorPolicyRow.version.in_([0] if version is None else [0, version]),
                )
            ).all()
        merged: dict[str, Any] = {}
        for row in sorted(rows, key=lambda r: r.version):
            merged.update(row.settings)
        return merged

    def update(
        self,
        model: str,
        version: int | None,
        *,
        set_values: Mapping[str, Any],
        unset: tuple[str, ...] = (),
        actor: str,
    ) -> dict[str, Any]:
        """Set and unset keys of the model's (version None) or a version's overrides."""
        parsed = {key: _parse(key, value) for key, value in set_values.items()}
        for key in unset:
            _known(key)
        ensure_tables(self.db)
        with self.db.write() as session:
            row = session.scalars(
                select(MonitorPolicyRow).where(
                    MonitorPolicyRow.model == model, MonitorPolicyRow.version == (version or 0)
                )
            ).first()
            current = dict(row.settings) if row is not None else {}
            current.update(parsed)
            for key in unset:
                current.pop(key, None)
            if row is None:
                row = MonitorPolicyRow(
                    model=model,
                    version=version or 0,
                    settings=current,
                    updated_at=datetime.now(UTC),
                    updated_by=actor,
                )
                session.add(row)
            else:
                row.settings = current
                row.updated_at = datetime.now(UTC)
                row.updated_by = actor
            session.flush()
            return current


def _known(key: str) -> None:
    if key not in KEYS:
        raise BadRequest(f"unknown policy setting {key!r}; known: {', '.join(KEYS)}")


def _parse(key: str, value: Any) -> Any:
    _known(key)
    if value is None and key in ("schedule_s", "quality_metric"):
        return None
    try:
        return KEYS[key][0](value)
    except (TypeError, ValueError) as exc:
        raise BadRequest(f"policy setting {key}={value!r}: {exc}") from None

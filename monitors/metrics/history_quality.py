"""The quality part of the dashboard's history: one version's primary metric over time.

Read from the quality gauges the gateway publishes from stored evaluations
(`monitors/quality/gauges.py`, one `Reading`). Per model the panel follows one version: the
one the `production` alias serves, else the newest served version with quality figures.
The primary metric is the one with a baseline (the metric decisions are made on; several
metrics are published per version), else the task's default primary metric, the task
told apart by the metrics published (`registry.quality.metrics`).

The state line follows the decision policy's order (`monitors/quality/policy.py`):
`breach` (data quality) first, then `degraded` (a significant fall), then `finding` (drift
judged harmless); otherwise `holding` (figures and a baseline, no fall), `no-baseline`
(figures, nothing to hold them against) or `unknown` (no figures). The gauges do not say
whether the realised figure had enough labels to be judged, so `holding` means "not
significantly below the baseline", not "proven as good".
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from monitors.metrics.reading import Reading
from registry.quality.metrics import METRICS, PRIMARY

__all__ = ["COLUMNS", "QualityPoint", "quality_point", "quality_snapshot", "quality_state"]

COLUMNS = (
    "realised",
    "realised_lower",
    "realised_upper",
    "estimated",
    "estimated_lower",
    "estimated_upper",
    "baseline",
    "labelled_rows",
    "coverage",
)
"""What each point holds; the first seven are figures of the primary metric."""
_FIGURES = COLUMNS[:7]


@dataclass(frozen=True, slots=True)
class QualityPoint:
    version: str
    metric: str | None
    values: dict[str, float | None]


def _gauge(reading: Reading, name: str, key: tuple[str, str, str]) -> float | None:
    value = reading.quality.get(name, {}).get(key)
    return value if value is not None and math.isfinite(value) else None


def _followed(reading: Reading, model: str) -> str | None:
    """The served version the panel follows (None: no served version has quality series)."""
    measured = {key[1] for series in reading.quality.values() for key in series if key[0] == model}
    aliases = reading.aliases(model)
    candidates = [v for v in aliases if v in measured]
    if not candidates:
        return None
    production = [v for v in candidates if "production" in aliases[v]]
    return max(production or candidates, key=lambda v: (v.isdigit(), int(v) if v.isdigit() else 0))


def _metric(reading: Reading, model: str, version: str) -> str | None:
    with_baseline = sorted(
        key[2] for key in reading.quality.get("baseline", {}) if key[:2] == (model, version)
    )
    if with_baseline:
        return with_baseline[0]
    published = {
        key[2]
        for name in ("realised", "estimated")
        for key in reading.quality.get(name, {})
        if key[:2] == (model, version)
    }
    tasks = [task for task, names in METRICS.items() if published and published <= set(names)]
    return next((PRIMARY[t] for t in tasks if PRIMARY[t] in published), None)


def quality_point(reading: Reading, model: str) -> QualityPoint | None:
    version = _followed(reading, model)
    if version is None:
        return None
    metric = _metric(reading, model, version)
    values: dict[str, float | None] = {
        name: None if metric is None else _gauge(reading, name, (model, version, metric))
        for name in _FIGURES
    }
    for name in ("labelled_rows", "coverage"):
        values[name] = _gauge(reading, name, (model, version, ""))
    return QualityPoint(version, metric, values)


def quality_snapshot(
    points: Sequence[QualityPoint | None], reading: Reading, model: str
) -> dict[str, Any]:
    """Columns of the followed version's figures (points of another version or metric,
    from before a promotion, are None) and its latest state."""
    latest = quality_point(reading, model)
    shown = None if latest is None else (latest.version, latest.metric)

    def column(name: str) -> list[float | None]:
        return [
            p.values[name] if p is not None and (p.version, p.metric) == shown else None
            for p in points
        ]

    return {
        "version": None if latest is None else latest.version,
        "metric": None if latest is None else latest.metric,
        **{name: column(name) for name in COLUMNS},
        "state": None if latest is None else quality_state(reading, model, latest),
    }


def quality_state(reading: Reading, model: str, point: QualityPoint) -> dict[str, Any]:
    """The latest state of the followed version, for the page's state line."""
    key = (model, point.version, "")
    breaches = int(_gauge(reading, "breaches", key) or 0)
    degraded = bool(_gauge(reading, "degraded", key))
    finding = bool(_gauge(reading, "finding", key))
    values = point.values
    figures = values["realised"] is not None or values["estimated"] is not None
    if breaches:
        state = "breach"
    elif degraded:
        state = "degraded"
    elif finding:
        state = "finding"
    elif figures and values["baseline"] is not None:
        state = "holding"
    elif figures:
        state = "no-baseline"
    else:
        state = "unknown"
    return {
        "state": state,
        "version": point.version,
        "metric": point.metric,
        **{name: values[name] for name in COLUMNS},
        "degraded": degraded,
        "finding": finding,
        "breaches": breaches,
        "warnings": int(_gauge(reading, "warnings", key) or 0),
        "refused_share": _gauge(reading, "refused_share", key),
    }

"""One `registry.collect()` of the gateway's metrics, and PromQL's arithmetic on two of them.

`Reading.collect` keeps only the series the dashboard charts, keyed by their label values
(model first; series under model "", names the gateway does not serve, are left out).
`counter_deltas`/`bucket_deltas` are `increase()` between two readings: a series that is
new, or whose `_created` time changed (a reloaded version starts its counters again), or
whose value went down, was reset, so its delta is its whole current value, never negative.
`histogram_quantile` is Prometheus's, operation for operation, so both agree to the bit.
The quality gauges (`monitors/quality/gauges.py`) are kept as read, in `quality`, keyed by
(model, version, metric) with metric "" for the per-version ones.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry

__all__ = [
    "QUALITY",
    "Buckets",
    "Key",
    "Reading",
    "bucket_deltas",
    "counter_deltas",
    "histogram_quantile",
    "per_model",
    "sum_buckets",
]

Key = tuple[str, ...]
Buckets = dict[float, float]  # upper bound -> cumulative count

# Sample name -> (reading field, label names forming the key). Histograms keep `le` apart.
SAMPLES = {
    "mlgate_requests_total": ("requests", ("model", "version", "protocol", "code")),
    "mlgate_request_duration_seconds_bucket": ("latency", ("model", "version", "protocol")),
    "mlgate_batch_size_bucket": ("batch_sizes", ("model", "version")),
    "mlgate_rejected_total": ("rejected", ("model", "version", "reason")),
    "mlgate_queue_depth": ("queue_depth", ("model", "version")),
    "mlgate_drift_share": ("drift_share", ("model", "version")),
    "mlgate_drift_last_check_timestamp_seconds": ("drift_checked", ("model", "version")),
    "mlgate_drift_score": ("drift_scores", ("model", "version", "feature")),
    "mlgate_model_info": ("info", ("model", "version", "format", "alias", "role")),
    "mlgate_retraining_tasks": ("tasks", ("model", "status")),
    "mlgate_shadow_requests_total": ("shadow", ("model", "version", "outcome")),
}
HISTOGRAMS = ("latency", "batch_sizes")
# Quality gauge -> its name in `Reading.quality`.
QUALITY = {
    "mlgate_quality": "realised",
    "mlgate_quality_lower": "realised_lower",
    "mlgate_quality_upper": "realised_upper",
    "mlgate_quality_estimated": "estimated",
    "mlgate_quality_estimated_lower": "estimated_lower",
    "mlgate_quality_estimated_upper": "estimated_upper",
    "mlgate_quality_baseline": "baseline",
    "mlgate_quality_labelled_rows": "labelled_rows",
    "mlgate_label_coverage": "coverage",
    "mlgate_quality_degraded": "degraded",
    "mlgate_drift_finding": "finding",
    "mlgate_data_quality_breaches": "breaches",
    "mlgate_data_quality_warnings": "warnings",
    "mlgate_data_quality_refused_share": "refused_share",
}
# `_created` (when a series began) tells a reset apart even when no value went down.
CREATED = {
    "mlgate_requests_created": SAMPLES["mlgate_requests_total"],
    "mlgate_request_duration_seconds_created": SAMPLES["mlgate_request_duration_seconds_bucket"],
    "mlgate_batch_size_created": SAMPLES["mlgate_batch_size_bucket"],
    "mlgate_rejected_created": SAMPLES["mlgate_rejected_total"],
}


@dataclass(slots=True)
class Reading:
    """One `registry.collect()`, keyed by label values (model first)."""

    requests: dict[Key, float] = field(default_factory=dict)
    latency: dict[Key, Buckets] = field(default_factory=dict)
    batch_sizes: dict[Key, Buckets] = field(default_factory=dict)
    rejected: dict[Key, float] = field(default_factory=dict)
    queue_depth: dict[Key, float] = field(default_factory=dict)
    drift_share: dict[Key, float] = field(default_factory=dict)
    drift_checked: dict[Key, float] = field(default_factory=dict)
    drift_scores: dict[Key, float] = field(default_factory=dict)
    info: dict[Key, float] = field(default_factory=dict)
    tasks: dict[Key, float] = field(default_factory=dict)
    shadow: dict[Key, float] = field(default_factory=dict)
    quality: dict[str, dict[Key, float]] = field(default_factory=dict)
    created: dict[tuple[str, Key], float] = field(default_factory=dict)

    @classmethod
    def collect(cls, registry: CollectorRegistry) -> Reading:
        reading = cls()
        for family in registry.collect():
            for sample in family.samples:
                gauge = QUALITY.get(sample.name)
                if gauge is not None and sample.labels.get("model"):
                    where = tuple(sample.labels.get(n, "") for n in ("model", "version", "metric"))
                    reading.quality.setdefault(gauge, {})[where] = sample.value
                    continue
                target = SAMPLES.get(sample.name) or CREATED.get(sample.name)
                if target is None or not sample.labels.get("model"):
                    continue
                name, labels = target
                key = tuple(sample.labels.get(label, "") for label in labels)
                if sample.name in CREATED:
                    reading.created[name, key] = sample.value
                    continue
                series: dict[Any, Any] = getattr(reading, name)
                if name in HISTOGRAMS:
                    series.setdefault(key, {})[float(sample.labels["le"])] = sample.value
                else:
                    series[key] = sample.value
        return reading

    def models(self) -> set[str]:
        return {key[0] for name in SAMPLES.values() for key in getattr(self, name[0])}

    def served(self, model: str) -> set[str]:
        return {key[1] for key in self.info if key[0] == model}

    def aliases(self, model: str) -> dict[str, set[str]]:
        """Served version -> the aliases serving it."""
        found: dict[str, set[str]] = {}
        for _, version, _, alias, _ in (key for key in self.info if key[0] == model):
            found.setdefault(version, set()).update({alias} if alias else set())
        return found

    def restarted(self, before: Reading, name: str) -> set[Key]:
        """Series of `name` created anew since `before`: reset, whatever their values."""
        return {
            key
            for (n, key), at in self.created.items()
            if n == name and before.created.get((n, key), at) != at
        }


def histogram_quantile(q: float, buckets: Mapping[float, float]) -> float | None:
    """Prometheus's histogram_quantile over cumulative counts keyed by upper bound.

    None where Prometheus answers NaN: no +Inf bucket, fewer than two buckets, or no
    observations. A rank in the +Inf bucket answers the highest finite bound.
    """
    bounds = sorted(buckets)
    if len(bounds) < 2 or bounds[-1] != math.inf:
        return None
    total = buckets[math.inf]
    if total <= 0:
        return None
    rank = q * total
    lower, below = 0.0, 0.0
    for index, bound in enumerate(bounds[:-1]):
        count = buckets[bound]
        if count >= rank:
            if index == 0 and bound <= 0:
                return bound  # no lower bound to interpolate from
            # Operation order as in Prometheus, so the results agree to the last bit.
            return lower + (bound - lower) * ((rank - below) / (count - below))
        lower, below = bound, count
    return bounds[-2]


def counter_deltas(now: Reading, before: Reading, name: str) -> dict[Key, float]:
    """Increase per series since `before`; a reset (or a decrease) counts from zero."""
    current: dict[Key, float] = getattr(now, name)
    earlier: dict[Key, float] = getattr(before, name)
    restarted, deltas = now.restarted(before, name), {}
    for key, value in current.items():
        previous = earlier.get(key)
        if previous is None or key in restarted or value < previous:
            deltas[key] = value
        else:
            deltas[key] = value - previous
    return deltas


def bucket_deltas(now: Reading, before: Reading, name: str) -> dict[Key, Buckets]:
    """The same per histogram series; one bucket going down resets the whole series."""
    current: dict[Key, Buckets] = getattr(now, name)
    earlier: dict[Key, Buckets] = getattr(before, name)
    restarted, deltas = now.restarted(before, name), {}
    for key, buckets in current.items():
        previous = earlier.get(key)
        if (
            previous is None
            or key in restarted
            or any(c < previous.get(le, 0.0) for le, c in buckets.items())
        ):
            deltas[key] = dict(buckets)
        else:
            deltas[key] = {le: c - previous.get(le, 0.0) for le, c in buckets.items()}
    return deltas


def sum_buckets(series: Iterable[Buckets]) -> Buckets:
    total: Buckets = defaultdict(float)
    for buckets in series:
        for le, count in buckets.items():
            total[le] += count
    return dict(total)


def per_model(series: Mapping[Key, Any], model: str) -> list[Any]:
    return [value for key, value in series.items() if key[0] == model]

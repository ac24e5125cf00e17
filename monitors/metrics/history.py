"""A short in-memory history of the gateway's metrics, for the built-in dashboard.

Prometheus keeps the real history; this is what a gateway without one can still show a
person. Every `sample()` reads `registry.collect()` once (a `Reading`) and turns the
cumulative counters and histograms into per-interval values, as PromQL would over that
interval (the arithmetic is in `reading.py`):

- rates are deltas over the elapsed time (`rate()`); a reset series (a reloaded version
  starts from 0) counts from zero, never negative.
- latency quantiles are `histogram_quantile()` over the interval's bucket deltas, summed
  across versions and protocols: linear interpolation inside the bucket holding the rank.
  None for an interval without requests.
- the first sample only sets the baseline: a rate needs two readings.

Gauges (queue depth, drift, quality) are read as they are, for the served versions only
(the ones in `mlgate_model_info`), since an old version's gauges outlive its serving; the
quality panel follows one served version (`history_quality.py`). Memory is bounded: at most
`points` points per model, plus per model the batch-size totals. Requests under model ""
(names the gateway does not serve) are not charted.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry

from monitors.metrics.history_quality import QualityPoint, quality_point, quality_snapshot
from monitors.metrics.reading import (
    Buckets,
    Key,
    Reading,
    bucket_deltas,
    counter_deltas,
    histogram_quantile,
    per_model,
    sum_buckets,
)
from monitors.tasks.store import ACTIVE

__all__ = ["MetricsHistory"]

QUANTILES = {"p50": 0.5, "p95": 0.95, "p99": 0.99}
TOP_DRIFT = 10


@dataclass(frozen=True, slots=True)
class Point:
    t: float
    request_rate: float
    error_rate: float
    quantiles: dict[str, float | None]
    queue_depth: float | None
    rejected: dict[str, float]
    drift_share: float | None
    quality: QualityPoint | None


@dataclass(slots=True)
class ModelSeries:
    points: deque[Point]
    batches_total: Buckets = field(default_factory=dict)
    """Cumulative batch-size buckets since the gateway started (reset-proof)."""
    batches_last: Buckets = field(default_factory=dict)
    """The same over the latest interval."""


class MetricsHistory:
    """The last `points` points per model, one per `sample()`; `snapshot()` is JSON-ready.

    `interval_s`: the sampling period the caller keeps, reported in the snapshot (when
    None, the last measured interval). Call `sample` and `snapshot` from one thread.
    """

    def __init__(
        self,
        registry: CollectorRegistry,
        *,
        points: int = 720,
        clock: Callable[[], float] = time.time,
        interval_s: float | None = None,
    ) -> None:
        if points < 1:
            raise ValueError(f"points must be at least 1, got {points}")
        self.registry = registry
        self.points = points
        self.clock = clock
        self.interval_s = interval_s
        self._models: dict[str, ModelSeries] = {}
        self._last: Reading | None = None
        self._last_at: float | None = None
        self._measured_s: float | None = None

    def sample(self, registry: CollectorRegistry | None = None) -> None:
        """One point, read from `registry` (default: the one given at construction; a
        gateway with workers passes every worker's metrics merged)."""
        at, reading = self.clock(), Reading.collect(registry or self.registry)
        previous, previous_at = self._last, self._last_at
        if previous is not None and previous_at is not None and at <= previous_at:
            return  # the clock did not advance: no interval to divide by
        self._last, self._last_at = reading, at
        if previous is None or previous_at is None:
            for model in reading.models():  # the baseline: totals so far, no point yet
                self._series(model).batches_total = sum_buckets(
                    per_model(reading.batch_sizes, model)
                )
            return
        elapsed = self._measured_s = at - previous_at
        requests = counter_deltas(reading, previous, "requests")
        latency = bucket_deltas(reading, previous, "latency")
        batches = bucket_deltas(reading, previous, "batch_sizes")
        rejected = counter_deltas(reading, previous, "rejected")
        for model in sorted(reading.models()):
            self._append(model, at, elapsed, reading, requests, latency, batches, rejected)

    def _series(self, model: str) -> ModelSeries:
        series = self._models.get(model)
        if series is None:
            series = self._models[model] = ModelSeries(deque(maxlen=self.points))
        return series

    def _append(
        self,
        model: str,
        at: float,
        elapsed: float,
        reading: Reading,
        requests: dict[Key, float],
        latency: dict[Key, Buckets],
        batches: dict[Key, Buckets],
        rejected: dict[Key, float],
    ) -> None:
        series = self._series(model)
        mine = {key: n for key, n in requests.items() if key[0] == model}
        errors = sum(n for key, n in mine.items() if not key[3].startswith("2"))
        buckets = sum_buckets(per_model(latency, model))
        reasons: dict[str, float] = defaultdict(float)
        for key, n in rejected.items():
            if key[0] == model:
                reasons[key[2]] += n / elapsed
        depths = per_model(reading.queue_depth, model)
        served = reading.served(model)
        shares = [
            v
            for k, v in reading.drift_share.items()
            if k[0] == model and k[1] in served and math.isfinite(v)
        ]
        interval_batches = sum_buckets(per_model(batches, model))
        for le, n in interval_batches.items():
            series.batches_total[le] = series.batches_total.get(le, 0.0) + n
        series.batches_last = interval_batches
        series.points.append(
            Point(
                t=at,
                request_rate=sum(mine.values()) / elapsed,
                error_rate=errors / elapsed,
                quantiles={k: histogram_quantile(q, buckets) for k, q in QUANTILES.items()},
                queue_depth=float(sum(depths)) if depths else None,
                rejected=dict(reasons),
                # The worst served version: several are served while canaries run.
                drift_share=max(shares) if shares else None,
                quality=quality_point(reading, model),
            )
        )

    def snapshot(self) -> dict[str, Any]:
        return {
            "interval_s": self.interval_s if self.interval_s is not None else self._measured_s,
            "generated_at": self.clock(),
            "models": {name: self._model_snapshot(name) for name in sorted(self._models)},
        }

    def _model_snapshot(self, model: str) -> dict[str, Any]:
        series = self._models[model]
        points = list(series.points)
        reasons = sorted({reason for p in points for reason in p.rejected})
        reading = self._last or Reading()
        served = reading.served(model)
        scores = sorted(
            (-v, k[2], k[1])
            for k, v in reading.drift_scores.items()
            if k[0] == model and k[1] in served and math.isfinite(v)
        )
        checked = [v for k, v in reading.drift_checked.items() if k[0] == model and k[1] in served]
        return {
            "t": [p.t for p in points],
            "request_rate": [p.request_rate for p in points],
            "error_rate": [p.error_rate for p in points],
            **{name: [p.quantiles[name] for p in points] for name in QUANTILES},
            "queue_depth": [p.queue_depth for p in points],
            "rejected": {r: [p.rejected.get(r) for p in points] for r in reasons},
            "drift_share": [p.drift_share for p in points],
            "batch_sizes": batch_snapshot(series),
            "top_drift": [
                {"feature": f, "score": -v, "version": ver} for v, f, ver in scores[:TOP_DRIFT]
            ],
            "drift_checked_at": max(checked) if checked else None,
            "quality": quality_snapshot([p.quality for p in points], reading, model),
            "versions": versions(reading, model),
            # Requests mirrored to each shadow version since it loaded, by outcome.
            "shadow": shadow_counts(reading, model),
            # Retraining tasks not yet ended (open, running, candidate, needs-trainer).
            "tasks": {
                status: int(n)
                for (name, status), n in sorted(reading.tasks.items())
                if name == model and status in ACTIVE_TASKS and n
            },
        }


ACTIVE_TASKS = ACTIVE


def per_bucket(cumulative: Buckets, bounds: list[float]) -> list[float]:
    counts, below = [], 0.0
    for le in bounds:
        value = cumulative.get(le, below)
        counts.append(max(value - below, 0.0))
        below = value
    return counts


def batch_snapshot(series: ModelSeries) -> dict[str, list[Any]]:
    """Per-bucket (not cumulative) batch counts; `le` as Prometheus writes it ("+Inf")."""
    bounds = sorted(series.batches_total.keys() | series.batches_last.keys())
    return {
        "le": ["+Inf" if le == math.inf else f"{le:g}" for le in bounds],
        "count": per_bucket(series.batches_total, bounds),
        "count_last_interval": per_bucket(series.batches_last, bounds),
    }


def versions(reading: Reading, model: str) -> list[dict[str, Any]]:
    """Served versions with their format, aliases ("" alias: loaded explicitly, or a shadow)
    and role (serving, shadow, loaded)."""
    found: dict[str, dict[str, Any]] = {}
    for _, version, fmt, alias, role in (k for k in reading.info if k[0] == model):
        entry = found.setdefault(
            version, {"version": version, "format": fmt, "aliases": [], "role": role}
        )
        if alias:
            entry["aliases"].append(alias)
    for entry in found.values():
        entry["aliases"].sort()
    return sorted(found.values(), key=lambda e: int(e["version"]) if e["version"].isdigit() else 0)


def shadow_counts(reading: Reading, model: str) -> dict[str, dict[str, int]]:
    """{shadow version: {outcome: requests}} (ok, shed, error) for `model`."""
    found: dict[str, dict[str, int]] = {}
    for (name, version, outcome), n in sorted(reading.shadow.items()):
        if name == model:
            found.setdefault(version, {})[outcome] = int(n)
    return found

"""Quality, data quality and decisions as Prometheus series, published from stored results.

The gateway publishes the latest stored quality evaluation and drift check of each
version it serves (whether its own monitor or one `mlgate monitor` computed them), so
every replica exports the same values: aggregate these with `max by (model, version)`,
not `sum`. Labels stay bounded: `metric` is one of the task's metrics, `feature` one of
at most `max_features` input features per version.

    mlgate_quality{model,version,metric}            realised, over the newest labelled rows
    mlgate_quality_lower / _upper                   its 95 % interval
    mlgate_quality_estimated{...} (+ _lower/_upper) confidence-based estimate, no labels
    mlgate_quality_baseline{model,version,metric}   from registration (evaluation data)
    mlgate_quality_labelled_rows{model,version}     labelled rows the realised figure uses
    mlgate_label_coverage{model,version}            labelled share of their predictions
    mlgate_quality_degraded{model,version}          1: realised quality significantly below
                                                    the baseline (what `realised_drop` uses)
    mlgate_quality_estimated_degraded{...}          1: labels not in, the estimate is
    mlgate_quality_status{model,version,status}     1 for the evaluation's status (unknown,
                                                    no-baseline, insufficient, holding, degraded)
    mlgate_quality_primary{model,version,metric}    1 for the metric decisions are made on
    mlgate_drift_finding{model,version}             1: drift confirmed, judged harmless
    mlgate_data_quality_breaches / _warnings        findings of the latest drift window
    mlgate_data_quality_refused_share               rows refused at validation
    mlgate_data_quality_out_of_range_share{...,feature}
    mlgate_labelled_rows_total{model,version}       counter: labels joined to predictions
    mlgate_label_delay_seconds{model,version}       histogram: label time − prediction time
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Gauge
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from monitors.quality.labels import DELAY_BUCKETS
from monitors.quality.store import STATUSES

__all__ = ["LabelCollector", "QualityGauges"]


class QualityGauges:
    def __init__(self, registry: CollectorRegistry, *, max_features: int = 50) -> None:
        def gauge(name: str, doc: str, *extra: str) -> Gauge:
            return Gauge(name, doc, ["model", "version", *extra], registry=registry)

        self.max_features = max_features
        self.realised = gauge(
            "mlgate_quality", "Realised quality over the newest labelled predictions.", "metric"
        )
        self.realised_lower = gauge(
            "mlgate_quality_lower", "Lower 95% bound of mlgate_quality.", "metric"
        )
        self.realised_upper = gauge(
            "mlgate_quality_upper", "Upper 95% bound of mlgate_quality.", "metric"
        )
        self.estimated = gauge(
            "mlgate_quality_estimated",
            "Estimated quality (confidence-based) over the newest predictions, before labels.",
            "metric",
        )
        self.estimated_lower = gauge(
            "mlgate_quality_estimated_lower", "Lower 95% bound of the estimate.", "metric"
        )
        self.estimated_upper = gauge(
            "mlgate_quality_estimated_upper", "Upper 95% bound of the estimate.", "metric"
        )
        self.baseline = gauge(
            "mlgate_quality_baseline", "Quality on the evaluation data at registration.", "metric"
        )
        self.labelled = gauge(
            "mlgate_quality_labelled_rows", "Labelled predictions behind mlgate_quality."
        )
        self.coverage = gauge(
            "mlgate_label_coverage", "Labelled share of the predictions behind mlgate_quality."
        )
        self.degraded = gauge(
            "mlgate_quality_degraded",
            "1 when realised quality is significantly below the baseline.",
        )
        self.estimated_degraded = gauge(
            "mlgate_quality_estimated_degraded",
            "1 when labels are not in yet and estimated quality is significantly below the "
            "baseline.",
        )
        self.status = gauge(
            "mlgate_quality_status", "1 for the latest evaluation's status.", "status"
        )
        self.primary = gauge(
            "mlgate_quality_primary", "1 for the metric the decision policy judges.", "metric"
        )
        self.finding = gauge(
            "mlgate_drift_finding",
            "1 when drift is confirmed but quality holds: a finding, not a retraining task.",
        )
        self.dq_breaches = gauge(
            "mlgate_data_quality_breaches", "Data-quality breaches in the latest drift window."
        )
        self.dq_warnings = gauge(
            "mlgate_data_quality_warnings", "Data-quality warnings in the latest drift window."
        )
        self.dq_refused = gauge(
            "mlgate_data_quality_refused_share",
            "Share of rows refused at validation in the latest window.",
        )
        self.dq_out_of_range = gauge(
            "mlgate_data_quality_out_of_range_share",
            "Share of a feature's values outside the reference's range in the latest window.",
            "feature",
        )
        self._metrics: dict[tuple[str, str], set[str]] = {}
        self._primary: dict[tuple[str, str], set[str]] = {}
        self._features: dict[tuple[str, str], set[str]] = {}

    def set_quality(self, model: str, version: int, result: Mapping[str, Any]) -> None:
        """Publish one stored evaluation (`QualityCheck.to_json()`)."""
        labels = (model, str(version))
        realised = _figures(result.get("realised"))
        estimated = _figures(result.get("estimated"))
        baseline = result.get("baseline")
        metric = result.get("metric")
        shown = set(realised) | set(estimated) | ({metric} if baseline and metric else set())
        for gone in self._metrics.get(labels, set()) - shown:
            for family in self._metric_families():
                _remove(family, *labels, gone)
        for name in shown:
            for family in self._metric_families():
                _remove(family, *labels, name)
        for name, figure in realised.items():
            self.realised.labels(*labels, name).set(figure["value"])
            self.realised_lower.labels(*labels, name).set(figure["lower"])
            self.realised_upper.labels(*labels, name).set(figure["upper"])
        for name, figure in estimated.items():
            self.estimated.labels(*labels, name).set(figure["value"])
            self.estimated_lower.labels(*labels, name).set(figure["lower"])
            self.estimated_upper.labels(*labels, name).set(figure["upper"])
        if baseline and metric:
            self.baseline.labels(*labels, metric).set(baseline["value"])
        self._metrics[labels] = shown
        held = result.get("realised") or {}
        self.labelled.labels(*labels).set(int(held.get("rows") or 0))
        self.coverage.labels(*labels).set(float(held.get("coverage") or 0.0))
        realised_held = result.get("realised") or {}
        realised_worse = bool((realised_held.get("verdict") or {}).get("worse"))
        estimated_worse = not realised_held.get("judged") and bool(
            ((result.get("estimated") or {}).get("verdict") or {}).get("worse")
        )
        self.degraded.labels(*labels).set(1 if realised_worse else 0)
        self.estimated_degraded.labels(*labels).set(1 if estimated_worse else 0)
        for status in STATUSES:
            self.status.labels(*labels, status).set(1 if result.get("status") == status else 0)
        for gone in self._primary.get(labels, set()) - ({metric} if metric else set()):
            _remove(self.primary, *labels, gone)
        if metric:
            self.primary.labels(*labels, metric).set(1)
        self._primary[labels] = {metric} if metric else set()
        decision = result.get("decision") or {}
        self.finding.labels(*labels).set(1 if decision.get("outcome") == "finding" else 0)

    def set_data_quality(self, model: str, version: int, quality: Mapping[str, Any]) -> None:
        """Publish the data quality of the latest drift check (`DataQualityResult` JSON)."""
        labels = (model, str(version))
        self.dq_breaches.labels(*labels).set(len(quality.get("breaches") or []))
        self.dq_warnings.labels(*labels).set(len(quality.get("warnings") or []))
        self.dq_refused.labels(*labels).set(float(quality.get("refused_share") or 0.0))
        features = quality.get("features") or {}
        shares = {
            name: float((f or {}).get("out_of_range_share") or 0.0) for name, f in features.items()
        }
        top = sorted(shares, key=lambda n: (-shares[n], n))[: self.max_features]
        for gone in self._features.get(labels, set()) - set(top):
            _remove(self.dq_out_of_range, *labels, gone)
        for name in top:
            self.dq_out_of_range.labels(*labels, name).set(shares[name])
        self._features[labels] = set(top)

    def _metric_families(self) -> tuple[Gauge, ...]:
        return (
            self.realised,
            self.realised_lower,
            self.realised_upper,
            self.estimated,
            self.estimated_lower,
            self.estimated_upper,
            self.baseline,
        )


class LabelCollector(Collector):
    """`mlgate_labelled_rows_total` and `mlgate_label_delay_seconds`, from the stored
    cumulative tallies of each served version (set by the gateway after each round)."""

    def __init__(self) -> None:
        self._tallies: dict[tuple[str, str], Mapping[str, Any]] = {}

    def update(self, model: str, version: int, tally: Mapping[str, Any]) -> None:
        self._tallies[(model, str(version))] = tally

    def forget(self, keep: set[tuple[str, str]]) -> None:
        self._tallies = {k: v for k, v in self._tallies.items() if k in keep}

    def collect(self) -> Iterator[CounterMetricFamily | HistogramMetricFamily]:
        joined = CounterMetricFamily(
            "mlgate_labelled_rows",
            "Labels joined to sampled predictions by the quality monitor.",
            labels=["model", "version"],
        )
        delay = HistogramMetricFamily(
            "mlgate_label_delay_seconds",
            "Seconds from a prediction to its label's arrival.",
            labels=["model", "version"],
        )
        for (model, version), tally in sorted(self._tallies.items()):
            joined.add_metric([model, version], int(tally.get("joined", 0)))
            counts = (tally.get("delay") or {}).get("counts") or []
            if len(counts) == len(DELAY_BUCKETS) + 1:
                running, buckets = 0, []
                for bound, count in zip([*DELAY_BUCKETS, float("inf")], counts, strict=True):
                    running += int(count)
                    buckets.append((_le(bound), running))
                total = float((tally.get("delay") or {}).get("sum_s", 0.0))
                delay.add_metric([model, version], buckets, total)
        yield joined
        yield delay

    def describe(self) -> Iterator[CounterMetricFamily]:
        return iter(())


def _figures(held: Mapping[str, Any] | None) -> dict[str, dict[str, float]]:
    scores = (held or {}).get("scores") or {}
    return dict(scores.get("figures") or {})


def _le(bound: float) -> str:
    return "+Inf" if bound == float("inf") else f"{bound:g}"


def _remove(gauge: Gauge, *labels: str) -> None:
    with contextlib.suppress(KeyError):  # never set: nothing to remove
        gauge.remove(*labels)

"""The gateway's Prometheus metrics, on a `CollectorRegistry` the caller passes in.

Names and labels are the design brief's contract (`mlgate_` prefix, base units, `_total`
counters, labels `model`, `version`, `protocol`, `code`, `reason`, `feature`: never a
request id). Latency histograms share one bucket ladder with the latency SLO added as an
edge, so `bucket{le="<slo>"}` counts requests within the SLO exactly.

Cost on the request path: the labelled children are looked up once per label set and
cached, so a request costs one counter increment and one histogram observation. Values
that already live elsewhere (queue depth, queue bound, which versions are served) are read
at scrape time by `ServingCollector`, at no cost per request.

NOTE: these are plain in-process collectors, one set per gateway process. With worker
processes, the worker that gets a scrape merges every worker's exposition
(`services/gateway/processes/metrics.py`); Prometheus's multiprocess mode, with its limits
(no custom collectors, leaked files from recycled workers, slower increments), is not used.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from monitors.quality.gauges import LabelCollector, QualityGauges

__all__ = [
    "BATCH_SIZE_BUCKETS",
    "LATENCY_BUCKETS",
    "GatewayMetrics",
    "InferenceLogCollector",
    "ServedView",
    "ServingCollector",
    "TaskCollector",
    "VersionMetrics",
    "latency_buckets",
]

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
BATCH_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
BATCH_REASONS = ("idle", "full", "max_delay", "slo", "no_gain")
# queue_full: 429; shed: 503, predicted to miss the SLO in the queue; overload: 503, the
# event loop too far behind for the SLO (refused at the door); deadline: 504.
REJECT_REASONS = ("queue_full", "shed", "overload", "deadline")


def latency_buckets(slo_s: float) -> tuple[float, ...]:
    """The ladder with the SLO on an edge (added when it is not one already)."""
    return tuple(sorted({*LATENCY_BUCKETS, round(slo_s, 6)}))


class VersionMetrics:
    """One served version's batch-level metrics; the batcher calls these (BatchObserver)."""

    __slots__ = ("_batch_size", "_batches", "_compute", "_queue", "_rejected")

    def __init__(self, metrics: GatewayMetrics, model: str, version: str) -> None:
        self._queue = metrics.queue_duration.labels(model, version)
        self._compute = metrics.compute_duration.labels(model, version)
        self._batch_size = metrics.batch_size.labels(model, version)
        # Every reason's child exists from the start, so each series is exported at 0 and
        # rate() sees the first increment.
        self._batches = {r: metrics.batches.labels(model, version, r) for r in BATCH_REASONS}
        self._rejected = {r: metrics.rejected.labels(model, version, r) for r in REJECT_REASONS}

    def batch_started(self, reason: str, rows: int, waits: Sequence[float]) -> None:
        self._batches[reason].inc()
        self._batch_size.observe(rows)
        for wait in waits:
            self._queue.observe(wait)

    def batch_done(self, rows: int, compute_s: float) -> None:
        self._compute.observe(compute_s)

    def rejected(self, reason: str) -> None:
        self._rejected[reason].inc()


class GatewayMetrics:
    """Every gateway metric, registered on `registry`."""

    def __init__(self, registry: CollectorRegistry, *, slo_s: float = 0.25) -> None:
        self.registry = registry
        latency = latency_buckets(slo_s)
        self.requests = Counter(
            "mlgate_requests",
            "Inference requests answered, by status code.",
            ["model", "version", "protocol", "code"],
            registry=registry,
        )
        self.request_duration = Histogram(
            "mlgate_request_duration_seconds",
            "Time from the request's arrival to its response, in seconds.",
            ["model", "version", "protocol"],
            buckets=latency,
            registry=registry,
        )
        self.queue_duration = Histogram(
            "mlgate_queue_duration_seconds",
            "Time a request waited in the batcher's queue, in seconds.",
            ["model", "version"],
            buckets=latency,
            registry=registry,
        )
        self.compute_duration = Histogram(
            "mlgate_compute_duration_seconds",
            "Runtime time per batch, in seconds.",
            ["model", "version"],
            buckets=latency,
            registry=registry,
        )
        self.batch_size = Histogram(
            "mlgate_batch_size",
            "Rows per batch sent to the runtime.",
            ["model", "version"],
            buckets=BATCH_SIZE_BUCKETS,
            registry=registry,
        )
        self.batches = Counter(
            "mlgate_batches",
            "Batches sent to the runtime, by why they left the queue.",
            ["model", "version", "reason"],
            registry=registry,
        )
        self.rejected = Counter(
            "mlgate_rejected",
            "Requests refused: queue_full (429), shed (503, would miss the SLO), overload "
            "(503, the event loop too far behind for the SLO), deadline (504).",
            ["model", "version", "reason"],
            registry=registry,
        )
        self.shadow_requests = Counter(
            "mlgate_shadow_requests",
            "Requests mirrored to a shadow version, by what became of them: ok (answered and "
            "logged), shed (skipped or refused: live traffic first), error (the shadow failed).",
            ["model", "version", "outcome"],
            registry=registry,
        )
        self.shadow_duration = Histogram(
            "mlgate_shadow_duration_seconds",
            "A shadow version's time per mirrored request, queue included, in seconds.",
            ["model", "version"],
            buckets=latency,
            registry=registry,
        )
        self.loop_lag = Gauge(
            "mlgate_event_loop_lag_seconds",
            "How late the gateway's event loop woke for its latest lag probe (every 5 ms).",
            registry=registry,
        )
        self.drift_score = Gauge(
            "mlgate_drift_score",
            "Per-column drift severity of the latest check: its score relative to its "
            "threshold, higher is worse, >= 1 drifted (capped at 1000; raw scores and methods "
            "are in the drift JSON).",
            ["model", "version", "feature"],
            registry=registry,
        )
        self.drift_share = Gauge(
            "mlgate_drift_share",
            "Share of input features that drifted in the latest check.",
            ["model", "version"],
            registry=registry,
        )
        self.drift_detected = Gauge(
            "mlgate_drift_detected",
            "1 if the latest drift check found dataset drift, else 0.",
            ["model", "version"],
            registry=registry,
        )
        self.drift_consecutive = Gauge(
            "mlgate_drift_consecutive_detections",
            "Drift checks in a row, up to the latest, that found dataset drift.",
            ["model", "version"],
            registry=registry,
        )
        self.drift_last_check = Gauge(
            "mlgate_drift_last_check_timestamp_seconds",
            "Unix time of the latest drift check.",
            ["model", "version"],
            registry=registry,
        )
        self.feedback_rows = Counter(
            "mlgate_feedback_rows",
            "Ground-truth labels received: matched (a row of this gateway's recent log) or "
            "unknown (kept, joined later); replaced counts labels that replaced an earlier one.",
            ["model", "outcome"],
            registry=registry,
        )
        # Quality, data quality and decisions, published from stored results (gauges.py).
        self.quality = QualityGauges(registry)
        self.labels = LabelCollector()
        registry.register(self.labels)
        self._request_children: dict[
            tuple[str, str, str, str], tuple[Callable[[], None], Callable[[float], None]]
        ] = {}
        self._drift_features: dict[tuple[str, str], set[str]] = {}

    def observe_request(
        self, model: str, version: str, protocol: str, code: int, seconds: float
    ) -> None:
        key = (model, version, protocol, str(code))
        children = self._request_children.get(key)
        if children is None:
            children = (
                self.requests.labels(*key).inc,
                self.request_duration.labels(model, version, protocol).observe,
            )
            self._request_children[key] = children
        children[0]()
        children[1](seconds)

    def count_feedback(self, model: str, *, matched: int, unknown: int, replaced: int) -> None:
        """One feedback body's labels; `model` must be a registered model (bounded label)."""
        for outcome, rows in (("matched", matched), ("unknown", unknown), ("replaced", replaced)):
            self.feedback_rows.labels(model, outcome).inc(rows)

    def for_version(self, model: str, version: int) -> VersionMetrics:
        return VersionMetrics(self, model, str(version))

    def set_drift(
        self,
        model: str,
        version: int,
        *,
        scores: dict[str, float],
        share: float,
        detected: bool,
        consecutive: int,
        checked_at: float,
    ) -> None:
        """Publish one check; features no longer reported lose their series."""
        labels = (model, str(version))
        previous = self._drift_features.get(labels, set())
        for feature in previous - set(scores):
            self.drift_score.remove(*labels, feature)
        for feature, score in scores.items():
            self.drift_score.labels(*labels, feature).set(score)
        self._drift_features[labels] = set(scores)
        self.drift_share.labels(*labels).set(share)
        self.drift_detected.labels(*labels).set(1 if detected else 0)
        self.drift_consecutive.labels(*labels).set(consecutive)
        self.drift_last_check.labels(*labels).set(checked_at)


@dataclass(frozen=True, slots=True)
class ServedView:
    """What the scrape-time collector needs to know about one served version."""

    model: str
    version: int
    format: str
    aliases: tuple[str, ...]
    queued_rows: int
    max_queue: int
    role: str = "serving"
    """serving (an alias points to it), shadow (it runs on a copy of an alias's traffic), or
    loaded (by version, through the repository API)."""


class ServingCollector(Collector):
    """Queue depth, queue bound and model info, read from the gateway when scraped."""

    def __init__(self, served: Callable[[], Iterable[ServedView]]) -> None:
        self._served = served

    def collect(self) -> Iterator[GaugeMetricFamily]:
        depth = GaugeMetricFamily(
            "mlgate_queue_depth",
            "Rows waiting in the batcher's queue.",
            labels=["model", "version"],
        )
        capacity = GaugeMetricFamily(
            "mlgate_queue_capacity",
            "The queue's bound in rows (max_queue); more gets 429.",
            labels=["model", "version"],
        )
        info = GaugeMetricFamily(
            "mlgate_model_info",
            "1 for each served version, with its artifact format, the aliases it serves and "
            "its role: serving, shadow (on a copy of an alias's traffic) or loaded.",
            labels=["model", "version", "format", "alias", "role"],
        )
        for view in self._served():
            version = str(view.version)
            depth.add_metric([view.model, version], view.queued_rows)
            capacity.add_metric([view.model, version], view.max_queue)
            for alias in view.aliases or ("",):
                info.add_metric([view.model, version, view.format, alias, view.role], 1)
        yield depth
        yield capacity
        yield info

    def describe(self) -> Iterator[GaugeMetricFamily]:
        # Describing without collecting: registering must not call into the gateway.
        return iter(())


class InferenceLogCollector(Collector):
    """`mlgate_inference_log_rows_total{outcome}`, read from the log's own counters."""

    def __init__(self, stats: Callable[[], Mapping[str, int]]) -> None:
        self._stats = stats

    def collect(self) -> Iterator[CounterMetricFamily]:
        rows = CounterMetricFamily(
            "mlgate_inference_log_rows",
            "Inference-log rows: recorded (sampled in), flushed (durable), sampled_out, "
            "capped (over the rate cap), dropped (backlog full, invalid, or a write error).",
            labels=["outcome"],
        )
        stats = self._stats()
        dropped = sum(
            stats.get(k, 0) for k in ("dropped_backlog", "dropped_invalid", "dropped_write_error")
        )
        for outcome in ("recorded", "flushed", "sampled_out", "capped"):
            rows.add_metric([outcome], stats.get(outcome, 0))
        rows.add_metric(["dropped"], dropped)
        yield rows

    def describe(self) -> Iterator[CounterMetricFamily]:
        return iter(())


class TaskCollector(Collector):
    """`mlgate_retraining_tasks{model,status}`: tasks by status, counted when scraped.

    Every status is exported for every model that has a task, zeros included, so a rule
    or panel on `status="open"` sees 0 rather than no data.
    """

    STATUSES = (
        "open", "running", "candidate", "needs-trainer", "promoted", "rejected", "failed",
    )  # fmt: skip

    def __init__(self, counts: Callable[[], Mapping[tuple[str, str], int]]) -> None:
        self._counts = counts

    def collect(self) -> Iterator[GaugeMetricFamily]:
        tasks = GaugeMetricFamily(
            "mlgate_retraining_tasks",
            "Retraining tasks by model and status.",
            labels=["model", "status"],
        )
        counts = self._counts()
        for model in sorted({model for model, _ in counts}):
            for status in self.STATUSES:
                tasks.add_metric([model, status], counts.get((model, status), 0))
        yield tasks

    def describe(self) -> Iterator[GaugeMetricFamily]:
        return iter(())

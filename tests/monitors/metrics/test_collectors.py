"""The Prometheus collectors, on a registry of the test's own."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from monitors.metrics.collectors import (
    GatewayMetrics,
    InferenceLogCollector,
    ServedView,
    ServingCollector,
    latency_buckets,
)


def samples(registry: CollectorRegistry) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    text = generate_latest(registry).decode()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return samples(registry).get((name, frozenset(labels.items())))


@pytest.mark.parametrize(("slo_s", "added"), [(0.25, False), (0.3, True), (0.0125, True)])
def test_the_slo_sits_on_a_bucket_edge(slo_s: float, added: bool) -> None:
    buckets = latency_buckets(slo_s)
    assert slo_s in buckets
    assert list(buckets) == sorted(buckets)
    registry = CollectorRegistry()
    metrics = GatewayMetrics(registry, slo_s=slo_s)
    metrics.observe_request("m", "1", "rest", 200, slo_s)  # exactly at the SLO: within it
    metrics.observe_request("m", "1", "rest", 200, slo_s * 1.01)
    within = value(
        registry, "mlgate_request_duration_seconds_bucket", model="m", version="1",
        protocol="rest", le=str(float(slo_s)),
    )  # fmt: skip
    assert within == 1.0


def test_requests_are_counted_by_code_with_bounded_labels() -> None:
    registry = CollectorRegistry()
    metrics = GatewayMetrics(registry)
    for code in (200, 200, 400, 429):
        metrics.observe_request("m", "2", "rest", code, 0.001)
    metrics.observe_request("m", "2", "v1", 200, 0.002)
    assert value(registry, "mlgate_requests_total", model="m", version="2", protocol="rest",
                 code="200") == 2.0  # fmt: skip
    assert value(registry, "mlgate_requests_total", model="m", version="2", protocol="rest",
                 code="429") == 1.0  # fmt: skip
    assert value(registry, "mlgate_request_duration_seconds_count", model="m", version="2",
                 protocol="rest") == 4.0  # fmt: skip
    label_names = {k for (name, labels) in samples(registry) for k, _ in labels}
    assert label_names <= {"model", "version", "protocol", "code", "le", "reason", "feature"}


def test_batches_and_rejections_go_to_their_version() -> None:
    registry = CollectorRegistry()
    metrics = GatewayMetrics(registry)
    observer = metrics.for_version("m", 3)
    observer.batch_started("full", 32, [0.001] * 4)
    observer.batch_started("idle", 1, [0.0])
    observer.batch_done(32, 0.004)
    observer.rejected("queue_full")
    observer.rejected("shed")
    assert value(registry, "mlgate_batches_total", model="m", version="3", reason="full") == 1.0
    # Every reason is exported from the start, at zero.
    assert value(registry, "mlgate_batches_total", model="m", version="3", reason="slo") == 0.0
    assert value(registry, "mlgate_batch_size_sum", model="m", version="3") == 33.0
    assert value(registry, "mlgate_batch_size_bucket", model="m", version="3", le="1.0") == 1.0
    assert value(registry, "mlgate_queue_duration_seconds_count", model="m", version="3") == 5.0
    assert value(registry, "mlgate_compute_duration_seconds_sum", model="m", version="3") == 0.004
    assert value(registry, "mlgate_rejected_total", model="m", version="3", reason="shed") == 1.0
    assert value(registry, "mlgate_rejected_total", model="m", version="3", reason="deadline") == 0


def test_drift_gauges_drop_features_a_later_check_no_longer_reports() -> None:
    registry = CollectorRegistry()
    metrics = GatewayMetrics(registry)
    common = {"share": 0.5, "detected": True, "consecutive": 2, "checked_at": 1.7e9}
    metrics.set_drift("m", 1, scores={"a": 2.0, "b": 0.5}, **common)  # type: ignore[arg-type]
    metrics.set_drift("m", 1, scores={"b": 0.7, "c": 1.5}, **common)  # type: ignore[arg-type]
    assert value(registry, "mlgate_drift_score", model="m", version="1", feature="a") is None
    assert value(registry, "mlgate_drift_score", model="m", version="1", feature="b") == 0.7
    assert value(registry, "mlgate_drift_share", model="m", version="1") == 0.5
    assert value(registry, "mlgate_drift_detected", model="m", version="1") == 1.0
    assert value(registry, "mlgate_drift_consecutive_detections", model="m", version="1") == 2.0
    assert value(registry, "mlgate_drift_last_check_timestamp_seconds", model="m",
                 version="1") == 1.7e9  # fmt: skip


def test_scrape_time_collectors_read_the_gateway_when_scraped() -> None:
    registry = CollectorRegistry()
    GatewayMetrics(registry)
    served = [ServedView("m", 1, "onnx", ("production", "canary"), 7, 1024)]
    stats = {"recorded": 10, "flushed": 8, "dropped_backlog": 1, "dropped_write_error": 2}
    registry.register(ServingCollector(lambda: served))
    registry.register(InferenceLogCollector(lambda: stats))
    assert value(registry, "mlgate_queue_depth", model="m", version="1") == 7.0
    assert value(registry, "mlgate_queue_capacity", model="m", version="1") == 1024.0
    for alias in ("production", "canary"):
        assert value(registry, "mlgate_model_info", model="m", version="1", format="onnx",
                     alias=alias, role="serving") == 1.0  # fmt: skip
    assert value(registry, "mlgate_inference_log_rows_total", outcome="flushed") == 8.0
    assert value(registry, "mlgate_inference_log_rows_total", outcome="dropped") == 3.0
    served.append(ServedView("m", 2, "torchscript", (), 0, 64, role="shadow"))
    stats["flushed"] = 10
    assert value(registry, "mlgate_model_info", model="m", version="2", format="torchscript",
                 alias="", role="shadow") == 1.0  # fmt: skip
    assert value(registry, "mlgate_inference_log_rows_total", outcome="flushed") == 10.0

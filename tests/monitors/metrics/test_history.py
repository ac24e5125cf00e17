"""MetricsHistory on a real CollectorRegistry fed through GatewayMetrics.

Quantiles are checked twice: against values worked out by hand from the bucket ladder, and
against Prometheus's own histogram_quantile (promtool evaluates the same buckets).
"""

from __future__ import annotations

import json
import math
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import prometheus_client
import pytest
from prometheus_client import CollectorRegistry

from monitors.metrics.collectors import (
    BATCH_SIZE_BUCKETS,
    LATENCY_BUCKETS,
    GatewayMetrics,
    ServedView,
    ServingCollector,
)
from monitors.metrics.history import MetricsHistory
from monitors.metrics.reading import histogram_quantile
from tests.support.prometheus import ensure_prometheus


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Setup:
    """A registry with the gateway's collectors, a served-versions list and a history."""

    def __init__(self, points: int = 720) -> None:
        self.registry = CollectorRegistry()
        self.metrics = GatewayMetrics(self.registry)
        self.served = [ServedView("mlp", 1, "onnx", ("production",), 0, 1024)]
        self.registry.register(ServingCollector(lambda: self.served))
        self.clock = Clock()
        self.history = MetricsHistory(
            self.registry, points=points, clock=self.clock, interval_s=2.0
        )

    def requests(self, seconds: list[float], code: int = 200, version: str = "1") -> None:
        for value in seconds:
            self.metrics.observe_request("mlp", version, "rest", code, value)

    def step(self, seconds: float = 2.0) -> dict[str, object]:
        self.clock.advance(seconds)
        self.history.sample()
        model: dict[str, object] = self.history.snapshot()["models"]["mlp"]
        return model


@pytest.fixture
def setup() -> Setup:
    made = Setup()
    made.history.sample()  # the baseline
    return made


def latest(model: dict[str, object], key: str) -> object:
    values = model[key]
    assert isinstance(values, list)
    return values[-1]


def test_the_first_sample_is_only_a_baseline() -> None:
    made = Setup()
    made.requests([0.01] * 10)
    made.history.sample()
    model = made.history.snapshot()["models"]["mlp"]
    assert model["t"] == []
    assert model["request_rate"] == []
    assert model["p99"] == []


def test_rates_and_quantiles_of_100_requests_at_known_latencies(setup: Setup) -> None:
    # 50 at 3 ms, 45 at 20 ms, 5 at 300 ms; the ladder's edges around them are
    # 2.5|5 ms, 10|25 ms and 250|500 ms. 10 of the 100 answered 400.
    setup.requests([0.003] * 50)
    setup.requests([0.02] * 35)
    setup.requests([0.02] * 10, code=400)
    setup.requests([0.3] * 5)
    model = setup.step(2.0)
    assert latest(model, "request_rate") == pytest.approx(50.0)
    assert latest(model, "error_rate") == pytest.approx(5.0)
    # rank 50 is the 5 ms bucket's last: its upper edge.
    assert latest(model, "p50") == pytest.approx(0.005)
    # rank 95 is the 25 ms bucket's last.
    assert latest(model, "p95") == pytest.approx(0.025)
    # rank 99 is the 4th of 5 in (250 ms, 500 ms]: 250 + 250 * 4/5.
    assert latest(model, "p99") == pytest.approx(0.45)


def test_quantiles_interpolate_inside_one_bucket(setup: Setup) -> None:
    setup.requests([0.03] * 200)  # all in (25 ms, 50 ms]
    model = setup.step(4.0)
    assert latest(model, "request_rate") == pytest.approx(50.0)
    assert latest(model, "p50") == pytest.approx(0.025 + 0.025 * 0.5)
    assert latest(model, "p99") == pytest.approx(0.025 + 0.025 * 0.99)


def test_only_the_interval_counts_and_an_idle_interval_gives_nulls(setup: Setup) -> None:
    setup.requests([0.3] * 100)
    setup.step()
    setup.requests([0.003] * 10)
    model = setup.step()
    assert latest(model, "request_rate") == pytest.approx(5.0)
    assert latest(model, "p99") == pytest.approx(0.0025 + 0.0025 * 0.99)
    model = setup.step()
    assert latest(model, "request_rate") == 0.0
    assert latest(model, "error_rate") == 0.0
    assert [latest(model, q) for q in ("p50", "p95", "p99")] == [None, None, None]
    assert len(model["t"]) == 3  # type: ignore[arg-type]


def test_a_counter_reset_is_not_a_negative_rate(setup: Setup) -> None:
    metrics = setup.metrics
    metrics.requests.labels("mlp", "1", "rest", "200").inc(100)
    for _ in range(100):
        metrics.request_duration.labels("mlp", "1", "rest").observe(0.3)
    metrics.for_version("mlp", 1).batch_started("full", 32, [])
    assert latest(setup.step(), "request_rate") == pytest.approx(50.0)
    # The version is reloaded: its series start again from zero.
    metrics.requests.remove("mlp", "1", "rest", "200")
    metrics.request_duration.remove("mlp", "1", "rest")
    metrics.batch_size.remove("mlp", "1")
    metrics.requests.labels("mlp", "1", "rest", "200").inc(10)
    for _ in range(10):
        metrics.request_duration.labels("mlp", "1", "rest").observe(0.003)
    metrics.for_version("mlp", 1).batch_started("idle", 1, [])
    model = setup.step()
    assert latest(model, "request_rate") == pytest.approx(5.0)
    assert latest(model, "p50") == pytest.approx(0.0025 + 0.0025 * 0.5)
    batches = model["batch_sizes"]
    assert isinstance(batches, dict)
    by_le = dict(zip(batches["le"], batches["count"], strict=True))
    assert (by_le["1"], by_le["32"]) == (1.0, 1.0)  # both batches, across the reset
    assert dict(zip(batches["le"], batches["count_last_interval"], strict=True))["32"] == 0.0


def test_without_created_series_a_decrease_is_still_a_reset() -> None:
    # `_created` samples can be switched off (PROMETHEUS_DISABLE_CREATED_SERIES); then only
    # the values tell, and a series that went down was reset.
    prometheus_client.disable_created_metrics()
    try:
        made = Setup()
        made.history.sample()
        made.metrics.requests.labels("mlp", "1", "rest", "200").inc(100)
        made.step()
        made.metrics.requests.remove("mlp", "1", "rest", "200")
        made.metrics.requests.labels("mlp", "1", "rest", "200").inc(10)
        assert latest(made.step(), "request_rate") == pytest.approx(5.0)
    finally:
        prometheus_client.enable_created_metrics()


def test_batch_size_distribution_since_start_and_last_interval() -> None:
    made = Setup()
    observer = made.metrics.for_version("mlp", 1)
    observer.batch_started("idle", 1, [])  # before the baseline: counted since start
    made.history.sample()
    for rows in (3, 3, 32):
        observer.batch_started("full", rows, [])
    made.step()
    observer.batch_started("full", 600, [])
    batches = made.step()["batch_sizes"]
    assert isinstance(batches, dict)
    assert batches["le"] == [*(str(b) for b in BATCH_SIZE_BUCKETS), "+Inf"]
    total = dict(zip(batches["le"], batches["count"], strict=True))
    assert {le: n for le, n in total.items() if n} == {"1": 1, "4": 2, "32": 1, "1024": 1}
    last = dict(zip(batches["le"], batches["count_last_interval"], strict=True))
    assert {le: n for le, n in last.items() if n} == {"1024": 1}


def test_queue_rejections_and_drift_of_the_served_versions(setup: Setup) -> None:
    setup.served = [
        ServedView("mlp", 1, "onnx", ("production",), 5, 1024),
        ServedView("mlp", 3, "torchscript", ("", "canary"), 2, 1024),
    ]
    v1 = setup.metrics.for_version("mlp", 1)
    for _ in range(4):
        v1.rejected("queue_full")
    setup.metrics.for_version("mlp", 3).rejected("shed")
    scores = {f"f{i}": i / 100 for i in range(12)}
    setup.metrics.set_drift(
        "mlp", 1, scores=scores, share=0.25, detected=False, consecutive=0, checked_at=100.0
    )
    setup.metrics.set_drift(
        "mlp", 3, scores={"f0": 0.5}, share=0.5, detected=True, consecutive=1, checked_at=120.0
    )
    # Version 2 was served earlier; its gauges remain but are not what is served now.
    setup.metrics.set_drift(
        "mlp", 2, scores={"g": 9.0}, share=1.0, detected=True, consecutive=4, checked_at=130.0
    )
    model = setup.step(2.0)
    assert latest(model, "queue_depth") == 7.0
    assert model["rejected"] == {
        "deadline": [0.0],
        "queue_full": [2.0],
        "shed": [0.5],
        "overload": [0.0],
    }
    assert latest(model, "drift_share") == 0.5  # the worse of the two served versions
    top = model["top_drift"]
    assert isinstance(top, list)
    assert len(top) == 10
    assert top[0] == {"feature": "f0", "score": 0.5, "version": "3"}
    assert [t["feature"] for t in top[1:4]] == ["f11", "f10", "f9"]
    assert all(t["version"] != "2" for t in top)
    assert model["drift_checked_at"] == 120.0
    assert model["versions"] == [
        {"version": "1", "format": "onnx", "aliases": ["production"], "role": "serving"},
        {"version": "3", "format": "torchscript", "aliases": ["canary"], "role": "serving"},
    ]


def test_no_served_version_means_no_drift_and_no_versions(setup: Setup) -> None:
    setup.metrics.set_drift(
        "mlp", 1, scores={"f0": 0.3}, share=0.5, detected=True, consecutive=1, checked_at=1.0
    )
    setup.requests([0.01])
    setup.served = []
    model = setup.step()
    assert latest(model, "drift_share") is None
    assert latest(model, "queue_depth") is None
    assert model["top_drift"] == []
    assert model["drift_checked_at"] is None
    assert model["versions"] == []


def test_unknown_model_names_are_not_charted(setup: Setup) -> None:
    setup.metrics.observe_request("", "", "rest", 404, 0.001)
    assert set(setup.history.snapshot()["models"]) == {"mlp"}
    setup.step()
    assert set(setup.history.snapshot()["models"]) == {"mlp"}


def test_points_are_bounded_and_a_stalled_clock_adds_none() -> None:
    made = Setup(points=3)
    made.history.sample()
    for _ in range(5):
        made.requests([0.01])
        made.step(1.0)
    model = made.history.snapshot()["models"]["mlp"]
    assert model["t"] == [made.clock.now - 2, made.clock.now - 1, made.clock.now]
    made.history.sample()  # same clock reading: nothing to divide by
    assert made.history.snapshot()["models"]["mlp"]["t"] == model["t"]
    with pytest.raises(ValueError, match="points"):
        MetricsHistory(made.registry, points=0)


def test_snapshot_is_strict_json(setup: Setup) -> None:
    setup.step()
    snapshot = setup.history.snapshot()
    assert snapshot["interval_s"] == 2.0
    assert snapshot["generated_at"] == setup.clock.now
    json.dumps(snapshot, allow_nan=False)


def test_interval_is_measured_when_not_given() -> None:
    registry = CollectorRegistry()
    clock = Clock()
    history = MetricsHistory(registry, clock=clock)
    history.sample()
    assert history.snapshot()["interval_s"] is None
    clock.advance(1.5)
    history.sample()
    assert history.snapshot()["interval_s"] == 1.5


def test_histogram_quantile_edges() -> None:
    assert histogram_quantile(0.5, {}) is None
    assert histogram_quantile(0.5, {math.inf: 3.0}) is None  # fewer than two buckets
    assert histogram_quantile(0.5, {0.1: 1.0, 1.0: 2.0}) is None  # no +Inf bucket
    assert histogram_quantile(0.5, {0.1: 0.0, math.inf: 0.0}) is None  # no observations
    # The rank lies beyond every finite bucket: the highest finite bound.
    assert histogram_quantile(0.99, {0.1: 1.0, 1.0: 1.0, math.inf: 10.0}) == 1.0
    assert histogram_quantile(0.5, {0.0: 2.0, 1.0: 2.0, math.inf: 2.0}) == 0.0


def test_quantiles_agree_with_prometheus(tmp_path: Path) -> None:
    """promtool evaluates histogram_quantile on the same buckets; it compares exactly."""
    _, promtool = ensure_prometheus()
    rng = np.random.default_rng(7)
    bounds = [*LATENCY_BUCKETS, math.inf]
    cases = []
    for _ in range(6):
        counts = np.cumsum(rng.integers(0, 40, size=len(bounds))).astype(float)
        buckets = dict(zip(bounds, counts.tolist(), strict=True))
        for q in (0.5, 0.95, 0.99):
            ours = histogram_quantile(q, buckets)
            assert ours is not None
            cases.append((buckets, q, ours))
    tests = []
    for index, (buckets, q, ours) in enumerate(cases):
        series = [
            {
                "series": f'h{index}_bucket{{le="{"+Inf" if le == math.inf else le}"}}',
                "values": str(n),
            }
            for le, n in buckets.items()
        ]
        tests.append(
            {
                "interval": "1m",
                "input_series": series,
                "promql_expr_test": [
                    {
                        "expr": f"histogram_quantile({q}, h{index}_bucket)",
                        "eval_time": "0m",
                        "exp_samples": [{"labels": "{}", "value": ours}],
                    }
                ],
            }
        )
    spec = tmp_path / "quantiles_test.yml"
    spec.write_text(json.dumps({"rule_files": [], "tests": tests}))  # JSON is YAML
    done = subprocess.run(
        [str(promtool), "test", "rules", str(spec)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_retraining_tasks_not_yet_ended_are_in_the_snapshot() -> None:
    from monitors.metrics.collectors import TaskCollector

    registry = CollectorRegistry()
    counts = {("m", "open"): 1, ("m", "candidate"): 2, ("m", "needs-trainer"): 1}
    registry.register(TaskCollector(lambda: {**counts, ("m", "promoted"): 4}))
    history = MetricsHistory(registry)
    history.sample()
    history.sample()
    assert history.snapshot()["models"]["m"]["tasks"] == {s: n for (_, s), n in counts.items()}


# ------------------------------------------------------------------ quality


def figure(value: float, half: float = 0.02) -> dict[str, object]:
    return {"value": value, "lower": value - half, "upper": value + half, "n": 1000}


def evaluation(
    realised: dict[str, float] | None = None,
    estimated: dict[str, float] | None = None,
    *,
    metric: str = "accuracy",
    baseline: float | None = 0.9,
    rows: int = 1200,
    coverage: float = 0.35,
    worse: bool = False,
    outcome: str = "ok",
) -> dict[str, object]:
    """A stored evaluation (`QualityCheck.to_json()`), as much as the gauges read of it."""

    def held(figures: dict[str, float] | None, **extra: object) -> dict[str, object] | None:
        if figures is None:
            return None
        scores = {"figures": {name: figure(v) for name, v in figures.items()}}
        return {"scores": scores, "verdict": {"worse": worse}, **extra}

    return {
        "metric": metric,
        "realised": held(realised, rows=rows, coverage=coverage),
        "estimated": held(estimated),
        "baseline": None if baseline is None else figure(baseline),
        "decision": {"outcome": outcome},
    }


def quality(model: dict[str, object]) -> dict[str, Any]:
    found = model["quality"]
    assert isinstance(found, dict)
    return found


def test_quality_follows_the_production_version_on_its_primary_metric(setup: Setup) -> None:
    setup.served = [
        ServedView("mlp", 1, "onnx", ("production",), 0, 1024),
        ServedView("mlp", 3, "onnx", ("canary",), 0, 1024),
    ]
    gauges = setup.metrics.quality
    # F1 is published beside accuracy; accuracy has the baseline, so it is the primary.
    gauges.set_quality(
        "mlp", 1, evaluation({"accuracy": 0.81, "f1": 0.5}, {"accuracy": 0.86}, worse=True)
    )
    gauges.set_quality("mlp", 3, evaluation({"accuracy": 0.95}, baseline=0.96))
    shown = quality(setup.step())
    assert (shown["version"], shown["metric"]) == ("1", "accuracy")
    assert shown["realised"] == [pytest.approx(0.81)]
    assert shown["realised_lower"] == [pytest.approx(0.79)]
    assert shown["realised_upper"] == [pytest.approx(0.83)]
    assert shown["estimated"] == [pytest.approx(0.86)]
    assert shown["estimated_upper"] == [pytest.approx(0.88)]
    assert shown["baseline"] == [pytest.approx(0.9)]
    assert shown["labelled_rows"] == [1200]
    assert shown["coverage"] == [pytest.approx(0.35)]
    state = shown["state"]
    assert state["state"] == "degraded"
    assert (state["version"], state["metric"], state["degraded"]) == ("1", "accuracy", True)
    assert state["realised"] == pytest.approx(0.81)
    assert state["baseline"] == pytest.approx(0.9)
    assert (state["breaches"], state["warnings"], state["refused_share"]) == (0, 0, None)


def test_the_state_follows_the_policy_order(setup: Setup) -> None:
    gauges = setup.metrics.quality
    gauges.set_quality("mlp", 1, evaluation({"accuracy": 0.89}))
    assert quality(setup.step())["state"]["state"] == "holding"
    gauges.set_quality("mlp", 1, evaluation({"accuracy": 0.89}, outcome="finding"))
    assert quality(setup.step())["state"]["state"] == "finding"
    gauges.set_quality("mlp", 1, evaluation({"accuracy": 0.7}, worse=True))
    assert quality(setup.step())["state"]["state"] == "degraded"
    # Broken inputs come first: retraining on them would learn the breakage.
    breach = {"message": "25% of rows refused"}
    gauges.set_data_quality(
        "mlp", 1, {"breaches": [breach], "warnings": [{}, {}], "refused_share": 0.25}
    )
    state = quality(setup.step())["state"]
    assert state["state"] == "breach"
    assert (state["breaches"], state["warnings"], state["refused_share"]) == (1, 2, 0.25)
    assert state["degraded"] is True
    shown = quality(setup.step())
    assert shown["realised"] == [
        pytest.approx(0.89),
        pytest.approx(0.89),
        pytest.approx(0.7),
        pytest.approx(0.7),
        pytest.approx(0.7),
    ]


def test_without_a_baseline_the_default_primary_metric_is_shown(setup: Setup) -> None:
    setup.metrics.quality.set_quality(
        "mlp", 1, evaluation({"rmse": 2.0, "mae": 1.5}, metric="mae", baseline=None)
    )
    shown = quality(setup.step())
    assert (shown["metric"], shown["realised"], shown["baseline"]) == ("mae", [1.5], [None])
    assert shown["state"]["state"] == "no-baseline"
    # Labels nowhere yet, no estimate (a regressor): nothing to chart.
    setup.metrics.quality.set_quality(
        "mlp", 1, evaluation(None, metric="mae", baseline=None, rows=0, coverage=0.0)
    )
    shown = quality(setup.step())
    assert shown["metric"] is None
    assert shown["realised"] == [None, None]
    assert shown["labelled_rows"] == [None, 0]
    assert shown["state"]["state"] == "unknown"


@pytest.mark.parametrize(
    ("published", "primary"),
    [
        ({"accuracy": 0.8, "roc_auc": 0.85, "f1": 0.7}, "roc_auc"),  # binary
        ({"accuracy": 0.8, "macro_f1": 0.7}, "accuracy"),  # multiclass
        ({"r2": 0.5, "mae": 1.5}, "mae"),  # regression
    ],
)
def test_without_a_baseline_the_task_is_told_by_its_metrics(
    setup: Setup, published: dict[str, float], primary: str
) -> None:
    setup.metrics.quality.set_quality("mlp", 1, evaluation(published, baseline=None))
    shown = quality(setup.step())
    assert (shown["metric"], shown["realised"]) == (primary, [published[primary]])


def test_after_a_promotion_only_the_new_versions_points_are_shown(setup: Setup) -> None:
    gauges = setup.metrics.quality
    gauges.set_quality("mlp", 1, evaluation({"accuracy": 0.81}, worse=True))
    setup.step()
    setup.served = [ServedView("mlp", 2, "onnx", ("production",), 0, 1024)]
    gauges.set_quality("mlp", 2, evaluation({"accuracy": 0.92}, baseline=0.93))
    shown = quality(setup.step())
    assert shown["version"] == "2"
    assert shown["realised"] == [None, pytest.approx(0.92)]
    assert shown["state"]["state"] == "holding"


def test_a_model_without_quality_series_has_an_empty_quality_panel(setup: Setup) -> None:
    setup.requests([0.01])
    shown = quality(setup.step())
    assert shown["version"] is None
    assert shown["state"] is None
    assert shown["realised"] == [None]
    json.dumps(setup.history.snapshot(), allow_nan=False)


def test_a_shadow_version_and_its_mirrored_requests(setup: Setup) -> None:
    setup.served = [
        ServedView("mlp", 1, "onnx", ("production",), 0, 1024),
        ServedView("mlp", 2, "onnx", (), 0, 1024, role="shadow"),
    ]
    for outcome, times in (("ok", 3), ("shed", 2)):
        for _ in range(times):
            setup.metrics.shadow_requests.labels("mlp", "2", outcome).inc()
    model = setup.step()
    assert model["versions"] == [
        {"version": "1", "format": "onnx", "aliases": ["production"], "role": "serving"},
        {"version": "2", "format": "onnx", "aliases": [], "role": "shadow"},
    ]
    assert model["shadow"] == {"2": {"ok": 3, "shed": 2}}

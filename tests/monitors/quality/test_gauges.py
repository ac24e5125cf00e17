"""Quality, data quality and label series published from stored results."""

from __future__ import annotations

from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry, generate_latest

from monitors.quality.gauges import LabelCollector, QualityGauges
from monitors.quality.labels import LabelTally

FIGURE = {"lower": 0.5, "upper": 0.6, "n": 1000, "higher_is_better": True}


def result(realised_worse: bool, *, judged: bool = True, **extra: Any) -> dict[str, Any]:
    scores = {
        "figures": {"roc_auc": {**FIGURE, "value": 0.55}, "accuracy": {**FIGURE, "value": 0.6}}
    }
    return {
        "status": "degraded" if realised_worse else "holding",
        "metric": "roc_auc",
        "baseline": {**FIGURE, "value": 0.8},
        "realised": {
            "scores": scores,
            "judged": judged,
            "rows": 1000,
            "coverage": 0.5,
            "verdict": {"worse": realised_worse},
        },
        "estimated": {
            "scores": {"figures": {"roc_auc": {**FIGURE, "value": 0.79}}},
            "verdict": {"worse": True},
        },
        "decision": {"outcome": "task"},
        **extra,
    }


def scrape(registry: CollectorRegistry) -> str:
    return generate_latest(registry).decode()


def test_a_stored_evaluation_becomes_bounded_series() -> None:
    registry = CollectorRegistry()
    gauges = QualityGauges(registry, max_features=2)
    gauges.set_quality("m", 1, result(True))
    text = scrape(registry)
    assert 'mlgate_quality{metric="roc_auc",model="m",version="1"} 0.55' in text
    assert 'mlgate_quality_lower{metric="accuracy",model="m",version="1"} 0.5' in text
    assert 'mlgate_quality_estimated{metric="roc_auc",model="m",version="1"} 0.79' in text
    assert 'mlgate_quality_baseline{metric="roc_auc",model="m",version="1"} 0.8' in text
    assert 'mlgate_quality_primary{metric="roc_auc",model="m",version="1"} 1.0' in text
    assert 'mlgate_quality_status{model="m",status="degraded",version="1"} 1.0' in text
    assert 'mlgate_quality_status{model="m",status="holding",version="1"} 0.0' in text
    assert 'mlgate_quality_degraded{model="m",version="1"} 1.0' in text
    # Labels are in: the estimate's fall is not what the policy acts on, so not flagged.
    assert 'mlgate_quality_estimated_degraded{model="m",version="1"} 0.0' in text
    assert 'mlgate_label_coverage{model="m",version="1"} 0.5' in text
    # Without labels judged, the estimate's fall is the flag.
    gauges.set_quality("m", 1, result(False, judged=False))
    text = scrape(registry)
    assert 'mlgate_quality_degraded{model="m",version="1"} 0.0' in text
    assert 'mlgate_quality_estimated_degraded{model="m",version="1"} 1.0' in text


def test_data_quality_keeps_the_worst_features_and_drops_the_rest() -> None:
    registry = CollectorRegistry()
    gauges = QualityGauges(registry, max_features=2)
    features = {f"f{i}": {"out_of_range_share": i / 10} for i in range(4)}
    gauges.set_data_quality(
        "m", 1, {"breaches": [{}], "warnings": [], "refused_share": 0.1, "features": features}
    )
    text = scrape(registry)
    assert 'mlgate_data_quality_breaches{model="m",version="1"} 1.0' in text
    assert 'feature="f3"' in text
    assert 'feature="f2"' in text
    assert 'feature="f0"' not in text  # bounded: only the two most out of range
    features["f0"] = {"out_of_range_share": 0.9}
    gauges.set_data_quality("m", 1, {"features": features})
    text = scrape(registry)
    assert 'feature="f0"' in text
    assert 'feature="f2"' not in text


def test_label_tallies_are_a_counter_and_a_histogram() -> None:
    registry = CollectorRegistry()
    labels = LabelCollector()
    registry.register(labels)
    tally = LabelTally()
    tally.add_delays(np.array([0.5, 30.0, 7200.0]))
    labels.update("m", 1, tally.to_json())
    text = scrape(registry)
    assert 'mlgate_labelled_rows_total{model="m",version="1"} 3.0' in text
    assert 'mlgate_label_delay_seconds_bucket{le="1",model="m",version="1"} 1.0' in text
    assert 'mlgate_label_delay_seconds_bucket{le="60",model="m",version="1"} 2.0' in text
    assert 'mlgate_label_delay_seconds_bucket{le="+Inf",model="m",version="1"} 3.0' in text
    labels.forget(set())
    assert "mlgate_labelled_rows_total{" not in scrape(registry)

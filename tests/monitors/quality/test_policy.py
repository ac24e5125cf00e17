"""The decision policy on constructed evidence: which rule decides, and what it records."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from monitors.drift.check_store import DriftCheck
from monitors.drift.result import DriftResult, FeatureDrift
from monitors.quality.policy import Decision, DecisionPolicy, PolicyLimits
from monitors.quality.store import QualityCheck
from registry.quality.importance import Importance

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
IMPORTANCE = Importance({"a": 0.6, "b": 0.3, "c": 0.05, "d": 0.05}, "test", 100, 1)
FIGURE = {"lower": 0.0, "upper": 0.0, "n": 1000, "higher_is_better": True}


def drift_check(index: int, drifted: set[str], breaches: list[dict[str, Any]] = ()) -> DriftCheck:  # type: ignore[assignment]
    features = tuple(
        FeatureDrift(
            name,
            "input",
            "num",
            "wasserstein",
            0.1,
            0.3 if name in drifted else 0.02,
            name in drifted,
            True,
        )
        for name in ("a", "b", "c", "d")
    )
    result = DriftResult(
        features, len(drifted) / 4, len(drifted), 4, 0.5, len(drifted) >= 2, False, 500, 1000, 0.01
    )
    start = NOW - timedelta(minutes=10 - index)
    return DriftCheck(
        "m",
        1,
        start,
        start,
        start + timedelta(minutes=1),
        500,
        "digest",
        result.share,
        result.dataset_drift,
        {},
        {**result.to_json(), "data_quality": {"breaches": list(breaches)}},
        id=index,
    )


def history(*drifted: set[str]) -> list[DriftCheck]:
    """Drift checks, oldest given first, returned newest first as the store does."""
    return [drift_check(i, d) for i, d in enumerate(drifted)][::-1]


def held(value: float | None, *, judged: bool = True, worse: bool = False) -> dict[str, Any]:
    figure = None if value is None else {**FIGURE, "value": value}
    verdict = None if value is None else {"worse": worse, "bound": 0.78, "text": f"auc {value}"}
    return {
        "figure": figure,
        "judged": judged,
        "verdict": verdict,
        "rows": 1000,
        "window": {"start_us": None, "end_us": None},
        "why": "",
    }


def quality(
    realised: dict[str, Any],
    estimated: dict[str, Any],
    streaks: tuple[int, int] = (0, 0),
    buckets: list[dict[str, Any]] = (),  # type: ignore[assignment]
) -> QualityCheck:
    result = {
        "baseline": {**FIGURE, "value": 0.8},
        "metric": "roc_auc",
        "realised": realised,
        "estimated": estimated,
        "streaks": {"realised": streaks[0], "estimated": streaks[1]},
        "buckets": list(buckets),
        "labels": {"joined": 1000},
    }
    return QualityCheck("m", 1, NOW, "holding", "roc_auc", 1000, result)


def decide(check: QualityCheck, drift: list[DriftCheck], **limits: Any) -> Decision:
    policy = DecisionPolicy(PolicyLimits(**{"drift_consecutive": 2, **limits}))
    return policy.decide(
        check, drift, IMPORTANCE, registered_at=NOW - timedelta(days=1), last_task_at=None, now=NOW
    )


HOLDING = held(0.81)
FALLEN = held(0.6, worse=True)


def test_a_significant_fall_in_enough_rounds_is_a_task_over_the_rows_that_fell() -> None:
    buckets = [  # newest first: two fallen buckets, then one from before the change
        {
            "start_s": 300,
            "end_s": 360,
            "labelled": 400,
            "sampled": 400,
            "realised": {**FIGURE, "value": 0.61, "n": 400},
        },
        {
            "start_s": 240,
            "end_s": 300,
            "labelled": 400,
            "sampled": 400,
            "realised": {**FIGURE, "value": 0.65, "n": 400},
        },
        {
            "start_s": 180,
            "end_s": 240,
            "labelled": 400,
            "sampled": 400,
            "realised": {**FIGURE, "value": 0.77, "n": 400},
        },
    ]
    once = decide(quality(FALLEN, HOLDING, (1, 0), buckets), [])
    assert once.outcome == "ok"  # one round is not yet confirmation
    twice = decide(quality(FALLEN, HOLDING, (2, 0), buckets), [])
    assert (twice.outcome, twice.rule) == ("task", "realised_drop")
    # 0.77 is past the tolerance but nearer the baseline than the fall: not in the window.
    assert twice.window_start == datetime.fromtimestamp(240, UTC)
    assert twice.window_end == datetime.fromtimestamp(360, UTC)
    assert twice.rows == 800
    assert twice.evidence["realised"]["figure"]["value"] == 0.6
    assert twice.evidence["baseline"]["value"] == 0.8


def test_broken_data_comes_before_a_fall() -> None:
    breach = {"check": "constant", "feature": "a", "message": "a: all values are 0"}
    drift = [drift_check(0, set(), [breach])]
    found = decide(quality(FALLEN, HOLDING, (5, 0)), drift)
    assert (found.outcome, found.rule) == ("task", "data_quality")
    assert found.evidence["breaches"] == [breach]


def test_the_estimate_decides_only_until_labels_are_in() -> None:
    unlabelled = held(None, judged=False)
    found = decide(quality(unlabelled, held(0.6, worse=True), (0, 2)), [])
    assert (found.outcome, found.rule) == ("task", "estimated_drop")
    labelled = decide(quality(HOLDING, held(0.6, worse=True), (0, 2)), [])
    assert labelled.outcome == "ok"  # the measured figure holds: the estimate is overruled


def test_persistent_drift_is_a_finding_while_quality_holds_and_a_task_when_nothing_judges() -> None:
    drift = history({"a", "b"}, {"a", "b"})
    finding = decide(quality(HOLDING, HOLDING), drift)
    assert (finding.outcome, finding.rule) == ("finding", "drift")
    assert "2 feature(s) drifted (a, b), holding 90% of the model's importance" in finding.summary
    assert "measured roc_auc holds at 0.810" in finding.summary
    unjudged = held(None, judged=False)
    blind = decide(quality(unjudged, unjudged), drift)
    assert (blind.outcome, blind.rule) == ("task", "important_drift")
    assert blind.evidence["drift"]["impact"] == pytest.approx(0.9)
    minor = decide(quality(unjudged, unjudged), history({"c", "d"}, {"c", "d"}))
    assert minor.outcome == "finding"  # 10 % of the importance: not worth a task
    assert "not on what the model mostly uses" in minor.summary


def test_noise_that_flags_different_features_is_not_drift() -> None:
    unjudged = held(None, judged=False)
    found = decide(quality(unjudged, unjudged), history({"a"}, {"b"}))
    assert found.outcome == "ok"


def test_a_schedule_opens_a_task_after_its_period() -> None:
    policy = DecisionPolicy(PolicyLimits(schedule_s=7 * 86400))
    check = quality(HOLDING, HOLDING)
    week_ago = NOW - timedelta(days=8)
    due = policy.decide(check, [], None, registered_at=week_ago, last_task_at=None, now=NOW)
    assert (due.outcome, due.rule) == ("task", "schedule")
    assert due.window_start == NOW - timedelta(days=7)
    recent = policy.decide(
        check, [], None, registered_at=week_ago, last_task_at=NOW - timedelta(days=1), now=NOW
    )
    assert recent.outcome == "ok"

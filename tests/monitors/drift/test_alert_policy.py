"""The confirmation rule: K drifted checks in a row, or a named feature past its threshold."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from monitors.drift.alert_policy import AlertPolicy
from monitors.drift.check_store import DriftCheck

START = datetime(2026, 11, 23, 6, 0, tzinfo=UTC)


def check(i: int, *, detected: bool, f0_score: float = 0.05) -> DriftCheck:
    features = [
        {"column": "f0", "role": "input", "kind": "num", "method": "wasserstein",
         "threshold": 0.1, "score": f0_score, "drifted": f0_score >= 0.1,
         "higher_is_worse": True, "reason": None, "notes": []},
        {"column": "f1", "role": "input", "kind": "num", "method": "wasserstein",
         "threshold": 0.1, "score": 0.3 if detected else 0.01, "drifted": detected,
         "higher_is_worse": True, "reason": None, "notes": []},
    ]  # fmt: skip
    result = {
        "features": features, "share": 0.5 if detected else 0.0, "drifted_count": int(detected),
        "input_columns": 2, "drift_share": 0.5, "dataset_drift": detected,
        "prediction_drift": False, "rows_current": 600, "rows_reference": 2000, "seconds": 0.01,
    }  # fmt: skip
    return DriftCheck(
        model="m", version=1, checked_at=START + timedelta(minutes=i, seconds=30),
        window_start=START + timedelta(minutes=i - 1), window_end=START + timedelta(minutes=i),
        rows=600, reference_digest="d" * 64, share=0.5 if detected else 0.0, detected=detected,
        config={}, result=result, id=i,
    )  # fmt: skip


def newest_first(*detected: bool) -> list[DriftCheck]:
    return [check(i, detected=d) for i, d in enumerate(detected)][::-1]


def test_three_drifted_checks_in_a_row_confirm() -> None:
    policy = AlertPolicy(consecutive=3)
    assert policy.confirm(newest_first(True, True)) is None
    assert policy.confirm(newest_first(True, False, True, True)) is None
    confirmed = policy.confirm(newest_first(False, True, True, True))
    assert confirmed is not None
    assert confirmed.reason == "data_drift"
    assert [c.id for c in confirmed.checks] == [1, 2, 3]
    assert confirmed.window_start == START
    assert confirmed.rows == 1800
    evidence = confirmed.evidence
    assert evidence["drift_share"] == 0.5
    assert evidence["top_features"][0]["feature"] == "f1"
    assert evidence["top_features"][0]["method"] == "wasserstein"
    assert evidence["result"] == "/monitoring/models/m/drift?version=1&check=3"
    assert evidence["report"] == "/monitoring/models/m/drift/report?check=3"
    assert evidence["reference_digest"] == "d" * 64
    assert evidence["window"]["rows"] == 1800


def test_a_longer_run_keeps_the_window_start_so_the_task_key_stays() -> None:
    policy = AlertPolicy(consecutive=3)
    three = policy.confirm(newest_first(False, True, True, True))
    five = policy.confirm(newest_first(False, True, True, True, True, True))
    assert three is not None
    assert five is not None
    assert three.window_start == five.window_start
    assert five.window_end > three.window_end


def test_a_named_feature_past_its_threshold_confirms_on_its_own() -> None:
    policy = AlertPolicy(consecutive=2, feature_thresholds={"f0": 2.0})
    quiet = [check(i, detected=False, f0_score=0.15) for i in range(3)][::-1]  # severity 1.5
    assert policy.confirm(quiet) is None
    loud = [check(i, detected=False, f0_score=0.25) for i in range(3)][::-1]  # severity 2.5
    confirmed = policy.confirm(loud)
    assert confirmed is not None
    assert confirmed.reason == "feature_drift"


def test_consecutive_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        AlertPolicy(consecutive=0)

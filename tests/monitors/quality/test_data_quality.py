"""Data-quality checks on generated windows: quiet when clean, loud when the data breaks."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest

from monitors.drift import DriftColumn, drift_frame
from monitors.quality.data_quality import (
    DataQualityResult,
    DataQualityThresholds,
    ReferenceProfile,
    check_window,
    profile_reference,
)
from registry.errors import BadRequest

FEATURES = ["income", "age", "dependents", "flag"]
THRESHOLDS = DataQualityThresholds()


def generate(rows: int, seed: int, dependents_rate: float = 1.5) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = np.column_stack(
        [
            rng.lognormal(10.5, 0.6, rows),  # income
            rng.normal(42, 12, rows),  # age
            rng.poisson(dependents_rate, rows),  # a count: discrete
            rng.integers(0, 2, rows),  # a flag: discrete
        ]
    ).astype(np.float32)
    return {"x": x}


def frame_of(inputs: dict[str, np.ndarray]) -> tuple[pd.DataFrame, dict[str, DriftColumn]]:
    """The drift table, built as the monitor builds it from the log or the reference."""
    x = inputs["x"]
    score = (x[:, :1] / 1e5).astype(np.float32)
    layout = {
        "inputs": {"x": {"kind": "features", "columns": FEATURES}},
        "outputs": {"score": {"kind": "column", "columns": ["score"]}},
    }
    return drift_frame(inputs, {"score": score}, layout)


REFERENCE, COLUMNS = frame_of(generate(5000, seed=0))
PROFILE = profile_reference(REFERENCE, COLUMNS)


def check(
    x: np.ndarray, answered: int | None = None, refused: dict[str, int] | None = None
) -> DataQualityResult:
    frame, _ = frame_of({"x": x})
    return check_window(
        PROFILE,
        frame,
        answered_rows=len(x) if answered is None else answered,
        refused_rows=refused or {},
        thresholds=THRESHOLDS,
    )


def test_the_profile_keeps_inputs_only_and_knows_discrete_features() -> None:
    assert list(PROFILE.features) == FEATURES  # the prediction column is not profiled
    assert PROFILE.features["income"].values is None
    assert PROFILE.features["flag"].values == (0, 1)
    dependents = PROFILE.features["dependents"]
    assert dependents.values is not None
    assert dependents.values[:3] == (0, 1, 2)
    assert PROFILE.features["age"].minimum == pytest.approx(REFERENCE["age"].min())
    assert ReferenceProfile.from_json(PROFILE.to_json()) == PROFILE
    with pytest.raises(BadRequest, match="not a reference profile"):
        ReferenceProfile.from_json({"rows": 1})


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5, 6])
def test_clean_windows_raise_nothing(seed: int) -> None:
    result = check(generate(1000, seed)["x"])
    assert result.breaches == []
    assert result.warnings == []
    assert not result.breached
    assert result.refused_share == 0.0
    assert set(result.features) == set(FEATURES)


def test_a_small_reference_does_not_make_clean_windows_warn() -> None:
    """200 reference rows: 1% of fresh values fall outside their range by chance alone."""
    reference, columns = frame_of(generate(200, seed=0))
    profile = profile_reference(reference, columns)
    for seed in range(1, 6):
        frame, _ = frame_of(generate(2000, seed))
        result = check_window(
            profile, frame, answered_rows=2000, refused_rows={}, thresholds=THRESHOLDS
        )
        assert (result.breaches, result.warnings) == ([], []), seed


def test_a_unit_change_breaches_out_of_range() -> None:
    x = generate(1000, seed=7)["x"]
    x[:, 0] *= 1000  # income in cents
    result = check(x)
    (breach,) = result.breaches
    assert (breach.check, breach.feature) == ("out_of_range", "income")
    assert breach.figure > 0.99
    assert breach.threshold == 0.5
    maximum = f"{PROFILE.features['income'].maximum:,.0f}"  # e.g. 256,355
    assert breach.message.startswith("income: 100% of values above the reference's maximum")
    assert maximum in breach.message
    assert breach.message.endswith("(threshold 50%): a unit change?")
    assert result.features["income"].above_share == breach.figure
    assert result.features["income"].below_share == 0.0


def test_a_poisson_rate_change_warns_on_unseen_values() -> None:
    result = check(generate(1000, seed=8, dependents_rate=5.0)["x"])
    assert result.breaches == []
    (warning,) = result.warnings
    assert (warning.check, warning.feature) == ("unseen", "dependents")
    assert 0.01 < warning.figure < 0.5
    quality = result.features["dependents"]
    assert quality.unseen_share == warning.figure
    assert quality.top_unseen
    highest = PROFILE.features["dependents"].maximum
    assert highest is not None
    assert all(value > highest for value, _ in quality.top_unseen)
    top_value, top_count = quality.top_unseen[0]
    assert f"most often {top_value:,.0f} ({top_count:,})" in warning.message
    assert warning.message.endswith("a new category, or drift?")


def test_a_constant_feature_breaches() -> None:
    x = generate(1000, seed=9)["x"]
    x[:, 1] = 40.0  # age: an upstream filling a default (within the range)
    (breach,) = check(x).breaches
    assert (breach.check, breach.feature) == ("constant", "age")
    assert "all 1,000 values are 40 while the reference holds" in breach.message


def test_a_flag_that_stays_put_in_a_small_window_is_not_constant_by_decree() -> None:
    profile = profile_reference(
        pd.DataFrame({"rare": np.r_[np.ones(9990), np.zeros(10)]}),
        {"rare": DriftColumn("rare", "input", "cat")},
    )
    result = check_window(
        profile,
        pd.DataFrame({"rare": np.ones(500)}),
        answered_rows=500,
        refused_rows={},
        thresholds=THRESHOLDS,
    )
    assert result.breaches == []  # 0.999**500 ≈ 0.6: all ones is what this feature does
    assert not result.features["rare"].constant


def test_nan_counts_as_missing() -> None:
    x = generate(1000, seed=10)["x"]
    x[::10, 0] = np.nan
    result = check(x)
    (breach,) = result.breaches
    assert (breach.check, breach.feature) == ("missing", "income")
    assert breach.figure == pytest.approx(0.1)
    assert "10% of values missing (NaN) (threshold 5%; reference 0%)" in breach.message
    income = result.features["income"]
    assert income.missing_share == pytest.approx(0.1)
    assert income.present == 900
    assert income.out_of_range_share == 0.0  # shares of the values present


def test_a_tenth_of_rows_refused_breaches() -> None:
    x = generate(900, seed=11)["x"]
    result = check(x, answered=900, refused={"dtype": 80, "non_finite": 20, "shape": 0})
    assert result.refused_rows == {"dtype": 80, "non_finite": 20}
    assert result.refused_share == pytest.approx(0.1)
    (breach,) = result.breaches
    assert (breach.check, breach.feature, breach.threshold) == ("refused", None, 0.05)
    assert breach.message.startswith(
        "10% of rows refused at validation (threshold 5%): dtype 8%, non_finite 2%"
    )
    assert not check(x, answered=900, refused={"dtype": 40}).breached  # 4.3%


def test_a_small_window_reports_figures_but_no_breach() -> None:
    x = generate(50, seed=12)["x"]
    x[:, 0] *= 1000
    result = check(x, answered=50, refused={"dtype": 20})
    assert result.features["income"].above_share == 1.0
    assert result.refused_share == pytest.approx(20 / 70)
    assert (result.breaches, result.warnings) == ([], [])


def test_results_and_thresholds_round_trip_through_json() -> None:
    x = generate(1000, seed=13, dependents_rate=5.0)["x"]
    x[:, 0] *= 1000
    x[::7, 1] = np.nan
    result = check(x, answered=1000, refused={"shape": 200})
    assert len(result.breaches) == 3
    assert len(result.warnings) == 1
    document = result.to_json()
    assert document["features"]["income"]["out_of_range_share"] == 1.0
    assert document["breached"] is True
    assert DataQualityResult.from_json(document) == result
    custom = DataQualityThresholds(max_refused_share=0.2, min_rows=10)
    assert DataQualityThresholds.from_json(custom.to_json()) == custom
    with pytest.raises(ValueError, match="warn_unseen_share must not exceed"):
        DataQualityThresholds(warn_unseen_share=0.6)
    with pytest.raises(ValueError, match="within"):
        DataQualityThresholds(max_missing_share=1.5)


def test_a_window_of_another_layout_is_refused() -> None:
    with pytest.raises(BadRequest, match=r"lacks the profiled columns \['age'"):
        check_window(
            PROFILE,
            REFERENCE.drop(columns=["age"]),
            answered_rows=1,
            refused_rows={},
            thresholds=THRESHOLDS,
        )


def test_the_cost_is_bounded_by_the_window() -> None:
    """10,000 rows × 300 features: well under a second (a few ms per 30 features)."""
    rng = np.random.default_rng(0)
    names = [f"f{i}" for i in range(300)]
    columns = {n: DriftColumn(n, "input", "num") for n in names}
    data = rng.standard_normal((10_000, 300))
    data[:, ::10] = rng.poisson(2.0, (10_000, 30))  # 30 discrete features
    profile = profile_reference(pd.DataFrame(data, columns=names), columns)
    window = pd.DataFrame(rng.standard_normal((10_000, 300)), columns=names)
    started = time.perf_counter()
    check_window(profile, window, answered_rows=10_000, refused_rows={}, thresholds=THRESHOLDS)
    assert time.perf_counter() - started < 1.0

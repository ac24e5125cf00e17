"""compute_drift against a real Evidently Report, config checks, edge cases, the HTML report."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from monitors.drift import DriftConfig, DriftResult, FeatureDrift, compute_drift
from monitors.drift.columns import DriftColumn, Kind
from monitors.drift.methods import METHODS, column_statistic, evidently_stattests
from monitors.drift.report import render_report
from registry.errors import BadRequest

ROOT = Path(__file__).resolve().parents[3]


def _windows(reference_rows: int, current_rows: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every kind of column Evidently picks a different default method for, some shifted."""
    rng = np.random.default_rng(reference_rows)

    def window(rows: int, shift: float) -> pd.DataFrame:
        noisy = rng.normal(0, 1, rows)
        noisy[:: max(rows // 10, 1)] = np.nan
        noisy[1 :: max(rows // 7, 1)] = np.inf
        return pd.DataFrame(
            {
                "steady": rng.normal(0, 1, rows),
                "moved": rng.normal(shift, 1, rows),
                "single": rng.normal(shift / 3, 1, rows).astype(np.float32),
                "overridden": rng.normal(shift / 2, 1, rows),
                "loose": rng.normal(shift / 4, 1, rows),
                "few_values": rng.choice([0.0, 1.5, 3.0, 4.5], rows, p=[0.4, 0.3, 0.2, 0.1]),
                "binary_num": rng.choice([0.0, 1.0], rows, p=[0.5 + shift / 10, 0.5 - shift / 10]),
                "constant": np.full(rows, 7.0),
                "noisy": noisy + shift,
                "grade": rng.integers(0, 4 + int(shift > 0), rows),
                "colour": rng.integers(0, 3, rows),
                "flag": rng.random(rows) < 0.3 + shift / 5,
                "score": rng.normal(shift, 1, rows),
                "score.argmax": rng.integers(0, 3, rows),
            }
        )

    return window(reference_rows, 0.0), window(current_rows, 1.0)


COLUMNS = {
    column.name: column
    for column in [
        DriftColumn("steady", "input", "num"),
        DriftColumn("moved", "input", "num"),
        DriftColumn("single", "input", "num"),  # float32
        DriftColumn("overridden", "input", "num"),  # psi, threshold 0.2
        DriftColumn("loose", "input", "num"),  # default method, threshold 0.5
        DriftColumn("few_values", "input", "num"),  # 4 values: chi-square / Jensen-Shannon
        DriftColumn("binary_num", "input", "num"),  # 2 values: Z-test / Jensen-Shannon
        DriftColumn("constant", "input", "num"),
        DriftColumn("noisy", "input", "num"),  # NaN and inf in both windows
        DriftColumn("grade", "input", "cat"),  # a grade new in the current window
        DriftColumn("colour", "input", "cat"),
        DriftColumn("flag", "input", "cat"),  # bools
        DriftColumn("score", "prediction", "num"),
        DriftColumn("score.argmax", "prediction", "cat"),
    ]
}
CONFIG = DriftConfig(
    per_feature_method={"overridden": "psi"},
    per_feature_threshold={"overridden": 0.2, "loose": 0.5},
    drift_share=0.4,
)


def _evidently_report(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    columns: dict[str, DriftColumn],
    config: DriftConfig,
) -> dict[str, Any]:
    """A real Report: ValueDrift per column + DriftedColumnsCount over the inputs, with tests."""
    evidently_stattests()  # imports Evidently with its import-time warnings handled
    from evidently import DataDefinition, Dataset, Report  # type: ignore[import-untyped]
    from evidently.metrics import DriftedColumnsCount, ValueDrift  # type: ignore[import-untyped]

    inputs = [name for name, column in columns.items() if column.role == "input"]
    report = Report(
        [
            DriftedColumnsCount(
                columns=inputs,
                drift_share=config.drift_share,
                method=config.method,
                threshold=config.threshold,
                per_column_method=config.per_feature_method,
                per_column_threshold=config.per_feature_threshold,
            ),
            *[
                ValueDrift(
                    column=name,
                    method=config.per_feature_method.get(name, config.method),
                    threshold=config.per_feature_threshold.get(name, config.threshold),
                )
                for name in columns
            ],
        ],
        include_tests=True,
    )
    definition = DataDefinition(
        numerical_columns=[n for n, c in columns.items() if c.kind == "num"],
        categorical_columns=[n for n, c in columns.items() if c.kind == "cat"],
    )
    # The Report's correlation plots divide by the zero std of "constant", and chi-square
    # divides by the zero expected count of the grade new in the current window.
    with np.errstate(divide="ignore", invalid="ignore"):
        snapshot = report.run(
            Dataset.from_pandas(current, data_definition=definition),
            Dataset.from_pandas(reference, data_definition=definition),
        )
    result: dict[str, Any] = snapshot.dict()
    return result


@pytest.mark.parametrize(
    ("reference_rows", "current_rows", "defaults"),
    [
        (800, 600, {"ks", "chisquare", "z"}),
        (3000, 2500, {"wasserstein", "jensenshannon"}),
    ],
)
def test_scores_and_flags_equal_evidentlys_report(
    reference_rows: int, current_rows: int, defaults: set[str]
) -> None:
    """Every method is matched exactly. The one deliberate difference is not exercised here:
    a column Evidently cannot score (nothing finite left, a test that raises, a NaN score)
    makes Evidently's Report raise or count it as not drifted in the share; compute_drift
    reports it as not computed and leaves it out of the share's denominator."""
    reference, current = _windows(reference_rows, current_rows)
    ours = compute_drift(reference, current, COLUMNS, CONFIG)
    report = _evidently_report(reference, current, COLUMNS, CONFIG)

    registry = evidently_stattests()
    values = {
        m["config"]["column"]: m for m in report["metrics"] if "ValueDrift" in m["metric_name"]
    }
    flags = {
        t["metric_config"]["params"]["column"]: t["status"] == "FAIL"
        for t in report["tests"]
        if t["name"].startswith("Value Drift for column")
    }
    assert set(values) == set(flags) == set(COLUMNS)
    for feature in ours.features:
        evidently = values[feature.column]
        assert feature.score == pytest.approx(evidently["value"], rel=1e-9, abs=0), feature
        assert feature.drifted == flags[feature.column], feature
        assert feature.threshold == evidently["config"]["threshold"]
        # Evidently writes back the display name of a method it chose, the name if given.
        method = registry._registered_stat_tests[feature.method]
        display = next(iter(method.values())).display_name
        assert evidently["config"]["method"] in (feature.method, display)
    count = next(m for m in report["metrics"] if "DriftedColumnsCount" in m["metric_name"])
    assert ours.drifted_count == count["value"]["count"]
    assert ours.share == pytest.approx(count["value"]["share"], rel=1e-12)
    share_test = next(t for t in report["tests"] if "Share of Drifted Columns" in t["name"])
    assert ours.dataset_drift == (share_test["status"] == "FAIL")
    assert ours.input_columns == 12

    # The windows exercise what they are meant to: the defaults for this size, the override.
    used = {f.method for f in ours.features}
    assert defaults <= used
    assert ours.feature("overridden").method == "psi"
    assert ours.feature("overridden").threshold == 0.2
    assert ours.feature("loose").threshold == 0.5
    assert ours.feature("moved").drifted
    assert not ours.feature("constant").drifted
    assert ours.dataset_drift
    assert ours.prediction_drift


def test_methods_table_matches_evidentlys_registry() -> None:
    registry = evidently_stattests()
    kinds = {"num": registry.ColumnType.Numerical, "cat": registry.ColumnType.Categorical}
    evidently = {
        name: {kind for kind, column_type in kinds.items() if column_type in tests}
        for name, tests in registry._registered_stat_tests.items()
        if set(tests) & set(kinds.values())
    }
    assert {name: set(method.kinds) for name, method in METHODS.items()} == evidently


@pytest.mark.parametrize("name", sorted(METHODS))
def test_each_methods_direction(name: str) -> None:
    """Identical windows score on the calm side of a shifted pair, whichever way that is."""
    rng = np.random.default_rng(3)
    kind: Kind = "num" if "num" in METHODS[name].kinds else "cat"
    if kind == "num":
        reference = pd.Series(rng.normal(0, 1, 200))
        shifted = pd.Series(rng.normal(1.5, 1, 200))
    else:  # binary, equal sizes: what Fisher's exact test accepts
        reference = pd.Series((rng.random(200) < 0.5).astype(float))
        shifted = pd.Series((rng.random(200) < 0.9).astype(float))
    calm = column_statistic(reference, reference.copy(), kind, name, None)
    moved = column_statistic(reference, shifted, kind, name, None)
    assert calm.method == moved.method == name
    assert moved.drifted
    if METHODS[name].higher_is_worse:
        assert moved.score > calm.score
    else:
        assert moved.score < calm.score


def _columns(frame: pd.DataFrame) -> dict[str, DriftColumn]:
    return {
        name: DriftColumn(name, "input", "num" if frame[name].dtype.kind == "f" else "cat")
        for name in frame.columns
    }


def test_same_distribution_no_drift_shifted_majority_drifts() -> None:
    rng = np.random.default_rng(4)
    names = [f"f{i}" for i in range(20)]
    reference = pd.DataFrame(rng.normal(0, 1, (5000, 20)), columns=names)
    same = pd.DataFrame(rng.normal(0, 1, (2000, 20)), columns=names)
    shifted_names = names[:12]  # 60 %
    shifted = same.copy()
    shifted[shifted_names] += 0.5

    calm = compute_drift(reference, same, _columns(reference), DriftConfig())
    moved = compute_drift(reference, shifted, _columns(reference), DriftConfig())

    assert not calm.dataset_drift
    assert calm.drifted_count == 0
    assert moved.dataset_drift
    assert moved.share == pytest.approx(0.6)
    assert {f.column for f in moved.features if f.drifted} == set(shifted_names)
    assert {f.column for f in moved.top_features(12)} == set(shifted_names)
    assert not moved.prediction_drift


def test_constant_columns_and_non_finite_values() -> None:
    rng = np.random.default_rng(5)
    for rows in (500, 3000):  # the small-reference and the large-reference defaults
        values = rng.normal(0, 1, rows)
        dirty = values.copy()
        dirty[::5] = np.nan
        dirty[1::5] = -np.inf
        reference = pd.DataFrame({"flat": np.full(rows, 2.0), "dirty": dirty})
        current = pd.DataFrame({"flat": np.full(rows, 2.0), "dirty": dirty[::-1].copy()})
        result = compute_drift(reference, current, _columns(reference), DriftConfig())

        flat = result.feature("flat")
        assert flat.computed
        assert not flat.drifted
        clean = compute_drift(
            pd.DataFrame({"dirty": values[np.isfinite(dirty)]}),
            pd.DataFrame({"dirty": values[np.isfinite(dirty)][::-1]}),
            {"dirty": DriftColumn("dirty", "input", "num")},
            DriftConfig(),
        )
        assert result.feature("dirty").score == clean.feature("dirty").score
        assert result.feature("dirty").method == clean.feature("dirty").method


def test_a_column_with_nothing_finite_is_reported_not_computed() -> None:
    rng = np.random.default_rng(6)
    reference = pd.DataFrame({"a": rng.normal(0, 1, 300), "b": rng.normal(0, 1, 300)})
    current = pd.DataFrame({"a": rng.normal(2, 1, 200), "b": np.full(200, np.nan)})
    current.loc[:10, "b"] = np.inf
    result = compute_drift(reference, current, _columns(reference), DriftConfig())
    b = result.feature("b")
    assert not b.computed
    assert not b.drifted
    assert b.reason == "no finite values in the current window"
    assert (result.input_columns, result.drifted_count, result.share) == (1, 1, 1.0)
    assert result.top_features() == [result.feature("a")]


def test_a_method_that_fails_on_the_data_is_reported_and_the_check_goes_on() -> None:
    reference = pd.DataFrame({"flat": np.zeros(300), "b": np.arange(300.0)})
    current = pd.DataFrame({"flat": np.zeros(300), "b": np.arange(300.0) + 1})
    config = DriftConfig(per_feature_method={"flat": "anderson"})
    result = compute_drift(reference, current, _columns(reference), config)
    flat = result.feature("flat")
    assert not flat.computed
    assert flat.reason is not None
    assert flat.reason.startswith("anderson failed: ")
    assert "distinct observation" in flat.reason
    assert flat.higher_is_worse is False
    assert result.feature("b").computed


def test_stat_test_warnings_are_kept_with_the_score() -> None:
    reference = pd.DataFrame({"grade": np.repeat([0, 1, 2], 100)})
    current = pd.DataFrame({"grade": np.repeat([0, 1, 2, 3], 50)})
    result = compute_drift(reference, current, _columns(reference), DriftConfig())
    grade = result.feature("grade")
    assert (grade.method, grade.score, grade.drifted) == ("chisquare", 0.0, True)
    assert any("divide by zero" in note for note in grade.notes)


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"method": "kst"}, r"unknown drift method 'kst' in method; valid methods: \[.*'ks'"),
        ({"per_feature_method": {"a": "PSI"}}, r"'PSI' in per_feature_method\['a'\].*'psi'"),
        ({"per_feature_method": ["a"]}, "per_feature_method must map column names"),
        ({"threshold": 0}, "threshold must be a finite number > 0"),
        ({"threshold": -0.1}, "threshold must be a finite number > 0"),
        ({"threshold": math.nan}, "threshold must be a finite number > 0"),
        ({"threshold": "0.1"}, "threshold must be a number"),
        ({"threshold": True}, "threshold must be a number"),
        ({"per_feature_threshold": {"a": 0.0}}, r"per_feature_threshold\['a'\] must be"),
        ({"per_feature_threshold": {1: 0.1}}, "per_feature_threshold must map column names"),
        ({"drift_share": 0}, r"drift_share must be in \(0, 1\]"),
        ({"drift_share": 1.01}, r"drift_share must be in \(0, 1\]"),
        ({"max_columns": 0}, "max_columns must be at least 1"),
        ({"max_columns": 2.5}, "max_columns must be an integer"),
    ],
)
def test_bad_configs_are_refused(kwargs: dict[str, Any], fragment: str) -> None:
    with pytest.raises(BadRequest, match=fragment) as caught:
        DriftConfig(**kwargs)
    assert caught.value.status_code == 400
    with pytest.raises(BadRequest, match=fragment):
        DriftConfig.from_json(kwargs)


def test_config_json_round_trip_and_unknown_keys() -> None:
    config = DriftConfig(
        method="psi",
        threshold=0.2,
        per_feature_method={"a": "ks"},
        per_feature_threshold={"a": 0.01},
        drift_share=1,
        max_columns=50,
    )
    assert DriftConfig.from_json(json.loads(json.dumps(config.to_json()))) == config
    assert DriftConfig.from_json({}) == DriftConfig()
    with pytest.raises(BadRequest, match=r"unknown drift config keys \['treshold'\]"):
        DriftConfig.from_json({"treshold": 0.1})
    with pytest.raises(BadRequest, match="a drift config is a JSON object"):
        DriftConfig.from_json([])  # type: ignore[arg-type]


def test_requests_that_cannot_be_computed_are_refused() -> None:
    frame = pd.DataFrame({"a": [0.1, 0.2, 0.3], "b": [1, 2, 3]})
    columns = _columns(frame)
    with pytest.raises(BadRequest, match="the current window is empty"):
        compute_drift(frame, frame.iloc[:0], columns, DriftConfig())
    with pytest.raises(BadRequest, match="the reference window is empty"):
        compute_drift(frame.iloc[:0], frame, columns, DriftConfig())
    with pytest.raises(BadRequest, match=r"the current window lacks drift columns \['b'\]"):
        compute_drift(frame, frame[["a"]], columns, DriftConfig())
    with pytest.raises(BadRequest, match=r"the reference window lacks drift columns \['a'\]"):
        compute_drift(frame[["b"]], frame, columns, DriftConfig())
    with pytest.raises(BadRequest, match="no columns to compare"):
        compute_drift(frame, frame, {}, DriftConfig())
    with pytest.raises(BadRequest, match=r"per_feature_threshold names columns .*\['c'\]"):
        compute_drift(frame, frame, columns, DriftConfig(per_feature_threshold={"c": 0.1}))
    with pytest.raises(BadRequest, match=r"'ks' does not apply to categorical column 'b'.*'psi'"):
        compute_drift(frame, frame, columns, DriftConfig(method="ks"))
    words = pd.DataFrame({"c": ["x", "y", "z"]})
    with pytest.raises(BadRequest, match="numerical drift column 'c' holds"):
        compute_drift(words, words, {"c": DriftColumn("c", "input", "num")}, DriftConfig())


def _feature(column: str, method: str, score: float | None, drifted: bool) -> FeatureDrift:
    higher = METHODS[method].higher_is_worse
    threshold = 0.1 if higher else 0.05
    reason = None if score is not None else "no finite values in the current window"
    return FeatureDrift(column, "input", "num", method, threshold, score, drifted, higher, reason)


def test_top_features_rank_both_directions_by_distance_past_the_threshold() -> None:
    features = (
        _feature("distance_3x", "wasserstein", 0.3, True),
        _feature("p_50x", "ks", 0.001, True),
        _feature("distance_half", "psi", 0.05, False),
        _feature("p_tenth", "ks", 0.5, False),
        _feature("p_zero", "chisquare", 0.0, True),
        _feature("skipped", "ks", None, False),
    )
    result = DriftResult(features, 0.6, 3, 5, 0.5, True, False, 100, 100, 0.01)
    assert [f.column for f in result.top_features()] == [
        "p_zero",
        "p_50x",
        "distance_3x",
        "distance_half",
        "p_tenth",
    ]
    assert [f.column for f in result.top_features(2)] == ["p_zero", "p_50x"]
    assert result.feature("p_50x").severity == pytest.approx(50)
    assert result.feature("distance_3x").severity == pytest.approx(3)
    assert result.feature("p_tenth").severity == pytest.approx(0.1)
    assert result.feature("skipped").severity == 0.0
    with pytest.raises(KeyError):
        result.feature("nope")


def test_result_json_round_trip() -> None:
    reference, current = _windows(800, 600)
    current["noisy"] = np.nan
    result = compute_drift(reference, current, COLUMNS, CONFIG)
    assert not result.feature("noisy").computed
    assert any(f.notes for f in result.features)
    text = json.dumps(result.to_json(), allow_nan=False)
    assert DriftResult.from_json(json.loads(text)) == result


def test_render_report_shows_the_same_verdicts() -> None:
    reference, current = _windows(800, 600)
    current["noisy"] = np.nan  # not computable: left out of the report
    result = compute_drift(reference, current, COLUMNS, CONFIG)
    html = render_report(reference, current, COLUMNS, CONFIG)
    assert html.lstrip().startswith("<!DOCTYPE html>")
    failed = set(
        re.findall(
            r'"Value Drift for column ([^"]+)", "description": "[^"]*", "state": "fail"', html
        )
    )
    drifted = {f.column for f in result.features if f.drifted}
    assert drifted
    assert failed == drifted
    for column in drifted:
        assert column in html
    assert '"noisy"' not in html
    only = {"noisy": COLUMNS["noisy"]}
    with pytest.raises(BadRequest, match="no column could be compared"):
        render_report(reference, current, only, DriftConfig())


def _run_python(code: str) -> str:
    completed = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert completed.returncode == 0, completed.stderr
    return completed.stdout


def test_importing_the_drift_modules_does_not_import_evidently() -> None:
    output = _run_python(
        "import sys, monitors.drift, monitors.drift.report, monitors.drift.columns\n"
        "print(sorted(m for m in ('evidently', 'scipy') if m in sys.modules))"
    )
    assert output.strip() == "[]"


@pytest.mark.slow
def test_evidently_opens_no_network_connection() -> None:
    output = _run_python(
        "import sys\n"
        "events = []\n"
        "NET = {'socket.connect', 'socket.sendto', 'socket.sendmsg', 'socket.getaddrinfo',\n"
        "       'socket.gethostbyname', 'socket.gethostbyaddr', 'urllib.Request'}\n"
        "sys.addaudithook(lambda event, args: events.append(event) if event in NET else None)\n"
        "import numpy as np, pandas as pd\n"
        "from monitors.drift import DriftConfig, compute_drift\n"
        "from monitors.drift.columns import DriftColumn\n"
        "from monitors.drift.report import render_report\n"
        "rng = np.random.default_rng(0)\n"
        "ref = pd.DataFrame({'a': rng.normal(0, 1, 2000), 'b': rng.integers(0, 3, 2000)})\n"
        "cur = pd.DataFrame({'a': rng.normal(1, 1, 900), 'b': rng.integers(0, 3, 900)})\n"
        "cols = {'a': DriftColumn('a', 'input', 'num'), 'b': DriftColumn('b', 'input', 'cat')}\n"
        "result = compute_drift(ref, cur, cols, DriftConfig())\n"
        "html = render_report(ref, cur, cols, DriftConfig())\n"
        "print(result.feature('a').drifted, len(html) > 10000, events)\n"
    )
    assert output.strip() == "True True []"

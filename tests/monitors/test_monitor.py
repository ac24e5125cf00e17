"""The drift monitor over a real registry and a real inference log (no gateway)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch

from monitors.log.inference_log import InferenceLog, LogSettings
from monitors.loop import Monitor
from monitors.monitor import DriftMonitor
from monitors.settings import MonitorSettings
from registry import Registry
from registry.errors import NotFound
from tests.fixtures import SmallCNN, make_mlp

FEATURES = [f"f{i}" for i in range(6)]
FLUSH_S = 0.05


def settings(home: Path, **overrides: Any) -> MonitorSettings:
    values: dict[str, Any] = {
        "home": home,
        "log_flush_interval_s": FLUSH_S,
        "drift_min_rows": 100,
        "drift_window_rows": 2000,
        **overrides,
    }
    return MonitorSettings(**values)


@pytest.fixture
def tabular(sqlite_registry: Registry) -> Registry:
    reference = pd.DataFrame(
        np.random.default_rng(0).standard_normal((2000, 6)).astype(np.float32), columns=FEATURES
    )
    sqlite_registry.register(
        make_mlp(), "mlp", torch.randn(4, 6), feature_names=FEATURES, reference=reference
    )
    return sqlite_registry


@pytest.fixture
def log(sqlite_registry: Registry) -> Iterator[InferenceLog]:
    written = InferenceLog(
        LogSettings(
            directory=sqlite_registry.settings.home / "inference_log",
            flush_interval_s=FLUSH_S,
            max_rows_per_s=1e9,
        )
    )
    written.start()
    yield written
    written.close(10)


def send(log: InferenceLog, registry: Registry, model: str, inputs: dict[str, np.ndarray]) -> None:
    """Log rows as the gateway would: one request per row, with the model's real outputs."""
    record = registry.get(f"{model}:1")
    net = SmallCNN() if model == "cnn" else make_mlp()
    with torch.inference_mode():
        outputs = net(*(torch.from_numpy(a) for a in inputs.values())).numpy()
    name = record.signature.outputs[0].name
    rows = len(next(iter(inputs.values())))
    for i in range(rows):
        log.record(
            model,
            1,
            record.signature,
            f"{model}-{i}",
            {n: a[i : i + 1] for n, a in inputs.items()},
            {name: outputs[i : i + 1]},
            0.001,
        )
    log.flush(10)
    time.sleep(3 * FLUSH_S)  # past the window's end margin (2 × the flush interval)


def normal(rows: int, seed: int, shift: float = 0.0, shifted: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((rows, 6)).astype(np.float32)
    x[:, :shifted] += shift
    return x


def test_a_window_like_the_reference_shows_no_drift_and_a_shifted_one_does(
    tabular: Registry, log: InferenceLog
) -> None:
    monitor = DriftMonitor(tabular, settings(tabular.settings.home))
    assert monitor.check("mlp", 1) is None  # nothing logged yet
    # Enough rows that sampling noise stays under Wasserstein's 0.1 (the reference has
    # more than 1000 rows, so Evidently picks the normed Wasserstein distance).
    send(log, tabular, "mlp", {"x": normal(800, 1)})
    clean = monitor.check("mlp", 1)
    assert clean is not None
    assert not clean.detected, clean.result
    assert clean.rows == 800
    assert clean.consecutive == 0
    reference = tabular.get("mlp:1").artifact("reference")
    assert reference is not None
    assert clean.reference_digest == reference.digest
    assert clean.config["min_rows"] == 100
    # The next window starts where this one ended: the same rows are never checked twice.
    assert monitor.check("mlp", 1) is None

    send(log, tabular, "mlp", {"x": normal(800, 2, shift=2.0, shifted=4)})
    drifted = monitor.check("mlp", 1)
    assert drifted is not None
    assert drifted.detected
    assert drifted.window_start == clean.window_end
    assert drifted.rows == 800
    assert drifted.consecutive == 1
    features = {f["column"]: f for f in drifted.result["features"]}
    assert {c for c, f in features.items() if f["drifted"] and f["role"] == "input"} == {
        "f0",
        "f1",
        "f2",
        "f3",
    }
    assert drifted.share == pytest.approx(4 / 6)
    predictions = [f for f in features.values() if f["role"] == "prediction"]
    assert predictions, "the model's outputs are compared too"
    assert monitor.store.latest("mlp", 1) == drifted


def test_a_window_waits_for_min_rows_and_is_cut_to_window_rows(
    tabular: Registry, log: InferenceLog
) -> None:
    monitor = DriftMonitor(tabular, settings(tabular.settings.home, drift_window_rows=120))
    send(log, tabular, "mlp", {"x": normal(60, 3)})
    assert monitor.check("mlp", 1) is None  # 60 < 100 rows: the window stays open
    send(log, tabular, "mlp", {"x": normal(90, 4)})
    check = monitor.check("mlp", 1)
    assert check is not None
    assert check.rows == 120  # a uniform sample of the 150 rows logged
    assert check.config["rows_logged"] == 150
    forced = monitor.check("mlp", 1, force=True)
    assert forced is None  # nothing new since


def test_a_round_checks_every_target_and_survives_a_failing_one(
    tabular: Registry, log: InferenceLog
) -> None:
    monitor = Monitor(tabular, settings(tabular.settings.home))
    send(log, tabular, "mlp", {"x": normal(150, 5)})
    assert monitor.targets() == [("mlp", 1)]
    # A version the registry does not know fails alone.
    done = monitor.run_once([("ghost", 1), ("mlp", 1)])
    assert [(r.model, r.version) for r in done] == [("mlp", 1)]
    assert done[0].drift is not None
    assert done[0].quality.status == "unknown"  # registered without a task or labels
    assert "task is unknown" in done[0].quality.result["reason"]


def test_a_window_carries_its_data_quality(tabular: Registry, log: InferenceLog) -> None:
    monitor = DriftMonitor(tabular, settings(tabular.settings.home))
    x = normal(300, 9)
    x[:, 2] *= 1000.0  # a broken upstream: one feature in the wrong unit
    send(log, tabular, "mlp", {"x": x})
    check = monitor.check("mlp", 1)
    assert check is not None
    quality = check.result["data_quality"]
    assert quality["answered_rows"] == 300
    assert [(b["check"], b["feature"]) for b in quality["breaches"]] == [("out_of_range", "f2")]


def test_images_drift_on_per_channel_summaries_and_predictions(
    sqlite_registry: Registry, log: InferenceLog
) -> None:
    rng = np.random.default_rng(0)
    reference = rng.standard_normal((600, 1, 16, 16)).astype(np.float32)
    sqlite_registry.register(SmallCNN(), "cnn", torch.randn(2, 1, 16, 16), reference=reference)
    monitor = DriftMonitor(sqlite_registry, settings(sqlite_registry.settings.home))
    brighter = (rng.standard_normal((200, 1, 16, 16)) * 1.5 + 1.0).astype(np.float32)
    send(log, sqlite_registry, "cnn", {"image": brighter})
    check = monitor.check("cnn", 1)
    assert check is not None
    features = {f["column"]: f for f in check.result["features"]}
    assert {"image.mean", "image.std"} <= set(features) or {
        "image.c0.mean",
        "image.c0.std",
    } <= set(features)
    assert check.detected
    assert any(f["role"] == "prediction" and f["drifted"] for f in features.values())


def test_the_report_is_rendered_once_from_the_checks_own_window(
    tabular: Registry, log: InferenceLog
) -> None:
    monitor = DriftMonitor(tabular, settings(tabular.settings.home))
    send(log, tabular, "mlp", {"x": normal(150, 6, shift=3.0, shifted=6)})
    check = monitor.check("mlp", 1)
    assert check is not None
    path = monitor.report(check)
    html = path.read_text()
    assert "<html" in html.lower()
    assert "f0" in html
    stamp = path.stat().st_mtime_ns
    assert monitor.report(check).stat().st_mtime_ns == stamp  # kept, not rendered again


def test_a_version_without_reference_data_cannot_be_monitored(
    sqlite_registry: Registry, log: InferenceLog
) -> None:
    sqlite_registry.register(make_mlp(), "bare", torch.randn(4, 6), feature_names=FEATURES)
    send(log, sqlite_registry, "bare", {"x": normal(150, 7)})
    monitor = DriftMonitor(sqlite_registry, settings(sqlite_registry.settings.home))
    with pytest.raises(NotFound, match="no reference data"):
        monitor.check("bare", 1)


def test_per_feature_overrides_apply_to_the_models_that_have_those_features(
    tabular: Registry, log: InferenceLog
) -> None:
    overrides = settings(
        tabular.settings.home,
        # `income` belongs to some other model the same gateway serves.
        drift_feature_methods={"f0": "psi", "income": "ks"},
        drift_feature_thresholds={"f0": 0.2, "income": 0.01},
    )
    monitor = DriftMonitor(tabular, overrides)
    send(log, tabular, "mlp", {"x": normal(800, 8)})
    check = monitor.check("mlp", 1)
    assert check is not None
    features = {f["column"]: f for f in check.result["features"]}
    assert (features["f0"]["method"], features["f0"]["threshold"]) == ("psi", 0.2)
    assert features["f1"]["method"] == "wasserstein"  # Evidently's default here
    assert check.config["drift"]["per_feature_method"] == {"f0": "psi"}


def test_an_unknown_method_is_refused_when_the_monitor_is_built(tabular: Registry) -> None:
    from registry.errors import BadRequest

    with pytest.raises(BadRequest, match="unknown drift method 'nope'"):
        DriftMonitor(tabular, settings(tabular.settings.home, drift_method="nope"))


def test_persistent_drift_on_what_the_model_uses_with_nothing_measuring_quality_is_one_task(
    tabular: Registry, log: InferenceLog
) -> None:
    # `mlp` was registered without a task or labels: no realised or estimated quality can
    # judge the drift, and every feature it uses drifts: evidence enough for a task.
    monitor = Monitor(
        tabular, settings(tabular.settings.home, alert_consecutive_checks=2, task_min_rows=100)
    )
    rounds = []
    for i in range(4):
        send(log, tabular, "mlp", {"x": normal(300, 20 + i, shift=3.0, shifted=6)})
        rounds.append(monitor.round("mlp", 1))
        assert rounds[-1].drift is not None
    assert [r.quality.result["decision"]["outcome"] for r in rounds] == [
        "ok",
        "task",
        "task",
        "task",
    ]
    tasks = monitor.tasks.list()
    assert len(tasks) == 1  # rounds 2, 3 and 4 all hold: one task, two duplicates
    task = tasks[0]
    assert (task.model, task.serving_version, task.reason, task.status) == (
        "mlp",
        1,
        "important_drift",
        "open",
    )
    assert task.duplicate_count == 2
    assert task.source == "monitor"
    assert task.rows == 1200  # the whole run of drifted checks: four windows
    drift = task.evidence["drift"]
    assert drift["impact"] == pytest.approx(1.0)
    assert set(drift["drifted"]) == set(FEATURES)
    assert task.evidence["top_features"][0]["importance"] > 0
    assert "no quality figure can judge it" in task.evidence["summary"]

"""`mlgate register --task/--label`, `mlgate show`, `mlgate quality` and `mlgate policy`."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner, Result

from examples.scenarios.data import FEATURES, LABEL, generate
from examples.scenarios.train import train
from exporters.runners import onnx_predictor
from monitors.log.inference_log import InferenceLog, LogSettings
from monitors.quality.feedback import FeedbackStore
from monitors.quality.feedback_body import FeedbackItem
from registry import Registry
from services.cli.entry import app
from tests.fixtures import onnx_file

pytestmark = pytest.mark.slow


def mlgate(home: Path, *args: str, code: int = 0) -> Result:
    result = CliRunner().invoke(app, ["--home", str(home), *args])
    assert result.exit_code == code, (result.stdout, result.stderr, result.exception)
    return result


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An ONNX binary classifier as a user brings one, with reference and evaluation files."""
    folder = tmp_path_factory.mktemp("files")
    result = train(generate("binary", 3000, seed=1), {"task": "binary", "epochs": 4}, seed=0)
    onnx_file(folder / "model.onnx", model=result.model, features=12, names=("features", "p"))
    generate("binary", 2000, seed=2).to_parquet(folder / "reference.parquet")
    generate("binary", 1000, seed=3).to_parquet(folder / "valid.parquet")
    return folder


def register(home: Path, files: Path, *options: str, code: int = 0) -> Result:
    """`mlgate register sensor --onnx model.onnx OPTIONS...`."""
    return mlgate(home, "register", "sensor", "--onnx", str(files / "model.onnx"), *options,
                  code=code)  # fmt: skip


def labelled(files: Path, label: str = LABEL) -> tuple[str, ...]:
    """The options that register the evaluation file with its label column."""
    return ("--features", ",".join(FEATURES), "--eval-dataset",
            f"valid={files / 'valid.parquet'}", "--label", label)  # fmt: skip


def test_register_with_a_label_gets_a_baseline_and_show_prints_it(
    tmp_path: Path, files: Path
) -> None:
    home = tmp_path / "home"
    register(home, files, "--reference", str(files / "reference.parquet"), *labelled(files))
    shown = " ".join(mlgate(home, "show", "sensor").stdout.split())
    assert "binary · probabilities in 'p' · inferred" in shown
    assert "baseline on 1000 evaluation rows: accuracy" in shown
    assert "importance: s0" in shown
    document = json.loads(mlgate(home, "show", "sensor", "--json").stdout)
    assert document["problem"]["task"] == "binary"
    assert document["quality"]["baseline"]["figures"]["roc_auc"]["n"] == 1000
    # Declared, with a threshold; and declarations that cannot hold are one-line errors.
    register(home, files, "--task", "binary", "--threshold", "0.3")
    assert Registry(home=home).get("sensor:2").problem.threshold == 0.3  # type: ignore[union-attr]
    bad = register(home, files, "--task", "regression", "--output-kind", "logits", code=1)
    assert "a regression model's output kind is one of values" in bad.stderr
    missing = register(home, files, *labelled(files, "nope"), code=1)
    assert "--label 'nope' is not a column" in missing.stderr


def test_quality_check_shows_the_figures_and_the_policy_can_be_tuned(
    tmp_path: Path, files: Path
) -> None:
    home = tmp_path / "home"
    register(home, files, *labelled(files))
    none = mlgate(home, "quality", "sensor", code=1)
    assert "no quality evaluation is stored for sensor" in none.stderr
    log_with_labels(home, "sensor", 400)
    checked = check_until_joined(home, 400)
    assert checked["status"] == "holding"
    assert checked["metric"] == "roc_auc"
    assert checked["realised"]["rows"] == 400
    assert checked["labels"]["joined"] == 400
    text = " ".join(mlgate(home, "quality", "sensor").stdout.split())
    assert "sensor:1 · holding · binary · probabilities" in text
    assert "realised roc_auc:" in text
    assert "decision: ok" in text

    shown = json.loads(mlgate(home, "policy", "sensor", "--json").stdout)
    assert shown["overrides"] == {}
    assert shown["effective"]["quality_tolerance"] == 0.02
    mlgate(
        home,
        "policy",
        "sensor",
        "--set",
        "quality_tolerance=0.05",
        "--set",
        "schedule_s=604800",
        "--set",
        "quality_metric=accuracy",
    )
    tuned = json.loads(mlgate(home, "policy", "sensor", "--version", "1", "--json").stdout)
    assert tuned["overrides"] == {
        "quality_tolerance": 0.05,
        "schedule_s": 604800.0,
        "quality_metric": "accuracy",
    }
    again = json.loads(mlgate(home, "quality", "sensor", "--check", "--json").stdout)
    assert again["metric"] == "accuracy"
    assert again["thresholds"]["tolerance"] == 0.05
    mlgate(home, "policy", "sensor", "--unset", "quality_metric")
    assert (
        "quality_metric"
        not in json.loads(mlgate(home, "policy", "sensor", "--json").stdout)["overrides"]
    )
    for args, message in (
        (("--set", "tolerance=1"), "unknown policy setting 'tolerance'"),
        (("--set", "quality_min_coverage=2"), "must be within [0, 1]"),
        (("--set", "quality_metric=mape"), "must be one of accuracy"),
        (("--set", "quality_min_labels"), "expected KEY=VALUE"),
    ):
        assert message in mlgate(home, "policy", "sensor", *args, code=1).stderr
    assert "no version 9" in mlgate(home, "policy", "sensor", "--version", "9", code=1).stderr


def log_with_labels(home: Path, model: str, rows: int) -> None:
    """Rows logged as a gateway would, with their labels, past the window's end margin."""
    registry = Registry(home=home)
    version = registry.get(f"{model}:1")
    data = generate("binary", rows, seed=9)
    x = data[FEATURES].to_numpy(np.float32)
    _, _, folder = registry.open_servable(version.ref, "onnx")
    p = onnx_predictor(folder / "model.onnx")({"features": x})["p"]
    log = InferenceLog(LogSettings(directory=home / "inference_log", max_rows_per_s=1e9))
    log.start()
    for i in range(rows):
        log.record(
            model,
            1,
            version.signature,
            f"q{i}",
            {"features": x[i : i + 1]},
            {"p": p[i : i + 1]},
            0.001,
        )
    log.close(10)
    FeedbackStore(registry.db).add(
        model, [FeedbackItem(f"q{i}", int(v)) for i, v in enumerate(data[LABEL])]
    )
    registry.close()


def check_until_joined(home: Path, labels: int) -> dict[str, Any]:
    """`mlgate quality --check` until a round has read every logged row and joined its
    label: rows are read once they are past the window's end margin (2 flush intervals)."""
    deadline = time.monotonic() + 60
    while True:
        checked: dict[str, Any] = json.loads(
            mlgate(home, "quality", "sensor", "--check", "--json").stdout
        )
        if checked["labels"]["joined"] >= labels:
            return checked
        assert time.monotonic() < deadline, checked["labels"]
        time.sleep(0.2)

"""`mlgate drift` and `mlgate monitor`, in process, over a real registry and inference log."""

from __future__ import annotations

import json
import re
import time
from io import StringIO
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from rich.console import Console
from typer.testing import CliRunner, Result

from monitors.log.inference_log import InferenceLog, LogSettings
from monitors.loop import Monitor
from monitors.settings import MonitorSettings
from registry import Registry
from services.cli.entry import app
from services.cli.progress import monitor_cycle
from tests.fixtures import make_mlp

FEATURES = [f"f{i}" for i in range(6)]


@pytest.fixture
def home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    registry = Registry(home=home)
    reference = pd.DataFrame(
        np.random.default_rng(0).standard_normal((600, 6)).astype(np.float32), columns=FEATURES
    )
    version = registry.register(
        make_mlp(), "mlp", torch.randn(4, 6), feature_names=FEATURES, reference=reference
    )
    log = InferenceLog(LogSettings(directory=home / "inference_log", max_rows_per_s=1e9))
    log.start()
    x = np.random.default_rng(1).standard_normal((600, 6)).astype(np.float32)
    x[:, :4] += 3.0
    with torch.inference_mode():
        y = make_mlp()(torch.from_numpy(x)).numpy()
    for i in range(0, 600, 20):
        log.record("mlp", 1, version.signature, f"r{i}", {"x": x[i : i + 20]},
                   {"output": y[i : i + 20]}, 0.001)  # fmt: skip
    log.close(10)
    registry.close()
    time.sleep(2.5)  # past the window's end margin (2 × the default 1 s flush interval)
    return home


def mlgate(home: Path, *args: str, code: int = 0) -> Result:
    result = CliRunner().invoke(app, ["--home", str(home), *args])
    assert result.exit_code == code, (result.stdout, result.stderr, result.exception)
    return result


def test_drift_check_report_and_latest(home: Path, tmp_path: Path) -> None:
    missing = mlgate(home, "drift", "mlp", code=1)
    assert "no drift check is stored for mlp" in missing.stderr
    report = tmp_path / "out" / "drift.html"
    checked = json.loads(mlgate(home, "drift", "mlp", "--check", "--json",
                                "--report", str(report)).stdout)  # fmt: skip
    assert checked["detected"] is True
    assert checked["window"]["rows"] == 600
    assert checked["report"] == str(report)
    assert "f0" in report.read_text()
    shown = mlgate(home, "drift", "mlp").stdout
    assert f"mlp:1 check {checked['id']}" in shown
    assert "drift" in shown
    assert "f0" in shown
    # Nothing new was logged since: a second forced check has no rows to look at.
    again = mlgate(home, "drift", "mlp", "--check", code=1)
    assert "no rows of mlp:1 were logged since the previous check" in again.stderr


def test_monitor_once_checks_every_logged_version(home: Path) -> None:
    monitored = mlgate(home, "monitor", "--once")
    shown = monitored.stdout
    assert "mlp:1 quality unknown · drift check 1: 600 rows, share 0.67 DRIFT" in shown
    # No progress bar: stderr is not a terminal here, so it holds the one line it always has.
    line = f"monitoring {home / 'inference_log'} every 60 s"
    assert monitored.stderr.replace("\n", "") == line  # rich wraps it at 80 columns
    again = mlgate(home, "monitor", "--once").stdout
    assert "mlp:1 quality unknown" in again
    assert "drift check" not in again  # nothing new to check for drift


def test_drift_errors_name_what_is_wrong(home: Path) -> None:
    assert "nope" in mlgate(home, "drift", "nope", code=1).stderr
    assert "no version 7" in mlgate(home, "drift", "mlp", "--version", "7", code=1).stderr
    assert "no version 7" in mlgate(home, "drift", "mlp", "--version", "7", "--check",
                                    code=1).stderr  # fmt: skip
    bad = mlgate(home, "drift", "mlp", "--version", "0", code=2)
    assert "positive integer in ASCII digits" in " ".join(bad.stderr.split())


def test_a_monitoring_cycle_shows_the_versions_it_checks_in_a_terminal(home: Path) -> None:
    registry = Registry(home=home)
    checker = Monitor(registry, MonitorSettings(home=home))
    screen = StringIO()
    rounds = monitor_cycle(checker, Console(file=screen, force_terminal=True, width=160))
    registry.close()
    assert [(r.model, r.version) for r in rounds] == [("mlp", 1)]
    assert rounds[0].drift is not None  # the round ran: the 600 logged rows were checked
    shown = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", screen.getvalue())
    assert "monitoring mlp:1" in shown
    assert "0/1 versions" in shown
    assert "1/1 versions" in shown

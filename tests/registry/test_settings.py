from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from registry import Registry
from tests.fixtures import make_mlp

ROOT = Path(__file__).resolve().parents[2]


def test_settings_come_from_mlgate_variables(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLGATE_HOME", str(tmp_path / "h"))
    monkeypatch.setenv("MLGATE_REGISTRY_URL", f"sqlite:///{tmp_path / 'elsewhere.db'}")
    monkeypatch.setenv("MLGATE_ARTIFACTS_DIR", str(tmp_path / "files"))
    monkeypatch.setenv("MLGATE_REFERENCE_MAX_ROWS", "25")
    monkeypatch.setenv("MLGATE_USER", "ci-bot")
    registry = Registry()
    frame = pd.DataFrame(np.zeros((100, 6), np.float32), columns=[f"f{i}" for i in range(6)])
    version = registry.register(
        make_mlp(), "m", torch.zeros(2, 6), feature_names=list(frame.columns), reference=frame
    )
    assert version.created_by == "ci-bot"
    assert version.lineage["reference"]["rows"] == 25
    assert (tmp_path / "elsewhere.db").exists()
    assert (tmp_path / "files").is_dir()
    assert not (tmp_path / "h").exists()
    registry.close()


def test_an_explicit_argument_beats_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLGATE_REGISTRY_URL", "postgresql+psycopg://nobody@127.0.0.1:1/none")
    registry = Registry(url=f"sqlite:///{tmp_path / 'r.db'}", home=tmp_path)
    assert registry.models() == []
    registry.close()


def test_importing_does_no_work(tmp_path: Path) -> None:
    """No settings read, no files or folders created, no database opened at import."""
    code = (
        "import registry, exporters, services.cli, services.demo.register,"
        " examples.credit_risk.train"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={
            "PATH": "/usr/bin:/bin",
            "PYTHONPATH": str(ROOT),
            "MLGATE_HOME": str(tmp_path / "home"),
        },
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert list(tmp_path.iterdir()) == []

"""CLI fixtures: `mlgate` runs a command in process on a fresh home; `files` are a small
model's weights and data for `mlgate register`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner, Result

from services.cli.entry import app
from tests.fixtures import make_mlp

FEATURES = [f"f{i}" for i in range(6)]

Run = Callable[..., Result]


@pytest.fixture
def mlgate(tmp_path: Path) -> Run:
    runner = CliRunner()

    def run(*args: str, code: int = 0) -> Result:
        result = runner.invoke(app, ["--home", str(tmp_path / "home"), *args])
        assert result.exit_code == code, (result.stdout, result.stderr, result.exception)
        return result

    return run


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    torch.save(make_mlp(hidden=8).state_dict(), tmp_path / "weights.pt")
    frame = pd.DataFrame(
        np.random.default_rng(0).standard_normal((200, 6)).astype(np.float32), columns=FEATURES
    )
    frame.to_parquet(tmp_path / "train.parquet")
    frame.iloc[:40].to_csv(tmp_path / "valid.csv", index=False)
    return {
        "weights": tmp_path / "weights.pt",
        "train": tmp_path / "train.parquet",
        "valid": tmp_path / "valid.csv",
    }

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from registry.errors import InvalidModelInput
from registry.lineage import (
    Dataset,
    Metric,
    dataset_digest,
    environment,
    git_info,
    normalise_metrics,
)


def _frame() -> pd.DataFrame:
    return pd.DataFrame(
        {"a": np.arange(5, dtype=np.float32), "b": np.arange(5, dtype=np.int64), "c": list("vwxyz")}
    )


def test_the_digest_is_of_the_table_not_of_the_file_format(tmp_path: Path) -> None:
    frame = _frame()
    frame.to_csv(tmp_path / "d.csv", index=False)
    frame.to_parquet(tmp_path / "d.parquet")
    from_parquet = Dataset.from_file(tmp_path / "d.parquet", name="train")
    assert from_parquet.digest == dataset_digest(frame)
    assert from_parquet.rows == 5
    assert from_parquet.source == (tmp_path / "d.parquet").resolve().as_uri()
    # CSV loses float32 (reads back float64): a different table, so a different digest.
    assert Dataset.from_file(tmp_path / "d.csv", name="t").digest != from_parquet.digest


def test_the_digest_changes_with_any_value_column_name_or_order() -> None:
    base = dataset_digest(_frame())
    changed = _frame()
    changed.loc[2, "a"] = 99.0
    assert dataset_digest(changed) != base
    assert dataset_digest(_frame().rename(columns={"a": "A"})) != base
    assert dataset_digest(_frame()[["b", "a", "c"]]) != base
    assert dataset_digest(_frame()) == base


def test_array_digests_include_shape_and_dtype() -> None:
    values = np.arange(12, dtype=np.float32)
    assert dataset_digest(values.reshape(3, 4)) != dataset_digest(values.reshape(4, 3))
    assert dataset_digest(values) != dataset_digest(values.astype(np.float64))


def test_a_dataset_must_be_a_table_or_array() -> None:
    with pytest.raises(InvalidModelInput, match="DataFrame or a numpy array"):
        dataset_digest([1, 2, 3])  # type: ignore[arg-type]


def test_git_commit_and_dirty_flag(tmp_path: Path) -> None:
    def git(*args: str) -> None:
        subprocess.run(["git", "-C", str(tmp_path), *args], check=True, capture_output=True)

    git("init", "-q", "-b", "main")
    git("config", "user.email", "t@example.com")
    git("config", "user.name", "t")
    (tmp_path / "train.py").write_text("x = 1\n")
    git("add", "train.py")
    git("commit", "-q", "-m", "first")
    clean = git_info(tmp_path / "train.py")
    assert clean is not None
    assert len(clean["commit"]) == 40
    assert clean["dirty"] is False
    assert clean["branch"] == "main"
    (tmp_path / "notes.txt").write_text("untracked files do not count\n")
    assert git_info(tmp_path / "train.py")["dirty"] is False  # type: ignore[index]
    (tmp_path / "train.py").write_text("x = 2\n")
    assert git_info(tmp_path / "train.py")["dirty"] is True  # type: ignore[index]


def test_no_git_outside_a_work_tree(tmp_path: Path) -> None:
    assert git_info(tmp_path) is None


def test_environment_names_the_versions_that_matter() -> None:
    env = environment()
    for package in ("python", "torch", "onnx", "onnxruntime"):
        assert env[package]


def test_metrics_must_name_a_known_dataset() -> None:
    assert normalise_metrics({"auc": Metric(0.9, "valid"), "f1": (0.5, "valid")}, {"valid"}) == {
        "auc": {"value": 0.9, "dataset": "valid"},
        "f1": {"value": 0.5, "dataset": "valid"},
    }
    with pytest.raises(InvalidModelInput, match="must say which dataset"):
        normalise_metrics({"auc": 0.9}, {"valid"})  # type: ignore[dict-item]
    with pytest.raises(InvalidModelInput, match="not one of the version's datasets"):
        normalise_metrics({"auc": Metric(0.9, "test")}, {"valid"})
    with pytest.raises(InvalidModelInput, match="finite"):
        normalise_metrics({"auc": Metric(float("nan"), "valid")}, {"valid"})

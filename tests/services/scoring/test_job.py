"""Scoring a file end to end with a model in numpy: the output is whole or absent, the
layout of outputs, and what is refused before anything is written."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest

from registry.signature import Signature, TensorSpec
from services.scoring.columns import BadInput
from services.scoring.job import ScoreOptions, score_file

SIGNATURE = Signature(
    (TensorSpec("x", "float32", (-1, 2)),),
    (
        TensorSpec("probabilities", "float32", (-1, 2)),
        TensorSpec("label", "int64", (-1,)),
        TensorSpec("map", "float32", (-1, 2, 2)),
    ),
    {"x": ["a", "b"]},
)


def predict(inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    x = inputs["x"]
    share = 1 / (1 + np.exp(-(x[:, 0] - x[:, 1])))
    probabilities = np.stack([1 - share, share], axis=1).astype(np.float32)
    grid = np.repeat(x[:, :, None], 2, axis=2)
    return {"probabilities": probabilities, "label": (share > 0.5).astype(np.int64), "map": grid}


def _source(tmp_path: Path, rows: int) -> Path:
    rng = np.random.default_rng(3)
    table = pa.table({"a": rng.normal(size=rows), "b": rng.normal(size=rows), "id": range(rows)})
    path = tmp_path / "in.parquet"
    pq.write_table(table, path, row_group_size=1000)
    return path


def _left(tmp_path: Path) -> list[str]:
    return sorted(p.name for p in tmp_path.iterdir() if p.name != "in.parquet")


def test_outputs_are_laid_out_one_column_per_value_and_a_list_per_tensor(tmp_path: Path) -> None:
    source = _source(tmp_path, 2500)
    report = score_file(
        predict, SIGNATURE, source, tmp_path / "out.parquet", ScoreOptions(chunk_rows=600)
    )
    assert (report.rows, report.scored, report.rejected, report.rejects) == (2500, 2500, 0, None)
    table = pq.read_table(tmp_path / "out.parquet")
    assert table.column_names == ["row", "probabilities_0", "probabilities_1", "label", "map"]
    assert table.schema.field("map").type == pa.list_(pa.float32(), 4)
    inputs = pq.read_table(source)
    x = np.stack([inputs["a"].to_numpy(), inputs["b"].to_numpy()], 1).astype(np.float32)
    expected = predict({"x": x})
    np.testing.assert_array_equal(table["label"].to_numpy(), expected["label"])
    np.testing.assert_array_equal(
        np.stack(table["map"].to_numpy(zero_copy_only=False)), expected["map"].reshape(-1, 4)
    )
    assert _left(tmp_path) == ["out.parquet"]  # nothing temporary is left behind


def test_a_failure_mid_file_leaves_no_output_and_no_temporary_file(tmp_path: Path) -> None:
    source = _source(tmp_path, 5000)
    table = pq.read_table(source).to_pandas()
    table.loc[10, "a"] = np.nan
    table.to_parquet(source, row_group_size=1000)
    calls = 0

    def failing(inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        nonlocal calls
        calls += 1
        if calls == 3:
            raise RuntimeError("the model broke on the third batch")
        return predict(inputs)

    with pytest.raises(RuntimeError, match="third batch"):
        score_file(failing, SIGNATURE, source, tmp_path / "out.parquet", ScoreOptions(1000, 500))
    assert _left(tmp_path) == []  # neither the output nor the rejects


def test_what_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    source = _source(tmp_path, 10)
    with pytest.raises(BadInput, match="a CSV row cannot hold: write Parquet"):
        score_file(predict, SIGNATURE, source, tmp_path / "out.csv", ScoreOptions())
    with pytest.raises(BadInput, match="three different files"):
        score_file(predict, SIGNATURE, source, source, ScoreOptions())
    with pytest.raises(BadInput, match="three different files"):
        score_file(
            predict, SIGNATURE, source, tmp_path / "o.parquet", ScoreOptions(), rejects=source
        )
    assert _left(tmp_path) == []


def test_csv_rejects_keep_the_scalar_columns_and_the_row_finds_the_rest(tmp_path: Path) -> None:
    signature = Signature(
        (TensorSpec("v", "float32", (-1, 2)), TensorSpec("w", "float32", (-1,))),
        (TensorSpec("s", "float32", (-1,)),),
    )
    source = tmp_path / "in.parquet"
    pq.write_table(pa.table({"v": [[1.0, 2.0], [1.0]], "w": [1.0, 2.0]}), source)

    def total(inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {"s": inputs["v"].sum(axis=1) + inputs["w"]}

    report = score_file(total, signature, source, tmp_path / "out.csv", ScoreOptions())
    assert report.rejects == tmp_path / "out.rejects.csv"
    rejects = pcsv.read_csv(report.rejects)
    assert rejects.column_names == ["row", "reason", "w"]
    assert rejects.to_pylist() == [
        {"row": 1, "reason": "v: 1 values, where a row of the input holds 2", "w": 2.0}
    ]
    assert pcsv.read_csv(tmp_path / "out.csv").to_pylist() == [{"row": 0, "s": 4.0}]

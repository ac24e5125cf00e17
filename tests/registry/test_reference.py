from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from registry.errors import InvalidModelInput
from registry.reference import REFERENCE_FILE, build_reference, read_reference
from registry.signature import Signature, TensorSpec

TABULAR = Signature(
    (TensorSpec("x", "float32", (-1, 3)),),
    (TensorSpec("score", "float32", (-1, 1)), TensorSpec("logits", "float32", (-1, 2))),
    {"x": ["a", "b", "c"]},
)


def _predict(inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    x = inputs["x"]
    return {"score": x.sum(axis=1, keepdims=True), "logits": x[:, :2] * 2}


def test_reference_is_bounded_and_keeps_outputs(tmp_path: Path) -> None:
    frame = pd.DataFrame(np.random.default_rng(0).standard_normal((500, 3)), columns=list("abc"))
    layout = build_reference(frame, TABULAR, _predict, tmp_path, max_rows=100)
    assert layout["rows"] == 100
    assert layout["sampled_from"] == 500
    reference = read_reference(tmp_path / REFERENCE_FILE)
    assert list(reference.frame.columns) == ["a", "b", "c", "score", "logits_0", "logits_1"]
    assert reference.inputs["x"].dtype == np.float32
    np.testing.assert_allclose(reference.outputs["score"], _predict(reference.inputs)["score"])
    # Sampled rows are rows of the input, in their original order.
    original = frame.to_numpy(np.float32)
    positions = [
        int(np.flatnonzero((original == row).all(axis=1))[0]) for row in reference.inputs["x"]
    ]
    assert positions == sorted(positions)


def test_the_sample_is_reproducible(tmp_path: Path) -> None:
    frame = pd.DataFrame(np.random.default_rng(1).standard_normal((300, 3)), columns=list("abc"))
    build_reference(frame, TABULAR, _predict, tmp_path, max_rows=50)
    first = (tmp_path / REFERENCE_FILE).read_bytes()
    build_reference(frame, TABULAR, _predict, tmp_path, max_rows=50)
    assert (tmp_path / REFERENCE_FILE).read_bytes() == first


def test_image_inputs_round_trip_as_tensor_columns(tmp_path: Path) -> None:
    signature = Signature(
        (TensorSpec("image", "float32", (-1, 1, 4, 4)),),
        (TensorSpec("output", "float32", (-1, 3)),),
    )
    images = np.random.default_rng(0).standard_normal((20, 1, 4, 4)).astype(np.float32)

    def predict(inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {"output": inputs["image"].reshape(len(inputs["image"]), -1)[:, :3]}

    build_reference(images, signature, predict, tmp_path, max_rows=1000)
    reference = read_reference(tmp_path / REFERENCE_FILE)
    np.testing.assert_array_equal(reference.inputs["image"], images)


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        (pd.DataFrame({"a": [1.0], "b": [2.0]}), "lacks feature columns"),
        (np.zeros((4, 5), np.float32), "rows of shape"),
        ({"x": np.zeros((4, 3)), "y": np.zeros((4, 3))}, "the model takes"),
        (np.zeros((0, 3), np.float32), "non-zero row count"),
        (np.array([["a", "b", "c"]]), "cannot be converted"),
    ],
)
def test_bad_reference_data_is_explained(tmp_path: Path, data: object, fragment: str) -> None:
    with pytest.raises(InvalidModelInput, match=fragment):
        build_reference(data, TABULAR, _predict, tmp_path, max_rows=10)  # type: ignore[arg-type]
    assert not (tmp_path / REFERENCE_FILE).exists()


def test_a_parquet_file_without_layout_is_not_a_reference(tmp_path: Path) -> None:
    pd.DataFrame({"a": [1.0]}).to_parquet(tmp_path / "other.parquet")
    with pytest.raises(InvalidModelInput, match="not an mlgate reference"):
        read_reference(tmp_path / "other.parquet")

"""drift_frame: tensors, rebuilt from the real reference layout, become drift columns."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from monitors.drift.columns import DriftColumn, drift_frame
from registry.errors import BadRequest
from registry.reference import rebuild_tensors, tensor_columns
from registry.signature import Signature, TensorSpec


def _round_trip(
    signature: Signature, inputs: Mapping[str, np.ndarray], outputs: Mapping[str, np.ndarray]
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict[str, Any]]:
    """What a reader of the reference file or the inference log gets back."""
    columns, layout = tensor_columns(signature, inputs, outputs)
    rebuilt_inputs, rebuilt_outputs = rebuild_tensors(pa.table(columns), layout)
    return rebuilt_inputs, rebuilt_outputs, layout


def test_features_outputs_and_argmax() -> None:
    signature = Signature(
        (TensorSpec("x", "float32", (-1, 3)),),
        (TensorSpec("score", "float32", (-1, 1)), TensorSpec("logits", "float32", (-1, 3))),
        {"x": ["age", "income", "debt"]},
    )
    rng = np.random.default_rng(0)
    x = rng.standard_normal((50, 3)).astype(np.float32)
    logits = rng.standard_normal((50, 3)).astype(np.float32)
    score = x.sum(axis=1, keepdims=True)
    inputs, outputs, layout = _round_trip(signature, {"x": x}, {"score": score, "logits": logits})

    frame, columns = drift_frame(inputs, outputs, layout)

    assert list(frame.columns) == [
        "age",
        "income",
        "debt",
        "score",
        "logits_0",
        "logits_1",
        "logits_2",
        "logits.argmax",
    ]
    assert list(columns) == list(frame.columns)
    assert columns["age"] == DriftColumn("age", "input", "num")
    assert columns["score"] == DriftColumn("score", "prediction", "num")
    assert columns["logits_1"] == DriftColumn("logits_1", "prediction", "num")
    assert columns["logits.argmax"] == DriftColumn("logits.argmax", "prediction", "cat")
    np.testing.assert_array_equal(frame["income"], x[:, 1])
    np.testing.assert_array_equal(frame["score"], score[:, 0])
    np.testing.assert_array_equal(frame["logits_2"], logits[:, 2])
    np.testing.assert_array_equal(frame["logits.argmax"], logits.argmax(axis=1))
    assert frame["age"].dtype == np.float32  # as is: Evidently sees the model's own values


def test_cnn_input_gives_mean_and_std_per_channel() -> None:
    signature = Signature(
        (TensorSpec("image", "float32", (-1, 3, 8, 8)),),
        (TensorSpec("label", "int64", (-1,)),),
    )
    rng = np.random.default_rng(1)
    spread = np.array([1.0, 2.0, 3.0])[None, :, None, None]
    images = (rng.standard_normal((20, 3, 8, 8)) * spread).astype(np.float32)
    labels = rng.integers(0, 10, 20)
    inputs, outputs, layout = _round_trip(signature, {"image": images}, {"label": labels})
    assert layout["inputs"]["image"]["kind"] == "tensor"

    frame, columns = drift_frame(inputs, outputs, layout)

    summaries = [f"image.c{k}.{s}" for k in range(3) for s in ("mean", "std")]
    assert list(frame.columns) == [*summaries, "label"]
    assert all(columns[name] == DriftColumn(name, "input", "num") for name in summaries)
    assert columns["label"] == DriftColumn("label", "prediction", "cat")
    for row in range(20):
        for channel in range(3):
            pixels = images[row, channel].astype(np.float64)
            assert frame[f"image.c{channel}.mean"][row] == pytest.approx(pixels.mean())
            assert frame[f"image.c{channel}.std"][row] == pytest.approx(pixels.std())
    assert frame["image.c2.std"].mean() > frame["image.c0.std"].mean() * 2


def test_one_channel_tensor_gives_one_mean_and_std() -> None:
    signature = Signature(
        (TensorSpec("scan", "float32", (-1, 1, 4, 4)),), (TensorSpec("p", "float32", (-1, 1)),)
    )
    scans = np.arange(10 * 16, dtype=np.float32).reshape(10, 1, 4, 4)
    inputs, outputs, layout = _round_trip(signature, {"scan": scans}, {"p": np.zeros((10, 1))})
    frame, _ = drift_frame(inputs, outputs, layout)
    assert list(frame.columns) == ["scan.mean", "scan.std", "p"]
    np.testing.assert_allclose(frame["scan.mean"], scans.reshape(10, -1).mean(axis=1))
    np.testing.assert_allclose(frame["scan.std"], scans.reshape(10, -1).std(axis=1))


def test_unnamed_columns_as_is_up_to_the_cap_then_row_summaries() -> None:
    signature = Signature(
        (TensorSpec("ids", "int64", (-1, 3)), TensorSpec("wide", "float32", (-1, 6))),
        (TensorSpec("scores", "float32", (-1, 6)),),
    )
    rng = np.random.default_rng(2)
    ids = rng.integers(0, 5, (30, 3))
    wide = rng.standard_normal((30, 6)).astype(np.float32)
    scores = rng.standard_normal((30, 6)).astype(np.float32)
    inputs, outputs, layout = _round_trip(signature, {"ids": ids, "wide": wide}, {"scores": scores})

    frame, columns = drift_frame(inputs, outputs, layout, max_columns=4)

    assert list(frame.columns) == [
        "ids_0",
        "ids_1",
        "ids_2",
        "wide.mean",
        "wide.std",
        "scores.mean",
        "scores.std",
        "scores.argmax",
    ]
    assert columns["ids_0"].kind == "cat"  # integers are categories
    assert columns["wide.mean"] == DriftColumn("wide.mean", "input", "num")
    assert columns["scores.std"] == DriftColumn("scores.std", "prediction", "num")
    np.testing.assert_array_equal(frame["ids_2"], ids[:, 2])
    np.testing.assert_allclose(frame["wide.mean"], wide.astype(np.float64).mean(axis=1))
    np.testing.assert_allclose(frame["wide.std"], wide.astype(np.float64).std(axis=1))
    np.testing.assert_array_equal(frame["scores.argmax"], scores.argmax(axis=1))

    wider, _ = drift_frame(inputs, outputs, layout, max_columns=6)
    assert "wide_5" in wider.columns
    assert "scores_5" in wider.columns


def test_tensor_output_and_non_finite_pixels() -> None:
    """A row holding NaN or inf gets a non-finite summary (dropped later), without warnings."""
    signature = Signature(
        (TensorSpec("image", "float32", (-1, 2, 3, 3)),),
        (TensorSpec("mask", "float32", (-1, 2, 3, 3)),),
    )
    images = np.ones((4, 2, 3, 3), np.float32)
    images[0, 0, 1, 1] = np.inf
    images[1, 1, 0, 0] = np.nan
    inputs, outputs, layout = _round_trip(signature, {"image": images}, {"mask": images * 2})

    frame, columns = drift_frame(inputs, outputs, layout)

    assert columns["mask.c1.std"] == DriftColumn("mask.c1.std", "prediction", "num")
    assert not np.isfinite(frame["image.c0.mean"][0])
    assert not np.isfinite(frame["image.c0.std"][0])
    assert np.isnan(frame["image.c1.mean"][1])
    assert frame["image.c1.mean"][0] == 1.0
    assert frame["mask.c0.mean"][3] == 2.0
    assert frame["mask.c0.std"][3] == 0.0


def _tabular(
    names: list[str], x: np.ndarray, outputs: dict[str, np.ndarray]
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict[str, Any]]:
    signature = Signature(
        (TensorSpec("x", x.dtype.name, (-1, len(names))),),
        tuple(TensorSpec(n, a.dtype.name, (-1, *a.shape[1:])) for n, a in outputs.items()),
        {"x": names},
    )
    return _round_trip(signature, {"x": x}, outputs)


def test_bools_are_categories() -> None:
    inputs, outputs, layout = _tabular(
        ["flag", "other"], np.array([[True, False]] * 4), {"y": np.zeros((4, 1), np.float32)}
    )
    _, columns = drift_frame(inputs, outputs, layout)
    assert columns["flag"].kind == "cat"


def test_a_name_made_twice_is_refused() -> None:
    inputs, outputs, layout = _tabular(
        ["a", "logits.argmax"], np.zeros((4, 2), np.float32), {"logits": np.zeros((4, 2))}
    )
    with pytest.raises(BadRequest, match=r"'logits\.argmax' would be made twice"):
        drift_frame(inputs, outputs, layout)


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ("drop_input", "the layout names input 'x', which the data lacks"),
        ("drop_output", "the layout names output 'y', which the data lacks"),
        ("narrow", "has 1 columns; its layout names 2"),
        ("short_output", "different row counts"),
        ("strings", "dtype <U1; expected numbers or bools"),
        ("scalar", "is a scalar"),
    ],
)
def test_data_that_does_not_fit_the_layout_is_explained(change: str, fragment: str) -> None:
    inputs, outputs, layout = _tabular(
        ["a", "b"], np.zeros((4, 2), np.float32), {"y": np.zeros((4, 1), np.float32)}
    )
    if change == "drop_input":
        inputs = {}
    elif change == "drop_output":
        outputs = {}
    elif change == "narrow":
        inputs = {"x": np.zeros((4, 1), np.float32)}
    elif change == "short_output":
        outputs = {"y": np.zeros((3, 1), np.float32)}
    elif change == "strings":
        inputs = {"x": np.array([["a", "b"]] * 4)}
    else:
        inputs = {"x": np.array(1.0)}
    with pytest.raises(BadRequest, match=fragment):
        drift_frame(inputs, outputs, layout)


def test_drift_column_json() -> None:
    column = DriftColumn("logits.argmax", "prediction", "cat")
    assert DriftColumn.from_json(column.to_json()) == column
    with pytest.raises(BadRequest, match=r"role input\|prediction"):
        DriftColumn.from_json({"name": "a", "role": "output", "kind": "num"})

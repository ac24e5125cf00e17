"""Staging a request's rows on the request path, and the writer's batch from a stage."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from monitors.log.batches import Staging, generated_ids, stage_batch
from registry.signature import Signature, TensorSpec

SIGNATURE = Signature(
    (TensorSpec("x", "float32", (-1, 3)),),
    (TensorSpec("y", "float32", (-1, 2)),),
)


Arrays = dict[str, Any]


def request(rows: int, width: int = 3, dtype: type = np.float32) -> tuple[Arrays, Arrays]:
    x: np.ndarray = np.arange(rows * width, dtype=dtype).reshape(rows, width)
    return {"x": x}, {"y": np.ones((rows, 2), np.float32) * rows}


def ids(count: int) -> pa.Array:
    return generated_ids("gen", 0, count)


def test_alike_requests_share_one_stage_and_one_batch_in_record_order() -> None:
    staging = Staging()
    for index, rows in enumerate((1, 3, 1)):
        inputs, outputs = request(rows)
        rid = None if index == 1 else f"r{index}"
        staging.add("m", 1, SIGNATURE, 100.0 + index, rid, rows, inputs, outputs, 0.5 * index)
    stages, unfit = staging.take()
    assert unfit == []
    assert [s.rows for s in stages] == [5]
    batch = stage_batch(stages[0], "rep", ids)
    assert batch.column("request_id").to_pylist() == ["r0", "gen-0", "gen-0", "gen-0", "r2"]
    assert batch.column("row").to_pylist() == [0, 0, 1, 2, 0]
    assert batch.column("latency_s").to_pylist() == [0.0, 0.5, 0.5, 0.5, 1.0]
    assert batch.column("replica").to_pylist() == ["rep"] * 5
    seconds = [t.timestamp() for t in batch.column("ts").to_pylist()]
    assert seconds == [100.0, 101.0, 101.0, 101.0, 102.0]
    assert staging.take() == ([], [])  # taken once


def test_only_the_rows_taken_are_kept() -> None:
    staging = Staging()
    inputs, outputs = request(4)
    staging.add("m", 1, SIGNATURE, 1.0, "a", 2, inputs, outputs, 0.1)
    (stage,), _ = staging.take()
    x, y = stage.tensors()
    np.testing.assert_array_equal(x["x"], inputs["x"][:2])
    np.testing.assert_array_equal(y["y"], outputs["y"][:2])


def test_a_change_of_row_shape_or_dtype_starts_a_new_stage() -> None:
    ragged = Signature((TensorSpec("x", "float32", (-1, -1)),), SIGNATURE.outputs)
    staging = Staging()
    for width, dtype in ((3, np.float32), (3, np.float32), (5, np.float32), (3, np.float64)):
        staging.add("m", 1, ragged, 1.0, None, 1, *request(1, width, dtype), 0.1)
    stages, unfit = staging.take()
    assert unfit == []
    assert [(s.rows, s.shapes[0][2:]) for s in stages] == [
        (2, ("<f4", (3,))),
        (1, ("<f4", (5,))),
        (1, ("<f8", (3,))),
    ]


def test_versions_and_models_stage_apart() -> None:
    staging = Staging()
    for model, version in (("a", 1), ("a", 2), ("b", 1), ("a", 1)):
        staging.add(model, version, SIGNATURE, 1.0, None, 1, *request(1), 0.1)
    stages, _ = staging.take()
    assert sorted((s.model, s.version, s.rows) for s in stages) == [
        ("a", 1, 2),
        ("a", 2, 1),
        ("b", 1, 1),
    ]


def test_arrays_that_are_not_numpy_are_converted() -> None:
    staging = Staging()
    staging.add("m", 1, SIGNATURE, 1.0, 7, 1, {"x": [[1.0, 2.0, 3.0]]}, {"y": [[0.5, 0.5]]}, 0.1)
    staging.add("m", 1, SIGNATURE, 2.0, 8, 1, {"x": [[4.0, 5.0, 6.0]]}, {"y": [[1.0, 1.0]]}, 0.1)
    stages, unfit = staging.take()
    assert unfit == []
    assert [s.rows for s in stages] == [2]
    batch = stage_batch(stages[0], "rep", ids)
    assert batch.column("request_id").to_pylist() == ["7", "8"]  # ids that are not strings


@pytest.mark.parametrize(
    ("inputs", "outputs", "why"),
    [
        ({"x": np.zeros((2, 3), np.float32)}, {}, "output 'y' is missing"),
        ({"x": np.zeros((1, 3), np.float32)}, {"y": np.zeros((2, 2))}, "expected at least 2"),
        ({"x": np.float32(1)}, {"y": np.zeros((2, 2))}, "input 'x' has shape []"),
        ({"x": [[1.0], [1.0, 2.0]]}, {"y": np.zeros((2, 2))}, "inhomogeneous"),
    ],
)
def test_arrays_that_do_not_fit_are_set_aside_with_the_reason(
    inputs: Arrays, outputs: Arrays, why: str
) -> None:
    staging = Staging()
    staging.add("m", 1, SIGNATURE, 1.0, None, 2, *request(2), 0.1)
    staging.add("m", 1, SIGNATURE, 1.0, None, 2, inputs, outputs, 0.1)  # never raises
    staging.add("m", 1, SIGNATURE, 1.0, None, 2, *request(2), 0.1)
    stages, unfit = staging.take()
    assert [s.rows for s in stages] == [4]  # the others keep their rows, in one stage
    assert len(unfit) == 1
    assert unfit[0][:2] == (("m", 1), 2)
    assert why in unfit[0][2]


def test_generated_ids_count_up_from_first() -> None:
    assert generated_ids("abc", 41, 3).to_pylist() == ["abc-41", "abc-42", "abc-43"]
    assert generated_ids("abc", 0, 0).to_pylist() == []

"""Columns to tensors: what the file as a whole gets (BadInput) and what one row gets (a
reject with its reason), for tabular, scalar and tensor-per-row inputs."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from registry.signature import Signature, TensorSpec
from services.scoring.columns import BadInput, Prepared, plan_columns

TABULAR = Signature(
    (TensorSpec("x", "float32", (-1, 3)),),
    (TensorSpec("y", "float32", (-1, 1)),),
    {"x": ["a", "b", "c"]},
)


def _prepare(signature: Signature, table: pa.Table, allow_non_finite: bool = False) -> Prepared:
    plan = plan_columns(signature, table.schema, allow_non_finite=allow_non_finite)
    return plan.prepare(table.combine_chunks().to_batches()[0])


def test_features_are_read_in_the_signatures_order_and_bad_rows_set_aside() -> None:
    table = pa.table(
        {
            "c": [3.0, 6.0, None, 9.0, 1.0],
            "b": [2.0, float("nan"), 1.0, 8.0, 1e39],
            "a": pa.array([1, 4, 7, 7, 1], pa.int64()),
        }
    )
    prepared = _prepare(TABULAR, table)
    np.testing.assert_array_equal(prepared.tensors["x"], [[1, 2, 3], [7, 8, 9]])
    assert prepared.tensors["x"].dtype == np.float32
    assert prepared.good.tolist() == [0, 3]
    assert prepared.rejected.tolist() == [1, 2, 4]
    assert prepared.reasons == [
        "b: NaN or infinite",
        "c: empty",
        "b: not within the float32 range",
    ]
    allowed = _prepare(TABULAR, table, allow_non_finite=True)
    assert allowed.good.tolist() == [0, 1, 3]


def test_integer_inputs_take_whole_numbers_in_range_only() -> None:
    signature = Signature((TensorSpec("n", "int8", (-1,)),), (TensorSpec("y", "float32", (-1,)),))
    prepared = _prepare(signature, pa.table({"n": [1.0, 2.5, 300.0, -128.0]}))
    assert prepared.tensors["n"].tolist() == [1, -128]
    assert prepared.tensors["n"].dtype == np.int8
    assert prepared.reasons == ["n: not a whole number within the int8 range"] * 2


def test_a_tensor_per_row_comes_from_a_list_column_nested_or_flat() -> None:
    signature = Signature(
        (TensorSpec("img", "float32", (-1, 2, 2)), TensorSpec("k", "float32", (-1, 1))),
        (TensorSpec("y", "float32", (-1, 2)),),
    )
    nested = [[[1, 2], [3, 4]], None, [[1, 2], [3]], [[1, 2], [3, float("inf")]], [[5, 6], [7, 8]]]
    flat = [[1, 2, 3, 4], None, [1, 2, 3], [1, 2, 3, float("inf")], [5, 6, 7, 8]]
    for column in (nested, flat):
        table = pa.table({"img": column, "k": [1.0, 2.0, 3.0, 4.0, 5.0]})
        prepared = _prepare(signature, table)
        np.testing.assert_array_equal(prepared.tensors["img"], [[[1, 2], [3, 4]], [[5, 6], [7, 8]]])
        assert prepared.tensors["k"].tolist() == [[1.0], [5.0]]
        assert prepared.reasons == [
            "img: empty",
            "img: 3 values, where a row of the input holds 4",
            "img: NaN or infinite",
        ]
    fixed = pa.table({"img": pa.array(flat[:1] + flat[4:], pa.list_(pa.float64(), 4)), "k": [1, 2]})
    assert _prepare(signature, fixed).good.tolist() == [0, 1]


@pytest.mark.parametrize(
    ("signature", "table", "message"),
    [
        (TABULAR, pa.table({"a": [1.0], "c": [1.0]}), r"lacks columns \['b'\]"),
        (TABULAR, pa.table({"a": ["1"], "b": [1.0], "c": [1.0]}), "column 'a' holds string"),
        (TABULAR, pa.table({"a": [True], "b": [1.0], "c": [1.0]}), "column 'a' holds bool"),
        (
            Signature((TensorSpec("img", "float32", (-1, 4)),), ()),
            pa.table({"img": [1.0]}),
            "takes a list of 4 numbers per row",
        ),
        (
            Signature((TensorSpec("seq", "float32", (-1, -1)),), ()),
            pa.table({"seq": [[1.0]]}),
            "variable size",
        ),
    ],
    ids=["missing", "text", "booleans", "scalar-for-a-list", "variable"],
)
def test_what_the_file_as_a_whole_gets(signature: Signature, table: pa.Table, message: str) -> None:
    with pytest.raises(BadInput, match=message):
        plan_columns(signature, table.schema, allow_non_finite=False)


def test_a_vector_input_without_names_reads_numbered_columns_or_a_list() -> None:
    signature = Signature(
        (TensorSpec("x", "float32", (-1, 2)),), (TensorSpec("y", "float32", (-1,)),)
    )
    numbered = pa.table({"x_1": [2.0, 4.0], "x_0": [1.0, 3.0]})  # as predict writes outputs
    np.testing.assert_array_equal(_prepare(signature, numbered).tensors["x"], [[1, 2], [3, 4]])
    listed = pa.table({"x": [[1.0, 2.0], [3.0, 4.0]], "x_0": [9.0, 9.0]})  # the list wins
    np.testing.assert_array_equal(_prepare(signature, listed).tensors["x"], [[1, 2], [3, 4]])
    with pytest.raises(BadInput, match=r"lacks columns \['x'\]"):
        plan_columns(signature, pa.table({"x_0": [1.0]}).schema, allow_non_finite=False)

from __future__ import annotations

import numpy as np
import pytest

from registry.signature import Signature, TensorSpec
from services.gateway.errors import InvalidTensor, PayloadTooLarge
from services.gateway.validation import REFUSAL_REASONS, refused_rows, validate_inputs

SIGNATURE = Signature(
    (TensorSpec("numeric", "float32", (-1, 4)), TensorSpec("counts", "int64", (-1, 3))),
    (TensorSpec("score", "float32", (-1, 1)),),
)


def good(rows: int = 2) -> dict[str, np.ndarray]:
    return {"counts": np.zeros((rows, 3), np.int64), "numeric": np.zeros((rows, 4), np.float32)}


def check(inputs: dict[str, np.ndarray], allow_non_finite: bool = False) -> dict[str, np.ndarray]:
    return validate_inputs(inputs, SIGNATURE, max_rows=100, allow_non_finite=allow_non_finite)


def test_good_inputs_come_back_in_the_model_order() -> None:
    assert list(check(good())) == ["numeric", "counts"]


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        (
            {"extra": np.zeros((2, 1), np.float32)},
            "unknown inputs ['extra']; the model takes numeric FP32[-1, 4], counts INT64[-1, 3]",
        ),
        (
            {"numeric": np.zeros((2, 4), np.float64)},
            "input 'numeric': expected FP32[-1, 4], got FP64[2, 4] (datatype differs)",
        ),
        (
            {"numeric": np.zeros((2, 5), np.float32)},
            "expected FP32[-1, 4], got FP32[2, 5] (shape differs)",
        ),
        ({"numeric": np.zeros((2, 4, 1), np.float32)}, "got FP32[2, 4, 1] (shape differs)"),
        ({"numeric": np.zeros((0, 4), np.float32)}, "(no rows)"),
        ({"counts": np.zeros((3, 3), np.int64)}, "disagree on the number of rows"),
        (
            {"numeric": np.array([[0, np.nan, 0, np.inf]] * 2, np.float32)},
            "4 values are NaN or infinite (first at [0, 1])",
        ),
    ],
)
def test_each_problem_names_the_input_the_expectation_and_what_arrived(
    change: dict[str, np.ndarray], fragment: str
) -> None:
    with pytest.raises(InvalidTensor) as caught:
        check({**good(), **change})
    assert fragment in str(caught.value)


def test_missing_inputs_and_row_caps() -> None:
    with pytest.raises(InvalidTensor, match=r"missing inputs \['counts'\]"):
        check({"numeric": np.zeros((2, 4), np.float32)})
    with pytest.raises(PayloadTooLarge, match="at most 100 per request") as caught:
        check(good(rows=101))
    assert caught.value.status_code == 413


def test_non_finite_values_when_the_model_allows_them() -> None:
    inputs = {**good(), "numeric": np.full((2, 4), np.nan, np.float32)}
    assert np.isnan(check(inputs, allow_non_finite=True)["numeric"]).all()


@pytest.mark.parametrize(
    ("inputs", "reason"),
    [
        ({**good(), "extra": np.zeros((2, 1), np.float32)}, "unknown_input"),
        ({"numeric": np.zeros((2, 4), np.float32)}, "missing_input"),
        ({**good(), "numeric": np.zeros((2, 4), np.float64)}, "dtype"),
        ({**good(), "numeric": np.zeros((2, 5), np.float32)}, "shape"),
        ({**good(), "numeric": np.zeros((0, 4), np.float32)}, "no_rows"),
        ({**good(), "counts": np.zeros((3, 3), np.int64)}, "rows_mismatch"),
        ({**good(), "numeric": np.full((2, 4), np.inf, np.float32)}, "non_finite"),
        (good(rows=101), "too_many_rows"),
    ],
)
def test_each_refusal_carries_a_machine_reason(inputs: dict[str, np.ndarray], reason: str) -> None:
    """The data plane counts refused rows by it (see monitors/log/counts.py)."""
    with pytest.raises((InvalidTensor, PayloadTooLarge)) as caught:
        check(inputs)
    assert isinstance(caught.value, InvalidTensor | PayloadTooLarge)
    assert caught.value.reason == reason
    assert reason in REFUSAL_REASONS


def test_a_refused_request_counts_its_rows() -> None:
    assert refused_rows(good(rows=7)) == 7
    assert refused_rows({"numeric": np.zeros((0, 4)), "counts": np.zeros((3, 3))}) == 3
    assert refused_rows({"numeric": np.zeros((0, 4))}) == 1  # a refusal moves the share
    assert refused_rows({"scalar": np.float32(1)}) == 1  # type: ignore[dict-item]

"""Checking a request's tensors against the version's signature, before they are queued.

Every message names the input, what the model expects (datatype and shape, -1 for any
size) and what arrived, so that one bad request is refused on its own and never reaches
a batch it could break.

Every refusal also carries a machine `reason` (one of `REFUSAL_REASONS`), by which the
data plane counts refused rows per model version for the data-quality checks: a rising
share of "dtype" or "non_finite" refusals is an upstream that broke, not drift.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import numpy as np

from registry.signature import Signature, TensorSpec
from services.gateway.codec import oip_datatype
from services.gateway.errors import InvalidTensor, PayloadTooLarge

__all__ = ["REFUSAL_REASONS", "refused_rows", "validate_inputs"]

REFUSAL_REASONS = (
    "dtype",  # a datatype other than the signature's (or, for v1, values that are not numbers)
    "shape",  # wrong number of dimensions or a fixed dimension of another size
    "no_rows",  # dimension 0 is 0 (or v1's empty "instances")
    "non_finite",  # NaN or ±inf where the deployment does not allow them
    "unknown_input",  # an input the model does not take
    "missing_input",  # an input (or v1 feature) the model takes is absent
    "rows_mismatch",  # the inputs disagree on dimension 0
    "too_many_rows",  # past max_rows per request (413)
)


@functools.cache
def _dtype(name: str) -> np.dtype[Any]:
    """A signature's dtype name as a numpy dtype (comparing dtypes is cheaper than names)."""
    return np.dtype(name)


def validate_inputs(
    inputs: Mapping[str, np.ndarray],
    signature: Signature,
    *,
    max_rows: int,
    allow_non_finite: bool,
) -> dict[str, np.ndarray]:
    """The inputs in the model's order; raises InvalidTensor (400) or PayloadTooLarge (413)."""
    expected = {spec.name: spec for spec in signature.inputs}
    unknown = sorted(set(inputs) - set(expected))
    if unknown:
        raise InvalidTensor(
            f"unknown inputs {unknown}; the model takes {_describe(signature)}", "unknown_input"
        )
    missing = [name for name in expected if name not in inputs]
    if missing:
        raise InvalidTensor(
            f"missing inputs {missing}; the model takes {_describe(signature)}", "missing_input"
        )
    rows: dict[str, int] = {}
    ordered: dict[str, np.ndarray] = {}
    for name, spec in expected.items():
        array = inputs[name]
        if array.dtype != _dtype(spec.dtype):
            raise InvalidTensor(
                f"input {name!r}: {_mismatch(spec, array)} (datatype differs)", "dtype"
            )
        if array.ndim != len(spec.shape) or any(
            e != -1 and e != a for e, a in zip(spec.shape[1:], array.shape[1:], strict=True)
        ):
            raise InvalidTensor(
                f"input {name!r}: {_mismatch(spec, array)} (shape differs)", "shape"
            )
        if array.shape[0] < 1:
            raise InvalidTensor(f"input {name!r}: {_mismatch(spec, array)} (no rows)", "no_rows")
        if array.shape[0] > max_rows:
            raise PayloadTooLarge(
                f"input {name!r} has {array.shape[0]} rows; at most {max_rows} per request",
                "too_many_rows",
            )
        if not allow_non_finite and array.dtype.kind == "f" and not np.isfinite(array).all():
            bad = ~np.isfinite(array)
            first = [int(i) for i in np.argwhere(bad)[0]]
            raise InvalidTensor(
                f"input {name!r}: {int(bad.sum())} values are NaN or infinite (first at "
                f"{first}); this model needs finite values",
                "non_finite",
            )
        rows[name] = array.shape[0]
        ordered[name] = array
    if len(set(rows.values())) > 1:
        raise InvalidTensor(f"inputs disagree on the number of rows: {rows}", "rows_mismatch")
    return ordered


def refused_rows(inputs: Mapping[str, np.ndarray]) -> int:
    """The rows a refused request counts for: its largest dimension 0, at least 1.

    At least 1, so that a request refused for having no rows (or a scalar) still moves
    the refused share; the largest, because inputs that disagree hold at least that many.
    """
    return max([1, *(a.shape[0] for a in inputs.values() if getattr(a, "ndim", 0) >= 1)])


def _mismatch(spec: TensorSpec, array: np.ndarray) -> str:
    """Built only for a refusal: formatting it for every request cost more than the checks."""
    want = f"{oip_datatype(spec.dtype)}{list(spec.shape)}"
    return f"expected {want}, got {oip_datatype(array.dtype.name)}{list(array.shape)}"


def _describe(signature: Signature) -> str:
    return ", ".join(f"{s.name} {oip_datatype(s.dtype)}{list(s.shape)}" for s in signature.inputs)

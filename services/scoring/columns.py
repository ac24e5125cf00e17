"""Which table columns feed which model input, checked before any row is read, and each
chunk of rows turned into the model's tensors, with the rows that fail set aside.

The rules follow the signature the version was registered with, as serving does:

- an input with feature names (a tabular `[-1, k]` input) reads one numeric column per
  feature, in the signature's order, whatever the file's column order;
- an input with one value per row (`[-1]` or `[-1, 1]`) reads the column of its name;
- any other fixed-shape input reads the column of its name holding a list per row, nested
  or flat, with as many values as one row of the input holds (Parquet).

What is wrong with the file as a whole (a missing column, a column of text or booleans
where numbers are expected, an input of variable size) raises `BadInput` before anything
is written. What is wrong with one row (an empty cell, NaN or ±inf where the deployment
does not allow them, a value outside the input's type, a fraction for an integer input, a
list of the wrong length) sends that row to the rejects with its reason.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from registry.errors import BadRequest
from registry.signature import Signature, TensorSpec

__all__ = ["BadInput", "ColumnPlan", "Prepared", "plan_columns"]


class BadInput(BadRequest):
    """The input file cannot be scored as a whole (one line, naming what is wrong)."""


@dataclass(frozen=True)
class _Source:
    """Where one input tensor comes from: scalar `columns` (stacked in order) or one `list`."""

    spec: TensorSpec
    columns: tuple[str, ...]
    listed: bool
    row_shape: tuple[int, ...]


@dataclass
class Prepared:
    """One chunk: the tensors of its good rows, and which rows were set aside and why."""

    tensors: dict[str, np.ndarray]
    good: np.ndarray  # indices (within the chunk) of the rows in `tensors`
    rejected: np.ndarray  # indices of the rows set aside
    reasons: list[str]  # one per rejected row


@dataclass(frozen=True)
class ColumnPlan:
    sources: tuple[_Source, ...]
    allow_non_finite: bool

    @property
    def scalar_columns(self) -> list[str]:
        """The columns read one number per row (the rest hold a list per row)."""
        return list(dict.fromkeys(c for s in self.sources if not s.listed for c in s.columns))

    @property
    def columns(self) -> list[str]:
        """Every column the model reads, in the order first needed."""
        return list(dict.fromkeys(c for s in self.sources for c in s.columns))

    def prepare(self, batch: pa.RecordBatch) -> Prepared:
        rows = batch.num_rows
        reasons: list[str | None] = [None] * rows
        arrays: dict[str, np.ndarray] = {}
        for source in self.sources:
            if source.listed:
                values = self._listed(batch, source, reasons)
            else:
                parts = [self._scalar(batch, name, source.spec, reasons) for name in source.columns]
                values = np.stack(parts, axis=1) if len(parts) > 1 else parts[0]
            arrays[source.spec.name] = values
        good = np.fromiter((r is None for r in reasons), dtype=bool, count=rows)
        good_rows = np.flatnonzero(good)
        tensors = {}
        for source in self.sources:
            values = arrays[source.spec.name][good_rows]
            shape = (len(good_rows), *source.row_shape)
            tensors[source.spec.name] = values.reshape(shape).astype(source.spec.dtype)
        bad = np.flatnonzero(~good)
        return Prepared(tensors, good_rows, bad, [str(reasons[i]) for i in bad])

    def _scalar(
        self, batch: pa.RecordBatch, name: str, spec: TensorSpec, reasons: list[str | None]
    ) -> np.ndarray:
        column = batch.column(name)
        if column.null_count:
            _reject(reasons, column.is_null().to_numpy(zero_copy_only=False), f"{name}: empty")
            column = column.fill_null(0)
        values = np.asarray(column.to_numpy(zero_copy_only=False), dtype=np.float64)
        self._check_values(values, name, spec, reasons)
        return values

    def _listed(
        self, batch: pa.RecordBatch, source: _Source, reasons: list[str | None]
    ) -> np.ndarray:
        name, size = source.columns[0], math.prod(source.row_shape)
        column = batch.column(name)
        if column.null_count:
            _reject(reasons, column.is_null().to_numpy(zero_copy_only=False), f"{name}: empty")
        owners, leaves = _leaves(column)
        counts = np.bincount(owners, minlength=batch.num_rows)
        wrong = counts != size
        for i in np.flatnonzero(wrong):
            if reasons[i] is None:
                reasons[i] = f"{name}: {counts[i]} values, where a row of the input holds {size}"
        values = np.asarray(leaves.fill_null(np.nan).to_numpy(zero_copy_only=False), np.float64)
        out = np.zeros((batch.num_rows, size), dtype=np.float64)
        out[~wrong] = values[~wrong[owners]].reshape(-1, size)
        self._check_values(out, name, source.spec, reasons)
        return out

    def _check_values(
        self, values: np.ndarray, name: str, spec: TensorSpec, reasons: list[str | None]
    ) -> None:
        if not self.allow_non_finite:
            infinite = ~np.isfinite(values)
            _reject(
                reasons,
                infinite.any(axis=1) if values.ndim > 1 else infinite,
                f"{name}: NaN or infinite",
            )
        self._check_range(values, name, spec, reasons)

    def _check_range(
        self, values: np.ndarray, name: str, spec: TensorSpec, reasons: list[str | None]
    ) -> None:
        target = np.dtype(spec.dtype)
        if target.kind == "b":
            return
        top = float(np.iinfo(target).max if target.kind in "iu" else np.finfo(target).max)
        low = float(np.iinfo(target).min) if target.kind in "iu" else -top
        with np.errstate(invalid="ignore"):
            outside = np.isfinite(values) & ((values > top) | (values < low))
            if target.kind in "iu":
                outside |= np.isfinite(values) & (values != np.round(values))
        if values.ndim > 1:
            outside = outside.any(axis=1)
        rule = "a whole number within" if target.kind in "iu" else "within"
        _reject(reasons, outside, f"{name}: not {rule} the {spec.dtype} range")


def plan_columns(signature: Signature, schema: pa.Schema, *, allow_non_finite: bool) -> ColumnPlan:
    """Match the signature to the file's columns; `BadInput` names what does not match."""
    sources = []
    missing: list[str] = []
    for spec in signature.inputs:
        row_shape = tuple(spec.shape[1:])
        if any(d < 0 for d in row_shape):
            raise BadInput(
                f"input {spec.name!r} has a variable size {list(spec.shape)}: "
                "a table cannot hold it; score it through the gateway instead"
            )
        features = signature.feature_names.get(spec.name)
        if features:
            columns, listed = tuple(features), False
        elif math.prod(row_shape) == 1:
            columns, listed = (spec.name,), False
        else:
            columns, listed = (spec.name,), True
        missing += [c for c in columns if c not in schema.names]
        sources.append(_Source(spec, columns, listed, row_shape))
    if missing:
        raise BadInput(
            f"the input lacks columns {missing[:20]}"
            + (f" (and {len(missing) - 20} more)" if len(missing) > 20 else "")
            + f"; the model reads {[c for s in sources for c in s.columns][:20]}"
        )
    for source in sources:
        for name in source.columns:
            _check_type(schema.field(name), source, name)
    return ColumnPlan(tuple(sources), allow_non_finite)


def _check_type(field: pa.Field, source: _Source, name: str) -> None:
    kind = field.type
    if source.listed:
        while _is_list(kind):
            kind = kind.value_type
        if kind == field.type:
            raise BadInput(
                f"column {name!r} holds {field.type}; input {source.spec.name!r} takes a list "
                f"of {math.prod(source.row_shape)} numbers per row"
            )
    numeric = pa.types.is_integer(kind) or pa.types.is_floating(kind)
    if pa.types.is_boolean(kind) and np.dtype(source.spec.dtype).kind == "b":
        return
    if not numeric:
        raise BadInput(
            f"column {name!r} holds {field.type}; input {source.spec.name!r} takes "
            f"{source.spec.dtype} numbers"
        )


def _reject(reasons: list[str | None], mask: np.ndarray, reason: str) -> None:
    for i in np.flatnonzero(mask):
        if reasons[i] is None:
            reasons[i] = reason


def _leaves(column: pa.Array) -> tuple[np.ndarray, pa.Array]:
    """Every number of a (possibly nested) list column, in order, and the row each is of."""
    owners, array = np.arange(len(column)), column  # an empty cell holds no numbers
    while _is_list(array.type):
        owners = owners[pc.list_parent_indices(array).to_numpy()]
        array = pc.list_flatten(array)
    return owners, array


def _is_list(kind: pa.DataType) -> bool:
    return bool(
        pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_fixed_size_list(kind)
    )

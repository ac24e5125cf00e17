"""Which table columns feed which model input, checked before any row is read, and each
chunk of rows turned into the model's tensors, with the rows that fail set aside.

The rules follow the signature the version was registered with, as serving does:

- an input with feature names (a tabular `[-1, k]` input) reads one numeric column per
  feature, in the signature's order, whatever the file's column order;
- an input with one value per row (`[-1]` or `[-1, 1]`) reads the column of its name;
- a vector input (`[-1, k]`) without names reads `NAME_0` … `NAME_k-1` when the file has
  them (as `mlgate predict` writes a vector output), else the column of its name;
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
        refusals = _Refusals(batch.num_rows)
        arrays: dict[str, np.ndarray] = {}
        for source in self.sources:
            if source.listed:
                values = self._listed(batch, source, refusals)
            else:
                parts = [self._scalar(batch, c, source.spec, refusals) for c in source.columns]
                values = np.stack(parts, axis=1) if len(parts) > 1 else parts[0]
            arrays[source.spec.name] = values
        good = np.flatnonzero(~refusals.mask)
        everything = len(good) == batch.num_rows
        tensors = {}
        for source in self.sources:
            values = arrays[source.spec.name] if everything else arrays[source.spec.name][good]
            shape = (len(good), *source.row_shape)
            tensors[source.spec.name] = values.reshape(shape).astype(source.spec.dtype, copy=False)
        bad = np.flatnonzero(refusals.mask)
        return Prepared(tensors, good, bad, [refusals.why[i] for i in bad.tolist()])

    def _scalar(
        self, batch: pa.RecordBatch, name: str, spec: TensorSpec, refusals: _Refusals
    ) -> np.ndarray:
        column = batch.column(name)
        if column.null_count:
            refusals.add(column.is_null().to_numpy(zero_copy_only=False), f"{name}: empty")
            column = column.fill_null(0)
        values = np.asarray(column.to_numpy(zero_copy_only=False))
        self._check_values(values, name, spec, refusals)
        return values

    def _listed(self, batch: pa.RecordBatch, source: _Source, refusals: _Refusals) -> np.ndarray:
        name, size = source.columns[0], math.prod(source.row_shape)
        column = batch.column(name)
        if column.null_count:
            refusals.add(column.is_null().to_numpy(zero_copy_only=False), f"{name}: empty")
        flat = _fixed(column, size)
        if flat is not None:  # fixed-size lists without an empty cell: one reshape
            values = np.asarray(flat.to_numpy(zero_copy_only=False)).reshape(-1, size)
        else:
            owners, leaves = _leaves(column)
            counts = np.bincount(owners, minlength=batch.num_rows)
            wrong = counts != size
            for i in np.flatnonzero(wrong).tolist():
                refusals.one(
                    i, f"{name}: {counts[i]} values, where a row of the input holds {size}"
                )
            numbers = np.asarray(leaves.fill_null(np.nan).to_numpy(zero_copy_only=False))
            values = np.zeros((batch.num_rows, size), dtype=numbers.dtype)
            values[~wrong] = numbers[~wrong[owners]].reshape(-1, size)
        self._check_values(values, name, source.spec, refusals)
        return values

    def _check_values(
        self, values: np.ndarray, name: str, spec: TensorSpec, refusals: _Refusals
    ) -> None:
        rows = (lambda mask: mask.any(axis=1)) if values.ndim > 1 else (lambda mask: mask)
        if values.dtype.kind == "f" and not self.allow_non_finite:
            infinite = ~np.isfinite(values)
            if infinite.any():
                refusals.add(rows(infinite), f"{name}: NaN or infinite")
        target = np.dtype(spec.dtype)
        if target.kind == "b" or np.can_cast(values.dtype, target, "safe"):
            return
        if values.dtype.kind == "f" and target.kind == "f":
            top = float(np.finfo(target).max)
            with np.errstate(invalid="ignore"):
                outside = np.isfinite(values) & (np.abs(values) > top)
        else:
            top, low = (
                (float(np.iinfo(target).max), float(np.iinfo(target).min))
                if target.kind in "iu"
                else (float(np.finfo(target).max), -float(np.finfo(target).max))
            )
            with np.errstate(invalid="ignore"):
                outside = (values > top) | (values < low)
                if target.kind in "iu" and values.dtype.kind == "f":
                    outside |= values != np.round(values)
        if outside.any():
            rule = "a whole number within" if target.kind in "iu" else "within"
            refusals.add(rows(outside), f"{name}: not {rule} the {spec.dtype} range")


class _Refusals:
    """Which rows of a chunk are set aside, and the first reason found for each."""

    def __init__(self, rows: int) -> None:
        self.mask = np.zeros(rows, dtype=bool)
        self.why: dict[int, str] = {}

    def add(self, mask: np.ndarray, reason: str) -> None:
        for row in np.flatnonzero(mask & ~self.mask).tolist():
            self.why[row] = reason
        self.mask |= mask

    def one(self, row: int, reason: str) -> None:
        if not self.mask[row]:
            self.mask[row] = True
            self.why[row] = reason


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
        numbered = tuple(f"{spec.name}_{i}" for i in range(row_shape[0])) if row_shape else ()
        if features:
            columns, listed = tuple(features), False
        elif math.prod(row_shape) == 1:
            columns, listed = (spec.name,), False
        elif (
            len(row_shape) == 1
            and spec.name not in schema.names
            and (set(numbered) <= set(schema.names))
        ):
            columns, listed = numbered, False  # as the output of another model is written
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


def _fixed(column: pa.Array, size: int) -> pa.Array | None:
    """The numbers of a fixed-size list column, flat, if it holds `size` per row and no
    empty cell at any depth; else None (the general path counts each row)."""
    array, width = column, 1
    while pa.types.is_fixed_size_list(array.type):
        if array.null_count:
            return None
        width *= array.type.list_size
        array = array.flatten()
    if _is_list(array.type) or width != size:
        return None
    return array


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

"""The table drift is computed on: model inputs and outputs as named scalar columns.

Reference data and inference-log rows share one layout (`registry.reference.tensor_columns`),
and `rebuild_tensors` turns either back into one array per input and output. `drift_frame`
flattens those arrays into the same columns on both sides, so a reference window and a
current window can be compared column by column:

- a "features" input (2-D with feature names): one column per feature, as is;
- a "column" / "columns" input (2-D without names): its layout columns as is (`x`, or
  `x_0`, `x_1`, ...) up to `max_columns`; above that, two row summaries, `x.mean` and
  `x.std`, because per-column tests on thousands of anonymous columns cost time and mostly
  report noise;
- a "tensor" input (images [N, C, H, W], sequences [N, C, L], ...): it has no columns that
  mean anything one by one, so drift is measured on summary features per channel
  (dimension 1): `image.c0.mean`, `image.c0.std`, `image.c1.mean`, ... over all remaining
  dimensions of each row. A one-channel tensor gives `image.mean` and `image.std`. A shift
  in brightness, contrast or a dead channel moves these; a change in content with the same
  pixel statistics does not, which is the price of not keeping an embedding model around;
- outputs are predictions: each output column as is, and for an output with several
  columns (class scores, logits) also `{output}.argmax`, the predicted class, compared as
  a categorical column. An output with more than `max_columns` columns gets `.mean`,
  `.std` and `.argmax` only; a tensor output gets the per-channel summaries.

Column kinds follow the dtype: floating point is numerical ("num"); integers, booleans and
argmax are categorical ("cat"). Summaries are computed in float64 (population std); a row
with a NaN or infinite element gets a non-finite summary, which drift then drops like any
other non-finite value.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from registry.errors import BadRequest

if TYPE_CHECKING:  # pandas is imported by `drift_frame`: the gateway reads results without it
    import pandas as pd

__all__ = ["DEFAULT_MAX_COLUMNS", "DriftColumn", "Kind", "Role", "drift_frame"]

DEFAULT_MAX_COLUMNS = 200

Role = Literal["input", "prediction"]
Kind = Literal["num", "cat"]


@dataclass(frozen=True, slots=True)
class DriftColumn:
    """One column drift is measured on: where it comes from and how it is compared."""

    name: str
    role: Role
    kind: Kind

    def to_json(self) -> dict[str, str]:
        return {"name": self.name, "role": self.role, "kind": self.kind}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> DriftColumn:
        role, kind = str(data["role"]), str(data["kind"])
        if role not in ("input", "prediction") or kind not in ("num", "cat"):
            raise BadRequest(f"bad drift column {dict(data)}: role input|prediction, kind num|cat")
        return cls(str(data["name"]), role, kind)  # type: ignore[arg-type]


def drift_frame(
    inputs: Mapping[str, np.ndarray],
    outputs: Mapping[str, np.ndarray],
    layout: Mapping[str, Any],
    *,
    max_columns: int = DEFAULT_MAX_COLUMNS,
) -> tuple[pd.DataFrame, dict[str, DriftColumn]]:
    """The drift table for these tensors, and what each of its columns is.

    `layout` is the reference file's (or inference log's) layout; the same layout and
    `max_columns` give the same columns for any window.
    """
    import pandas as pd

    data: dict[str, np.ndarray] = {}
    columns: dict[str, DriftColumn] = {}

    def put(name: str, values: np.ndarray, role: Role, kind: Kind | None = None) -> None:
        if name in data:
            raise BadRequest(
                f"drift column {name!r} would be made twice; rename the feature or output"
            )
        data[name] = values
        columns[name] = DriftColumn(name, role, kind or _kind_of(name, values))

    for name, entry in layout["inputs"].items():
        array = _array(inputs, name, "input")
        if entry["kind"] == "features":
            table = _table(array, entry, name)
            for index, feature in enumerate(entry["columns"]):
                put(feature, table[:, index], "input")
        elif entry["kind"] in ("column", "columns"):
            table = _table(array, entry, name)
            if table.shape[1] <= max_columns:
                for index, column in enumerate(entry["columns"]):
                    put(column, table[:, index], "input")
            else:
                for suffix, values in _row_summaries(table).items():
                    put(f"{name}.{suffix}", values, "input")
        else:
            for suffix, values in _channel_summaries(array).items():
                put(f"{name}.{suffix}", values, "input")

    for name, entry in layout["outputs"].items():
        array = _array(outputs, name, "output")
        if entry["kind"] == "tensor":
            for suffix, values in _channel_summaries(array).items():
                put(f"{name}.{suffix}", values, "prediction")
            continue
        table = _table(array, entry, name)
        if table.shape[1] <= max_columns:
            for index, column in enumerate(entry["columns"]):
                put(column, table[:, index], "prediction")
        else:
            for suffix, values in _row_summaries(table).items():
                put(f"{name}.{suffix}", values, "prediction")
        if table.shape[1] > 1:
            put(f"{name}.argmax", table.argmax(axis=1), "prediction", "cat")

    rows = {len(values) for values in data.values()}
    if len(rows) > 1:
        raise BadRequest(f"inputs and outputs have different row counts: {sorted(rows)}")
    return pd.DataFrame(data), columns


def _array(arrays: Mapping[str, np.ndarray], name: str, what: str) -> np.ndarray:
    if name not in arrays:
        raise BadRequest(f"the layout names {what} {name!r}, which the data lacks")
    array = np.asarray(arrays[name])
    if array.ndim == 0:
        raise BadRequest(f"{what} {name!r} is a scalar; drift needs one row per prediction")
    return array


def _table(array: np.ndarray, entry: Mapping[str, Any], name: str) -> np.ndarray:
    """A "features"/"column"/"columns" entry's array as rows × its layout columns."""
    table = array.reshape(len(array), -1)
    if entry["kind"] in ("features", "columns") and table.shape[1] != len(entry["columns"]):
        raise BadRequest(
            f"{name!r} has {table.shape[1]} columns; its layout names {len(entry['columns'])}"
        )
    if entry["kind"] == "column" and table.shape[1] != 1:
        raise BadRequest(f"{name!r} has {table.shape[1]} columns; its layout names one")
    return table


def _kind_of(name: str, values: np.ndarray) -> Kind:
    if values.dtype.kind == "f":
        return "num"
    if values.dtype.kind in "iub":
        return "cat"
    raise BadRequest(f"drift column {name!r} has dtype {values.dtype}; expected numbers or bools")


def _row_summaries(table: np.ndarray) -> dict[str, np.ndarray]:
    values = table.astype(np.float64)
    # A row holding inf gives inf - inf = nan inside std; that nan is the intended result
    # (the row is dropped as non-finite), so numpy's warning about it is silenced here.
    with np.errstate(invalid="ignore", over="ignore"):
        return {"mean": values.mean(axis=1), "std": values.std(axis=1)}


def _channel_summaries(array: np.ndarray) -> dict[str, np.ndarray]:
    """Mean and std per channel (dimension 1) of each row, or of the whole row if 1 channel."""
    if array.ndim <= 2 or array.shape[1] == 1:
        return _row_summaries(array.reshape(len(array), -1))
    channels = array.reshape(array.shape[0], array.shape[1], -1).astype(np.float64)
    with np.errstate(invalid="ignore", over="ignore"):  # as in _row_summaries
        means, stds = channels.mean(axis=2), channels.std(axis=2)
    summaries: dict[str, np.ndarray] = {}
    for channel in range(array.shape[1]):
        summaries[f"c{channel}.mean"] = means[:, channel]
        summaries[f"c{channel}.std"] = stds[:, channel]
    return summaries

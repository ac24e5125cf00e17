"""Reference data: a bounded sample of the training inputs and the model's outputs on them.

Stored as one Parquet file (`reference.parquet`). A 2-D input with feature names becomes
one column per feature; any other input becomes one list column of flattened rows. Each
output becomes one column (`score`) or one per output column (`score_0`, `score_1`, ...).
The schema metadata key `mlgate` records which column is what, so drift monitoring and
the parity gate can rebuild the tensors exactly.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from registry.errors import InvalidModelInput
from registry.signature import Predict, Signature, TensorSpec

__all__ = [
    "REFERENCE_FILE",
    "Reference",
    "ReferenceInput",
    "build_reference",
    "predict_in_chunks",
    "read_reference",
    "rebuild_tensors",
    "tensor_columns",
]

REFERENCE_FILE = "reference.parquet"
_META_KEY = b"mlgate"
_PREDICT_CHUNK_ROWS = 1024

if TYPE_CHECKING:  # torch and pandas are imported where a function needs them: the CLI
    import pandas as pd  # and the gateway (whose inference log writes Arrow) start faster
    import torch

ReferenceInput: TypeAlias = (
    "pd.DataFrame | np.ndarray | torch.Tensor | Mapping[str, np.ndarray | torch.Tensor]"
)


@dataclass(frozen=True, slots=True)
class Reference:
    inputs: dict[str, np.ndarray]
    outputs: dict[str, np.ndarray]
    frame: pd.DataFrame
    layout: dict[str, Any]

    @property
    def rows(self) -> int:
        return len(self.frame)


def reference_arrays(data: ReferenceInput, signature: Signature) -> dict[str, np.ndarray]:
    """Turn what the user passed into one array per model input, checked against the signature."""
    import pandas as pd

    specs = {s.name: s for s in signature.inputs}
    if isinstance(data, pd.DataFrame):
        tabular = [s for s in signature.inputs if s.name in signature.feature_names]
        if len(signature.inputs) != 1 or not tabular:
            raise InvalidModelInput(
                "a DataFrame of reference data needs a model with one 2-D input and feature "
                "names; pass a dict {input name: array} instead"
            )
        spec = tabular[0]
        names = signature.feature_names[spec.name]
        missing = [n for n in names if n not in data.columns]
        if missing:
            raise InvalidModelInput(f"reference data lacks feature columns {missing}")
        arrays = {spec.name: data[names].to_numpy()}
    elif isinstance(data, Mapping):
        arrays = {str(k): _to_numpy(v) for k, v in data.items()}
    else:
        if len(signature.inputs) != 1:
            raise InvalidModelInput(
                f"the model has {len(signature.inputs)} inputs; pass reference data as a dict "
                "{input name: array}"
            )
        arrays = {signature.inputs[0].name: _to_numpy(data)}
    if set(arrays) != set(specs):
        raise InvalidModelInput(
            f"reference data has inputs {sorted(arrays)}; the model takes {sorted(specs)}"
        )
    rows = {len(a) for a in arrays.values()}
    if len(rows) != 1 or 0 in rows:
        raise InvalidModelInput(f"reference inputs must share a non-zero row count, got {rows}")
    return {name: _conform(arrays[name], specs[name]) for name in specs}


def _to_numpy(value: np.ndarray | torch.Tensor) -> np.ndarray:
    import torch

    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    return np.asarray(value)


def _conform(array: np.ndarray, spec: TensorSpec) -> np.ndarray:
    expected = spec.shape[1:]
    actual = array.shape[1:]
    if len(actual) != len(expected) or any(
        e not in (-1, a) for e, a in zip(expected, actual, strict=True)
    ):
        raise InvalidModelInput(
            f"reference input {spec.name!r} has rows of shape {list(actual)}; the model "
            f"expects {list(expected)} (-1 = any)"
        )
    try:
        return array.astype(spec.dtype, copy=False)
    except (TypeError, ValueError) as exc:
        raise InvalidModelInput(
            f"reference input {spec.name!r} cannot be converted to {spec.dtype}: {exc}"
        ) from exc


def build_reference(
    data: ReferenceInput,
    signature: Signature,
    predict: Predict,
    folder: Path,
    *,
    max_rows: int,
    seed: int = 0,
) -> dict[str, Any]:
    """Sample up to `max_rows` rows, run `predict` on them, write `folder/reference.parquet`."""
    inputs = reference_arrays(data, signature)
    total = len(next(iter(inputs.values())))
    if total > max_rows:
        keep = np.sort(np.random.default_rng(seed).choice(total, size=max_rows, replace=False))
        inputs = {name: array[keep] for name, array in inputs.items()}
    rows = len(next(iter(inputs.values())))
    outputs = predict_in_chunks(predict, inputs)
    columns, layout = tensor_columns(signature, inputs, outputs)
    layout.update(rows=rows, sampled_from=total)
    table = pa.table(columns).replace_schema_metadata({_META_KEY: json.dumps(layout).encode()})
    pq.write_table(table, folder / REFERENCE_FILE)
    return layout


def predict_in_chunks(predict: Predict, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """`predict` over any number of rows, `_PREDICT_CHUNK_ROWS` at a time (bounded memory)."""
    rows = len(next(iter(inputs.values())))
    chunks = [
        predict({n: a[start : start + _PREDICT_CHUNK_ROWS] for n, a in inputs.items()})
        for start in range(0, rows, _PREDICT_CHUNK_ROWS)
    ]
    return {name: np.concatenate([c[name] for c in chunks]) for name in chunks[0]}


def tensor_columns(
    signature: Signature,
    inputs: Mapping[str, np.ndarray],
    outputs: Mapping[str, np.ndarray],
) -> tuple[dict[str, pa.Array], dict[str, Any]]:
    """Input and output tensors as Arrow columns, and the layout that names them.

    Shared by the reference file and the inference log, so that drift compares the same
    columns on both sides: a 2-D input with feature names gives one column per feature, a
    2-D output one column per output column (`score_0`, ...), anything else one
    fixed-size-list column of flattened rows. `rebuild_tensors` reverses it.
    """
    columns: dict[str, pa.Array] = {}
    layout: dict[str, Any] = {"inputs": {}, "outputs": {}}
    for spec in signature.inputs:
        layout["inputs"][spec.name] = _add_columns(
            columns, spec.name, inputs[spec.name], signature.feature_names.get(spec.name)
        )
    for spec in signature.outputs:
        layout["outputs"][spec.name] = _add_columns(columns, spec.name, outputs[spec.name], None)
    return columns, layout


def rebuild_tensors(
    table: pa.Table, layout: Mapping[str, Any]
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """The input and output tensors of `tensor_columns`, from a table that holds its columns."""
    return (
        {n: _rebuild(table, entry) for n, entry in layout["inputs"].items()},
        {n: _rebuild(table, entry) for n, entry in layout["outputs"].items()},
    )


def _add_columns(
    columns: dict[str, pa.Array], name: str, array: np.ndarray, feature_names: list[str] | None
) -> dict[str, Any]:
    def put(column: str, values: pa.Array) -> None:
        if column in columns:
            raise InvalidModelInput(
                f"reference column {column!r} would be written twice; rename the feature or output"
            )
        columns[column] = values

    if feature_names is not None:
        for index, feature in enumerate(feature_names):
            put(feature, pa.array(array[:, index]))
        return {"kind": "features", "columns": feature_names, "dtype": array.dtype.name}
    if array.ndim == 1 or (array.ndim == 2 and array.shape[1] == 1):
        put(name, pa.array(array.reshape(-1)))
        return {
            "kind": "column",
            "columns": [name],
            "dtype": array.dtype.name,
            "shape": list(array.shape[1:]),
        }
    if array.ndim == 2:
        names = [f"{name}_{j}" for j in range(array.shape[1])]
        for index, column in enumerate(names):
            put(column, pa.array(array[:, index]))
        return {"kind": "columns", "columns": names, "dtype": array.dtype.name}
    flat = array.reshape(len(array), -1)
    put(name, pa.FixedSizeListArray.from_arrays(pa.array(flat.reshape(-1)), flat.shape[1]))
    return {
        "kind": "tensor",
        "columns": [name],
        "dtype": array.dtype.name,
        "shape": list(array.shape[1:]),
    }


def read_reference(path: Path) -> Reference:
    table = pq.read_table(path)
    metadata = table.schema.metadata or {}
    if _META_KEY not in metadata:
        raise InvalidModelInput(f"{path} is not an mlgate reference file (no layout metadata)")
    layout = json.loads(metadata[_META_KEY])
    inputs, outputs = rebuild_tensors(table, layout)
    return Reference(inputs=inputs, outputs=outputs, frame=table.to_pandas(), layout=layout)


def _rebuild(table: pa.Table, entry: Mapping[str, Any]) -> np.ndarray:
    dtype = np.dtype(entry["dtype"])
    if entry["kind"] in ("features", "columns"):
        # NOTE: stacked as rows and then transposed in one copy: stacking the columns
        # side by side writes with a stride and took 8x as long for a few hundred features.
        stacked = np.stack([table.column(c).to_numpy() for c in entry["columns"]])
        return np.ascontiguousarray(stacked.T).astype(dtype, copy=False)
    column = table.column(entry["columns"][0])
    if entry["kind"] == "column":
        return column.to_numpy().astype(dtype).reshape(-1, *entry["shape"])
    flat = np.asarray(column.combine_chunks().flatten().to_numpy()).astype(dtype)
    return flat.reshape(len(table), *entry["shape"])

"""Pending inference-log records → Arrow record batches, one per (model, version) as a rule.

Runs on the log's writer thread, never on the request path: all copying, id generation
and Arrow conversion happen here. Records whose arrays do not match their signature are
set aside with the reason (one bad request must not cost the others their rows); records
of one version whose rows differ in shape (a dimension marked -1) go to separate batches
(one per run of equal shapes), because one batch, like one segment, has one schema.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from monitors.log_segments import LOG_COLUMNS, log_metadata
from registry.errors import MlgateError
from registry.reference import tensor_columns
from registry.signature import Signature

__all__ = ["RESERVED_COLUMNS", "PendingRecord", "build_batches"]

PendingRecord = tuple[
    float,  # ts: time.time() when recorded
    str,  # model
    int,  # version
    Signature,
    str | None,  # request id
    int,  # rows taken: the first ones of the request
    Mapping[str, Any],  # inputs (arrays)
    Mapping[str, Any],  # outputs (arrays)
    float,  # latency_s
]
RESERVED_COLUMNS = frozenset((*LOG_COLUMNS, "version"))
"""Names a feature or output may not have: the log's own columns."""

Batch = tuple[tuple[str, int], pa.RecordBatch, float]
Rejected = tuple[tuple[str, int], int, str]


def build_batches(
    records: Sequence[PendingRecord], replica: str, new_request_id: Callable[[], str]
) -> tuple[list[Batch], list[Rejected]]:
    """((model, version), batch, oldest ts) per group, and ((model, version), rows, why)."""
    # Per version, runs of consecutive records with the same row shapes, in record order:
    # a shape change starts a new segment, and keeping record order across segments is
    # what lets the reader bound a segment's rows by its successor's name.
    runs: dict[tuple[str, int], list[tuple[tuple[Any, ...], list[PendingRecord]]]] = {}
    rejected: list[Rejected] = []
    for record in records:
        model, version, signature, taken = record[1], record[2], record[3], record[5]
        try:
            shapes = _row_shapes(signature, record[6], record[7], taken)
        except ValueError as exc:
            rejected.append(((model, version), taken, str(exc)))
            continue
        version_runs = runs.setdefault((model, version), [])
        if version_runs and version_runs[-1][0] == shapes:
            version_runs[-1][1].append(record)
        else:
            version_runs.append((shapes, [record]))
    batches: list[Batch] = []
    for (model, version), version_runs in runs.items():
        for _, members in version_runs:
            try:
                batch = _batch(model, version, members, replica, new_request_id)
            except (MlgateError, ValueError, TypeError, pa.ArrowException) as exc:
                rejected.append(((model, version), sum(m[5] for m in members), str(exc)))
                continue
            batches.append(((model, version), batch, min(m[0] for m in members)))
    return batches, rejected


def _row_shapes(
    signature: Signature, inputs: Mapping[str, Any], outputs: Mapping[str, Any], taken: int
) -> tuple[Any, ...]:
    shapes = []
    for kind, specs, arrays in (
        ("input", signature.inputs, inputs),
        ("output", signature.outputs, outputs),
    ):
        for spec in specs:
            if spec.name not in arrays:
                raise ValueError(f"{kind} {spec.name!r} is missing")
            array = np.asarray(arrays[spec.name])
            if array.ndim == 0 or len(array) < taken:
                raise ValueError(
                    f"{kind} {spec.name!r} has shape {list(array.shape)}; expected at least "
                    f"{taken} rows in dimension 0"
                )
            shapes.append((spec.name, array.dtype.str, array.shape[1:]))
    return tuple(shapes)


def _batch(
    model: str,
    version: int,
    members: list[PendingRecord],
    replica: str,
    new_request_id: Callable[[], str],
) -> pa.RecordBatch:
    signature = members[0][3]
    counts = np.array([m[5] for m in members], dtype=np.int64)
    total = int(counts.sum())
    ts_us = np.repeat(np.array([round(m[0] * 1e6) for m in members], dtype=np.int64), counts)
    ids = [str(m[4]) if m[4] is not None else new_request_id() for m in members]
    first_rows = np.repeat(np.cumsum(counts) - counts, counts)
    row = (np.arange(total, dtype=np.int64) - first_rows).astype(np.int32)
    latency = np.repeat(np.array([m[8] for m in members], dtype=np.float64), counts)

    inputs = {
        spec.name: np.concatenate([np.asarray(m[6][spec.name])[: m[5]] for m in members])
        for spec in signature.inputs
    }
    outputs = {
        spec.name: np.concatenate([np.asarray(m[7][spec.name])[: m[5]] for m in members])
        for spec in signature.outputs
    }
    tensors, layout = tensor_columns(signature, inputs, outputs)
    clash = sorted(RESERVED_COLUMNS & tensors.keys())
    if clash:
        raise ValueError(
            f"feature or output names {clash} clash with the log's own columns "
            f"{sorted(RESERVED_COLUMNS)}"
        )
    columns: dict[str, pa.Array] = {
        "ts": pa.array(ts_us, pa.timestamp("us", tz="UTC")),
        "request_id": pa.array(np.repeat(np.array(ids, dtype=object), counts), pa.string()),
        "row": pa.array(row),
        "latency_s": pa.array(latency),
        "replica": pa.array(np.full(total, replica, dtype=object), pa.string()),
        **tensors,
    }
    schema = pa.schema(
        [pa.field(name, array.type) for name, array in columns.items()],
        metadata=log_metadata(layout, model, version, replica),
    )
    return pa.RecordBatch.from_arrays(list(columns.values()), schema=schema)

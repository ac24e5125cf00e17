"""Pending inference-log records → Arrow record batches, one per (model, version) as a rule.

Runs on the log's writer thread, never on the request path: all copying, id generation
and Arrow conversion happen here. Records whose arrays do not match their signature are
set aside with the reason (one bad request must not cost the others their rows); records
of one version whose rows differ in shape (a dimension marked -1) go to separate batches
(one per run of equal shapes), because one batch, like one segment, has one schema.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from operator import itemgetter
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

_TS, _MODEL, _VERSION, _ID = itemgetter(0), itemgetter(1), itemgetter(2), itemgetter(4)
_TAKEN, _INPUTS, _OUTPUTS, _LATENCY = itemgetter(5), itemgetter(6), itemgetter(7), itemgetter(8)

Batch = tuple[tuple[str, int], pa.RecordBatch, float]
Rejected = tuple[tuple[str, int], int, str]


def build_batches(
    records: Sequence[PendingRecord], replica: str, new_request_ids: Callable[[int], list[str]]
) -> tuple[list[Batch], list[Rejected]]:
    """((model, version), batch, oldest ts) per group, and ((model, version), rows, why)."""
    by_version: dict[tuple[str, int], list[PendingRecord]] = {}
    keys = list(zip(map(_MODEL, records), map(_VERSION, records), strict=True))
    if len(set(keys)) == 1:  # one version served: no loop over the records
        by_version[keys[0]] = list(records)
    else:
        for key, record in zip(keys, records, strict=True):
            members = by_version.get(key)
            if members is None:
                by_version[key] = [record]
            else:
                members.append(record)
    batches: list[Batch] = []
    rejected: list[Rejected] = []
    for (model, version), members in by_version.items():
        # NOTE: this runs on a thread that shares the GIL (and, pinned, the core) with the
        # event loop: per-record Python here is what one-connection p99 pays for. The
        # common case, every record of a version alike, takes whole-array steps.
        tensors = _uniform_tensors(members)
        if tensors is None:
            _mixed(model, version, members, replica, new_request_ids, batches, rejected)
            continue
        try:
            batch = _batch(model, version, members, tensors, replica, new_request_ids)
        except (MlgateError, ValueError, TypeError, pa.ArrowException) as exc:
            rejected.append(((model, version), sum(m[5] for m in members), str(exc)))
            continue
        batches.append(((model, version), batch, min(map(_TS, members))))
    return batches, rejected


def _mixed(
    model: str,
    version: int,
    members: list[PendingRecord],
    replica: str,
    new_request_ids: Callable[[int], list[str]],
    batches: list[Batch],
    rejected: list[Rejected],
) -> None:
    """Records of one version that differ in row shapes, or hold a bad one, record by record."""
    # Runs of consecutive records with the same row shapes, in record order: a shape
    # change starts a new segment, and keeping record order across segments is what lets
    # the reader bound a segment's rows by its successor's name.
    runs: list[tuple[tuple[Any, ...], list[PendingRecord]]] = []
    for record in members:
        try:
            shapes = _row_shapes(record[3], record[6], record[7], record[5])
        except ValueError as exc:
            rejected.append(((model, version), record[5], str(exc)))
            continue
        if runs and runs[-1][0] == shapes:
            runs[-1][1].append(record)
        else:
            runs.append((shapes, [record]))
    for _, run in runs:
        try:
            signature = run[0][3]
            tensors = (
                {s.name: _rows(run, _INPUTS, s.name) for s in signature.inputs},
                {s.name: _rows(run, _OUTPUTS, s.name) for s in signature.outputs},
            )
            batch = _batch(model, version, run, tensors, replica, new_request_ids)
        except (MlgateError, ValueError, TypeError, pa.ArrowException) as exc:
            rejected.append(((model, version), sum(m[5] for m in run), str(exc)))
            continue
        batches.append(((model, version), batch, min(map(_TS, run))))


def _rows(
    run: list[PendingRecord], side: Callable[[PendingRecord], Mapping[str, Any]], name: str
) -> np.ndarray:
    return np.concatenate([np.asarray(side(m)[name])[: m[5]] for m in run])


def _uniform_tensors(
    members: list[PendingRecord],
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]] | None:
    """Each input and output of `members` concatenated over their rows taken, or None when
    they are not all numpy arrays of one dtype and one row shape with the rows taken."""
    signature = members[0][3]
    try:
        _row_shapes(signature, members[0][6], members[0][7], members[0][5])
        taken = list(map(_TAKEN, members))
        joined: tuple[dict[str, np.ndarray], dict[str, np.ndarray]] = ({}, {})
        sides = ((_INPUTS, signature.inputs, joined[0]), (_OUTPUTS, signature.outputs, joined[1]))
        for side, specs, out in sides:
            tensors = list(map(side, members))
            for spec in specs:
                arrays = list(map(itemgetter(spec.name), tensors))
                # One dtype; np.concatenate below refuses a row shape that differs.
                if len({a.dtype for a in arrays}) != 1:
                    return None
                rows = list(map(len, arrays))
                if rows != taken:
                    if any(r < t for r, t in zip(rows, taken, strict=True)):
                        return None
                    arrays = [a[:t] for a, t in zip(arrays, taken, strict=True)]
                out[spec.name] = np.concatenate(arrays)
    except (KeyError, AttributeError, TypeError, IndexError, ValueError):
        return None
    return joined


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
    joined: tuple[dict[str, np.ndarray], dict[str, np.ndarray]],
    replica: str,
    new_request_ids: Callable[[int], list[str]],
) -> pa.RecordBatch:
    signature = members[0][3]
    counts = np.fromiter(map(_TAKEN, members), dtype=np.int64, count=len(members))
    total = int(counts.sum())
    ts = np.fromiter(map(_TS, members), dtype=np.float64, count=len(members))
    ts_us = np.repeat(np.round(ts * 1e6).astype(np.int64), counts)
    given_ids = list(map(_ID, members))
    if given_ids.count(None) == len(given_ids):
        id_list = new_request_ids(len(given_ids))
    else:
        id_list = [str(i) if i is not None else new_request_ids(1)[0] for i in given_ids]
    ids = pa.array(id_list, pa.string())
    if total != len(members):  # a request's id on each of its rows
        ids = ids.take(pa.array(np.repeat(np.arange(len(members)), counts)))
    first_rows = np.repeat(np.cumsum(counts) - counts, counts)
    row = (np.arange(total, dtype=np.int64) - first_rows).astype(np.int32)
    latency = np.repeat(
        np.fromiter(map(_LATENCY, members), dtype=np.float64, count=len(members)), counts
    )
    inputs, outputs = joined
    tensors, layout = tensor_columns(signature, inputs, outputs)
    clash = sorted(RESERVED_COLUMNS & tensors.keys())
    if clash:
        raise ValueError(
            f"feature or output names {clash} clash with the log's own columns "
            f"{sorted(RESERVED_COLUMNS)}"
        )
    columns: dict[str, pa.Array] = {
        "ts": pa.array(ts_us, pa.timestamp("us", tz="UTC")),
        "request_id": ids,
        "row": pa.array(row),
        "latency_s": pa.array(latency),
        "replica": pa.repeat(pa.scalar(replica, pa.string()), total),
        **tensors,
    }
    schema = pa.schema(
        [pa.field(name, array.type) for name, array in columns.items()],
        metadata=log_metadata(layout, model, version, replica),
    )
    return pa.RecordBatch.from_arrays(list(columns.values()), schema=schema)

"""Inference-log rows staged per version as they are recorded; Arrow record batches from them.

Request path (`Stage.add`, on the event-loop thread, under the log's lock). A request's
arrays are checked against the stage's row shapes and dtypes and appended, by reference
(the first `taken` rows), to one list per tensor, beside its time, id, row count and
latency: no copy, no Arrow, about a microsecond. A request whose rows have another shape
(a dimension marked -1) starts a new stage: stages are runs of equal shapes in record
order, because one batch, like one segment, has one schema. A request whose arrays do not
fit its signature is set aside with the reason (`row_shapes` raises), and costs no other
request its rows.

Writer thread (`stage_batch`). One `np.concatenate` per tensor, arrays for the per-request
fields, generated ids made by Arrow's compute functions: no Python loop over the rows.
NOTE: this thread shares the GIL (and, pinned, the core) with the event loop. It used to
regroup per-request tuples here, 1–2 ms of Python per thousand records in a quiet process
and several times that in a busy gateway, which requests arriving meanwhile waited out:
what one-connection p99 paid for.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from monitors.log.segments import LOG_COLUMNS, log_metadata
from registry.reference import tensor_columns
from registry.signature import Signature

__all__ = [
    "RESERVED_COLUMNS",
    "Stage",
    "Staging",
    "Unfit",
    "generated_ids",
    "row_shapes",
    "stage_batch",
]

RESERVED_COLUMNS = frozenset((*LOG_COLUMNS, "version"))
"""Names a feature or output may not have: the log's own columns."""

Shapes = tuple[tuple[str, str, str, tuple[int, ...]], ...]
"""(side, tensor name, dtype string, row shape) for every input, then every output."""
_Column = tuple[str, np.dtype[Any], tuple[int, ...], list[Any]]
Unfit = tuple[tuple[str, int], int, str]
"""A request whose arrays did not fit its signature: ((model, version), rows, why)."""
Request = tuple[float, Any, int, Mapping[str, Any], Mapping[str, Any], float]
"""(ts, request id, rows taken, inputs, outputs, latency_s), as `Stage.add` takes them."""


class Staging:
    """Every version's stages, filled by `add` (the event-loop thread) and swapped out by
    `take` (the writer) under one lock, which `take` holds for microseconds."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._stages: dict[str, dict[int, Stage]] = {}  # each version's current stage
        self._sealed: list[Stage] = []  # closed by a change of row shape, in order
        self._unfit: list[Unfit] = []

    def add(
        self,
        model: str,
        version: int,
        signature: Signature,
        ts: float,
        request_id: Any,
        taken: int,
        inputs: Mapping[str, Any],
        outputs: Mapping[str, Any],
        latency_s: float,
    ) -> None:
        """Stage a request's first `taken` rows; never raises."""
        with self._lock:
            versions = self._stages.get(model)
            stage = None if versions is None else versions.get(version)
            if stage is None or not stage.add(ts, request_id, taken, inputs, outputs, latency_s):
                request = (ts, request_id, taken, inputs, outputs, latency_s)
                self._restage(model, version, signature, stage, request)

    def take(self) -> tuple[list[Stage], list[Unfit]]:
        """Everything staged, oldest stage of a version first, and the unfit requests."""
        with self._lock:
            stages = [*self._sealed, *(s for v in self._stages.values() for s in v.values())]
            unfit = self._unfit
            self._stages, self._sealed, self._unfit = {}, [], []
        return stages, unfit

    def _restage(
        self,
        model: str,
        version: int,
        signature: Signature,
        current: Stage | None,
        request: Request,
    ) -> None:
        """`add`'s slow path: a version's first request since the writer's last cycle, rows
        of another shape (a new stage), or arrays that do not fit their signature (set
        aside with the reason, for the writer to count and log)."""
        taken = request[2]
        try:
            shapes = row_shapes(signature, request[3], request[4], taken)
            stage = current
            if stage is None or stage.shapes != shapes:
                stage = Stage(model, version, signature, shapes)
            if not stage.add_converted(request):
                raise ValueError(f"arrays that do not convert to their row shapes {shapes}")
        except (ValueError, TypeError) as exc:
            self._unfit.append(((model, version), taken, str(exc)))
            return
        if stage is not current:
            if current is not None:
                self._sealed.append(current)
            self._stages.setdefault(model, {})[version] = stage


class Stage:
    """One version's requests of one row layout, waiting for the writer."""

    __slots__ = (
        *("_inputs", "_outputs", "ids", "latency", "model", "rows", "shapes"),
        *("signature", "taken", "ts", "version"),
    )

    def __init__(self, model: str, version: int, signature: Signature, shapes: Shapes) -> None:
        self.model, self.version, self.signature, self.shapes = model, version, signature, shapes
        # (name, dtype, row shape, the arrays so far) per input and per output.
        columns: list[_Column] = [
            (name, np.dtype(dtype), shape, []) for _, name, dtype, shape in shapes
        ]
        count = len(signature.inputs)
        self._inputs, self._outputs = columns[:count], columns[count:]
        self.ts: list[float] = []
        self.ids: list[Any] = []
        self.taken: list[int] = []
        self.latency: list[float] = []
        self.rows = 0

    def add(
        self,
        ts: float,
        request_id: Any,
        taken: int,
        inputs: Mapping[str, Any],
        outputs: Mapping[str, Any],
        latency_s: float,
    ) -> bool:
        """Take the request's first `taken` rows; False (nothing taken) when they do not
        have this stage's dtypes and row shapes, or are not numpy arrays."""
        picked = []
        try:
            for side, columns in ((inputs, self._inputs), (outputs, self._outputs)):
                for name, dtype, shape, _ in columns:
                    array = side[name]
                    if array.dtype != dtype or array.shape[1:] != shape:
                        return False
                    rows = len(array)
                    if rows != taken:
                        if rows < taken:
                            return False
                        array = array[:taken]
                    picked.append(array)
        except (KeyError, AttributeError, TypeError):
            return False
        for (_, _, _, arrays), array in zip(self._inputs + self._outputs, picked, strict=True):
            arrays.append(array)
        self.ts.append(ts)
        self.ids.append(request_id)
        self.taken.append(taken)
        self.latency.append(latency_s)
        self.rows += taken
        return True

    def add_converted(self, request: Request) -> bool:
        """`add` for arrays that `row_shapes` found to fit but that are not numpy arrays
        of this stage's dtypes (lists, another byte order): converted first."""
        ts, request_id, taken, inputs, outputs, latency_s = request
        converted = []
        for side, columns in ((inputs, self._inputs), (outputs, self._outputs)):
            converted.append({n: np.asarray(side[n], dtype=d) for n, d, _, _ in columns})
        return self.add(ts, request_id, taken, converted[0], converted[1], latency_s)

    def tensors(self) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """Each input and output over every row taken, in record order."""
        return (
            {name: _joined(arrays) for name, _, _, arrays in self._inputs},
            {name: _joined(arrays) for name, _, _, arrays in self._outputs},
        )


def _joined(arrays: list[np.ndarray]) -> np.ndarray:
    return arrays[0] if len(arrays) == 1 else np.concatenate(arrays)


def row_shapes(
    signature: Signature, inputs: Mapping[str, Any], outputs: Mapping[str, Any], taken: int
) -> Shapes:
    """Each tensor's dtype and row shape; ValueError naming what does not fit `signature`."""
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
            shapes.append((kind, spec.name, array.dtype.str, array.shape[1:]))
    return tuple(shapes)


def generated_ids(prefix: str, first: int, count: int) -> pa.Array:
    """`prefix-first` … `prefix-(first+count-1)`, made by Arrow, not a Python loop."""
    numbers = pc.cast(pa.array(np.arange(first, first + count, dtype=np.int64)), pa.string())
    return pc.binary_join_element_wise(prefix, numbers, "-")


def stage_batch(
    stage: Stage, replica: str, new_request_ids: Callable[[int], pa.Array]
) -> pa.RecordBatch:
    """The stage's rows as one record batch; ValueError (or an Arrow error) when they cannot
    be one (a feature named like one of the log's own columns)."""
    counts = np.array(stage.taken, dtype=np.int64)
    requests, total = len(counts), stage.rows
    per_row = total != requests  # a request's fields on each of its rows
    ts_us = np.round(np.array(stage.ts, dtype=np.float64) * 1e6).astype(np.int64)
    latency = np.array(stage.latency, dtype=np.float64)
    ids = _ids(stage.ids, new_request_ids)
    if per_row:
        ts_us, latency = np.repeat(ts_us, counts), np.repeat(latency, counts)
        ids = ids.take(pa.array(np.repeat(np.arange(requests), counts)))
        first_rows = np.repeat(np.cumsum(counts) - counts, counts)
        row = (np.arange(total, dtype=np.int64) - first_rows).astype(np.int32)
    else:
        row = np.zeros(total, dtype=np.int32)
    inputs, outputs = stage.tensors()
    tensors, layout = tensor_columns(stage.signature, inputs, outputs)
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
        metadata=log_metadata(layout, stage.model, stage.version, replica),
    )
    return pa.RecordBatch.from_arrays(list(columns.values()), schema=schema)


def _ids(given: list[Any], new_request_ids: Callable[[int], pa.Array]) -> pa.Array:
    """One id per request: the client's, else a generated one."""
    missing = given.count(None)
    if missing == len(given):
        return new_request_ids(len(given))
    if missing == 0:
        try:
            return pa.array(given, pa.string())
        except (pa.ArrowTypeError, pa.ArrowInvalid):  # ids that are not strings
            return pa.array([str(i) for i in given], pa.string())
    made = iter(new_request_ids(missing).to_pylist())
    return pa.array([next(made) if i is None else str(i) for i in given], pa.string())

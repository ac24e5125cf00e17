"""Scoring a file with one model version: read in chunks, validate, predict, write.

A thread reads and prepares the next chunk (Arrow's readers and numpy release the GIL)
while the model runs on this one, with at most two chunks waiting: memory stays flat for
any file size. Each good row's outputs are written with its row number (from 0, in file
order) and the columns asked to be kept; each rejected row goes to the rejects file with
its reason. The output appears only once every row is done (`AtomicTable`); a failure at
any point leaves no output file. With `max_reject_share` set, a run whose share of rejected
rows is larger fails (the rejects file is kept, to show why).
"""

from __future__ import annotations

import math
import queue
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa

from registry.errors import BadRequest
from registry.signature import Signature, TensorSpec
from services.scoring.columns import BadInput, ColumnPlan, Prepared, plan_columns
from services.scoring.tables import AtomicTable, TableReader, table_format

__all__ = [
    "Predict",
    "ScoreOptions",
    "ScoreReport",
    "TooManyRejects",
    "check_file",
    "rejects_path",
    "score_file",
]

Predict = Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]
Progress = Callable[[int, float], None]
"""Told (rows read so far, the share of the file done) after each chunk."""
_AHEAD = 2  # prepared chunks waiting for the model


class TooManyRejects(BadRequest):
    pass


@dataclass(frozen=True)
class ScoreOptions:
    chunk_rows: int = 65536
    batch_size: int = 1024
    keep: tuple[str, ...] = ()
    max_reject_share: float | None = None
    allow_non_finite: bool = False


@dataclass
class ScoreReport:
    rows: int = 0
    scored: int = 0
    rejected: int = 0
    seconds: float = 0.0
    output: Path | None = None
    rejects: Path | None = None
    reasons: Counter[str] = field(default_factory=Counter)

    def to_json(self) -> dict[str, object]:
        return {
            "rows": self.rows,
            "scored": self.scored,
            "rejected": self.rejected,
            "seconds": round(self.seconds, 3),
            "rows_per_s": round(self.rows / self.seconds) if self.seconds else None,
            "output": None if self.output is None else str(self.output),
            "rejects": None if self.rejects is None else str(self.rejects),
            "reasons": dict(self.reasons.most_common(10)),
        }


def rejects_path(output: Path) -> Path:
    """Where a run's rejects go unless told: beside the output, `NAME.rejects.SUFFIX`."""
    return output.with_name(f"{output.stem}.rejects{output.suffix}")


def check_file(
    signature: Signature, source: Path, output: Path, options: ScoreOptions, rejects: Path
) -> tuple[TableReader, ColumnPlan, _OutputLayout]:
    """What can be known before a row is read: `BadInput` if the file cannot be scored."""
    paths = {p.resolve() for p in (source, output, rejects)}
    if len(paths) < 3:
        raise BadInput("the input, the output and the rejects file must be three different files")
    for path in (output, rejects):
        table_format(path)
    reader = TableReader(source)
    plan = plan_columns(signature, reader.schema, allow_non_finite=options.allow_non_finite)
    missing = [c for c in options.keep if c not in reader.schema.names]
    if missing:
        raise BadInput(f"the input lacks the columns to keep {missing}")
    return reader, plan, _OutputLayout(signature, reader, options.keep, output)


def score_file(
    predict: Predict,
    signature: Signature,
    source: Path,
    output: Path,
    options: ScoreOptions,
    *,
    rejects: Path | None = None,
    progress: Progress | None = None,
) -> ScoreReport:
    rejects = rejects or rejects_path(output)
    reader, plan, layout = check_file(signature, source, output, options, rejects)
    wanted = list(dict.fromkeys([*options.keep, *plan.columns]))
    numeric = plan.scalar_columns
    report = ScoreReport(output=output)
    written = AtomicTable(output, layout.schema)
    refused: AtomicTable | None = None
    started = time.perf_counter()
    chunks = _Ahead(_prepared(reader, plan, wanted, numeric, options.chunk_rows))
    writes = _Behind()
    try:
        for batch, prepared in chunks:
            outputs = _run(predict, prepared, options)
            writes.put(written, layout.scored(batch, prepared, outputs, report.rows))
            if len(prepared.rejected):
                if refused is None:
                    refused = AtomicTable(rejects, _rejects_schema(reader.schema, wanted, rejects))
                writes.put(refused, _rejected(batch, prepared, report.rows, refused.schema))
                report.reasons.update(prepared.reasons)
            report.rows += batch.num_rows
            report.scored += len(prepared.good)
            report.rejected += len(prepared.rejected)
            if progress is not None:
                share = report.rows / reader.rows if reader.rows else reader.position()
                progress(report.rows, share)
        writes.finish()
        report.seconds = time.perf_counter() - started
        if refused is not None:
            refused.commit()
            report.rejects = rejects
        share = report.rejected / report.rows if report.rows else 0.0
        if options.max_reject_share is not None and share > options.max_reject_share:
            written.abort()
            raise TooManyRejects(
                f"{share:.1%} of rows were rejected ({report.rejected} of {report.rows}), more "
                f"than --max-reject-share {options.max_reject_share}; see {rejects}"
            )
        written.commit()
    except BaseException:
        chunks.stop()
        writes.finish(quietly=True)
        written.abort()
        if refused is not None and report.rejects is None:
            refused.abort()
        raise
    return report


def _prepared(
    reader: TableReader, plan: ColumnPlan, columns: list[str], numeric: list[str], rows: int
) -> Iterator[tuple[pa.RecordBatch, Prepared]]:
    for batch in reader.chunks(columns, numeric, rows):
        yield batch, plan.prepare(batch)


def _run(predict: Predict, prepared: Prepared, options: ScoreOptions) -> dict[str, np.ndarray]:
    rows = len(prepared.good)
    if not rows:
        return {}
    parts = []
    for start in range(0, rows, options.batch_size):
        parts.append(
            predict({n: a[start : start + options.batch_size] for n, a in prepared.tensors.items()})
        )
    return {n: np.concatenate([p[n] for p in parts]) for n in parts[0]}


class _Ahead:
    """Runs a generator on a thread of its own, up to `_AHEAD` items ahead of its reader."""

    _DONE = object()

    def __init__(self, items: Iterator[tuple[pa.RecordBatch, Prepared]]) -> None:
        self._queue: queue.Queue[object] = queue.Queue(maxsize=_AHEAD)
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._fill, args=(items,), daemon=True)
        self._thread.start()

    def _fill(self, items: Iterator[tuple[pa.RecordBatch, Prepared]]) -> None:
        try:
            for item in items:
                if not self._put(item):
                    return
        except BaseException as exc:  # noqa: BLE001 - handed to the reader, raised there
            self._put(exc)
            return
        self._put(self._DONE)

    def _put(self, item: object) -> bool:
        while not self._stopped.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def __iter__(self) -> Iterator[tuple[pa.RecordBatch, Prepared]]:
        while True:
            item = self._queue.get()
            if item is self._DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item  # type: ignore[misc]

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join()


class _Behind:
    """Writes on a thread of their own, in order, at most `_AHEAD` batches behind: encoding
    Parquet overlaps the model's next batch. A failed write is raised by the next call."""

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mlgate-write")
        self._pending: deque[Future[None]] = deque()

    def put(self, table: AtomicTable, batch: pa.RecordBatch) -> None:
        while len(self._pending) >= _AHEAD:
            self._pending.popleft().result()
        self._pending.append(self._pool.submit(table.write, batch))

    def finish(self, *, quietly: bool = False) -> None:
        """Wait for every write; raise the first failure unless `quietly` (already failing)."""
        try:
            while self._pending:
                future = self._pending.popleft()
                if quietly:
                    future.exception()
                else:
                    future.result()
        finally:
            self._pool.shutdown(wait=True)


class _OutputLayout:
    """The output's columns: `row`, the kept columns, then each output, one column per value
    of a row (`name` for one value, `name_0`… for a vector; Parquet only: a list column for
    a tensor per row)."""

    def __init__(
        self, signature: Signature, reader: TableReader, keep: tuple[str, ...], output: Path
    ) -> None:
        self._keep = keep
        self._csv = output.suffix.lower() == ".csv"
        fields = [pa.field("row", pa.int64()), *(reader.schema.field(c) for c in keep)]
        self._outputs: list[tuple[TensorSpec, int, bool]] = []  # spec, width, as a list
        for spec in signature.outputs:
            fields += self._fields(spec)
        self.schema = pa.schema(fields)

    def _fields(self, spec: TensorSpec) -> list[pa.Field]:
        row = tuple(spec.shape[1:])
        kind = pa.from_numpy_dtype(np.dtype(spec.dtype))
        if any(d < 0 for d in row):
            raise BadInput(f"output {spec.name!r} has a variable shape {list(spec.shape)}")
        width = math.prod(row)
        if width == 1:
            self._outputs.append((spec, 1, False))
            return [pa.field(spec.name, kind)]
        if len(row) == 1:
            self._outputs.append((spec, width, False))
            return [pa.field(f"{spec.name}_{i}", kind) for i in range(width)]
        if self._csv:
            raise BadInput(
                f"output {spec.name!r} is a tensor of shape {list(row)} per row, which a CSV "
                "row cannot hold: write Parquet"
            )
        self._outputs.append((spec, width, True))
        return [pa.field(spec.name, pa.list_(kind, width))]

    def scored(
        self, batch: pa.RecordBatch, prepared: Prepared, outputs: dict[str, np.ndarray], offset: int
    ) -> pa.RecordBatch:
        good = prepared.good
        taken = pa.array(good, pa.int64())
        columns: list[pa.Array] = [pa.array(good + offset, pa.int64())]
        columns += [batch.column(name).take(taken) for name in self._keep]
        for spec, width, listed in self._outputs:
            values = outputs.get(spec.name)
            flat = (
                np.zeros((0, width), spec.dtype)
                if values is None
                else values.reshape(len(values), width)
            )
            if listed:
                columns.append(pa.FixedSizeListArray.from_arrays(flat.ravel(), width))
            else:
                columns += [pa.array(flat[:, i]) for i in range(width)]
        return pa.RecordBatch.from_arrays(columns, schema=self.schema)


def _rejects_schema(schema: pa.Schema, columns: list[str], path: Path) -> pa.Schema:
    fields = [pa.field("row", pa.int64()), pa.field("reason", pa.string())]
    csv = path.suffix.lower() == ".csv"
    for name in columns:
        field_ = schema.field(name)
        if csv and pa.types.is_nested(field_.type):
            continue  # a CSV cell holds no list: the row number finds it in the input
        fields.append(field_)
    return pa.schema(fields)


def _rejected(
    batch: pa.RecordBatch, prepared: Prepared, offset: int, schema: pa.Schema
) -> pa.RecordBatch:
    taken = pa.array(prepared.rejected, pa.int64())
    columns = [
        pa.array(prepared.rejected + offset, pa.int64()),
        pa.array(prepared.reasons, pa.string()),
    ]
    columns += [batch.column(f.name).take(taken) for f in list(schema)[2:]]
    return pa.RecordBatch.from_arrays(columns, schema=schema)

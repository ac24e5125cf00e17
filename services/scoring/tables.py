"""The files batch scoring reads and writes: Parquet or CSV (Arrow's readers and writers),
streamed, and written so that a reader never sees half a file.

Reading: Parquet in row batches of the columns needed (`ParquetFile.iter_batches`); CSV in
blocks (`pyarrow.csv.open_csv`), its header read first so that a missing column is named
before any row is converted, the model's columns then read as float64 so that one block of
whole numbers does not make a column an integer one. A file Arrow cannot read (truncated,
not the format its name says, a CSV row with too few fields) is a `BadInput` naming it.

Writing: to a hidden temporary file in the destination's folder, which `commit` fsyncs and
renames over the destination (atomic on POSIX), then fsyncs the folder; `abort` deletes it.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from services.scoring.columns import BadInput

__all__ = ["AtomicTable", "TableReader", "table_format"]

_FORMATS = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv"}
_CSV_BLOCK_BYTES = 8 << 20


def table_format(path: Path) -> str:
    """ "parquet" or "csv", by the file's suffix; `BadInput` for anything else."""
    fmt = _FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise BadInput(f"{path}: a table file ends in .parquet, .pq or .csv")
    return fmt


class TableReader:
    """One input file: its schema at once, its rows chunk by chunk, how far it has got."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.format = table_format(path)
        if not path.is_file():
            raise BadInput(f"{path}: no such file")
        self.size = path.stat().st_size
        self.rows: int | None = None  # known up front for Parquet only
        self._parquet: pq.ParquetFile | None = None
        self._read = 0  # bytes of a CSV file read so far
        try:
            if self.format == "parquet":
                # NOTE: pre-buffering would hold every row group read so far (memory ∝ file).
                self._parquet = pq.ParquetFile(path, pre_buffer=False)
                self.schema = self._parquet.schema_arrow
                self.rows = self._parquet.metadata.num_rows
            else:
                self.schema = pcsv.open_csv(path).schema
        except (pa.ArrowException, OSError) as exc:
            raise BadInput(f"{path}: not a readable {self.format} file: {_first(exc)}") from None

    def position(self) -> float:
        """The share of the file read so far, 0 to 1 (CSV: bytes; Parquet: kept by the job)."""
        return min(1.0, self._read / self.size) if self.size else 1.0

    def chunks(self, columns: list[str], numeric: list[str], rows: int) -> Iterator[pa.RecordBatch]:
        """Record batches of `columns` (about `rows` rows each); `numeric` read as float64."""
        with contextlib.ExitStack() as stack:
            yield from self._batches(stack, columns, numeric, rows)

    def _batches(
        self, stack: contextlib.ExitStack, columns: list[str], numeric: list[str], rows: int
    ) -> Iterator[pa.RecordBatch]:
        try:
            if self._parquet is not None:
                yield from self._parquet.iter_batches(batch_size=rows, columns=columns)
                return
            stream = stack.enter_context(pa.OSFile(str(self.path)))
            reader = pcsv.open_csv(
                stream,
                read_options=pcsv.ReadOptions(block_size=_CSV_BLOCK_BYTES),
                convert_options=pcsv.ConvertOptions(
                    include_columns=columns,
                    column_types={name: pa.float64() for name in numeric},
                ),
            )
            for batch in reader:
                self._read = stream.tell()
                yield batch
        except (pa.ArrowException, OSError) as exc:
            raise BadInput(f"{self.path}: {_first(exc)}") from None


class AtomicTable:
    """A Parquet or CSV file that appears whole at `path` on `commit`, or not at all."""

    def __init__(self, path: Path, schema: pa.Schema) -> None:
        self.path = path
        self.schema = schema
        self.format = table_format(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self._temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.partial")
        self._writer: Any
        try:
            if self.format == "parquet":
                # Dictionaries pay for text (ids, reasons); on numbers they cost 5× the write.
                text = [
                    f.name
                    for f in schema
                    if pa.types.is_string(f.type) or (pa.types.is_large_string(f.type))
                ]
                self._writer = pq.ParquetWriter(
                    self._temporary, schema, compression="snappy", use_dictionary=text
                )
            else:
                self._writer = pcsv.CSVWriter(self._temporary, schema)
        except (pa.ArrowException, OSError) as exc:
            self._temporary.unlink(missing_ok=True)
            raise BadInput(f"{path}: cannot write it: {_first(exc)}") from None
        self.rows = 0

    def write(self, batch: pa.RecordBatch) -> None:
        if batch.num_rows:
            self._writer.write_batch(batch)
            self.rows += batch.num_rows

    def commit(self) -> None:
        self._writer.close()
        with self._temporary.open("rb") as handle:
            os.fsync(handle.fileno())
        self._temporary.replace(self.path)
        folder = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)

    def abort(self) -> None:
        with contextlib.suppress(pa.ArrowException, OSError):
            self._writer.close()  # the file is deleted next, whatever state it is in
        self._temporary.unlink(missing_ok=True)


def _first(exc: BaseException) -> str:
    """Arrow's message on one line (some span several, with a C++ source location)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__

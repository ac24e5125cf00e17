"""The inference log: sampled request rows, written durably to segment files by one thread.

Request path. `record()` runs on the event-loop thread for every request. It asks the
`Sampler` how many rows to keep and, if any, appends references to the request's arrays
to its version's `Stage` (`batches`: one list per tensor, checked against the stage's
row shapes), under a lock the writer holds only to swap the stages out: no copy, no Arrow
work. Past `max_pending_rows` waiting rows it drops the rows (counted) instead of
blocking. The arrays are referenced, not copied: the caller must not modify them in place
afterwards (an output that is a slice of a batch keeps the batch alive until written).

Writer thread. Every `flush_interval_s` (or at once when `flush()`/`close()` set its
event) it takes the stages, builds one Arrow record batch per stage, i.e. per (model,
version) and row shape (columns `ts`, `request_id`, `row`, `latency_s`, `replica`, then
the tensor columns of `registry.reference.tensor_columns`), appends it to that version's
open stream segment and fsyncs it; only then are the rows counted as `flushed`. Segments
rotate to Parquet by size and age; see `writer` and `segments` for the files.

What a kill -9 loses (or a power cut: files and new folder entries are fsynced): only rows
not yet counted as `flushed`, i.e. those still queued or in the write cycle under way.
Cycles start every `flush_interval_s`, so that is the traffic of the last
`flush_interval_s` plus the time one cycle takes (milliseconds: one fsync per version
written; up to seconds when the cycle also converts a full segment to Parquet), and never
more than `max_pending_rows` rows (past that, rows are dropped and counted at record
time anyway). A batch being written when the process died is a torn trailing batch of
its stream: readers and recovery skip it; its rows were not yet counted as flushed. Every
row counted as `flushed`, and so every row recorded before a `flush()` that returned
(unless counted in `dropped_write_error`/`dropped_invalid`), survives. `start()` under the
same replica name converts this replica's leftover streams to Parquet; until then
readers read them as they are.

Threads and who writes what: the stages are shared, under `Staging`'s lock; the
event-loop thread (the one calling `record` and `refused`, which must be a single thread
at a time) owns the sampler's counters,
`recorded`, `dropped_backlog`, `invalid_requests` and the answered/refused totals (which
the writer thread only copies); the writer thread owns the rest (`flushed`,
`write_errors`, `counts_write_errors`, its `dropped_*`, the rows done, the segments and
counts files), which `start()` touches only before that thread exists. Each counter has
one writer, so plain ints suffice; `stats()` reads them from any thread. `flush()` and
`close()` may be called from any thread.

Rows answered and refused. `record` also adds every request's rows to a per-version
total before sampling, and `refused` adds the rows of a request refused at validation
per (version, reason): plain dict updates on the event-loop thread, no lock. The writer
thread writes what changed each cycle to a small JSON-lines file per version beside the
segments (`counts`: format, crashes, retention); `counts.read_counts` sums every
replica's. They give the data-quality checks an unsampled refused share. A failure to
write them loses no row: it is counted in `counts_write_errors`, logged as a warning, and
what it could not write is written next cycle (`counts_writer`).

Recent ids. After each batch it made durable, the writer notes the batch's client-given
request ids in a bounded index (`monitors.log.recent_ids`), which the feedback
endpoint reads to say at once whether a label matches a logged row. Never on the request
path.
"""

from __future__ import annotations

import logging
import random
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pyarrow as pa

from monitors.log.batches import Stage, Staging, Unfit, generated_ids, stage_batch
from monitors.log.counts_writer import CountsWriter
from monitors.log.recent_ids import RecentIds, RecentModelIds
from monitors.log.sampling import Sampler
from monitors.log.settings import LogSettings
from monitors.log.writer import SegmentWriter
from registry.errors import MlgateError
from registry.signature import Signature

__all__ = ["InferenceLog", "LogSettings"]

log = logging.getLogger("mlgate.monitors")
_ERROR_LOG_INTERVAL_S = 60.0


class InferenceLog:
    """Sampled rows of every served version, durable once flushed; see the module docstring."""

    def __init__(
        self,
        settings: LogSettings,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
    ) -> None:
        self.settings = settings
        self._wall_clock = wall_clock
        self._sampler = Sampler(settings.sample_rate, settings.max_rows_per_s, rng, clock)
        self._segments = SegmentWriter(
            settings.directory,
            settings.replica,
            settings.segment_max_bytes,
            settings.segment_max_age_s,
            settings.retention_s,
            clock,
            wall_clock,
        )
        self._counts = CountsWriter(
            settings.directory,
            settings.replica,
            settings.segment_max_age_s,
            settings.retention_s,
            clock,
            wall_clock,
        )
        self._staging = Staging()  # what waits for the writer
        # Ids for requests that came without one: a random prefix per log and a counter.
        # NOTE: uuid4 per row cost ~1 % of a busy gateway's CPU (one getrandom call each).
        self._id_prefix = secrets.token_hex(8)
        self._id_next = 0  # the writer thread's
        self._recent = RecentIds(settings.recent_ids)
        self._wake = threading.Event()
        self._progress = threading.Condition()
        self._thread: threading.Thread | None = None
        self._closed = False
        # Event-loop thread's counters.
        self._recorded = 0
        self._dropped_backlog = 0
        self._invalid_requests = 0
        # Cumulative rows before sampling, model → version → rows: nested, because a
        # (model, version) tuple key (and dict.get) made record() about 60 ns slower.
        self._answered: dict[str, dict[int, int]] = {}
        self._refused: dict[tuple[str, int, str], int] = {}  # cumulative rows by reason
        # Writer thread's counters.
        self._done_rows = 0
        self._cycles_begun = 0
        self._cycles_done = 0
        self._flushed = 0
        self._dropped_write = 0
        self._dropped_invalid = 0
        self._write_errors = 0
        self._recovered_segments = 0
        self._recovered_rows = 0
        self._last_error_log: dict[object, float] = {}

    def start(self, *, recover_all: bool = False) -> None:
        """Recover leftover streams, apply retention, start the writer thread.

        Recovery converts the streams of this replica name, or with `recover_all` of
        every replica: only for a process that knows those replicas are dead (converting
        a live replica's open segment would lose what it writes next).
        """
        if self._thread is not None or self._closed:
            raise RuntimeError("an InferenceLog is started once; make a new one")
        # Neither may stop serving: a file that fails is logged, counted and left.
        self._guarded("recovery", lambda: self._recover(recover_all))
        self._guarded("retention", self._segments.expire)
        self._counts.start()
        self._thread = threading.Thread(target=self._run, name="mlgate-inference-log", daemon=True)
        self._thread.start()

    def record(
        self,
        model: str,
        version: int,
        signature: Signature,
        request_id: str | None,
        inputs: Mapping[str, np.ndarray],
        outputs: Mapping[str, np.ndarray],
        latency_s: float,
        *,
        sample: bool = True,
    ) -> int:
        """Hand a request's rows to the writer (sampled, capped); return the rows taken.
        `sample=False`: take every row (a shadow's answer to rows already sampled once).

        O(1) and never raises or blocks: see the module docstring.
        """
        try:
            rows = len(inputs[signature.inputs[0].name])
        except (KeyError, IndexError, TypeError):
            self._invalid_requests += 1
            return 0
        # Every request's rows, whatever sampling decides: the refused share must not be biased.
        try:
            self._answered[model][version] += rows
        except KeyError:  # the version's first request
            self._answered.setdefault(model, {})[version] = rows
        taken = self._sampler.take(rows) if sample else rows
        if taken == 0:
            return 0
        if (
            self._closed
            or self._recorded - self._done_rows + taken > self.settings.max_pending_rows
        ):
            self._dropped_backlog += taken
            return 0
        self._staging.add(
            model,
            version,
            signature,
            self._wall_clock(),
            request_id,
            taken,
            inputs,
            outputs,
            latency_s,
        )
        self._recorded += taken
        return taken

    def refused(self, model: str, version: int, reason: str, rows: int) -> None:
        """Count `rows` of a request to `model:version` refused at validation for `reason`.

        O(1), never raises or blocks; written by the writer thread with the answered rows.
        """
        refused, key = self._refused, (model, version, reason)
        refused[key] = refused.get(key, 0) + rows

    def flush(self, timeout_s: float = 10.0) -> int:
        """Block until every row recorded before the call is written (or failed, counted),
        and the rotations due are done.

        Returns the total of rows flushed so far. Raises TimeoutError after `timeout_s`,
        RuntimeError if the log was never started. Blocking: from async code, call it
        through `asyncio.to_thread`.
        """
        thread = self._thread
        if thread is None:
            raise RuntimeError("the inference log was not started")
        # A cycle that begins after this line drains everything recorded before the call
        # (and does the rotations due); wait for it to end.
        begun = self._cycles_begun
        with self._progress:
            self._wake.set()
            done = self._progress.wait_for(
                lambda: self._cycles_done > begun or not thread.is_alive(), timeout_s
            )
        if not done:
            raise TimeoutError(f"the inference log did not flush within {timeout_s} s")
        return self._flushed

    def close(self, timeout_s: float = 30.0) -> None:
        """Write what is pending, convert the open segments to Parquet, stop the writer.

        Rows recorded after this are dropped (counted in `dropped_backlog`). Raises
        TimeoutError when the writer does not finish within `timeout_s`.
        """
        self._closed = True
        thread = self._thread
        if thread is None:
            return
        self._wake.set()
        thread.join(timeout_s)
        if thread.is_alive():
            raise TimeoutError(f"the inference log writer did not stop within {timeout_s} s")

    def stats(self) -> dict[str, int]:
        return {
            "recorded": self._recorded,
            "sampled_out": self._sampler.sampled_out,
            "capped": self._sampler.capped,
            "dropped_backlog": self._dropped_backlog,
            "dropped_invalid": self._dropped_invalid,
            "dropped_write_error": self._dropped_write,
            "invalid_requests": self._invalid_requests,
            "pending": self._recorded - self._done_rows,
            "flushed": self._flushed,
            "write_errors": self._write_errors,
            "counts_write_errors": self._counts.errors,
            "segments_open": self._segments.open_segments,
            "segments_closed": self._segments.closed_segments,
            "segments_recovered": self._recovered_segments,
            "rows_recovered": self._recovered_rows,
        }

    def recent_ids(self, model: str) -> RecentModelIds:
        """`model`'s request ids written lately, set-like: `id in it`, `(id, row) in it`.

        Bounded (`LogSettings.recent_ids`, oldest forgotten); rows count once flushed.
        """
        return self._recent.view(model)

    def _recover(self, recover_all: bool) -> None:
        segments, rows, failed = self._segments.recover(any_replica=recover_all)
        self._recovered_segments, self._recovered_rows = segments, rows
        self._write_errors += failed

    # Writer thread from here on.

    def _run(self) -> None:
        interval = self.settings.flush_interval_s
        next_cycle = time.monotonic() + interval
        while True:
            self._wake.wait(max(0.0, next_cycle - time.monotonic()))
            self._wake.clear()
            next_cycle = time.monotonic() + interval
            self._cycles_begun += 1
            stopping = self._closed
            self._write_pending()
            self._counts.cycle(self._answered, self._refused)
            self._guarded("rotate", self._segments.rotate_due)
            if stopping:
                self._write_pending()  # what a record() racing close() still got in
                self._counts.cycle(self._answered, self._refused)
                self._guarded("close", self._segments.close_all)
                self._counts.close_all()
            self._cycles_done += 1
            with self._progress:
                self._progress.notify_all()
            if stopping:
                return

    def _write_pending(self) -> None:
        stages, unfit = self._staging.take()
        if not stages and not unfit:
            return
        try:
            self._write(stages, unfit)
        except Exception:  # the writer thread must outlive a bug here too
            self._write_errors += 1
            log.exception("inference log writer failed on %d stages", len(stages))
        finally:
            # Only now do they stop counting against max_pending_rows: that is what
            # bounds the rows a crash can lose.
            self._done_rows += sum(s.rows for s in stages) + sum(u[1] for u in unfit)

    def _new_request_ids(self, count: int) -> pa.Array:
        first = self._id_next
        self._id_next += count
        return generated_ids(self._id_prefix, first, count)

    def _write(self, stages: list[Stage], unfit: list[Unfit]) -> None:
        for (model, version), rows, problem in unfit:
            self._drop_invalid(model, version, rows, problem)
        for stage in stages:
            model, version = stage.model, stage.version
            try:
                batch = stage_batch(stage, self.settings.replica, self._new_request_ids)
            except (MlgateError, ValueError, TypeError, pa.ArrowException) as exc:
                self._drop_invalid(model, version, stage.rows, str(exc))
                continue
            try:
                self._segments.append(model, version, batch, min(stage.ts))
            except Exception:  # noqa: BLE001 -- disk full, permissions: count, log, go on
                self._write_errors += 1
                self._dropped_write += batch.num_rows
                self._log_error(
                    (model, version),
                    "inference log write for %s:%s failed",
                    model,
                    version,
                    exc_info=True,
                )
            else:
                self._flushed += batch.num_rows
                self._note_ids(model, batch)

    def _drop_invalid(self, model: str, version: int, rows: int, problem: str) -> None:
        self._dropped_invalid += rows
        self._log_error(
            (model, version, "invalid"),
            "inference log rows of %s:%s dropped: %s",
            model,
            version,
            problem,
        )

    def _note_ids(self, model: str, batch: pa.RecordBatch) -> None:
        try:
            self._recent.add_batch(model, batch, f"{self._id_prefix}-")
        except Exception:  # noqa: BLE001 -- the index only informs feedback; rows are written
            self._log_error("recent ids", "noting request ids of %s failed", model, exc_info=True)

    def _guarded(self, what: str, action: Callable[[], Any]) -> None:
        try:
            action()
        except Exception:  # noqa: BLE001 -- the writer thread must outlive any file error
            self._write_errors += 1
            self._log_error(what, "inference log %s failed", what, exc_info=True)

    def _log_error(self, key: object, message: str, *args: object, exc_info: bool = False) -> None:
        """Log an error, but at most once a minute per key: a full disk fails every cycle."""
        now = time.monotonic()
        if now - self._last_error_log.get(key, -_ERROR_LOG_INTERVAL_S) >= _ERROR_LOG_INTERVAL_S:
            self._last_error_log[key] = now
            log.error(message, *args, exc_info=exc_info)

"""Writing the answered/refused row counts of one replica: see `counts` for the files.

`CountsWriter` is used by the inference log's writer thread only (or `start()`, before it
runs). Each cycle it copies the log's cumulative totals and appends, per version whose
totals changed, one line of deltas to that version's open counts file, fsynced.

It never raises: the counts are secondary to the rows (a failure here loses no row), so a
failure is counted in `errors` and logged as a warning at most once a minute (its cause,
a full disk or a folder that cannot be made, fails the rows too, and they log at ERROR).
A version whose line could not be written is written again next cycle, its deltas grown,
to a new file: a failed write abandons its file, so no line follows a torn one.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from monitors.log.counts import COUNTS_SUFFIX, counts_name, read_lines
from monitors.log.segments import SegmentName, first_free_seq, fsync_dir, version_folder

__all__ = ["CountsWriter"]

log = logging.getLogger("mlgate.monitors")
_WARN_INTERVAL_S = 60.0


@dataclass(slots=True)
class _OpenFile:
    path: Path
    fd: int
    opened_at: float


@dataclass
class CountsWriter:
    directory: Path
    replica: str
    max_age_s: float
    retention_s: float
    clock: Callable[[], float] = time.monotonic
    wall_clock: Callable[[], float] = time.time
    errors: int = 0
    _last_warning: dict[str, float] = field(default_factory=dict)
    _answered: dict[tuple[str, int], int] = field(default_factory=dict)
    _refused: dict[tuple[str, int, str], int] = field(default_factory=dict)
    _open: dict[tuple[str, int], _OpenFile] = field(default_factory=dict)
    _next_seq: dict[Path, int] = field(default_factory=dict)

    def start(self) -> None:
        """Apply retention to every replica's counts files."""
        self._guarded("retention", self.expire)

    def cycle(
        self,
        answered: dict[str, dict[int, int]],
        refused: dict[tuple[str, int, str], int],
    ) -> None:
        """Write what changed in the inference log's live totals; rotate; never raise.

        `answered` (model → version → rows) and `refused` ((model, version, reason) →
        rows) are the log's own dicts, which the event loop keeps adding to: each is
        copied with dict.copy(), one C call and so atomic under the GIL (iterating a live
        dict could fail on a key added meanwhile).
        """
        flat = {
            (model, version): rows
            for model, versions in answered.copy().items()
            for version, rows in versions.copy().items()
        }
        totals = refused.copy()
        self._guarded("write", lambda: self.write(flat, totals))
        self._guarded("rotation", self.rotate_due)

    def write(
        self,
        answered: Mapping[tuple[str, int], int],
        refused: Mapping[tuple[str, int, str], int],
    ) -> int:
        """Write what changed since the last write of these cumulative totals; return lines.

        Tries every version, then raises the first error; a version that failed is
        written again next time, its deltas grown.
        """
        changes: dict[tuple[str, int], tuple[list[int], dict[str, int]]] = {}
        for key, total in answered.items():
            if total != self._answered.get(key, 0):
                changes.setdefault(key, ([0], {}))[0][0] = total - self._answered.get(key, 0)
        for (model, version, reason), total in refused.items():
            done = self._refused.get((model, version, reason), 0)
            if total != done:
                changes.setdefault((model, version), ([0], {}))[1][reason] = total - done
        ts = self.wall_clock()
        errors: list[Exception] = []
        for key, (answered_delta, refused_delta) in changes.items():
            document = {"ts": ts, "answered": answered_delta[0], "refused": refused_delta}
            line = json.dumps(document, separators=(",", ":")).encode() + b"\n"
            try:
                self._append(key, line, ts)
            except Exception as exc:  # noqa: BLE001 -- reraised below, after the others
                errors.append(exc)
                continue
            if key in answered:
                self._answered[key] = answered[key]
            for reason in refused_delta:
                self._refused[(*key, reason)] = refused[(*key, reason)]
        if errors:
            raise errors[0]
        return len(changes)

    def rotate_due(self) -> None:
        """Leave files older than `max_age_s` for new ones; then apply retention."""
        now = self.clock()
        due = [k for k, f in self._open.items() if now - f.opened_at >= self.max_age_s]
        for key in due:
            self._release(key)
        if due:
            self.expire()

    def close_all(self) -> None:
        for key in list(self._open):
            self._release(key)

    def expire(self) -> int:
        """Delete every replica's counts files whose newest line is older than the retention."""
        cutoff = self.wall_clock() - self.retention_s
        open_paths = {f.path for f in self._open.values()}
        deleted = 0
        for folder in _version_folders(self.directory):
            for entry in os.scandir(folder):
                path = Path(entry.path)
                if path in open_paths or counts_name(path) is None:
                    continue
                try:
                    # mtime is never older than the newest line: most files need no reading.
                    if entry.stat().st_mtime >= cutoff:
                        continue
                    lines = read_lines(path)
                    if lines and max(line[0] for line in lines) >= cutoff:
                        continue
                    path.unlink()
                except FileNotFoundError:
                    continue  # another replica expired it first
                except OSError as exc:
                    log.warning("retention kept %s, which cannot be read: %s", path, exc)
                    continue
                deleted += 1
        return deleted

    def _append(self, key: tuple[str, int], line: bytes, ts: float) -> None:
        opened = self._open.get(key)
        if opened is None:
            opened = self._open[key] = self._open_file(*key, ts)
        try:
            view = memoryview(line)
            while view:
                view = view[os.write(opened.fd, view) :]
            os.fsync(opened.fd)
        except BaseException:
            self._release(key)  # never append after a torn line
            raise

    def _open_file(self, model: str, version: int, ts: float) -> _OpenFile:
        folder = version_folder(self.directory, model, version)
        seq = self._next_seq.get(folder)
        if seq is None:
            seq = first_free_seq(folder, self.replica, counts_name)
        while True:
            path = folder / (SegmentName(math.floor(ts), self.replica, seq).stem + COUNTS_SUFFIX)
            seq += 1
            try:  # never append to a file someone else wrote
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o644)
            except FileExistsError:
                continue
            break
        self._next_seq[folder] = seq
        try:
            fsync_dir(folder)
        except BaseException:
            os.close(fd)
            raise
        return _OpenFile(path, fd, self.clock())

    def _release(self, key: tuple[str, int]) -> None:
        with contextlib.suppress(OSError):
            os.close(self._open.pop(key).fd)

    def _guarded(self, what: str, action: Callable[[], object]) -> None:
        try:
            action()
        except Exception:  # the log's writer thread must outlive any error
            self.errors += 1
            now = time.monotonic()
            if now - self._last_warning.get(what, -_WARN_INTERVAL_S) >= _WARN_INTERVAL_S:
                self._last_warning[what] = now
                log.warning("inference log counts %s failed", what, exc_info=True)


def _version_folders(directory: Path) -> list[Path]:
    if not directory.is_dir():
        return []
    return [
        folder
        for model in directory.iterdir()
        if model.is_dir()
        for folder in model.iterdir()
        if folder.is_dir() and folder.name.isdigit()
    ]

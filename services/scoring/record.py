"""A scoring run with its record: the registry's row written when the run starts, its
progress while it goes (at most once a second), and how it ended. `mlgate predict` and a
gateway's batch job both run a file this way, so every run is traced the same.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from registry.batch_runs import BatchRun
from registry.errors import MlgateError
from registry.manifest import sha256_file
from registry.records import ModelVersion
from registry.store import Registry
from services.scoring.columns import BadInput
from services.scoring.job import (
    Predict,
    Progress,
    ScoreOptions,
    ScoreReport,
    check_file,
    rejects_path,
    score_file,
)

__all__ = ["RecordedRun"]

_BEAT_S = 1.0  # the least time between two progress updates of the record


class RecordedRun:
    """One file, one version: `start()` records it, `execute(predict)` scores it."""

    def __init__(
        self,
        registry: Registry,
        version: ModelVersion,
        source: Path,
        output: Path,
        options: ScoreOptions,
        *,
        runner: str,
        rejects: Path | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        if not source.is_file():
            raise BadInput(f"{source}: no such file")
        self.registry = registry
        self.version = version
        self.source, self.output = source.resolve(), output.resolve()
        self.rejects = (rejects or rejects_path(output)).resolve()
        self.options = options
        self.runner = runner
        self.details = {
            "chunk_rows": options.chunk_rows,
            "batch_size": options.batch_size,
            "keep": list(options.keep),
            "max_reject_share": options.max_reject_share,
            **(details or {}),
        }
        self.run: BatchRun | None = None
        self._last_beat = 0.0

    def start(self) -> BatchRun:
        """Check the file (`BadInput` records nothing), then record the run `running`."""
        check_file(self.version.signature, self.source, self.output, self.options, self.rejects)
        self.run = self.registry.batch_runs.start(
            self.version.ref,
            runner=self.runner,
            input_uri=str(self.source),
            output_uri=str(self.output),
            details=self.details,
        )
        return self.run

    def execute(
        self, predict: Predict, progress: Progress | None = None
    ) -> tuple[BatchRun, ScoreReport]:
        run = self.run or self.start()
        clock = time.perf_counter()
        runs = self.registry.batch_runs

        def beat(rows: int, share: float) -> None:
            if progress is not None:
                progress(rows, share)
            now = time.perf_counter()
            if now - self._last_beat >= _BEAT_S:
                self._last_beat = now
                runs.update(run.id, rows=rows, progress=share, seconds=now - clock)

        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="mlgate-digest") as pool:
            digest = pool.submit(sha256_file, self.source)  # read while the file is scored
            try:
                report = score_file(
                    predict,
                    self.version.signature,
                    self.source,
                    self.output,
                    self.options,
                    rejects=self.rejects,
                    progress=beat,
                )
            except BaseException as exc:
                failed = digest.exception() is None
                self.run = runs.update(
                    run.id,
                    status="failed",
                    error=str(exc)
                    if isinstance(exc, MlgateError)
                    else f"{type(exc).__name__}: {exc}",
                    input_digest=digest.result() if failed else None,
                    rejects_uri=str(self.rejects) if self.rejects.exists() else None,
                    seconds=time.perf_counter() - clock,
                )
                raise
            input_digest = digest.result()
        self.run = runs.update(
            run.id,
            status="succeeded",
            input_digest=input_digest,
            output_digest=sha256_file(self.output),
            rejects_uri=None if report.rejects is None else str(report.rejects),
            rejects_digest=None if report.rejects is None else sha256_file(report.rejects),
            rows=report.rows,
            scored=report.scored,
            rejected=report.rejected,
            progress=1.0,
            seconds=time.perf_counter() - clock,
        )
        return self.run, report

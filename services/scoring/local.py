"""`mlgate predict` in the command's own process: the version resolved once (an alias
never moves under a run), run by the runtime serving would give it, with the same
validation settings; the run recorded in the registry, failed or not.

The runtime is built as the gateway builds it (`runtime_choice.build_runtime`) from the
version's stored serving config over the `MLGATE_*` defaults; only `threads` may override
its thread count, since a batch job may own the machine where a gateway shares it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from registry.batch_runs import BatchRun, BatchRunInput
from registry.errors import MlgateError
from registry.manifest import sha256_file
from registry.records import ModelVersion
from registry.schema import utcnow
from registry.store import Registry
from services.gateway.deployment import Deployment
from services.gateway.runtime_choice import build_runtime
from services.gateway.settings import GatewaySettings
from services.runtimes.base import Runtime, Tensors
from services.scoring.columns import BadInput
from services.scoring.job import (
    Predict,
    Progress,
    ScoreOptions,
    ScoreReport,
    rejects_path,
    score_file,
)

__all__ = ["score_locally"]


def score_locally(
    registry: Registry,
    ref: str,
    source: Path,
    output: Path,
    options: ScoreOptions,
    *,
    rejects: Path | None = None,
    threads: int | None = None,
    progress: Progress | None = None,
) -> tuple[BatchRun, ScoreReport]:
    record = registry.get(ref)
    if not source.is_file():
        raise BadInput(f"{source}: no such file")
    stored = registry.serving_config(record.ref)
    if threads is not None:
        stored = {**stored, "intra_op_threads": threads}
    deployment = Deployment.resolve(GatewaySettings(), stored)
    options = dataclasses.replace(options, allow_non_finite=deployment.allow_non_finite)
    rejects = rejects or rejects_path(output)
    loop = asyncio.new_event_loop()
    try:
        runtime, kind, digest = loop.run_until_complete(build_runtime(registry, record, deployment))
        loop.run_until_complete(runtime.load())
        try:
            predict = _predictor(runtime, loop)
            details = {
                "artifact": kind,
                "artifact_digest": digest,
                "runtime": runtime.info(),
                "chunk_rows": options.chunk_rows,
                "batch_size": options.batch_size,
                "keep": list(options.keep),
                "max_reject_share": options.max_reject_share,
            }
            return _run(
                registry, record, source, output, rejects, options, details, predict, progress
            )
        finally:
            loop.run_until_complete(runtime.unload())
    finally:
        loop.close()


def _predictor(runtime: Runtime, loop: asyncio.AbstractEventLoop) -> Predict:
    """One batch at a time on this thread (a remote runtime: through the loop)."""
    if runtime.supports_inline:

        def inline(inputs: Tensors) -> Tensors:
            return runtime.run_inline(inputs).outputs

        return inline

    def remote(inputs: Tensors) -> Tensors:
        return loop.run_until_complete(runtime.predict(inputs)).outputs

    return remote


def _run(
    registry: Registry,
    record: ModelVersion,
    source: Path,
    output: Path,
    rejects: Path,
    options: ScoreOptions,
    details: dict[str, object],
    predict: Predict,
    progress: Progress | None,
) -> tuple[BatchRun, ScoreReport]:
    started, clock = utcnow(), time.perf_counter()
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="mlgate-digest") as pool:
        digest = pool.submit(sha256_file, source)  # read while the file is being scored
        try:
            report = score_file(
                predict,
                record.signature,
                source,
                output,
                options,
                rejects=rejects,
                progress=progress,
            )
        except MlgateError as exc:
            registry.record_batch_run(
                record.ref,
                BatchRunInput(
                    status="failed",
                    runner="local",
                    input_uri=str(source.resolve()),
                    input_digest=digest.result(),
                    rows=0,
                    scored=0,
                    rejected=0,
                    started_at=started,
                    seconds=time.perf_counter() - clock,
                    rejects_uri=str(rejects.resolve()) if rejects.exists() else None,
                    error=str(exc),
                    details=details,
                ),
            )
            raise
        input_digest = digest.result()
    run = registry.record_batch_run(
        record.ref,
        BatchRunInput(
            status="succeeded",
            runner="local",
            input_uri=str(source.resolve()),
            input_digest=input_digest,
            rows=report.rows,
            scored=report.scored,
            rejected=report.rejected,
            started_at=started,
            seconds=time.perf_counter() - clock,
            output_uri=str(output.resolve()),
            output_digest=sha256_file(output),
            rejects_uri=None if report.rejects is None else str(report.rejects.resolve()),
            rejects_digest=None if report.rejects is None else sha256_file(report.rejects),
            details=details,
        ),
    )
    return run, report

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
from pathlib import Path

from registry.batch_runs import BatchRun
from registry.store import Registry
from services.gateway.deployment import Deployment
from services.gateway.runtime_choice import build_runtime
from services.gateway.settings import GatewaySettings
from services.runtimes.base import Runtime, Tensors
from services.scoring.job import Predict, Progress, ScoreOptions, ScoreReport
from services.scoring.record import RecordedRun

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
    version = registry.get(ref)
    stored = registry.serving_config(version.ref)
    if threads is not None:
        stored = {**stored, "intra_op_threads": threads}
    deployment = Deployment.resolve(GatewaySettings(), stored)
    options = dataclasses.replace(options, allow_non_finite=deployment.allow_non_finite)
    recorded = RecordedRun(
        registry, version, source, output, options, runner="local", rejects=rejects
    )
    loop = asyncio.new_event_loop()
    try:
        runtime, kind, digest = loop.run_until_complete(
            build_runtime(registry, version, deployment)
        )
        loop.run_until_complete(runtime.load())
        try:
            recorded.details.update(artifact=kind, artifact_digest=digest, runtime=runtime.info())
            return recorded.execute(_predictor(runtime, loop), progress)
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

"""Opening one version for serving, and closing it: what the model manager does to a
version, apart from deciding which.

Opening reads the version's stored serving settings (with any overrides saved first),
builds its runtime (`runtime_choice`), puts an adaptive batcher in front of it, and warms
both up on the version's example inputs, so the cost model has real numbers before the
first request. Closing waits until no request holds the version, refuses new ones,
lets its queue finish and frees the runtime.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from typing import Any

import numpy as np

from monitors.metrics.collectors import GatewayMetrics
from registry.errors import NotServable
from registry.pytorch_source import load_examples
from registry.store import Registry
from services.gateway.batching.batcher import AdaptiveBatcher
from services.gateway.deployment import Deployment
from services.gateway.runtime_choice import build_runtime
from services.gateway.served import Served
from services.gateway.settings import GatewaySettings
from services.runtimes.base import Runtime

__all__ = ["close_version", "open_version", "warm_up"]

log = logging.getLogger("mlgate.gateway")
_WARM_UP_RUNS = 3


async def open_version(
    registry: Registry,
    settings: GatewaySettings,
    metrics: GatewayMetrics | None,
    name: str,
    version: int,
    overrides: Mapping[str, Any] | None = None,
) -> Served:
    """A loaded, warm version; on any failure its runtime is unloaded and the error raised."""
    ref = f"{name}:{version}"
    runtime: Runtime | None = None
    try:
        stored = await asyncio.to_thread(registry.serving_config, ref)
        if overrides:
            stored = await asyncio.to_thread(
                registry.set_serving_config, ref, {**stored, **overrides}
            )
        record = await asyncio.to_thread(registry.get, ref)
        stamps = await asyncio.to_thread(registry.serving_config_stamps, [name])
        deployment = Deployment.resolve(settings, stored)
        source = record.artifact("source")
        if source is None:
            raise NotServable(f"{ref} has no source artifact with example inputs")
        examples = await asyncio.to_thread(lambda: load_examples(registry.open_artifact(source)))
        runtime, kind, digest = await build_runtime(registry, record, deployment)
        await runtime.load()
        batcher = AdaptiveBatcher(
            runtime.predict,
            deployment.batch_settings(),
            run_inline=runtime.run_inline if runtime.supports_inline else None,
            observer=metrics.for_version(name, version) if metrics else None,
        )
        await warm_up(runtime, batcher, examples)
    except BaseException:
        if runtime is not None:
            await runtime.unload()
        raise
    return Served(
        name,
        version,
        kind,
        record.signature,
        deployment,
        runtime,
        batcher,
        digest,
        stamps.get((name, version)),
    )


async def close_version(served: Served, drain_timeout_s: float) -> None:
    """Unload a version once no request holds it (or after `drain_timeout_s`)."""
    served.state = "UNLOADING"
    try:
        await asyncio.wait_for(served.unused(), drain_timeout_s)
    except TimeoutError:
        log.warning(
            "%s:%s still in use after %ss; unloading anyway",
            served.name,
            served.version,
            drain_timeout_s,
        )
    served.batcher.close()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(served.batcher.drained(), drain_timeout_s)
    await served.runtime.unload()


async def warm_up(
    runtime: Runtime, batcher: AdaptiveBatcher, examples: Mapping[str, np.ndarray]
) -> None:
    """Run the examples at batch 1 and at max_batch_size, seeding the cost model.

    The first run of each size is discarded (it pays for allocations); the rest are the
    cost model's first observations, so shedding has real numbers from the first request.
    """
    limit = batcher.settings.max_batch_size
    for rows in sorted({1, limit}):
        batch = {n: np.resize(a, (rows, *a.shape[1:])) for n, a in examples.items()}
        await runtime.predict(batch)
        for _ in range(_WARM_UP_RUNS):
            _, seconds = await runtime.predict(batch)
            batcher.cost.observe(rows, seconds)

"""One model version being served: its runtime, its batcher, and who is using it."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from registry.signature import Signature
from services.gateway.batching.batcher import AdaptiveBatcher
from services.gateway.codec import oip_datatype
from services.gateway.deployment import Deployment
from services.runtimes.base import Runtime

__all__ = ["PLATFORMS", "Served"]

# "triton": the batches go to a model on a Triton server (services/runtimes/triton.py).
PLATFORMS = {"onnx": "onnxruntime_onnx", "torchscript": "pytorch_libtorch", "triton": "triton_grpc"}


@dataclass(eq=False)
class Served:
    name: str
    version: int
    kind: str
    signature: Signature
    deployment: Deployment
    runtime: Runtime
    batcher: AdaptiveBatcher
    artifact_digest: str
    config_stamp: str | None = None
    state: str = "READY"
    loaded_at: float = field(default_factory=time.time)
    active: int = 0
    _unused: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self._unused.set()

    def enter(self) -> None:
        self.active += 1
        self._unused.clear()

    def leave(self) -> None:
        self.active -= 1
        if self.active == 0:
            self._unused.set()

    async def unused(self) -> None:
        await self._unused.wait()

    def metadata(self, versions: list[int]) -> dict[str, Any]:
        def tensor(spec: Any) -> dict[str, Any]:
            return {
                "name": spec.name,
                "datatype": oip_datatype(spec.dtype),
                "shape": list(spec.shape),
            }

        return {
            "name": self.name,
            "versions": [str(v) for v in versions],
            "platform": PLATFORMS[self.kind],
            "inputs": [tensor(s) for s in self.signature.inputs],
            "outputs": [tensor(s) for s in self.signature.outputs],
            "parameters": {
                "served_version": str(self.version),
                "artifact": self.kind,
                "artifact_digest": self.artifact_digest,
                "feature_names": self.signature.feature_names,
                **self.runtime.info(),
                "batching": self.deployment.batch_settings().__dict__,
            },
        }

    def stats(self) -> dict[str, Any]:
        stats = self.batcher.stats
        return {
            "name": self.name,
            "version": str(self.version),
            "inference_count": stats.rows,
            "request_count": stats.requests,
            "execution_count": sum(stats.batches.values()),
            "mean_batch_size": round(stats.mean_batch_rows, 3),
            "batch_reasons": dict(stats.batches),
            "rejected": dict(stats.rejected),
            "cancelled": stats.cancelled,
            "queue_ms_total": round(stats.queue_s * 1000, 3),
            "compute_ms_total": round(stats.compute_s * 1000, 3),
            "queued_rows": self.batcher.queued_rows,
            "inflight_batches": self.batcher.inflight,
            "cost_model": {
                "per_row_ms": round(self.batcher.cost.per_row_s * 1000, 6),
                "fixed_ms": round(self.batcher.cost.fixed_s * 1000, 6),
            },
        }

"""How one model version is served: batching and runtime settings, validated.

The values come from three places, later ones winning: the gateway's defaults
(`GatewaySettings`), the serving config stored with the version in the registry (written
by `mlgate promote --max-batch-size ...` or by a load request), and nothing else: a load
request's parameters are validated here and then stored, so a restart serves the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from registry.errors import InvalidModelInput
from services.gateway.batching.batcher import BatchSettings
from services.gateway.settings import GatewaySettings
from services.runtimes.base import RuntimeSettings

__all__ = ["Deployment", "parse_overrides"]


class Deployment(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    max_batch_size: int = Field(gt=0, le=65536)
    max_queue_delay_ms: float = Field(ge=0, le=60_000)
    slo_ms: float = Field(gt=0, le=3_600_000)
    max_queue: int = Field(gt=0)
    max_inflight: int = Field(gt=0, le=64)
    inline_max_ms: float = Field(ge=0, le=10)
    runtime: Literal["auto", "onnx", "torchscript", "triton"]
    device: Literal["auto", "cpu", "cuda"]
    intra_op_threads: int = Field(gt=0, le=256)
    graph_optimization: Literal["disabled", "basic", "extended", "all"]
    allow_non_finite: bool = False
    triton_url: str | None = Field(default=None, min_length=1)
    """runtime triton: host:port of the Triton server's gRPC endpoint."""
    triton_model: str | None = Field(default=None, min_length=1)
    """runtime triton: the model's name on Triton (default: the registry name)."""
    triton_version: str | None = Field(default=None, pattern=r"^[0-9]*$")
    """runtime triton: the Triton version ("" lets Triton pick; default: ours)."""
    triton_timeout_ms: float = Field(default=30_000, gt=0, le=3_600_000)
    """runtime triton: how long one call to Triton may take."""

    @classmethod
    def resolve(cls, defaults: GatewaySettings, stored: Mapping[str, Any]) -> Deployment:
        base = {
            name: getattr(defaults, name) for name in cls.model_fields if hasattr(defaults, name)
        }
        return cls(**{**base, **parse_overrides(stored)})

    def batch_settings(self) -> BatchSettings:
        return BatchSettings(
            max_batch_size=self.max_batch_size,
            max_queue_delay_ms=self.max_queue_delay_ms,
            slo_ms=self.slo_ms,
            max_queue=max(self.max_queue, self.max_batch_size),
            max_inflight=self.max_inflight,
            inline_max_ms=self.inline_max_ms,
        )

    def runtime_settings(self) -> RuntimeSettings:
        return RuntimeSettings(
            device=self.device,
            intra_op_threads=self.intra_op_threads,
            graph_optimization=self.graph_optimization,
            max_inflight=self.max_inflight,
        )


def parse_overrides(values: Mapping[str, Any]) -> dict[str, Any]:
    """Check a partial config (from a request or the CLI); a clear 400 names what is wrong."""
    unknown = sorted(set(values) - set(Deployment.model_fields))
    if unknown:
        raise InvalidModelInput(
            f"unknown serving settings {unknown}; known: {', '.join(Deployment.model_fields)}"
        )
    try:
        Deployment.model_validate({**_PLACEHOLDER, **values})
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']} (got {e.get('input')!r})"
            for e in exc.errors()
        )
        raise InvalidModelInput(f"invalid serving settings: {problems}") from None
    return dict(values)


_PLACEHOLDER: dict[str, Any] = {
    "max_batch_size": 1,
    "max_queue_delay_ms": 0.0,
    "slo_ms": 1.0,
    "max_queue": 1,
    "max_inflight": 1,
    "inline_max_ms": 0.0,
    "runtime": "auto",
    "device": "auto",
    "intra_op_threads": 1,
    "graph_optimization": "all",
}

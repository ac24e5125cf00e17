"""Gateway settings: every field is also an `MLGATE_*` environment variable.

Nothing is read at import; `GatewaySettings()` reads the environment when it is built.
Lists (`MLGATE_SERVE_ALIASES`, `MLGATE_API_KEYS`) are comma-separated.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

__all__ = ["GatewaySettings"]


class GatewaySettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MLGATE_", extra="ignore")

    host: str = "127.0.0.1"
    """`MLGATE_HOST`: the address `mlgate serve` binds."""
    port: int = Field(default=8000, ge=0, le=65535)
    """`MLGATE_PORT`."""
    workers: int | None = Field(default=None, ge=1)
    """`MLGATE_WORKERS`: gateway processes on the port for `mlgate serve` (default: one per
    core this process may run on)."""
    serve_aliases: Annotated[list[str], NoDecode] = ["production"]
    """`MLGATE_SERVE_ALIASES`: versions these aliases point to are served; the first one
    answers requests that name no version."""
    poll_interval_s: float = Field(default=1.0, gt=0)
    """`MLGATE_POLL_INTERVAL_S`: how often alias moves are looked for."""
    load_retry_s: float = Field(default=30.0, ge=0)
    """`MLGATE_LOAD_RETRY_S`: how long a version that failed to load is left alone."""
    drain_timeout_s: float = Field(default=30.0, gt=0)
    """`MLGATE_DRAIN_TIMEOUT_S`: how long a replaced version may finish its requests."""
    admin_token: SecretStr | None = None
    """`MLGATE_ADMIN_TOKEN`: bearer token for /v2/repository/*. Unset: loopback only."""
    api_keys: Annotated[list[SecretStr], NoDecode] = []
    """`MLGATE_API_KEYS`: if set, inference, metadata, /metrics and /dashboard need one of
    these keys (`Authorization: Bearer <key>`, `X-API-Key`, or HTTP Basic's password)."""
    open_metrics: bool = False
    """`MLGATE_OPEN_METRICS`: /metrics answers without a key even when keys are set (a
    Prometheus that scrapes without credentials, on a private network)."""
    open_dashboard: bool = False
    """`MLGATE_OPEN_DASHBOARD`: /dashboard and its data answer without a key."""
    max_body_bytes: int = Field(default=32 * 1024 * 1024, gt=0)
    """`MLGATE_MAX_BODY_BYTES`: larger request bodies get 413 (after decompression too)."""
    max_rows_per_request: int = Field(default=4096, gt=0)
    """`MLGATE_MAX_ROWS_PER_REQUEST`: more rows in one request get 413."""

    max_batch_size: int = Field(default=32, gt=0)
    """`MLGATE_MAX_BATCH_SIZE`: default for versions without a stored serving config."""
    max_queue_delay_ms: float = Field(default=5.0, ge=0)
    """`MLGATE_MAX_QUEUE_DELAY_MS`: default hard cap on waiting for a fuller batch."""
    slo_ms: float = Field(default=250.0, gt=0)
    """`MLGATE_SLO_MS`: default latency target; requests predicted to miss it are shed."""
    loop_lag_shed_ms: float | None = Field(default=None, ge=0)
    """`MLGATE_LOOP_LAG_SHED_MS`: when a request accepted now would wait longer than this in
    the event loop alone (two hops of its smoothed lag), inference gets 503 with
    Retry-After before its body is read (default: 0.75 × the SLO; 0: never)."""
    max_queue: int = Field(default=1024, gt=0)
    """`MLGATE_MAX_QUEUE`: default queue bound, in rows (429 beyond)."""
    max_inflight: int = Field(default=2, gt=0)
    """`MLGATE_MAX_INFLIGHT`: default batches running at once per version."""
    inline_max_ms: float = Field(default=0.1, ge=0, le=10)
    """`MLGATE_INLINE_MAX_MS`: batches predicted to compute faster than this run on the event
    loop itself, because handing them to a worker thread and back costs more (0: never)."""
    runtime: str = "auto"
    """`MLGATE_RUNTIME`: onnx, torchscript, triton, or auto (onnx when it passed the gate)."""
    triton_url: str | None = None
    """`MLGATE_TRITON_URL`: host:port of the Triton server's gRPC endpoint that versions
    served with runtime triton are forwarded to."""
    grpc_port: int | None = Field(default=None, ge=0, le=65535)
    """`MLGATE_GRPC_PORT`: the Open Inference Protocol over gRPC (Triton's
    GRPCInferenceService) on this port; unset: no gRPC (`mlgate serve` defaults to 8001)."""
    device: str = "auto"
    """`MLGATE_DEVICE`: cpu, cuda, or auto (cuda when usable)."""
    intra_op_threads: int = Field(default=1, gt=0)
    """`MLGATE_INTRA_OP_THREADS`: onnxruntime threads per running batch."""
    graph_optimization: str = "all"
    """`MLGATE_GRAPH_OPTIMIZATION`: onnxruntime level: disabled, basic, extended, all."""
    canary_check_s: float = Field(default=10.0, gt=0)
    """`MLGATE_CANARY_CHECK_S`: how often a canary is judged against the alias's version."""
    canary_min_requests: int = Field(default=200, gt=0)
    """`MLGATE_CANARY_MIN_REQUESTS`: answers each side needs before a canary can be rolled
    back on its errors or latency."""
    batch_dir: Path | None = None
    """`MLGATE_BATCH_DIR`: the folder batch jobs (`POST /batch/jobs`) read from and write to;
    every path a job names is inside it. Default: `<home>/batch`."""
    dashboard_interval_s: float = Field(default=5.0, gt=0)
    """`MLGATE_DASHBOARD_INTERVAL_S`: how often /dashboard's time series take a point
    (it keeps the last 720 points: an hour at the default)."""

    @field_validator("serve_aliases", "api_keys", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

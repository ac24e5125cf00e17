"""The inference log's settings: where it writes, how much it keeps, how often it syncs.

`LogSettings` is checked when it is built, so a log never starts with a setting that
would lose rows (a retention shorter than a segment's life, a zero flush interval).
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field
from pathlib import Path

from monitors.log.segments import check_replica

__all__ = ["LogSettings"]


def _default_replica() -> str:
    host = "".join(c if c.isalnum() or c in "._-" else "_" for c in socket.gethostname())
    return f"{host or 'host'}-{os.getpid()}"


@dataclass(frozen=True, slots=True)
class LogSettings:
    directory: Path
    sample_rate: float = 1.0
    max_rows_per_s: float = 1000.0
    flush_interval_s: float = 1.0
    segment_max_bytes: int = 64 * 1024 * 1024
    segment_max_age_s: float = 3600.0
    retention_s: float = 7 * 24 * 3600.0
    max_pending_rows: int = 100_000
    replica: str = field(default_factory=_default_replica)
    recent_ids: int = 200_000
    """Request ids kept for `InferenceLog.recent_ids` (all models; 0: none)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "directory", Path(self.directory))
        check_replica(self.replica)
        positive = {
            "max_rows_per_s": self.max_rows_per_s,
            "flush_interval_s": self.flush_interval_s,
            "segment_max_bytes": self.segment_max_bytes,
            "segment_max_age_s": self.segment_max_age_s,
            "max_pending_rows": self.max_pending_rows,
        }
        for name, value in positive.items():
            if not value > 0:
                raise ValueError(f"{name} must be positive, got {value}")
        if self.recent_ids < 0:
            raise ValueError(f"recent_ids must be >= 0, got {self.recent_ids}")
        if not 0.0 <= self.sample_rate <= 1.0:
            raise ValueError(f"sample_rate must be within [0, 1], got {self.sample_rate}")
        # Retention also expires other replicas' streams by age; a live replica rotates
        # its streams within segment_max_age_s, so a shorter retention could delete one.
        if not self.retention_s > self.segment_max_age_s:
            raise ValueError(
                f"retention_s ({self.retention_s}) must exceed segment_max_age_s "
                f"({self.segment_max_age_s})"
            )

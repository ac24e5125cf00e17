"""Registry settings, each one also an `MLGATE_*` environment variable.

Nothing is read at import: build `RegistrySettings()` when you need it.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["RegistrySettings"]


class RegistrySettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MLGATE_", extra="ignore")

    home: Path = Path(".mlgate")
    """`MLGATE_HOME`: registry database, artifacts, inference log and reports."""

    registry_url: str | None = None
    """`MLGATE_REGISTRY_URL`: any SQLAlchemy URL. Default: `sqlite:///<home>/registry.db`."""

    artifacts_dir: Path | None = None
    """`MLGATE_ARTIFACTS_DIR`: where artifact files live. Default: `<home>/artifacts`."""

    artifacts_url: str | None = None
    """`MLGATE_ARTIFACTS_URL`: a shared artifact store, any fsspec URL (`s3://bucket/path`,
    `file:///shared/artifacts`); the local artifact folder then caches verified copies.
    Default: none, the local folder is the store."""

    reference_max_rows: int = Field(default=10_000, ge=1)
    """`MLGATE_REFERENCE_MAX_ROWS`: rows of training inputs kept as reference data."""

    user: str | None = None
    """`MLGATE_USER`: who registers and moves aliases. Default: `<login>@<hostname>`."""

    sqlite_busy_timeout_s: float = Field(default=60.0, gt=0)
    """`MLGATE_SQLITE_BUSY_TIMEOUT_S`: how long a SQLite writer waits for the lock."""

    def database_url(self) -> str:
        if self.registry_url:
            return self.registry_url
        return f"sqlite:///{(self.home / 'registry.db').resolve()}"

    def artifact_root(self) -> Path:
        return (self.artifacts_dir or self.home / "artifacts").resolve()

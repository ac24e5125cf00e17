"""The drift monitor: windows from the inference log, compared with each version's reference.

A window is tumbling and bounded: the rows logged for a version since the end of its
previous window. No check runs until the window holds `drift_min_rows` rows; a window with
more than `drift_window_rows` rows is cut to a uniform sample of that many (seeded by the
window's bounds, so the report can draw the same sample again). A check therefore costs
the same whatever the traffic: reading at most the rows logged since the last check (the
log's rate cap bounds those) and comparing at most `drift_window_rows` of them.

The window ends `2 × log_flush_interval_s` before now, so rows still in a writer's buffer
(this process's or another replica's) are never skipped: they land in the next window.

Each check is stored (`CheckStore`) with the reference digest, window bounds, row count and
configuration, and with the window's data quality against the reference
(`quality/data_quality.py`: refused rows from the log's counts, out-of-range and unseen
values, constant and missing features). Whether drift matters is not decided here: the
decision policy (`quality/policy.py`, run by `loop.Monitor`) holds it against quality.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from threadpoolctl import ThreadpoolController

from monitors.drift import DriftColumn, DriftConfig, compute_drift, drift_frame, render_report
from monitors.drift.check_store import CheckStore, DriftCheck
from monitors.drift.methods import evidently_stattests
from monitors.log.counts import read_counts
from monitors.log.reader import log_models, log_versions, read_log
from monitors.quality.data_profile import ReferenceProfile, profile_reference
from monitors.quality.data_quality import check_window
from monitors.quality.data_result import DataQualityThresholds
from monitors.quality.policy_store import effective_limits
from monitors.settings import MonitorSettings
from registry.errors import NotFound
from registry.reference import REFERENCE_FILE, read_reference
from registry.store import Registry

if TYPE_CHECKING:  # pandas is imported where a function needs it, not by the gateway
    import pandas as pd

__all__ = ["DriftMonitor", "preload"]

log = logging.getLogger("mlgate.monitors")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class _Reference:
    digest: str
    frame: pd.DataFrame
    columns: dict[str, DriftColumn]
    profile: ReferenceProfile


class DriftMonitor:
    def __init__(
        self,
        registry: Registry,
        settings: MonitorSettings,
        *,
        store: CheckStore | None = None,
        limits: Callable[[str, int], Any] | None = None,
    ) -> None:
        self.registry = registry
        self.settings = settings
        self.store = store or CheckStore(registry.db)
        self._limits = limits
        self._missing: set[tuple[str, int]] = set()
        self.config = DriftConfig(
            method=settings.drift_method,
            threshold=settings.drift_threshold,
            per_feature_method=dict(settings.drift_feature_methods),
            per_feature_threshold=dict(settings.drift_feature_thresholds),
            drift_share=settings.drift_share,
        )
        self._references: dict[tuple[str, int], _Reference] = {}

    # ---------------------------------------------------------------- checks

    def targets(self) -> list[tuple[str, int]]:
        """Every (model, version) with logged rows."""
        folder = self.settings.log_path()
        return [(m, v) for m in log_models(folder) for v in log_versions(folder, m)]

    def try_check(self, model: str, version: int) -> DriftCheck | None:
        """`check`, for a monitoring round: a version without reference data gets none
        (said once in the log), anything else that fails is logged and skipped."""
        try:
            return self.check(model, version)
        except NotFound as exc:
            if (model, version) not in self._missing:
                self._missing.add((model, version))
                log.info("no drift checks for %s:%s: %s", model, version, exc)
        except Exception:
            log.exception("drift check of %s:%s failed", model, version)
        return None

    def check(self, model: str, version: int, *, force: bool = False) -> DriftCheck | None:
        """Run a check on the window since the previous one, if it holds enough rows.

        `force` checks whatever the window holds (at least one row): for `mlgate drift`.
        """
        previous = self.store.latest(model, version)
        start = previous.window_end if previous is not None else _EPOCH
        end = datetime.now(UTC) - timedelta(seconds=2 * self.settings.log_flush_interval_s)
        if end <= start:
            return None
        window = read_log(self.settings.log_path(), model, version, start=start, end=end)
        total = window.rows
        if total == 0 or (total < self.settings.drift_min_rows and not force):
            return None
        reference = self._reference(model, version)
        current = self._current(window, start, end)
        config = self._config_for(reference.columns)
        preload()  # the first check of a process pays Evidently's import here, not below
        started = time.perf_counter()
        # NOTE: scipy's statistics would start one BLAS thread per core, spinning for no gain
        # on these sizes and taking CPU from serving in the same process.
        with _blas().limit(limits=1, user_api="blas"):
            result = compute_drift(reference.frame, current, reference.columns, config)
        counts = read_counts(self.settings.log_path(), model, version, start, end)
        quality = check_window(
            reference.profile,
            current,
            answered_rows=counts.answered_rows,
            refused_rows=counts.refused_rows,
            thresholds=self._data_thresholds(model, version),
        )
        log.info(
            "drift check %s:%s on %d rows (of %d) in %.3f s: share %.2f",
            model,
            version,
            len(current),
            total,
            time.perf_counter() - started,
            result.share,
        )
        stored = self.store.add(
            DriftCheck(
                model=model,
                version=version,
                checked_at=datetime.now(UTC),
                window_start=start,
                window_end=end,
                rows=len(current),
                reference_digest=reference.digest,
                share=result.share,
                detected=result.dataset_drift,
                config={
                    "drift": config.to_json(),
                    "window_rows": self.settings.drift_window_rows,
                    "min_rows": self.settings.drift_min_rows,
                    "rows_logged": total,
                },
                result={**result.to_json(), "data_quality": quality.to_json()},
            )
        )
        return stored

    def _data_thresholds(self, model: str, version: int) -> DataQualityThresholds:
        if self._limits is None:
            return effective_limits(self.settings, {}).data
        found: DataQualityThresholds = self._limits(model, version).data
        return found

    def _config_for(self, columns: dict[str, DriftColumn]) -> DriftConfig:
        """The settings, with per-feature overrides kept only for this model's columns.

        The MLGATE_DRIFT_FEATURE_* settings are shared by every model a gateway serves;
        each check keeps the overrides that name its own columns.
        """
        base = self.config
        return replace(
            base,
            per_feature_method={c: m for c, m in base.per_feature_method.items() if c in columns},
            per_feature_threshold={
                c: t for c, t in base.per_feature_threshold.items() if c in columns
            },
        )

    def _current(self, window: Any, start: datetime, end: datetime) -> pd.DataFrame:
        rows = window.rows
        limit = self.settings.drift_window_rows
        if rows > limit:  # the sample's rows only are rebuilt into tensors
            keep = np.sort(_window_rng(start, end).choice(rows, size=limit, replace=False))
            window = window.sample(keep)
        inputs, outputs = window.tensors()
        frame, _ = drift_frame(inputs, outputs, window.layout, max_columns=self.config.max_columns)
        return frame

    def _reference(self, model: str, version: int) -> _Reference:
        key = (model, version)
        cached = self._references.get(key)
        if cached is not None:
            return cached
        record = self.registry.get(f"{model}:{version}")
        artifact = record.artifact("reference")
        if artifact is None:
            raise NotFound(
                f"{model}:{version} has no reference data; register it with reference= to "
                "monitor drift"
            )
        stored = read_reference(self.registry.open_artifact(artifact) / REFERENCE_FILE)
        frame, columns = drift_frame(
            stored.inputs, stored.outputs, stored.layout, max_columns=self.config.max_columns
        )
        reference = _Reference(artifact.digest, frame, columns, profile_reference(frame, columns))
        self._references[key] = reference
        return reference

    # ---------------------------------------------------------------- reports

    def report(self, check: DriftCheck) -> Path:
        """The Evidently HTML report of a stored check, rendered once and then kept."""
        folder = self.settings.reports_path() / "drift" / check.model
        path = folder / f"v{check.version}-check{check.id}.html"
        if path.exists():
            return path
        window = read_log(
            self.settings.log_path(),
            check.model,
            check.version,
            start=check.window_start,
            end=check.window_end,
        )
        if window.rows == 0:
            raise NotFound(
                f"the rows of drift check {check.id} are no longer in the inference log "
                "(retention); the check's JSON result is still stored"
            )
        reference = self._reference(check.model, check.version)
        current = self._current(window, check.window_start, check.window_end)
        config = DriftConfig.from_json(check.config["drift"])  # the check's, not today's
        html = render_report(reference.frame, current, reference.columns, config)
        folder.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".tmp")
        partial.write_text(html, encoding="utf-8")
        partial.replace(path)
        return path


def _window_rng(start: datetime, end: datetime) -> np.random.Generator:
    seed = hashlib.sha256(f"{start.isoformat()}|{end.isoformat()}".encode()).digest()
    return np.random.default_rng(int.from_bytes(seed[:8], "big"))


def preload() -> None:
    """Pay the monitor's one-off costs now: importing Evidently (seconds, holding the GIL)
    and finding the BLAS libraries. A gateway calls it before it reports ready."""
    evidently_stattests()
    _blas()


@functools.cache
def _blas() -> ThreadpoolController:
    """Found once: finding the loaded BLAS libraries walks every shared library (~20 ms)."""
    return ThreadpoolController()

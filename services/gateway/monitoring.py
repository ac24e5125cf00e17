"""Monitoring inside the gateway: the inference log, the monitoring loop, what they publish.

The request path only calls `InferenceLog.record` (a sampling decision, arrays staged).
Everything else runs off it: the log's writer thread, and a loop that every
`drift_interval_s` has a monitoring round run (`drift_monitor=inprocess`, the default:
drift and data quality, quality from labels and estimates, the decision policy;
`monitors/loop.py`) and then publishes the latest stored drift check and quality
evaluation of each served version as gauges. The round itself, like a drift report's
rendering, runs in the gateway's monitor process (`processes/monitor.py`: a child at the
lowest CPU priority), never on the serving process's GIL; tasks it opened are announced
from here. With `drift_monitor=external` the loop only publishes what one `mlgate monitor`
process stored; with `off` there is no loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from pathlib import Path
from typing import TYPE_CHECKING, Any

from monitors.drift.check_store import DriftCheck
from monitors.drift.result import DriftResult
from monitors.log.inference_log import InferenceLog, LogSettings
from monitors.loop import Monitor, Round
from monitors.metrics.collectors import GatewayMetrics
from monitors.quality.agreement import compare_versions
from monitors.quality.store import QualityCheck
from monitors.settings import MonitorSettings
from monitors.tasks.store import OpenOutcome, Task
from monitors.tasks.webhook import TaskNotifier
from registry.errors import NotFound
from registry.store import Registry
from services.gateway.manager import ModelManager
from services.gateway.processes.monitor import MonitorProcess

if TYPE_CHECKING:
    from services.retraining.retrainer import Retrainer

__all__ = ["GatewayMonitoring"]

log = logging.getLogger("mlgate.gateway")
# A p-value of exactly 0 is infinitely past its threshold; a finite cap keeps charts usable.
SEVERITY_CAP = 1000.0


class GatewayMonitoring:
    def __init__(
        self,
        registry: Registry,
        manager: ModelManager,
        metrics: GatewayMetrics,
        settings: MonitorSettings,
        *,
        port: int,
    ) -> None:
        self.registry = registry
        self.manager = manager
        self.metrics = metrics
        self.settings = settings
        url = settings.task_webhook_url
        self.notifier = TaskNotifier(url) if url else None
        self.monitor = Monitor(registry, settings)  # its stores; rounds run in `rounds`
        self.rounds = (
            MonitorProcess(registry.settings, settings)
            if settings.drift_monitor == "inprocess"
            else None
        )
        self.store = self.monitor.drift.store
        self.quality_store = self.monitor.store
        self.tasks = self.monitor.tasks
        replica = settings.log_replica or f"{socket.gethostname()}-{port}"
        self.log = InferenceLog(log_settings(settings, replica))
        self.retrainer: Retrainer | None = None
        if settings.retrainer == "inprocess":
            # Imported only here: the retrainer brings torch and the exporters (seconds of
            # start-up) that a gateway without it never needs.
            from services.retraining.retrainer import Retrainer

            self.retrainer = Retrainer(
                registry, settings, worker=f"{replica}:retrain", announce=self.announce
            )
        self._task: asyncio.Task[None] | None = None
        self._retraining: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await asyncio.to_thread(self.log.start)
        if self.settings.drift_monitor != "off":
            self._task = asyncio.get_running_loop().create_task(self._loop())
        if self.retrainer is not None:
            self._retraining = asyncio.get_running_loop().create_task(self._retrain_loop())

    async def stop(self) -> None:
        for task in (self._task, self._retraining):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self.rounds is not None:
            await asyncio.to_thread(self.rounds.close, 10.0)
        await asyncio.to_thread(self.log.close, 10.0)
        if self.notifier is not None:
            await asyncio.to_thread(self.notifier.close, 10.0)

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.drift_interval_s)
            try:
                await asyncio.to_thread(self.tick)
            except Exception:
                log.exception("drift monitoring failed; trying again next interval")

    async def _retrain_loop(self) -> None:
        """An in-process retraining worker: a task at a time, in a worker thread.

        NOTE: training shares this process's cores and GIL with serving; it is the
        one-machine default of `mlgate demo`. With real traffic run `mlgate retrain
        --worker` elsewhere instead (MLGATE_RETRAINER=off).
        """
        assert self.retrainer is not None
        while True:
            try:
                done = await asyncio.to_thread(self.retrainer.run_next)
            except Exception:
                log.exception("the in-process retrainer failed; trying again")
                done = None
            if done is None:
                await asyncio.sleep(self.settings.retrain_interval_s)

    def tick(self) -> list[Round]:
        """One round over the served versions (in the monitor process, with `inprocess`),
        then publish their latest stored results. Blocking: call it from a thread."""
        targets = sorted({(s.name, s.version) for s in self.manager.all_served()})
        rounds: list[Round] = []
        if self.rounds is not None:
            rounds = self.rounds.call("rounds", targets)
            for done in rounds:
                if done.task is not None and done.task.action != "refused":
                    self.announce(done.task)
        for model, version in targets:
            latest = self.store.latest(model, version)
            if latest is not None:
                self.publish(latest)
            quality = self.quality_store.latest(model, version)
            if quality is not None:
                self.publish_quality(quality)
        self.metrics.labels.forget({(m, str(v)) for m, v in targets})
        return rounds

    def publish_quality(self, check: QualityCheck) -> None:
        self.metrics.quality.set_quality(check.model, check.version, check.to_json())
        self.metrics.labels.update(check.model, check.version, check.result.get("labels") or {})

    def publish(self, check: DriftCheck) -> None:
        result = DriftResult.from_json(check.result)
        shown = result.top_features(self.settings.drift_metric_features)
        shown += [f for f in result.features if f.role == "prediction" and f not in shown]
        self.metrics.set_drift(
            check.model,
            check.version,
            scores={f.column: min(f.severity, SEVERITY_CAP) for f in shown if f.computed},
            share=check.share,
            detected=check.detected,
            consecutive=check.consecutive,
            checked_at=check.checked_at.timestamp(),
        )
        quality = check.result.get("data_quality")
        if quality is not None:
            self.metrics.quality.set_data_quality(check.model, check.version, quality)

    def announce(self, what: OpenOutcome | Task) -> None:
        """Tell MLGATE_TASK_WEBHOOK_URL (if set) of a task opened or changed; never blocks."""
        if self.notifier is None:
            return
        if isinstance(what, Task):
            self.notifier.notify(what, "task.updated")
        elif what.task is not None:
            event = "task.opened" if what.action == "created" else "task.updated"
            self.notifier.notify(what.task, event)

    # ---------------------------------------------------------------- what routes ask

    def latest(self, model: str, version: int | None) -> DriftCheck:
        self.registry.get(model if version is None else f"{model}:{version}")  # 404s
        check = self.store.latest(model, version)
        if check is None:
            label = model if version is None else f"{model}:{version}"
            raise NotFound(
                f"no drift check has run for {label} yet: one runs every "
                f"{self.settings.drift_interval_s:g} s once {self.settings.drift_min_rows} rows "
                "were logged since the previous one"
            )
        return check

    def check(self, model: str, version: int | None, check_id: int | None) -> DriftCheck:
        """A stored check by id, or the latest one."""
        if check_id is None:
            return self.latest(model, version)
        check = self.store.get(check_id)
        if check is None or check.model != model:
            raise NotFound(f"model {model} has no drift check {check_id}")
        return check

    def report(self, model: str, version: int | None, check_id: int | None) -> Path:
        """The check's HTML report, rendered in the monitor process when there is one."""
        check = self.check(model, version, check_id)
        if self.rounds is None:
            return self.monitor.drift.report(check)
        path: Path = self.rounds.call("report", check)
        return path

    def quality(self, model: str, version: int | None, history: int) -> dict[str, Any]:
        """The latest quality evaluation (and `history` older ones, newest first)."""
        self.registry.get(model if version is None else f"{model}:{version}")  # 404s
        found = self.quality_store.history(model, version, limit=max(1, history + 1))
        if not found:
            label = model if version is None else f"{model}:{version}"
            raise NotFound(
                f"no quality evaluation has run for {label} yet: one runs every "
                f"{self.settings.drift_interval_s:g} s for each served version"
            )
        latest = found[0].to_json()
        latest["history"] = [_brief(c) for c in found[1:]]
        return latest

    def shadow(self, model: str, last: int) -> dict[str, Any]:
        """The shadow of the first served alias that has one, against the version that
        alias points to (monitors/quality/agreement.py)."""
        aliases = self.manager.settings.serve_aliases
        rules = {s.alias: s for s in self.registry.shadows.of(model)}
        rule = next((rules[a] for a in aliases if a in rules), None)
        if rule is None:
            raise NotFound(
                f"model {model} has no shadow on the aliases this gateway serves "
                f"({', '.join(aliases)}); set one with `mlgate shadow`"
            )
        serving = self.registry.get(f"{model}@{rule.alias}").version
        report = compare_versions(
            self.registry, self.log.settings.directory, model, serving, rule.version, last=last
        )
        return {"shadow": rule.to_json(), "serving_version": serving, **report}


def _brief(check: QualityCheck) -> dict[str, Any]:
    """An older evaluation, without its buckets: the rolling figures over time."""
    result = check.result
    return {
        "id": check.id,
        "checked_at": check.checked_at.isoformat(),
        "status": check.status,
        "metric": check.metric,
        "labelled_rows": check.labelled_rows,
        "realised": (result.get("realised") or {}).get("figure"),
        "estimated": (result.get("estimated") or {}).get("figure"),
        "decision": {k: (result.get("decision") or {}).get(k) for k in ("outcome", "rule")},
    }


def log_settings(settings: MonitorSettings, replica: str) -> LogSettings:
    return LogSettings(
        directory=settings.log_path(),
        sample_rate=settings.log_sample_rate,
        max_rows_per_s=settings.log_max_rows_per_s,
        flush_interval_s=settings.log_flush_interval_s,
        segment_max_bytes=settings.log_segment_max_bytes,
        segment_max_age_s=settings.log_segment_max_age_s,
        retention_s=settings.log_retention_s,
        replica=replica,
    )

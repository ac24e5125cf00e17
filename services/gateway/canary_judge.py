"""Rolling a canary back when it does worse than the version its alias points to.

Every `MLGATE_CANARY_CHECK_S` (10 s) the gateway compares, for each model it splits, what
the canary and the alias's version answered here since it first judged the canary (answers
by status code, the latency histogram) and their latest quality evaluations. It rolls the
canary back, for every replica (the registry's record ends `rolled_back`, with the
evidence), on the first of these rules that holds once each has answered at least
`MLGATE_CANARY_MIN_REQUESTS` (200) requests:

- errors: the canary's share of failed answers (5xx, and 422: the model raised on the
  input) is above the other's, their 95 % Wilson intervals apart (the canary's lower bound
  above the other's upper bound);
- latency: the canary's p99 is above 1.5 × the other's p99 plus 5 ms;
- quality: both have a realised quality figure (from labels), and the canary's interval
  lies wholly on the worse side of the other's.

Fewer requests is no verdict: the canary keeps running (no data is never a failure). A
person completes it (`mlgate canary --promote`: the alias moves to it) or stops it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from monitors.metrics.collectors import GatewayMetrics
from monitors.metrics.reading import (
    Reading,
    bucket_deltas,
    counter_deltas,
    histogram_quantile,
    sum_buckets,
)
from monitors.quality.agreement import slower, worse_quality
from monitors.quality.store import QualityStore
from registry.canaries import Canary
from registry.errors import NotFound
from registry.quality.intervals import wilson
from registry.store import Registry
from services.gateway.manager import ModelManager

__all__ = ["CanaryJudge"]

log = logging.getLogger("mlgate.gateway")
FAILED = "422"  # the model raised on the request's input: the alias's version did not


class CanaryJudge:
    def __init__(
        self,
        registry: Registry,
        manager: ModelManager,
        metrics: GatewayMetrics,
        *,
        interval_s: float,
        min_requests: int,
    ) -> None:
        self.registry = registry
        self.manager = manager
        self.metrics = metrics
        self.interval_s = interval_s
        self.min_requests = min_requests
        self._since: dict[int, Reading] = {}  # canary id → the reading when first seen
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._loop())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                await asyncio.to_thread(self.check)
            except Exception:
                log.exception("judging canaries failed; trying again next interval")

    def check(self) -> list[Canary]:
        """Judge every canary split here; the ones rolled back."""
        now = Reading.collect(self.metrics.registry)
        rolled: list[Canary] = []
        for name, canary in self.manager.traffic.canaries.items():
            base = self._since.setdefault(canary.id, now)
            serving = self.manager.routed_version(name)
            if serving is None or self.manager.traffic.canary_for(name) is None:
                continue
            verdict = self._verdict(now, base, name, serving, canary.version)
            if verdict is None:
                continue
            reason, evidence = verdict
            try:
                ended = self.registry.canaries.end(
                    name,
                    canary.alias,
                    "rolled_back",
                    reason=reason,
                    evidence=evidence,
                    canary_id=canary.id,
                )
            except NotFound:  # already ended (another replica, a person)
                continue
            log.warning("canary %s:%s rolled back: %s", name, canary.version, reason)
            rolled.append(ended)
        return rolled

    def _verdict(
        self, now: Reading, base: Reading, name: str, serving: int, canary: int
    ) -> tuple[str, dict[str, Any]] | None:
        answers = counter_deltas(now, base, "requests")
        latency = bucket_deltas(now, base, "latency")
        figures = {v: _side(answers, latency, name, str(v)) for v in (serving, canary)}
        evidence: dict[str, Any] = {
            "serving": serving,
            "canary": canary,
            **{
                f"v{v}": {k: f[k] for k in ("requests", "errors", "p99_s")}
                for v, f in figures.items()
            },
        }
        ours, theirs = figures[canary], figures[serving]
        if min(ours["requests"], theirs["requests"]) < self.min_requests:
            return None
        if ours["error_lower"] > theirs["error_upper"]:
            return (
                f"errors: {ours['errors']}/{ours['requests']} 5xx against "
                f"{theirs['errors']}/{theirs['requests']} for v{serving}",
                {**evidence, "rule": "errors"},
            )
        late = slower(ours["p99_s"], theirs["p99_s"])
        if late is not None:
            return f"{late} for v{serving}", {**evidence, "rule": "latency"}
        worse = self._quality_worse(name, serving, canary)
        if worse is not None:
            return worse, {**evidence, "rule": "quality"}
        return None

    def _quality_worse(self, name: str, serving: int, canary: int) -> str | None:
        store = QualityStore(self.registry.db)
        theirs, ours = (store.latest(name, v) for v in (serving, canary))
        why = worse_quality(
            None if ours is None else ours.result.get("realised"),
            None if theirs is None else theirs.result.get("realised"),
        )
        return None if why is None else f"{why} for v{serving}"


def _side(
    answers: dict[tuple[str, ...], float],
    latency: dict[tuple[str, ...], dict[float, float]],
    model: str,
    version: str,
) -> dict[str, Any]:
    mine = {k: n for k, n in answers.items() if k[0] == model and k[1] == version}
    requests = int(sum(mine.values()))
    errors = int(sum(n for k, n in mine.items() if k[3].startswith("5") or k[3] == FAILED))
    low, high = wilson(errors, requests, 0.95) if requests else (0.0, 1.0)
    buckets = sum_buckets(b for k, b in latency.items() if k[0] == model and k[1] == version)
    return {
        "requests": requests,
        "errors": errors,
        "error_lower": low,
        "error_upper": high,
        "p99_s": histogram_quantile(0.99, buckets) if buckets else None,
    }

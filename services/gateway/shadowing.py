"""Mirroring requests to a shadow version, off the request path.

When a request routed by a model's name (no version asked for) is answered by the version
an alias points to, and that alias has a shadow (registry/shadows.py), the data plane asks
`pick` whether to mirror it: a `rate` share of requests, drawn at random. The caller's
answer is computed first and never waits for the shadow: `mirror` starts a task on the
event loop after the answer's outputs exist, and the request id both answers are logged
under is the caller's, or one made up for the pair. Only the rows the inference log took of
the caller's answer (its sampling and cap) are mirrored, and the shadow's answer to them is
logged whole, so that every mirrored row has its pair.

Live traffic comes first. A mirrored request is shed, never queued behind live work, when
the answering version has rows waiting or the shadow's own batcher is busy (rows waiting,
or every execution slot taken); it then waits at the batcher's `BACKGROUND` level, and a
refusal there sheds it too. A shadow that fails to load, refuses the input or raises is
counted (`mlgate_shadow_requests_total{outcome="error"}`) and changes nothing for callers.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
import uuid
from collections.abc import Callable

from monitors.log.inference_log import InferenceLog
from monitors.metrics.collectors import GatewayMetrics
from services.gateway.batching.batcher import BACKGROUND
from services.gateway.errors import Refusal
from services.gateway.manager import ModelManager
from services.gateway.served import Served
from services.gateway.validation import validate_inputs
from services.runtimes.base import Tensors

__all__ = ["Shadowing"]

log = logging.getLogger("mlgate.gateway")


class Shadowing:
    def __init__(
        self,
        manager: ModelManager,
        inference_log: InferenceLog | None,
        metrics: GatewayMetrics | None,
        draw: Callable[[], float] = random.random,
    ) -> None:
        self.manager = manager
        self.log = inference_log
        self.metrics = metrics
        self._draw = draw
        self._tasks: set[asyncio.Task[None]] = set()

    def log_answer(
        self,
        name: str,
        served: Served,
        explicit: bool,
        request_id: str | None,
        inputs: Tensors,
        outputs: Tensors,
        seconds: float,
    ) -> None:
        """Log a caller's answer; mirror the rows the log took to a shadow when one is
        picked, under one request id (without a log there is nothing to compare: no mirror)."""
        if self.log is None:
            return
        shadow = self.pick(name, served, explicit)
        if shadow is not None:
            request_id = self.pair_id(request_id)
        taken = self.log.record(
            name, served.version, served.signature, request_id, inputs, outputs, seconds
        )
        if shadow is not None and taken:
            assert request_id is not None
            self.mirror(name, shadow, {n: a[:taken] for n, a in inputs.items()}, request_id)

    def pick(self, name: str, answering: Served, explicit: bool) -> int | None:
        """The shadow version to mirror this request to, or None."""
        if explicit:
            return None
        found = self.manager.traffic.shadow_for(name, answering.version)
        if found is None:
            return None
        shadow, rate = found
        if self._draw() >= rate:
            return None
        if answering.batcher.queued_rows:  # live requests are waiting: they come first
            self._count(name, shadow, "shed")
            return None
        return shadow

    def mirror(self, name: str, shadow: int, inputs: Tensors, request_id: str) -> None:
        task = asyncio.get_running_loop().create_task(self._run(name, shadow, inputs, request_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @staticmethod
    def pair_id(request_id: str | None) -> str:
        """The id both answers are logged under: the caller's, or a new one."""
        return request_id if request_id is not None else uuid.uuid4().hex

    async def drained(self) -> None:
        """Wait for the mirrored requests in flight (tests; shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def _run(self, name: str, shadow: int, inputs: Tensors, request_id: str) -> None:
        started = time.perf_counter()
        try:
            with self.manager.acquire(name, shadow) as served:
                batcher = served.batcher
                if batcher.queued_rows or batcher.inflight >= batcher.settings.max_inflight:
                    self._count(name, shadow, "shed")
                    return
                checked = validate_inputs(
                    inputs,
                    served.signature,
                    max_rows=len(next(iter(inputs.values()))),
                    allow_non_finite=served.deployment.allow_non_finite,
                )
                outputs = await batcher.submit(checked, priority=BACKGROUND)
                seconds = time.perf_counter() - started
                if self.log is not None:
                    self.log.record(
                        name,
                        shadow,
                        served.signature,
                        request_id,
                        checked,
                        outputs,
                        seconds,
                        sample=False,  # the rows the caller's answer was logged for, all of them
                    )
        except Refusal:
            self._count(name, shadow, "shed")
            return
        except Exception as exc:  # noqa: BLE001 - a shadow's failure is only counted
            log.debug("shadow %s:%s failed: %s", name, shadow, exc)
            self._count(name, shadow, "error")
            return
        self._count(name, shadow, "ok")
        if self.metrics is not None:
            self.metrics.shadow_duration.labels(name, str(shadow)).observe(seconds)

    def _count(self, name: str, shadow: int, outcome: str) -> None:
        if self.metrics is not None:
            self.metrics.shadow_requests.labels(name, str(shadow), outcome).inc()

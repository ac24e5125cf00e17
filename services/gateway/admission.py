"""Process-level admission: refuse inference, before its body is read, only when the
process itself is too far behind for the request to meet the SLO.

A request passes through the event loop at least twice before it is answered: when its
handler starts (after the loop's other ready work) and when the batch that holds it
completes and the handler resumes to write the answer. A timer that asks to wake every
`interval_s` measures how late it wakes; that lateness is how long any ready callback
waits for the loop. `LoopLag` counts the loop behind only when two probes in a row woke
late, so one stall (a garbage collection) refuses nothing, while a loop that stays behind
does.

`Admission.refusal()` is the one question the transports ask before any work: with the
loop `lag` behind, a request accepted now spends about two lags in the loop alone; if that
already exceeds the front's share of the SLO (`threshold_s`, default 0.4 × SLO, leaving
the rest for the batcher's queue and the compute), it cannot meet the SLO, and it is
refused with 503 and a Retry-After computed from how long the loop needs to catch up
(jittered over a second, so refused clients do not come back in one wave). Below that,
everything is admitted: a request that would miss the SLO in its model's queue is judged
there (the batcher, from the queue ahead of it, the cost model and the time this request
already spent before reaching it), and only then refused.

NOTE: the check runs in the ASGI app before routing (`asgi.GatewayApp`), so a refusal
costs a few microseconds of Python beyond what uvicorn spends parsing the request; the
body is never read or decoded. docs/benchmarks.md reports the CPU of a refusal against a
success.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

__all__ = ["Admission", "LoopLag"]

# Two hops through the loop: the handler's start, and its resumption after the batch.
LOOP_HOPS = 2


class LoopLag:
    """How late the event loop runs: the latest probe (`lag_s`), and `recent_s`, the lesser
    of the last two: the loop is behind only if two probes in a row woke late. One stall (a
    model load, a full garbage collection) makes one late probe and refuses nothing."""

    def __init__(
        self,
        *,
        interval_s: float = 0.005,
        report: Callable[[float], None] | None = None,
    ) -> None:
        self.interval_s = interval_s
        self.lag_s = 0.0
        self._previous_s = 0.0
        self._report = report
        self._task: asyncio.Task[None] | None = None

    @property
    def recent_s(self) -> float:
        return min(self.lag_s, self._previous_s)

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._watch(), name="mlgate-loop-lag")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self.lag_s = self._previous_s = 0.0

    def observe(self, lag_s: float) -> None:
        self._previous_s, self.lag_s = self.lag_s, lag_s

    async def _watch(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            due = loop.time() + self.interval_s
            await asyncio.sleep(self.interval_s)
            lag_s = max(0.0, loop.time() - due)
            self.observe(lag_s)
            if self._report is not None:
                self._report(lag_s)


class Admission:
    """`threshold_s`: the loop lag (smoothed) past which inference is refused at the door;
    0 turns the door off (the batcher still refuses what would miss the SLO)."""

    def __init__(self, threshold_s: float, *, lag: LoopLag | None = None) -> None:
        self.threshold_s = threshold_s
        self.lag = lag or LoopLag()

    @property
    def enabled(self) -> bool:
        return self.threshold_s > 0

    async def start(self) -> None:
        if self.enabled:
            await self.lag.start()

    async def stop(self) -> None:
        await self.lag.stop()

    def refusal(self) -> str | None:
        """None to admit; else the message of the 503 (see `drain_s` for Retry-After)."""
        behind = self.lag.recent_s
        if self.threshold_s <= 0 or behind * LOOP_HOPS <= self.threshold_s:
            return None
        return (
            f"the gateway is overloaded: its event loop is {behind * 1000:.0f} ms behind, so a "
            f"request accepted now would spend about {behind * LOOP_HOPS * 1000:.0f} ms "
            f"waiting for it alone (over the {self.threshold_s * 1000:.0f} ms allowed); "
            "retry later"
        )

    def drain_s(self) -> float:
        """How long the loop needs to catch up: about its current lag."""
        return self.lag.recent_s

    def return_hop_s(self) -> float:
        """The wait a request admitted now will have when its answer is ready."""
        return self.lag.recent_s if self.enabled else 0.0

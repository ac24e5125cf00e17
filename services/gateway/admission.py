"""Admission by event-loop lag: shed new requests while the gateway's own loop is behind.

The batcher sheds work that would miss the SLO in its queue, but when the model is cheap
the queue stays short and the event loop itself is the bottleneck: requests wait, already
read, behind the loop's other work, where no queue bound sees them, and under a fixed
arrival rate above capacity their latency grows without limit. A timer that asks to wake
every `interval_s` measures how late it wakes: that lateness is how long any ready
callback waits for the loop. After `late_probes` wake-ups in a row past `threshold_s` the
gateway is overloaded and answers new inference requests 503 at once (cheaply: the body
is not decoded) until a wake-up comes back under half the threshold. One late wake-up
alone is a stall (a model load, a garbage collection), not overload: it sheds nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

__all__ = ["LoopLag"]


class LoopLag:
    def __init__(
        self,
        threshold_s: float,
        *,
        interval_s: float = 0.005,
        late_probes: int = 2,
        report: Callable[[float], None] | None = None,
    ) -> None:
        self.threshold_s = threshold_s
        self.interval_s = interval_s
        self.late_probes = late_probes
        self._late = 0
        self.lag_s = 0.0
        self.overloaded = False
        self._report = report
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if self.threshold_s > 0 and self._task is None:
            self._task = asyncio.create_task(self._watch(), name="mlgate-loop-lag")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self.overloaded = False

    def observe(self, lag_s: float) -> None:
        """One wake-up's lateness: enough late ones in a row set overloaded; one under half
        the threshold clears it."""
        self.lag_s = lag_s
        if lag_s > self.threshold_s:
            self._late += 1
            if self._late >= self.late_probes:
                self.overloaded = True
            return
        self._late = 0
        if lag_s < self.threshold_s / 2:
            self.overloaded = False

    async def _watch(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            due = loop.time() + self.interval_s
            await asyncio.sleep(self.interval_s)
            lag_s = max(0.0, loop.time() - due)
            self.observe(lag_s)
            if self._report is not None:
                self._report(lag_s)

"""Process-level admission: refuse inference, before its body is read, only when the
process itself is too far behind for the request to meet the SLO.

A request passes through the event loop at least twice before it is answered: when its
handler starts (after the loop's other ready work) and when the batch that holds it
completes and the handler resumes to write the answer. A timer that asks to wake every
`interval_s` measures how late it wakes; that lateness is how long any ready callback
waits for the loop. `LoopLag` counts the loop behind only when two probes in a row woke
late, so one stall (a garbage collection) refuses nothing, while a loop that stays behind
does.

`Admission.refusal()` is the one question the transports ask before any work: how long
would a request accepted now wait for the event loop alone? Two predictions: two hops of
the loop's lag, and the work ahead of it (the requests in flight in this process × the
loop's measured CPU per answered request). If either exceeds the front's share of the SLO
(`threshold_s`, default 0.75 × SLO, leaving the rest for the batcher's queue and the
compute), the request cannot meet the SLO and is refused with 503 and a Retry-After
computed from how long the loop needs to catch up (jittered over a second, so refused
clients do not come back in one wave). Below that, everything is admitted: a request that
would miss the SLO in its model's queue is judged there (the batcher, from the queue ahead
of it, the cost model and the time this request already spent before reaching it), and
only then refused.

NOTE: the check runs in the endpoint before the body is read, so a refusal costs a few
microseconds of Python beyond what uvicorn spends parsing the request and starting its
task; the body is never read or decoded. docs/benchmarks.md reports the CPU of a refusal against a
success.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

__all__ = ["Admission", "LoopCost", "LoopLag"]

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
        self.tick: Callable[[], None] | None = None  # called on the loop after each probe
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
            if self.tick is not None:
                self.tick()


class LoopCost:
    """The event loop's CPU per answered request, measured on the loop thread.

    Every `window_probes` probes: the loop thread's CPU time (`time.thread_time`: parsing,
    decoding, batching, inline batches, answering) over the requests answered since. A
    window needs `min_answers` answers, and one in which refusals were over a tenth of the
    answers is skipped: refusals cost the loop too, and would make an answer look dearer.
    Smoothed with weight `smoothing`.
    """

    def __init__(
        self,
        *,
        window_probes: int = 20,
        min_answers: int = 20,
        smoothing: float = 0.3,
        cpu: Callable[[], float] = time.thread_time,
    ) -> None:
        self._clock = cpu
        self.window_probes = window_probes
        self.min_answers = min_answers
        self.smoothing = smoothing
        self.per_answer_s = 0.0
        self.answered = 0
        self.refused = 0
        self._probes = 0
        self._cpu: float | None = None
        self._window_answered = 0
        self._window_refused = 0

    def tick(self) -> None:
        self._probes += 1
        if self._probes % self.window_probes:
            return
        cpu = self._clock()
        answered = self.answered - self._window_answered
        refused = self.refused - self._window_refused
        if self._cpu is not None and answered >= self.min_answers and refused * 10 <= answered:
            sample = (cpu - self._cpu) / answered
            if self.per_answer_s == 0.0:
                self.per_answer_s = sample
            else:
                self.per_answer_s += self.smoothing * (sample - self.per_answer_s)
        self._cpu = cpu
        self._window_answered, self._window_refused = self.answered, self.refused


class Admission:
    """`threshold_s`: how long a request accepted now may expect to wait for the event loop
    before it is refused at the door; 0 turns the door off (the batcher still refuses what
    would miss the SLO).

    Two predictions of that wait, either of which closes the door:

    - the loop's lag: two hops of the lesser of the last two probes' lateness;
    - the work ahead: the inference requests in flight in this process (`inflight`, counted
      by `enter`/`leave`) × the loop's CPU per answered request (`LoopCost`). The lag alone
      misses a backlog that arrived at once (a thousand connections each sending one
      request): the loop is then not late, only full.
    """

    def __init__(
        self, threshold_s: float, *, lag: LoopLag | None = None, cost: LoopCost | None = None
    ) -> None:
        self.threshold_s = threshold_s
        self.lag = lag or LoopLag()
        self.cost = cost or LoopCost()
        self.lag.tick = self.cost.tick
        self.inflight = 0

    @property
    def enabled(self) -> bool:
        return self.threshold_s > 0

    async def start(self) -> None:
        if self.enabled:
            await self.lag.start()

    async def stop(self) -> None:
        await self.lag.stop()

    def enter(self) -> None:
        """A request was admitted; `leave` when it is answered, whatever the answer."""
        self.inflight += 1

    def leave(self) -> None:
        self.inflight -= 1
        self.cost.answered += 1

    def ahead_s(self) -> float:
        """The loop's work ahead of a request accepted now."""
        return self.inflight * self.cost.per_answer_s

    def refusal(self) -> str | None:
        """None to admit; else the message of the 503 (see `drain_s` for Retry-After)."""
        if self.threshold_s <= 0:
            return None
        behind = self.lag.recent_s
        if behind * LOOP_HOPS > self.threshold_s:
            why = (
                f"its event loop is {behind * 1000:.0f} ms behind, so a request accepted now "
                f"would spend about {behind * LOOP_HOPS * 1000:.0f} ms waiting for it alone"
            )
        elif self.ahead_s() > self.threshold_s:
            why = (
                f"{self.inflight} requests are in flight at about "
                f"{self.cost.per_answer_s * 1e6:.0f} µs of its event loop each, so a request "
                f"accepted now would wait about {self.ahead_s() * 1000:.0f} ms for it alone"
            )
        else:
            return None
        self.cost.refused += 1
        return (
            f"the gateway is overloaded: {why} (over the {self.threshold_s * 1000:.0f} ms "
            "allowed); retry later"
        )

    def drain_s(self) -> float:
        """How long the loop needs to catch up."""
        return max(self.lag.recent_s, self.ahead_s())

    def return_hop_s(self) -> float:
        """The wait a request admitted now will have when its answer is ready."""
        return self.lag.recent_s if self.enabled else 0.0

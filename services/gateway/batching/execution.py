"""Running one batch: on the event loop when it is cheap, else on the runtime's thread, and
isolating the culprit when it fails.

A batch cheaper than `inline_max_ms` (by the cost model) runs inline: handing a batch to a
thread and back costs ~0.1 ms on a small machine, more than such a model computes. Any other
batch runs as a task. A batch that fails is run again one request at a time, so that one bad
input fails only its own request; a 5xx from the runtime (the engine behind a remote runtime
is down) is not about any input and fails the whole batch at once.

The execution frees the batch's slot (`free`) before any caller is woken, and asks the queue
to dispatch again (`pump`) when a batch run as a task is over.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import numpy as np

from registry.errors import MlgateError
from services.gateway.batching.costmodel import CostModel
from services.gateway.batching.types import (
    BatchObserver,
    BatchSettings,
    BatchStats,
    Item,
    Tensors,
)
from services.gateway.errors import ModelExecutionFailed
from services.runtimes.base import Prediction

__all__ = ["Execution", "Run"]

Run = Callable[[Tensors], Awaitable[Prediction]]


class Execution:
    def __init__(
        self,
        run: Run,
        run_inline: Callable[[Tensors], Prediction] | None,
        settings: BatchSettings,
        cost: CostModel,
        stats: BatchStats,
        observer: BatchObserver | None,
        *,
        free: Callable[[int], None],
        pump: Callable[[], None],
    ) -> None:
        self.run = run
        self.run_inline = run_inline
        self._settings = settings
        self._cost = cost
        self._stats = stats
        self._observer = observer
        self._free = free
        self._pump = pump

    def start(self, batch: list[Item], rows: int, batch_id: int) -> None:
        if (
            self.run_inline is not None
            and self._cost.fitted
            and self._cost.cost(rows) <= self._settings.inline_max_ms / 1000
        ):
            self._execute_inline(batch, rows, batch_id)
        else:
            asyncio.get_running_loop().create_task(self._execute(batch, rows, batch_id))

    def _execute_inline(self, batch: list[Item], rows: int, batch_id: int) -> None:
        """Run right here, on the loop; the time it holds the loop is bounded by
        `inline_max_ms`. The caller is the dispatch itself, which goes on at once."""
        assert self.run_inline is not None
        try:
            outputs, elapsed = self.run_inline(_joined(batch))
        except Exception:  # noqa: BLE001 - the threaded path isolates the culprit
            asyncio.get_running_loop().create_task(self._isolate_and_finish(batch, batch_id))
            return
        self._complete(batch, rows, batch_id, outputs, elapsed)

    async def _execute(self, batch: list[Item], rows: int, batch_id: int) -> None:
        try:
            outputs, elapsed = await self.run(_joined(batch))
        except MlgateError as exc:
            if exc.status_code < 500:
                await self._isolate_and_finish(batch, batch_id)
                return
            # A 5xx from the runtime is not about any request's input: running each alone
            # would only repeat it.
            for item in batch:
                if not item.future.done():
                    item.future.set_exception(exc)
            self._finish(batch_id)
            return
        except Exception:  # noqa: BLE001 - isolate the culprit below, then report per request
            await self._isolate_and_finish(batch, batch_id)
            return
        self._complete(batch, rows, batch_id, outputs, elapsed)
        self._pump()

    async def _isolate_and_finish(self, batch: list[Item], batch_id: int) -> None:
        await self._isolate(batch)
        self._finish(batch_id)

    def _complete(
        self, batch: list[Item], rows: int, batch_id: int, outputs: Tensors, elapsed: float
    ) -> None:
        # NOTE: the slot is freed before any caller is woken: a caller that answers its
        # client and gets the next request at once must find the runtime idle.
        self._free(batch_id)
        self._cost.observe(rows, elapsed)
        self._stats.compute_s += elapsed
        if self._observer is not None:
            self._observer.batch_done(rows, elapsed)
        offset = 0
        for item in batch:
            if not item.future.done():
                item.future.set_result(
                    {n: o[offset : offset + item.rows] for n, o in outputs.items()}
                )
            offset += item.rows

    async def _isolate(self, batch: list[Item]) -> None:
        """Run each request of a failed batch alone: only the ones that fail alone fail."""
        for item in batch:
            if item.future.done():
                continue
            try:
                result, _ = await self.run(item.inputs)
            except Exception as exc:  # noqa: BLE001 - reported to this request only
                if not item.future.done():
                    item.future.set_exception(
                        ModelExecutionFailed(
                            f"the model failed on this request's input: {_brief(exc)}"
                        )
                    )
            else:
                if not item.future.done():
                    item.future.set_result(result)

    def _finish(self, batch_id: int) -> None:
        self._free(batch_id)
        self._pump()


def _joined(batch: list[Item]) -> Tensors:
    return {n: np.concatenate([i.inputs[n] for i in batch]) for n in batch[0].inputs}


def _brief(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:300]}"

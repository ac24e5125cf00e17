"""Batch jobs inside a gateway: a file on the gateway's side scored by the version it serves,
through that version's batcher at the `BACKGROUND` level, below every live request.

A job is submitted (`POST /batch/jobs`, admin) naming a model and its version (a number,
an alias, or none: the one this gateway routes to), an input and an output inside the batch
folder (`MLGATE_BATCH_DIR`, default `<home>/batch`). The version must be served here; its
deployment's validation settings apply. The job's record is written at once (`running`)
and its progress as it goes, in the registry: any replica answers `GET /batch/jobs/{id}`.

Each batch of at most the version's `max_batch_size` rows waits in the queue behind every
live request. When the queue is full or the batcher predicts that it would miss the SLO,
the job waits its Retry-After and tries again: live traffic keeps its latency and the job
takes what is left. One job runs at a time per gateway process (a second gets 429).
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from registry.batch_runs import BatchRun
from registry.errors import BadRequest, MlgateError
from registry.names import ID_RULE, positive_id
from registry.store import Registry
from services.gateway.batching.batcher import BACKGROUND
from services.gateway.errors import QueueFull, Refusal
from services.gateway.manager import ModelManager
from services.gateway.params import model_name
from services.runtimes.base import Tensors
from services.scoring.job import ScoreOptions
from services.scoring.record import RecordedRun

__all__ = ["BatchJobs"]

log = logging.getLogger("mlgate.gateway")

_RETRY_CAP_S = 1.0
_FIELDS = {"model", "version", "alias", "input", "output", "rejects", "keep"}
_FIELDS |= {"max_reject_share", "chunk_rows"}


class BatchJobs:
    def __init__(self, registry: Registry, manager: ModelManager, folder: Path | None) -> None:
        self.registry = registry
        self.manager = manager
        self.folder = (folder or registry.settings.home / "batch").resolve()
        self._running: asyncio.Task[Any] | None = None
        self._run_id: int | None = None
        self._stopping = False

    async def submit(self, body: Mapping[str, Any]) -> BatchRun:
        """Check the job, record it, start it; the record as it is now (`running`)."""
        unknown = sorted(set(body) - _FIELDS)
        if unknown:
            raise BadRequest(f"unknown batch job fields {unknown}; known: {sorted(_FIELDS)}")
        if self._running is not None and not self._running.done():
            raise QueueFull(
                f"batch job {self._run_id} is running in this gateway process; one runs at a time",
                retry_after_s=5.0,
            )
        name, version = await self._version(body)
        served_max_batch = self._max_batch(name, version)
        options = ScoreOptions(
            chunk_rows=_count(body.get("chunk_rows", 65536), "chunk_rows", 1 << 22),
            batch_size=served_max_batch,
            keep=_names(body.get("keep", [])),
            max_reject_share=_share(body.get("max_reject_share")),
            allow_non_finite=self._allows_non_finite(name, version),
        )
        record = await asyncio.to_thread(self.registry.get, f"{name}:{version}")
        rejects = body.get("rejects")
        source = self._path(body.get("input"), "input")
        output = self._path(body.get("output"), "output")
        rejects_at = None if rejects is None else self._path(rejects, "rejects")
        try:
            recorded = RecordedRun(
                self.registry,
                record,
                source,
                output,
                options,
                runner=f"gateway {socket.gethostname()}",
                rejects=rejects_at,
            )
        except OSError as exc:
            raise BadRequest(f"cannot read what 'input' names: {exc}") from None
        try:
            run = await asyncio.to_thread(recorded.start)
        except OSError as exc:  # the file system refused what the path names
            raise BadRequest(f"cannot read or write what the job names: {exc}") from None
        loop = asyncio.get_running_loop()
        self._run_id = run.id
        self._running = loop.create_task(self._execute(recorded, name, version, loop))
        return run

    async def stop(self) -> None:
        """Fail a running job (its record says so) and wait for its thread to end."""
        self._stopping = True
        if self._running is not None:
            await asyncio.gather(self._running, return_exceptions=True)

    async def _execute(
        self, recorded: RecordedRun, name: str, version: int, loop: asyncio.AbstractEventLoop
    ) -> None:
        def predict(inputs: Tensors) -> Tensors:
            return asyncio.run_coroutine_threadsafe(
                self._infer(name, version, inputs), loop
            ).result()

        try:
            await asyncio.to_thread(recorded.execute, predict)
        except MlgateError as exc:  # recorded as failed, with its message
            log.info("batch job %s failed: %s", recorded.run and recorded.run.id, exc)
        except Exception:  # recorded as failed; the gateway keeps serving
            log.exception("batch job %s failed", recorded.run and recorded.run.id)

    async def _infer(self, name: str, version: int, inputs: Tensors) -> Tensors:
        while True:
            if self._stopping:
                raise MlgateError("the gateway stopped before the job was done")
            with self.manager.acquire(name, version) as served:
                try:
                    return await served.batcher.submit(inputs, priority=BACKGROUND)
                except Refusal as refused:  # live traffic first: wait, then try again
                    wait = min(max(refused.retry_after_s, 0.01), _RETRY_CAP_S)
            await asyncio.sleep(wait)

    async def _version(self, body: Mapping[str, Any]) -> tuple[str, int]:
        name = model_name(_text(body.get("model"), "model"))
        raw, alias = body.get("version"), body.get("alias")
        if raw is not None and alias is not None:
            raise BadRequest("give 'version' or 'alias', not both")
        if raw is not None:
            number = positive_id(raw)
            if number is None:
                raise BadRequest(f"'version' must be {ID_RULE}, got {raw!r}")
        elif alias is not None:
            ref = f"{name}@{_text(alias, 'alias')}"
            number = (await asyncio.to_thread(self.registry.get, ref)).version
        else:
            routed = self.manager.routed_version(name)
            self.manager.require(name, routed)  # 404 or 503 naming the model
            assert routed is not None
            number = routed
        self.manager.require(name, number)  # served here, or 404/503 naming it
        return name, number

    def _max_batch(self, name: str, version: int) -> int:
        with self.manager.acquire(name, version) as served:
            return served.batcher.settings.max_batch_size

    def _allows_non_finite(self, name: str, version: int) -> bool:
        with self.manager.acquire(name, version) as served:
            return served.deployment.allow_non_finite

    def _path(self, value: Any, field: str) -> Path:
        text = _text(value, field)
        try:
            path = (self.folder / text).resolve()
        except (ValueError, OSError) as exc:  # a NUL byte, a name too long, a link loop
            raise BadRequest(f"'{field}' is not a usable path: {exc}") from None
        if any(len(part.encode()) > 255 for part in path.parts) or len(str(path)) > 4000:
            raise BadRequest(f"'{field}' is not a usable path: a name is too long")
        if not path.is_relative_to(self.folder):
            raise BadRequest(
                f"'{field}' must name a file inside the batch folder {self.folder} "
                f"(MLGATE_BATCH_DIR), got {text!r}"
            )
        return path


def _text(value: Any, field: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise BadRequest(f"'{field}' must be a non-empty string")
    return value


def _count(value: Any, field: str, most: int) -> int:
    number = positive_id(value)
    if number is None or number > most:
        raise BadRequest(f"'{field}' must be a whole number from 1 to {most}, got {value!r}")
    return number


def _names(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise BadRequest("'keep' must be a list of column names")
    return tuple(value)


def _share(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise BadRequest(f"'max_reject_share' must be a number from 0 to 1, got {value!r}")
    return float(value)

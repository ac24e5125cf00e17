"""The Open Inference Protocol over gRPC: Triton's `inference.GRPCInferenceService`.

Like the REST routes, each RPC translates its message into one data-plane call and back
(`codec.py` holds the message formats). Errors leave through one place, `_refuse`:
the same `error_body` as REST's envelope, its HTTP status turned into a gRPC code by
`errors.GRPC_STATUS`, the same message as `details`. Inference is counted and timed in
`mlgate_requests_total` / `mlgate_request_duration_seconds` with `protocol="grpc"` and the
HTTP status as `code` (so one alert rule covers both transports). The client's deadline
becomes the data plane's, and a call the client cancels cancels its queued rows (grpc.aio
cancels the handler's task). Auth reads the same headers as REST, from gRPC metadata.
`ModelStreamInfer` answers each request of a stream as a `ModelInfer` call would. Shared
memory, trace and log settings are UNIMPLEMENTED, saying so.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any, NoReturn, TypeVar
from urllib.parse import unquote

import grpc  # type: ignore[import-untyped]
from tritonclient.grpc import service_pb2 as pb2

from monitors.metrics.collectors import GatewayMetrics
from services.gateway.auth import check_admin, check_api_key
from services.gateway.calls import Call
from services.gateway.dataplane import DataPlane
from services.gateway.errors import GRPC_STATUS, error_body
from services.gateway.params import model_name, version_number
from services.gateway.rpc import codec
from services.gateway.settings import GatewaySettings

__all__ = ["CANCELLED_STATUS", "InferenceServicer", "grpc_code", "peer_host"]

CANCELLED_STATUS = 499  # the metrics' code for a call its client cancelled (as REST's)
S = TypeVar("S", bound="InferenceServicer")
Rpc = Callable[[S, Any, Any], Awaitable[Any]]


def grpc_code(status: int) -> Any:
    """An HTTP status → its `grpc.StatusCode`, through the one table in errors.py."""
    return grpc.StatusCode[GRPC_STATUS.get(status, "UNKNOWN")]


async def _refuse(context: Any, exc: BaseException) -> NoReturn:
    status, message, headers = error_body(exc)
    await _abort(context, status, message, headers)


async def _abort(context: Any, status: int, message: str, headers: Mapping[str, str]) -> NoReturn:
    trailing = tuple((key.lower(), value) for key, value in headers.items())  # Retry-After
    await context.abort(grpc_code(status), message, trailing)
    raise AssertionError("context.abort returned")  # it raises; this satisfies NoReturn


def _answered(method: Rpc[S]) -> Rpc[S]:
    """Every error a unary RPC raises becomes its gRPC status, with REST's message."""

    @functools.wraps(method)
    async def run(self: S, request: Any, context: Any) -> Any:
        try:
            return await method(self, request, context)
        except Exception as exc:  # noqa: BLE001 - every error leaves as a status
            await _refuse(context, exc)

    return run


def _unsupported(feature: str, advice: str) -> Callable[[Any, Any, Any], Awaitable[NoReturn]]:
    async def refuse(_self: Any, _request: Any, context: Any) -> NoReturn:
        await context.abort(
            grpc.StatusCode.UNIMPLEMENTED, f"mlgate does not implement {feature}; {advice}"
        )
        raise AssertionError("context.abort returned")

    return refuse


def _headers(context: Any) -> dict[str, str]:
    """gRPC metadata as the headers auth.py reads (keys arrive lower-case)."""
    return {
        key: value for key, value in context.invocation_metadata() or () if isinstance(value, str)
    }


def peer_host(peer: str) -> str | None:
    """`ipv4:127.0.0.1:5000` / `ipv6:[::1]:5000` (maybe %-encoded) → the address."""
    kind, _, address = unquote(peer).partition(":")
    if kind not in ("ipv4", "ipv6"):
        return None
    return address.rpartition(":")[0].strip("[]") or None


class InferenceServicer:
    """Registered with `service_pb2_grpc.add_GRPCInferenceServiceServicer_to_server`."""

    def __init__(
        self, dataplane: DataPlane, settings: GatewaySettings, metrics: GatewayMetrics
    ) -> None:
        self.dataplane = dataplane
        self.settings = settings
        self.metrics = metrics

    def _user(self, context: Any) -> DataPlane:
        if self.settings.api_keys:  # else skip reading the metadata at all
            check_api_key(_headers(context), self.settings.api_keys)
        return self.dataplane

    def _admin(self, context: Any) -> DataPlane:
        check_admin(_headers(context), peer_host(context.peer()), self.settings.admin_token)
        return self.dataplane

    # ---------------------------------------------------------------- health, metadata

    @_answered
    async def ServerLive(self, _request: Any, _context: Any) -> Any:  # noqa: N802 - gRPC names
        return pb2.ServerLiveResponse(live=self.dataplane.live())

    @_answered
    async def ServerReady(self, _request: Any, _context: Any) -> Any:  # noqa: N802
        return pb2.ServerReadyResponse(ready=self.dataplane.ready())

    @_answered
    async def ServerMetadata(self, _request: Any, _context: Any) -> Any:  # noqa: N802
        return codec.server_metadata_response(self.dataplane.server_metadata())

    @_answered
    async def ModelReady(self, request: Any, context: Any) -> Any:  # noqa: N802
        dataplane = self._user(context)
        ready = dataplane.model_ready(*_target(request.name, request.version))
        return pb2.ModelReadyResponse(ready=ready)

    @_answered
    async def ModelMetadata(self, request: Any, context: Any) -> Any:  # noqa: N802
        dataplane = self._user(context)
        metadata = dataplane.model_metadata(*_target(request.name, request.version))
        return codec.metadata_response(metadata)

    @_answered
    async def ModelConfig(self, request: Any, context: Any) -> Any:  # noqa: N802
        dataplane = self._user(context)
        with dataplane.manager.acquire(*_target(request.name, request.version)) as served:
            return codec.config_response(served)

    @_answered
    async def ModelStatistics(self, request: Any, context: Any) -> Any:  # noqa: N802
        dataplane = self._user(context)
        if request.name:
            document = dataplane.model_stats(*_target(request.name, request.version))
        else:  # Triton's "every model"
            document = {"model_stats": [s.stats() for s in dataplane.manager.all_served()]}
        return codec.stats_response(document)

    # ---------------------------------------------------------------- repository

    @_answered
    async def RepositoryIndex(self, request: Any, context: Any) -> Any:  # noqa: N802
        entries = await self._admin(context).repository_index(request.ready)
        return codec.index_response(entries)

    @_answered
    async def RepositoryModelLoad(self, request: Any, context: Any) -> Any:  # noqa: N802
        dataplane = self._admin(context)
        parameters = codec.load_parameters(request.parameters)
        await dataplane.load(model_name(request.model_name), parameters)
        return pb2.RepositoryModelLoadResponse()

    @_answered
    async def RepositoryModelUnload(self, request: Any, context: Any) -> Any:  # noqa: N802
        await self._admin(context).unload(model_name(request.model_name))
        return pb2.RepositoryModelUnloadResponse()

    # ---------------------------------------------------------------- inference

    async def ModelInfer(self, request: Any, context: Any) -> Any:  # noqa: N802
        response, status, message, headers = await self._answer(request, context)
        if response is None:
            await _abort(context, status, message, headers)
        return response

    async def ModelStreamInfer(  # noqa: N802
        self, requests: AsyncIterator[Any], context: Any
    ) -> AsyncIterator[Any]:
        """Every request of the stream runs at once, as separate ModelInfer calls would,
        and is answered when done (clients match answers by id, as with Triton); an error
        answers only its own request, in `error_message`."""
        answers: asyncio.Queue[Any] = asyncio.Queue()
        running: set[asyncio.Task[None]] = set()

        async def answer(request: Any) -> None:
            response, _, message, _ = await self._answer(request, context)
            if response is None:
                failed = pb2.ModelInferResponse(
                    model_name=request.model_name, model_version=request.model_version
                )
                failed.id = request.id
                await answers.put(
                    pb2.ModelStreamInferResponse(error_message=message, infer_response=failed)
                )
            else:
                await answers.put(pb2.ModelStreamInferResponse(infer_response=response))

        async def read() -> None:
            try:
                async for request in requests:
                    task = asyncio.create_task(answer(request))
                    running.add(task)
                    task.add_done_callback(running.discard)
            finally:
                answers.put_nowait(None)  # the client closed its side (or went away)

        reader = asyncio.create_task(read())
        reading = True
        try:
            while reading or running or not answers.empty():
                item = await answers.get()
                if item is None:
                    reading = False
                else:
                    yield item
        finally:  # the stream ended or was cancelled: nothing is left running
            for task in (reader, *running):
                task.cancel()

    async def _answer(self, request: Any, context: Any) -> tuple[Any, int, str, dict[str, str]]:
        """(response or None, status, message, headers): one inference, counted and timed
        as REST's are (`DataPlane.end`)."""
        call = Call(request.model_name, time.perf_counter())
        try:
            response = await self._infer(request, context, call)
        except asyncio.CancelledError:  # the client cancelled, or its deadline passed
            self.dataplane.end(call, "grpc", CANCELLED_STATUS)
            raise
        except Exception as exc:  # noqa: BLE001 - every error leaves as a status
            status, message, headers = error_body(exc)
            self.dataplane.end(call, "grpc", status)
            return None, status, message, headers
        self.dataplane.end(call, "grpc", 200)
        return response, 200, "", {}

    async def _infer(self, request: Any, context: Any, call: Call) -> Any:
        dataplane = self._user(context)
        name, version = _target(request.model_name, request.model_version)
        dataplane.begin(call, version)  # 404/503 before decoding the tensors
        decoded = codec.decode_infer(request)
        remaining = context.time_remaining()  # None: the client set no deadline
        deadline = None if remaining is None else time.monotonic() + remaining
        result = await dataplane.infer(
            name, version, decoded, deadline=deadline, arrived=call.started, call=call
        )
        return codec.encode_infer(result)

    # ---------------------------------------------------------------- not built

    SystemSharedMemoryStatus = _unsupported(
        "system shared memory", "send tensors in the request (raw_input_contents)"
    )
    SystemSharedMemoryRegister = SystemSharedMemoryStatus
    SystemSharedMemoryUnregister = SystemSharedMemoryStatus
    CudaSharedMemoryStatus = _unsupported(
        "CUDA shared memory", "send tensors in the request (raw_input_contents)"
    )
    CudaSharedMemoryRegister = CudaSharedMemoryStatus
    CudaSharedMemoryUnregister = CudaSharedMemoryStatus
    TraceSetting = _unsupported(
        "trace settings", "mlgate traces nothing; see its Prometheus metrics at /metrics"
    )
    LogSettings = _unsupported(
        "log settings", "set the log level when starting the gateway (mlgate serve --log-level)"
    )


def _target(name: str, version: str) -> tuple[str, int | None]:
    """A request's model name and version ("" is the routed one), checked as REST checks."""
    return model_name(name), version_number(version or None)

"""REST routes: the Open Inference Protocol paths, plus `/v1/models/{m}:predict`.

Each route translates HTTP into one data-plane call and back. Bodies are read with a size
limit (before and after decompression) and infer calls are cancelled when the client
disconnects, so their queued rows never cost compute.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import orjson
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from monitors.metrics.collectors import GatewayMetrics
from registry.errors import BadRequest
from services.gateway.auth import check_admin, check_api_key
from services.gateway.bodies import parse_json, read_body, read_object
from services.gateway.calls import Call
from services.gateway.codec import (
    HEADER_LENGTH,
    decode_request,
    encode_response,
    may_hold_booleans,
)
from services.gateway.dataplane import DataPlane
from services.gateway.errors import InvalidTensor, Unavailable, error_body
from services.gateway.params import DEADLINE_HEADER, model_name, unix_deadline, version_number
from services.gateway.settings import GatewaySettings
from services.gateway.traffic import ROUTE_HEADER

__all__ = [
    "INFER_PATHS",
    "ClientGone",
    "build_routes",
    "error_response",
    "guarded",
    "json_response",
]

T = TypeVar("T")


class ClientGone(Exception):
    """The client disconnected; nobody will read the response."""


def json_response(data: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(data), status_code=status, media_type="application/json")


def error_response(exc: BaseException) -> Response:
    """The one place any error becomes `{"error": "..."}` with its status."""
    if isinstance(exc, ClientGone):
        return Response(status_code=499)  # nobody reads it; nginx's "client closed request"
    status, message, headers = error_body(exc)
    return Response(
        orjson.dumps({"error": message}),
        status_code=status,
        headers=headers,
        media_type="application/json",
    )


Endpoint = Callable[[Request], Awaitable[Response]]
# The data plane's POST routes, dispatched ahead of FastAPI's middleware (asgi.GatewayApp).
INFER_PATHS = frozenset(
    {
        "/v2/models/{name}/infer",
        "/v2/models/{name}/versions/{version}/infer",
        "/v1/models/{name}:predict",
    }
)
CALL_KEY = "mlgate.call"  # scope key: the inference's `Call` (calls.py)


def guarded(endpoint: Endpoint) -> Endpoint:
    @functools.wraps(endpoint)
    async def run(request: Request) -> Response:
        try:
            return await endpoint(request)
        except Exception as exc:  # noqa: BLE001 - every error leaves as the envelope
            return error_response(exc)

    return run


def _observed(endpoint: Endpoint, protocol: str) -> Endpoint:
    """`guarded`, for an inference route: the request's `Call` is made at arrival (in the
    scope, under CALL_KEY) and ended by the data plane once answered, whatever the answer
    (`DataPlane.end`: admission, and the request counted and timed under bounded labels)."""

    @functools.wraps(endpoint)
    async def run(request: Request) -> Response:
        call = request.scope[CALL_KEY] = Call(
            request.path_params.get("name", ""), time.perf_counter()
        )
        try:
            response = await endpoint(request)
        except Exception as exc:  # noqa: BLE001 - every error leaves as the envelope
            response = error_response(exc)
        request.app.state.dataplane.end(call, protocol, response.status_code)
        return response

    return run


def build_routes(settings: GatewaySettings, metrics: GatewayMetrics) -> list[Route]:
    """Plain Starlette routes: FastAPI's dependency solving costs more per request than the
    rest of the gateway's Python, and these endpoints need none of it."""

    def plane(request: Request) -> DataPlane:
        dataplane: DataPlane = request.app.state.dataplane
        return dataplane

    def user(request: Request) -> DataPlane:
        check_api_key(request.headers, settings.api_keys)
        return plane(request)

    def admin(request: Request) -> DataPlane:
        client = request.client.host if request.client else None
        check_admin(request.headers, client, settings.admin_token)
        return plane(request)

    def target(request: Request) -> tuple[str, int | None]:
        params = request.path_params
        return model_name(params["name"]), version_number(params.get("version"))

    async def server_metadata(request: Request) -> Response:
        return json_response(plane(request).server_metadata())

    async def live(request: Request) -> Response:
        return json_response({"live": plane(request).live()})

    async def ready(request: Request) -> Response:
        if not plane(request).ready():
            raise Unavailable("the gateway is still loading its models")
        return json_response({"ready": True})

    async def model_metadata(request: Request) -> Response:
        return json_response(user(request).model_metadata(*target(request)))

    async def model_ready(request: Request) -> Response:
        dataplane = user(request)
        name, version = target(request)
        dataplane.manager.require(name, version)  # 404 or 503 if not ready
        return json_response({"name": name, "ready": True})

    async def model_stats(request: Request) -> Response:
        return json_response(user(request).model_stats(*target(request)))

    async def infer(request: Request) -> Response:
        dataplane = user(request)
        name, version = target(request)
        call: Call = request.scope[CALL_KEY]
        call.route_key = request.headers.get(ROUTE_HEADER)
        dataplane.begin(call, version)  # 404/503 before reading the body
        body = await read_body(request, settings.max_body_bytes)
        decoded = decode_request(body, request.headers.get(HEADER_LENGTH))
        deadline = unix_deadline(request.headers.get(DEADLINE_HEADER))
        result = await until_disconnect(
            request,
            dataplane.infer(
                name, version, decoded, deadline=deadline, arrived=call.started, call=call
            ),
        )
        content, headers = encode_response(
            result.model, result.version, result.outputs, result.binary, result.request_id
        )
        return Response(content, headers=headers)

    async def predict_v1(request: Request) -> Response:
        dataplane = user(request)
        name, _ = target(request)
        call: Call = request.scope[CALL_KEY]
        call.route_key = request.headers.get(ROUTE_HEADER)
        dataplane.begin(call, None)
        body = await read_body(request, settings.max_body_bytes)
        document = parse_json(body, error=InvalidTensor)
        answer = await until_disconnect(
            request,
            dataplane.predict_v1(
                name,
                document,
                deadline=unix_deadline(request.headers.get(DEADLINE_HEADER)),
                arrived=call.started,
                booleans=may_hold_booleans(body),
                call=call,
            ),
        )
        return json_response(answer)

    async def repository_index(request: Request) -> Response:
        dataplane = admin(request)
        options = await read_object(request, settings.max_body_bytes, empty_ok=True)
        ready = options.get("ready", False)
        if not isinstance(ready, bool):
            raise BadRequest(f"'ready' must be true or false, got {str(ready)[:40]!r}")
        return json_response(await dataplane.repository_index(ready))

    async def load(request: Request) -> Response:
        dataplane = admin(request)
        options = await read_object(request, settings.max_body_bytes, empty_ok=True)
        parameters = options.get("parameters")
        parameters = {} if parameters is None else parameters
        if not isinstance(parameters, dict):
            raise BadRequest("load 'parameters' must be a JSON object")
        await dataplane.load(target(request)[0], parameters)
        return json_response({})

    async def unload(request: Request) -> Response:
        dataplane = admin(request)
        await dataplane.unload(target(request)[0])
        return json_response({})

    async def prometheus(request: Request) -> Response:
        if not settings.open_metrics:
            check_api_key(request.headers, settings.api_keys)
        exchange = getattr(request.app.state, "metrics_exchange", None)  # with workers
        content = (
            generate_latest(metrics.registry) if exchange is None else await exchange.collect()
        )
        return Response(content, media_type=CONTENT_TYPE_LATEST)

    table: list[tuple[str, Endpoint, str]] = [
        ("/v2", server_metadata, "GET"),
        ("/v2/health/live", live, "GET"),
        ("/v2/health/ready", ready, "GET"),
        ("/v2/models/{name}", model_metadata, "GET"),
        ("/v2/models/{name}/versions/{version}", model_metadata, "GET"),
        ("/v2/models/{name}/ready", model_ready, "GET"),
        ("/v2/models/{name}/versions/{version}/ready", model_ready, "GET"),
        ("/v2/models/{name}/stats", model_stats, "GET"),
        ("/v2/models/{name}/versions/{version}/stats", model_stats, "GET"),
        ("/v2/repository/index", repository_index, "POST"),
        ("/v2/repository/models/{name}/load", load, "POST"),
        ("/v2/repository/models/{name}/unload", unload, "POST"),
        ("/metrics", prometheus, "GET"),
    ]
    observed: list[tuple[str, Endpoint, str, str]] = [
        ("/v2/models/{name}/infer", infer, "POST", "rest"),
        ("/v2/models/{name}/versions/{version}/infer", infer, "POST", "rest"),
        ("/v1/models/{name}:predict", predict_v1, "POST", "v1"),
    ]
    return [
        *(Route(path, guarded(endpoint), methods=[method]) for path, endpoint, method in table),
        *(
            Route(path, _observed(endpoint, protocol), methods=[method])
            for path, endpoint, method, protocol in observed
        ),
    ]


# Requests that finish sooner than this never start a watcher (nearly all of them below
# saturation): a timer costs far less than a task, and what a client that left in the first
# 50 ms costs is one request's share of a batch. Profiled at 64 connections, watchers
# started after 2 ms cost about 5 % of the gateway's CPU.
WATCH_AFTER_S = 0.05


async def until_disconnect(request: Request, work: Awaitable[T]) -> T:
    """Await `work`, cancelling it (with ClientGone) if the client disconnects first.

    If the work lasts longer than WATCH_AFTER_S, a watcher task waits for the ASGI
    disconnect message and cancels the request's own task, whose queued rows are then
    dropped by the batcher.
    """
    handler = asyncio.current_task()
    assert handler is not None
    gone = False
    watcher: asyncio.Future[None] | None = None

    async def watch() -> None:
        nonlocal gone
        await _disconnected(request)
        gone = True
        handler.cancel()

    def start_watching() -> None:
        nonlocal watcher
        watcher = asyncio.ensure_future(watch())

    timer = asyncio.get_running_loop().call_later(WATCH_AFTER_S, start_watching)
    try:
        return await work
    except asyncio.CancelledError:
        if gone:
            raise ClientGone() from None
        raise
    finally:
        timer.cancel()
        if watcher is not None:
            watcher.cancel()


async def _disconnected(request: Request) -> None:
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return

"""REST routes: the Open Inference Protocol paths, plus `/v1/models/{m}:predict`.

Each route translates HTTP into one data-plane call and back. Bodies are read with a size
limit (before and after decompression) and infer calls are cancelled when the client
disconnects, so their queued rows never cost compute.
"""

from __future__ import annotations

import asyncio
import time
import zlib
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import orjson
from fastapi import APIRouter, Request, Response

from registry.errors import BadRequest
from registry.names import check_model_name
from services.gateway.auth import check_admin, check_api_key
from services.gateway.codec import HEADER_LENGTH, decode_request, encode_response
from services.gateway.dataplane import DataPlane
from services.gateway.errors import InvalidTensor, ModelNotReady, PayloadTooLarge, Unavailable
from services.gateway.settings import GatewaySettings

__all__ = ["ClientGone", "build_router"]

T = TypeVar("T")
DEADLINE_HEADER = "x-request-deadline"  # absolute Unix time in seconds, from an upstream caller


class ClientGone(Exception):
    """The client disconnected; nobody will read the response."""


def json_response(data: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(data), status_code=status, media_type="application/json")


def build_router(settings: GatewaySettings) -> APIRouter:
    router = APIRouter()

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

    @router.get("/v2")
    async def server_metadata(request: Request) -> Response:
        return json_response(plane(request).server_metadata())

    @router.get("/v2/health/live")
    async def live(request: Request) -> Response:
        return json_response({"live": plane(request).live()})

    @router.get("/v2/health/ready")
    async def ready(request: Request) -> Response:
        if not plane(request).ready():
            raise Unavailable("the gateway is still loading its models")
        return json_response({"ready": True})

    @router.get("/v2/models/{name}")
    @router.get("/v2/models/{name}/versions/{version}")
    async def model_metadata(request: Request, name: str, version: str | None = None) -> Response:
        return json_response(user(request).model_metadata(_name(name), _version(version)))

    @router.get("/v2/models/{name}/ready")
    @router.get("/v2/models/{name}/versions/{version}/ready")
    async def model_ready(request: Request, name: str, version: str | None = None) -> Response:
        dataplane = user(request)
        if not dataplane.model_ready(_name(name), _version(version)):
            dataplane.manager.require(name, _version(version))
            raise ModelNotReady(f"model {name} is not ready")
        return json_response({"name": name, "ready": True})

    @router.get("/v2/models/{name}/stats")
    @router.get("/v2/models/{name}/versions/{version}/stats")
    async def model_stats(request: Request, name: str, version: str | None = None) -> Response:
        return json_response(user(request).model_stats(_name(name), _version(version)))

    @router.post("/v2/models/{name}/infer")
    @router.post("/v2/models/{name}/versions/{version}/infer")
    async def infer(request: Request, name: str, version: str | None = None) -> Response:
        dataplane = user(request)
        dataplane.manager.require(_name(name), _version(version))  # 404/503 before the body
        body = await read_body(request, settings.max_body_bytes)
        decoded = decode_request(body, request.headers.get(HEADER_LENGTH))
        deadline = _header_deadline(request.headers.get(DEADLINE_HEADER))
        result = await until_disconnect(
            request,
            lambda: dataplane.infer(_name(name), _version(version), decoded, deadline=deadline),
        )
        content, headers = encode_response(
            result.model, result.version, result.outputs, result.binary, result.request_id
        )
        return Response(content, headers=headers)

    @router.post("/v1/models/{name}:predict")
    async def predict_v1(request: Request, name: str) -> Response:
        dataplane = user(request)
        dataplane.manager.require(_name(name), None)
        body = await read_body(request, settings.max_body_bytes)
        try:
            document = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise InvalidTensor(f"the request body is not valid JSON: {exc}") from None
        result = await until_disconnect(
            request, lambda: dataplane.predict_v1(_name(name), document)
        )
        return json_response(result)

    @router.post("/v2/repository/index")
    async def repository_index(request: Request) -> Response:
        dataplane = admin(request)
        options = _json_object(await read_body(request, settings.max_body_bytes))
        return json_response(await dataplane.repository_index(bool(options.get("ready", False))))

    @router.post("/v2/repository/models/{name}/load")
    async def load(request: Request, name: str) -> Response:
        dataplane = admin(request)
        options = _json_object(await read_body(request, settings.max_body_bytes))
        parameters = options.get("parameters")
        parameters = {} if parameters is None else parameters
        if not isinstance(parameters, dict):
            raise BadRequest("load 'parameters' must be a JSON object")
        await dataplane.load(_name(name), parameters)
        return json_response({})

    @router.post("/v2/repository/models/{name}/unload")
    async def unload(request: Request, name: str) -> Response:
        dataplane = admin(request)
        await dataplane.unload(_name(name))
        return json_response({})

    return router


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 past `limit` bytes, decompressed if gzip/deflate."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"the body is {declared} bytes; the limit is {limit}")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"the body exceeds the {limit}-byte limit")
        chunks.append(chunk)
    body = b"".join(chunks)
    encoding = request.headers.get("content-encoding", "identity").lower()
    if encoding == "identity":
        return body
    if encoding not in ("gzip", "deflate"):
        raise BadRequest(f"Content-Encoding {encoding!r} is not supported; use gzip or deflate")
    inflater = zlib.decompressobj(zlib.MAX_WBITS | 16 if encoding == "gzip" else zlib.MAX_WBITS)
    try:
        inflated = inflater.decompress(body, limit + 1)
    except zlib.error as exc:
        raise BadRequest(f"the body is not valid {encoding} data: {exc}") from None
    if len(inflated) > limit or inflater.unconsumed_tail:
        raise PayloadTooLarge(f"the decompressed body exceeds the {limit}-byte limit")
    return inflated


async def until_disconnect(request: Request, work: Callable[[], Awaitable[T]]) -> T:
    """Run `work`, cancelling it if the client disconnects first."""
    task = asyncio.ensure_future(work())
    watcher = asyncio.ensure_future(_disconnected(request))
    try:
        done, _ = await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watcher.cancel()
    if task in done:
        return task.result()
    task.cancel()
    raise ClientGone()


async def _disconnected(request: Request) -> None:
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return


def _name(name: str) -> str:
    return check_model_name(name)


def _version(text: str | None) -> int | None:
    if text is None:
        return None
    if not text.isdigit() or int(text) < 1:
        raise BadRequest(f"model version {text!r} is not a positive integer")
    return int(text)


def _header_deadline(value: str | None) -> float | None:
    """An absolute Unix-time deadline header, on the time.monotonic() clock."""
    if value is None:
        return None
    try:
        absolute = float(value)
    except ValueError:
        raise BadRequest(
            f"{DEADLINE_HEADER} must be a Unix time in seconds, got {value!r}"
        ) from None
    return time.monotonic() + (absolute - time.time())


def _json_object(body: bytes) -> dict[str, Any]:
    if not body.strip():
        return {}
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"the request body is not valid JSON: {exc}") from None
    if not isinstance(document, dict):
        raise BadRequest("the request body must be a JSON object")
    return document

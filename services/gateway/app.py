"""`create_app(settings)`: the gateway as an ASGI app. Nothing happens at import.

The registry and the model manager are created when the app starts (the lifespan), so
building the app reads no database and loads no model; stopping it unloads every model.
Every error, from a route, from FastAPI or unexpected, goes through one handler into the
`{"error": "..."}` envelope.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import orjson
from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from registry.errors import MlgateError
from registry.store import Registry
from services.gateway.dataplane import DataPlane
from services.gateway.errors import error_body
from services.gateway.manager import ModelManager
from services.gateway.rest import ClientGone, build_router
from services.gateway.settings import GatewaySettings

__all__ = ["create_app"]


def create_app(
    settings: GatewaySettings | None = None, *, registry: Registry | None = None
) -> FastAPI:
    settings = settings or GatewaySettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        own_registry = registry is None
        store = registry or Registry()
        manager = ModelManager(store, settings)
        app.state.dataplane = DataPlane(manager, max_rows=settings.max_rows_per_request)
        await manager.start()
        try:
            yield
        finally:
            await manager.stop()
            if own_registry:
                store.close()

    app = FastAPI(
        title="mlgate",
        summary="Open Inference Protocol gateway with adaptive batching",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.include_router(build_router(settings))

    async def handle(_request: Request, exc: Exception) -> Response:
        if isinstance(exc, ClientGone):
            return Response(status_code=499)
        headers: dict[str, str] = {}
        if isinstance(exc, HTTPException):
            status, message = exc.status_code, str(exc.detail)
        elif isinstance(exc, RequestValidationError):
            status, message = 400, f"invalid request: {exc.errors()}"
        else:
            status, message, headers = error_body(exc)
        return Response(
            orjson.dumps({"error": message}),
            status_code=status,
            headers=headers,
            media_type="application/json",
        )

    for kind in (MlgateError, ClientGone, HTTPException, RequestValidationError):
        app.add_exception_handler(kind, handle)
    # Not add_exception_handler(Exception): Starlette sends that response and then re-raises,
    # and the server drops the client's keep-alive connection.
    app.add_middleware(_Unexpected)
    return app


class _Unexpected:
    """Turns an unexpected exception into the envelope (500) and keeps the connection."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        except Exception as exc:
            if started:
                raise
            status, message, headers = error_body(exc)
            response = Response(
                orjson.dumps({"error": message}),
                status_code=status,
                headers=headers,
                media_type="application/json",
            )
            await response(scope, receive, send)

"""`create_app(settings)`: the gateway as an ASGI app. Nothing happens at import.

The registry and the model manager are created when the app starts (the lifespan), so
building the app reads no database and loads no model; stopping it unloads every model.
Every error a route raises becomes the `{"error": "..."}` envelope in one place
(`rest.error_response`); the router's own 404/405 use the same envelope.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import orjson
from fastapi import FastAPI, Request, Response
from starlette.exceptions import HTTPException

from registry.store import Registry
from services.gateway.dataplane import DataPlane
from services.gateway.manager import ModelManager
from services.gateway.rest import build_routes
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
        openapi_url=None,
        # mlgate exports its own Prometheus metrics; FastAPI's built-in OpenTelemetry
        # spans and metrics would cost every request without anyone reading them.
        telemetry={"tracing": False, "metrics": False, "logs": False, "operation_spans": False},
    )
    app.router.routes.extend(build_routes(settings))

    async def unmatched(_request: Request, exc: Exception) -> Response:
        """404 and 405 from the router, in the same envelope as everything else."""
        assert isinstance(exc, HTTPException)
        return Response(
            orjson.dumps({"error": f"{exc.detail}: no such route or method"}),
            status_code=exc.status_code,
            media_type="application/json",
        )

    app.add_exception_handler(HTTPException, unmatched)
    return app

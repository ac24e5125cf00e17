"""Monitoring routes: the latest drift check as JSON, and its Evidently report as HTML.

Thin like the inference routes: each turns HTTP into one `GatewayMonitoring` call. The
report is rendered only when asked for (seconds of CPU for a 10k-row window), in a worker
thread so serving goes on, and kept on disk so asking again costs nothing.
"""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Route

from services.gateway.auth import check_api_key
from services.gateway.monitoring import GatewayMonitoring
from services.gateway.rest import (
    guarded,
    json_response,
    model_name,
    positive_int,
    version_number,
)
from services.gateway.settings import GatewaySettings

__all__ = ["monitoring_routes"]


def monitoring_routes(settings: GatewaySettings) -> list[Route]:
    def monitoring(request: Request) -> GatewayMonitoring:
        check_api_key(request.headers, settings.api_keys)
        found: GatewayMonitoring = request.app.state.monitoring
        return found

    async def drift(request: Request) -> Response:
        plane = monitoring(request)
        name = model_name(request.path_params["name"])
        version = version_number(request.query_params.get("version"))
        check_id = _check_id(request.query_params.get("check"))
        check = await asyncio.to_thread(plane.check, name, version, check_id)
        return json_response(check.to_json())

    async def drift_report(request: Request) -> Response:
        plane = monitoring(request)
        name = model_name(request.path_params["name"])
        version = version_number(request.query_params.get("version"))
        check_id = _check_id(request.query_params.get("check"))
        path = await asyncio.to_thread(plane.report, name, version, check_id)
        return FileResponse(path, media_type="text/html; charset=utf-8")

    return [
        Route("/monitoring/models/{name}/drift", guarded(drift), methods=["GET"]),
        Route("/monitoring/models/{name}/drift/report", guarded(drift_report), methods=["GET"]),
    ]


def _check_id(text: str | None) -> int | None:
    return None if text is None else positive_int(text, "query parameter 'check'")

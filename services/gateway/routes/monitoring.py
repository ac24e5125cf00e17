"""Monitoring routes: the latest drift check and quality evaluation as JSON, the drift
check's Evidently report as HTML, and how a shadow agrees with the version it shadows.

Thin like the inference routes: each turns HTTP into one `GatewayMonitoring` call. The
report is rendered only when asked for (seconds of CPU for a 10k-row window), in a worker
thread so serving goes on, and kept on disk so asking again costs nothing.
"""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Route

from registry.errors import BadRequest
from services.gateway.auth import check_api_key
from services.gateway.monitoring import GatewayMonitoring
from services.gateway.params import model_name, positive_int, version_number
from services.gateway.rest import guarded, json_response
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

    async def quality(request: Request) -> Response:
        plane = monitoring(request)
        name = model_name(request.path_params["name"])
        version = version_number(request.query_params.get("version"))
        history = _history(request.query_params.get("history"))
        found = await asyncio.to_thread(plane.quality, name, version, history)
        return json_response(found)

    async def shadow(request: Request) -> Response:
        plane = monitoring(request)
        name = model_name(request.path_params["name"])
        last = positive_int(request.query_params.get("last", "10000"), "query parameter 'last'")
        if last > MAX_LAST:
            raise BadRequest(f"query parameter 'last' must be at most {MAX_LAST}, got {last}")
        return json_response(await asyncio.to_thread(plane.shadow, name, last))

    return [
        Route("/monitoring/models/{name}/shadow", guarded(shadow), methods=["GET"]),
        Route("/monitoring/models/{name}/quality", guarded(quality), methods=["GET"]),
        Route("/monitoring/models/{name}/drift", guarded(drift), methods=["GET"]),
        Route("/monitoring/models/{name}/drift/report", guarded(drift_report), methods=["GET"]),
    ]


def _check_id(text: str | None) -> int | None:
    return None if text is None else positive_int(text, "query parameter 'check'")


def _history(text: str | None) -> int:
    """`?history=N`: how many older evaluations to list (0 to 1000)."""
    if text is None:
        return 0
    if not (text.isascii() and text.isdigit() and len(text) <= 4) or int(text) > MAX_HISTORY:
        raise BadRequest(
            f"query parameter 'history' must be a whole number from 0 to {MAX_HISTORY}, "
            f"got {text[:40]!r}"
        )
    return int(text)


MAX_HISTORY = 1000
MAX_LAST = 1_000_000  # rows of each version read for a shadow's comparison

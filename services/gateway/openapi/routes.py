"""`GET /openapi.json` and `GET /docs`: the document, and the page that renders it.

The document is built on the first request and kept (it depends on the settings only),
so building an app costs nothing. The page is `dist/docs.html` from the dashboard's front
end (Swagger UI bundled by esbuild, `services/gateway/dashboard/`); its script and style
are dashboard assets (`/dashboard/assets/docs.js`, `docs.css`), so nothing is fetched
from anywhere else and the page works offline. Both are open, as /dashboard is: the
document describes the routes, not the gateway's data, and each route keeps its own auth.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from services.gateway.dashboard import DIST
from services.gateway.errors import Unavailable
from services.gateway.openapi.document import build_document
from services.gateway.rest import error_response
from services.gateway.settings import GatewaySettings

__all__ = ["DOCS_BUNDLE", "DOCS_PAGE", "docs_routes"]

DOCS_PAGE = "docs.html"
DOCS_BUNDLE = ("docs.js", "docs.css")
# Swagger UI sets styles from its scripts (allowed by 'self') and draws icons from data: URLs;
# it fetches the document from this origin, as "Try it out" calls do.
DOCS_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-cache",
}


def docs_routes(settings: GatewaySettings, dist: Path = DIST) -> list[Route]:
    built: list[bytes] = []

    def document() -> bytes:
        if not built:
            built.append(orjson.dumps(build_document(settings)))
        return built[0]

    async def openapi(request: Request) -> Response:
        return Response(document(), media_type="application/json")

    async def docs(request: Request) -> Response:
        if not all((dist / name).is_file() for name in (DOCS_PAGE, *DOCS_BUNDLE)):
            return error_response(
                Unavailable(
                    f"the /docs page is not built ({dist} has no {DOCS_PAGE} bundle): run "
                    "`make setup`, or `npm ci && npm run build` in services/gateway/dashboard; "
                    "the document itself is at /openapi.json"
                )
            )
        content = await asyncio.to_thread((dist / DOCS_PAGE).read_bytes)
        return Response(content, media_type="text/html; charset=utf-8", headers=DOCS_HEADERS)

    return [
        Route("/openapi.json", openapi, methods=["GET"]),
        Route("/docs", docs, methods=["GET"]),
    ]

"""`GET /dashboard`: the page a person reads, its data, and its bundled assets.

The page is static: `services/gateway/dashboard/` holds its sources (uPlot charts, an
esbuild bundle built by `make setup` into `dist/`), and the browser polls
`/dashboard/data`, `MetricsHistory.snapshot()` as JSON, every `interval_s`. The history is
filled by one task that samples the gateway's own CollectorRegistry every `interval_s` on
the event loop (the scrape-time collector reads the manager's state there, as /metrics
does); one sample costs one `registry.collect()`, nothing per request.

Assets: only the files that exist in `dist/` are served, looked up by exact name (the route
takes one path segment and the name must be a listed file), so nothing outside `dist/` can
be reached. The page's Content-Security-Policy allows this origin only: nothing is fetched
from anywhere else. Without a build, `/dashboard` answers 503 saying how to build it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

import orjson
from prometheus_client import CollectorRegistry
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from monitors.metrics.history import MetricsHistory
from registry.errors import NotFound
from services.gateway.errors import Unavailable
from services.gateway.rest import error_response

__all__ = ["DIST", "Dashboard"]

log = logging.getLogger("mlgate.gateway")

DIST = Path(__file__).with_suffix("") / "dist"
"""The bundle `make setup` builds (`npm run build` in services/gateway/dashboard)."""
PAGE = "index.html"
BUNDLE = ("dashboard.js", "dashboard.css")
CONTENT_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".map": "application/json",
}
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-cache",
}


class Dashboard:
    def __init__(
        self,
        registry: CollectorRegistry,
        *,
        interval_s: float,
        dist: Path = DIST,
        points: int = 720,
        source: Callable[[], Awaitable[CollectorRegistry]] | None = None,
        check: Callable[[Request], None] | None = None,
    ) -> None:
        """`source`: where each point is read from, if not `registry` (with workers, every
        worker's metrics merged). `check`: raises for a request that may not see the
        dashboard (the API key, when keys are set), before the page or its data."""
        self._check = check
        if interval_s <= 0:
            raise ValueError(f"interval_s must be positive, got {interval_s}")
        self.interval_s = interval_s
        self.dist = dist
        self.history = MetricsHistory(registry, points=points, interval_s=interval_s)
        self.source = source
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._sample_forever())

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _sample_forever(self) -> None:
        loop = asyncio.get_running_loop()
        due = loop.time()
        while True:
            try:
                self.history.sample(None if self.source is None else await self.source())
            except Exception:
                log.exception("dashboard sampling failed; trying again next interval")
            # A fixed cadence: a slow sample does not push every later point back.
            due = max(due + self.interval_s, loop.time())
            await asyncio.sleep(due - loop.time())

    def routes(self) -> list[Route]:
        return [
            Route("/dashboard", self._checked(self.page), methods=["GET"]),
            Route("/dashboard/data", self._checked(self.data), methods=["GET"]),
            # The bundle is the same public code for everyone, and /docs loads it too.
            Route("/dashboard/assets/{name}", self.asset, methods=["GET"]),
        ]

    def _checked(
        self, endpoint: Callable[[Request], Awaitable[Response]]
    ) -> Callable[[Request], Awaitable[Response]]:
        check = self._check
        if check is None:
            return endpoint

        async def run(request: Request) -> Response:
            try:
                check(request)
            except Exception as exc:  # noqa: BLE001 -- refused in the envelope, like any route
                return error_response(exc)
            return await endpoint(request)

        return run

    def built(self) -> bool:
        return all((self.dist / name).is_file() for name in (PAGE, *BUNDLE))

    async def page(self, request: Request) -> Response:
        if not self.built():
            return error_response(
                Unavailable(
                    f"the dashboard's front end is not built ({self.dist} has no bundle): "
                    "run `make setup`, or `npm ci && npm run build` in "
                    "services/gateway/dashboard"
                )
            )
        content = await asyncio.to_thread((self.dist / PAGE).read_bytes)
        return Response(content, media_type="text/html; charset=utf-8", headers=PAGE_HEADERS)

    async def data(self, request: Request) -> Response:
        return Response(
            orjson.dumps(self.history.snapshot()),
            media_type="application/json",
            headers={"Cache-Control": "no-store"},
        )

    async def asset(self, request: Request) -> Response:
        name = request.path_params["name"]
        path = self.dist / name
        if name not in self._assets():
            return error_response(
                NotFound(f"no dashboard asset {name!r}: the bundle has {sorted(self._assets())}")
            )
        content = await asyncio.to_thread(path.read_bytes)
        headers = {"X-Content-Type-Options": "nosniff", "Cache-Control": "no-cache"}
        return Response(content, media_type=CONTENT_TYPES[path.suffix], headers=headers)

    def _assets(self) -> set[str]:
        """The bundle's files by name; the page itself is served at /dashboard."""
        if not self.dist.is_dir():
            return set()
        return {
            p.name
            for p in self.dist.iterdir()
            if p.is_file() and p.suffix in CONTENT_TYPES and p.name != PAGE
        }

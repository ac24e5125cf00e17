"""The gateway's ASGI app: FastAPI, with the inference routes dispatched ahead of its stack.

Every request through FastAPI passes six middleware layers (server errors, exception
handlers, the body limit, the exit stack, telemetry, the router's scan of every route),
each wrapping `send`; profiled at saturation they cost about a sixth of the gateway's CPU
on a small model. The inference routes need none of them: their endpoints turn every
error into the envelope themselves and read the body under their own limit. So POSTs
that match one of `fast_routes` go straight to its endpoint; everything else, and the
lifespan, goes through FastAPI as before.
"""

from __future__ import annotations

from fastapi import FastAPI
from starlette.requests import Request
from starlette.routing import Match, Route
from starlette.types import Receive, Scope, Send

__all__ = ["GatewayApp"]


class GatewayApp(FastAPI):
    fast_routes: list[Route]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            for route in getattr(self, "fast_routes", ()):
                match, child = route.matches(scope)
                if match is Match.FULL:
                    scope.update(child)
                    scope["app"] = self
                    response = await route.endpoint(Request(scope, receive, send))
                    await response(scope, receive, send)
                    return
        await super().__call__(scope, receive, send)

"""The app's one exception handler: a route with no error handling of its own still answers
every error in the envelope, with its status and headers, and the gateway keeps serving."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from registry import Registry
from registry.errors import Conflict
from services.gateway.app import create_app
from services.gateway.errors import Overloaded
from tests.services.gateway.conftest import settings

pytestmark = pytest.mark.anyio


async def conflict(_request: Request) -> Response:
    raise Conflict("the alias already points there")


async def overloaded(_request: Request) -> Response:
    raise Overloaded("too much", retry_after_s=2.0)


async def broken(_request: Request) -> Response:
    raise RuntimeError("a bug in a route")


@pytest.fixture
async def client(registry: Registry) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings(), registry=registry)
    app.router.routes.extend(
        [Route("/conflict", conflict), Route("/overloaded", overloaded), Route("/broken", broken)]
    )
    async with app.router.lifespan_context(app):
        # A 500's exception is re-raised after the answer (to be logged): the answer counts.
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            yield client


async def test_an_unguarded_route_answers_the_envelope(client: httpx.AsyncClient) -> None:
    answer = await client.get("/conflict")
    assert (answer.status_code, answer.json()) == (409, {"error": "the alias already points there"})
    refused = await client.get("/overloaded")
    assert refused.status_code == 503
    assert int(refused.headers["retry-after"]) >= 2
    failed = await client.get("/broken")
    assert failed.status_code == 500
    assert failed.json() == {
        "error": "internal error: the gateway failed on this request; see its log"
    }
    body = {"inputs": [{"name": "x", "shape": [1, 6], "datatype": "FP32", "data": [0.0] * 6}]}
    assert (await client.post("/v2/models/mlp/infer", json=body)).status_code == 200


async def test_the_routers_404_and_405_are_the_envelope(client: httpx.AsyncClient) -> None:
    missing = await client.get("/nowhere")
    assert missing.status_code == 404
    assert missing.json() == {"error": "Not Found: no such route or method"}
    wrong = await client.delete("/registry/models")
    assert wrong.status_code == 405
    assert set(wrong.headers["allow"].split(", ")) == {"GET", "HEAD"}
    assert set(wrong.json()) == {"error"}

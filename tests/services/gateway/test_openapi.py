"""GET /openapi.json and GET /docs: a valid OpenAPI 3.1 document of exactly the router's
routes, its security as the gateway enforces it, and a page that needs nothing but the
gateway. The fuzzing of the document's operations is test_fuzz.py.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx
import pytest
from openapi_spec_validator import OpenAPIV31SpecValidator
from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Route

from registry import Registry
from services.gateway.app import create_app
from services.gateway.dashboard import DIST
from services.gateway.openapi.routes import DOCS_BUNDLE, DOCS_PAGE, docs_routes
from services.gateway.settings import GatewaySettings
from tests.services.gateway.conftest import open_gateway

METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
KEYED: dict[str, Any] = {"api_keys": "key-one,key-two", "admin_token": "admin-secret"}
# DESIGN.md's public contracts: whatever else changes, these stay documented.
PUBLIC = {
    ("get", "/v2"),
    ("get", "/v2/health/live"),
    ("get", "/v2/health/ready"),
    ("get", "/v2/models/{name}"),
    ("get", "/v2/models/{name}/versions/{version}/ready"),
    ("post", "/v2/models/{name}/infer"),
    ("post", "/v2/models/{name}/versions/{version}/infer"),
    ("post", "/v2/repository/index"),
    ("post", "/v2/repository/models/{name}/load"),
    ("post", "/v2/repository/models/{name}/unload"),
    ("post", "/v1/models/{name}:predict"),
    ("get", "/metrics"),
    ("get", "/monitoring/models/{name}/drift"),
    ("get", "/monitoring/models/{name}/quality"),
    ("get", "/monitoring/models/{name}/drift/report"),
    ("get", "/dashboard"),
    ("post", "/v1/models/{name}/feedback"),
    ("get", "/retraining/tasks"),
    ("get", "/retraining/tasks/{task_id}"),
    ("post", "/retraining/tasks/{task_id}/approve"),
    ("post", "/retraining/tasks/{task_id}/reject"),
    ("post", "/alerts/alertmanager"),
    ("get", "/openapi.json"),
    ("get", "/docs"),
}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def client_of(app: Any, host: str = "127.0.0.1") -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(host, 50000))
    return httpx.AsyncClient(transport=transport, base_url="http://gateway")


async def served_document(**settings: Any) -> dict[str, Any]:
    """The document as the app serves it (routes only: no lifespan, no registry opened)."""
    async with client_of(create_app(GatewaySettings(**settings))) as client:
        response = await client.get("/openapi.json")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    document: dict[str, Any] = response.json()
    return document


def routed(app: Any) -> dict[str, set[str]]:
    """The router's paths (`{name:int}` written `{name}`) and methods. Starlette answers
    HEAD wherever GET is routed; the document lists the GET."""
    found: dict[str, set[str]] = {}
    for route in app.router.routes:
        assert isinstance(route, Route), f"{route!r}: only plain routes are walked here"
        path = re.sub(r"\{(\w+)(:\w+)?\}", r"{\1}", route.path)
        methods = {m.lower() for m in route.methods or ()}
        if "get" in methods:
            methods.discard("head")
        found.setdefault(path, set()).update(methods)
    return found


def documented(document: dict[str, Any]) -> dict[str, set[str]]:
    return {path: set(item) & METHODS for path, item in document["paths"].items()}


@pytest.mark.anyio
@pytest.mark.parametrize("settings", [{}, KEYED], ids=["open", "keyed"])
async def test_the_served_document_is_valid_openapi_3_1(settings: dict[str, Any]) -> None:
    document = await served_document(**settings)
    assert document["openapi"].startswith("3.1.")
    OpenAPIV31SpecValidator(document).validate()  # raises, naming the first error


@pytest.mark.anyio
async def test_info_version_is_the_package_version() -> None:
    document = await served_document()
    assert document["info"]["version"] == package_version("mlgate")


@pytest.mark.anyio
async def test_the_document_lists_exactly_the_routers_paths_and_methods() -> None:
    app = create_app(GatewaySettings())
    document = await served_document()
    assert documented(document) == routed(app)
    operations = {(m, p) for p, methods in documented(document).items() for m in methods}
    assert operations >= PUBLIC


def test_a_route_the_document_lacks_is_a_difference() -> None:
    """The comparison above fails for a new route without its part of the document, and
    for a new method on a path already documented."""
    app = create_app(GatewaySettings())
    before = routed(app)

    async def endpoint(_request: Any) -> Response:
        return Response()

    app.router.routes.append(Route("/v2/models/{name:str}/explain", endpoint, methods=["POST"]))
    app.router.routes.append(Route("/metrics", endpoint, methods=["DELETE"]))
    after = routed(app)
    assert after["/v2/models/{name}/explain"] == {"post"}
    assert after["/metrics"] == {"get", "delete"}
    assert after != before


@pytest.mark.anyio
async def test_each_operation_declares_the_auth_its_route_enforces(registry: Registry) -> None:
    """With API keys and an admin token set, every operation is called by a non-loopback
    client with no credentials: those that declare a security requirement answer 401, and
    those that declare none answer neither 401 nor 403."""
    document = await served_document(**KEYED)
    values = {"name": "mlp", "version": "1", "task_id": "1", "alias": "staging", "job_id": "1"}
    async for gateway in open_gateway(registry, client_host="203.0.113.9", **KEYED):
        for path, item in document["paths"].items():
            for method, operation in item.items():
                url = re.sub(r"\{(\w+)\}", lambda m: values[m.group(1)], path)
                if path == "/dashboard/assets/{name}":
                    url = f"/dashboard/assets/{DOCS_BUNDLE[0]}"
                body: dict[str, Any] | None = {} if method == "post" else None
                response = await gateway.client.request(method, url, json=body)
                label = f"{method.upper()} {path}: {response.status_code} {response.text[:200]}"
                if operation["security"]:
                    assert response.status_code == 401, label
                    assert {"401", "403"} <= set(operation["responses"]), label
                else:
                    assert response.status_code not in (401, 403), label


@pytest.mark.anyio
async def test_without_keys_or_token_only_admin_operations_mention_auth() -> None:
    document = await served_document()
    for item in document["paths"].values():
        for operation in item.values():
            assert operation["security"] == []
            assert "401" not in operation["responses"]
    load = document["paths"]["/v2/repository/models/{name}/load"]["post"]
    assert "403" in load["responses"]  # non-loopback clients, with no token set
    assert "loopback" in load["description"]


class References(HTMLParser):
    """Every URL a page's elements point at: src, href, and the spec's data-spec."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in ("src", "href", "data-spec") and value is not None:
                self.urls.append(value)


@pytest.mark.anyio
async def test_docs_references_only_this_origin_and_every_reference_answers() -> None:
    assert all((DIST / name).is_file() for name in (DOCS_PAGE, *DOCS_BUNDLE)), (
        f"the /docs bundle is not built in {DIST}: run `make setup`"
    )
    async with client_of(create_app(GatewaySettings())) as client:
        page = await client.get("/docs")
        assert page.status_code == 200
        assert page.headers["content-type"] == "text/html; charset=utf-8"
        policy = page.headers["content-security-policy"]
        assert "default-src 'none'" in policy
        assert "script-src 'self';" in policy
        assert "connect-src 'self';" in policy
        parser = References()
        parser.feed(page.text)
        assert not re.search(r"(?i)\b(https?:)?//", page.text), "a URL to another host"
        local = [url for url in parser.urls if not url.startswith("data:")]
        assert len(local) == 3, parser.urls  # the stylesheet, the script, the document
        types = set()
        for url in local:
            absolute = urljoin(str(page.url), url)
            assert urlsplit(absolute).netloc == "gateway", url
            answer = await client.get(absolute)
            assert answer.status_code == 200, url
            assert answer.content, url
            types.add(answer.headers["content-type"].split(";")[0])
        assert types == {"text/css", "text/javascript", "application/json"}


@pytest.mark.anyio
async def test_without_a_build_docs_is_503_and_the_document_is_still_served(
    tmp_path: Path,
) -> None:
    app = Starlette(routes=docs_routes(GatewaySettings(), dist=tmp_path / "no-build"))
    async with client_of(app) as client:
        page = await client.get("/docs")
        assert page.status_code == 503
        assert "make setup" in page.json()["error"]
        assert (await client.get("/openapi.json")).status_code == 200

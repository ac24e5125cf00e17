"""/docs in headless Chromium: the page renders every operation of the gateway's document
with nothing but the gateway to talk to.

Every request that leaves for another host is aborted (as it would fail offline) and
recorded; the test asserts there were none, that the page logged no error (a Content-
Security-Policy violation is one), and that Swagger UI drew one block per operation of
/openapi.json. A screenshot goes to tests/artifacts/docs.png.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import Route, sync_playwright

from registry import Registry
from services.gateway.dashboard import DIST
from services.gateway.openapi.routes import DOCS_BUNDLE, DOCS_PAGE
from tests.services.gateway.conftest import LiveServer
from tests.support.chromium import LAUNCH_ARGS, ensure_chromium

pytestmark = pytest.mark.slow

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"
OPERATIONS = "() => document.querySelectorAll('.opblock').length"


def test_docs_renders_every_operation_offline(registry: Registry) -> None:
    assert all((DIST / name).is_file() for name in (DOCS_PAGE, *DOCS_BUNDLE)), (
        f"the /docs bundle is not built in {DIST}: run `make setup`"
    )
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with LiveServer(registry) as live:
        document: dict[str, Any] = httpx.get(f"{live.url}/openapi.json").json()
        operations = sum(len(item) for item in document["paths"].values())
        origin = f"127.0.0.1:{live.port}"
        foreign: list[str] = []
        errors: list[str] = []

        def only_the_gateway(route: Route) -> None:
            if urlsplit(route.request.url).netloc == origin:
                route.continue_()
            else:
                foreign.append(route.request.url)
                route.abort()

        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=str(ensure_chromium()), args=LAUNCH_ARGS
            )
            try:
                context = browser.new_context(viewport={"width": 1280, "height": 900})
                context.route("**/*", only_the_gateway)
                page = context.new_page()
                page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
                page.on("pageerror", lambda error: errors.append(str(error)))
                opened = page.goto(f"{live.url}/docs")
                assert opened is not None
                assert opened.status == 200
                page.wait_for_function(f"{OPERATIONS} === {operations}", timeout=60_000)
                title = page.text_content(".info .title")
                assert title is not None
                assert "mlgate" in title
                assert document["info"]["version"] in title
                page.screenshot(path=str(ARTIFACTS / "docs.png"), full_page=False)
            finally:
                browser.close()
    assert foreign == []
    assert errors == []

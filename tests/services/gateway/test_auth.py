"""Who may call what: the admin token, API keys (Bearer, X-API-Key, HTTP Basic), and which
routes need a key when keys are set."""

from __future__ import annotations

import base64

import pytest
from pydantic import SecretStr

from registry import Registry
from services.gateway.auth import BASIC, BEARER, check_admin, check_api_key
from services.gateway.errors import Forbidden, Unauthorized
from tests.services.gateway.conftest import open_gateway

TOKEN = SecretStr("s3cret-admin")
KEYS = [SecretStr("key-one"), SecretStr("key-two")]


def test_without_a_token_only_loopback_clients_administer() -> None:
    for host in ("127.0.0.1", "::1", "localhost"):
        check_admin({}, host, None)
    for remote in ("10.0.0.5", "192.168.1.2", None):
        with pytest.raises(Forbidden, match="loopback clients only"):
            check_admin({}, remote, None)


def test_with_a_token_anyone_with_it_administers() -> None:
    check_admin({"authorization": "Bearer s3cret-admin"}, "10.0.0.5", TOKEN)
    with pytest.raises(Unauthorized) as missing:
        check_admin({}, "127.0.0.1", TOKEN)
    assert missing.value.status_code == 401
    with pytest.raises(Forbidden) as wrong:
        check_admin({"authorization": "Bearer guess"}, "127.0.0.1", TOKEN)
    assert wrong.value.status_code == 403


def test_api_keys_by_bearer_or_header() -> None:
    check_api_key({}, [])  # none configured: open
    check_api_key({"authorization": "Bearer key-two"}, KEYS)
    check_api_key({"x-api-key": "key-one"}, KEYS)
    with pytest.raises(Unauthorized):
        check_api_key({"authorization": "Basic key-one"}, KEYS)
    with pytest.raises(Forbidden):
        check_api_key({"x-api-key": "key-three"}, KEYS)


def basic(password: str, user: str = "anyone") -> dict[str, str]:
    return {"authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def test_an_api_key_as_http_basic_password() -> None:
    check_api_key(basic("key-one"), KEYS)
    check_api_key(basic("key-two", user=""), KEYS)
    with pytest.raises(Forbidden):
        check_api_key(basic("key-three"), KEYS)
    for unreadable in ("Basic !!!", "Basic " + base64.b64encode(b"no-colon").decode()):
        with pytest.raises(Unauthorized):
            check_api_key({"authorization": unreadable}, KEYS)


def test_the_admin_token_is_read_from_bearer_only() -> None:
    for elsewhere in ({"x-api-key": "s3cret-admin"}, basic("s3cret-admin")):
        with pytest.raises(Unauthorized, match="Authorization: Bearer"):
            check_admin(elsewhere, "10.0.0.5", TOKEN)


def test_a_401_names_the_scheme_to_use() -> None:
    with pytest.raises(Unauthorized) as bearer:
        check_api_key({}, KEYS)
    assert bearer.value.challenge == BEARER
    with pytest.raises(Unauthorized) as browser:
        check_api_key({}, KEYS, challenge=BASIC)
    assert browser.value.challenge.startswith("Basic ")


# ------------------------------------------------------------------ through the gateway

OPEN_WITHOUT_A_KEY = ("/v2/health/live", "/v2/health/ready", "/v2")  # probes, server name
NEED_A_KEY = ("/metrics", "/dashboard", "/dashboard/data", "/v2/models/mlp")


@pytest.mark.anyio
async def test_with_keys_set_metrics_and_the_dashboard_need_one(registry: Registry) -> None:
    async for gateway in open_gateway(registry, api_keys="alpha"):
        for path in OPEN_WITHOUT_A_KEY:
            assert (await gateway.client.get(path)).status_code == 200, path
        for path in NEED_A_KEY:
            refused = await gateway.client.get(path)
            assert refused.status_code == 401, path
            assert set(refused.json()) == {"error"}
            scheme = "Basic" if path.startswith("/dashboard") else "Bearer"
            assert refused.headers["www-authenticate"].startswith(scheme), path
            assert (
                await gateway.client.get(path, headers={"X-API-Key": "nope"})
            ).status_code == 403
            for key in ({"X-API-Key": "alpha"}, {"Authorization": "Bearer alpha"}, basic("alpha")):
                answered = await gateway.client.get(path, headers=key)
                assert answered.status_code in (200, 503), (path, answered.text)  # 503: no bundle


@pytest.mark.anyio
async def test_settings_open_metrics_and_the_dashboard(registry: Registry) -> None:
    async for gateway in open_gateway(
        registry, api_keys="alpha", open_metrics=True, open_dashboard=True
    ):
        assert (await gateway.client.get("/metrics")).status_code == 200
        assert (await gateway.client.get("/dashboard/data")).status_code == 200
        assert (await gateway.client.get("/v2/models/mlp")).status_code == 401  # the rest: not
    async for gateway in open_gateway(registry, api_keys="alpha", open_metrics=True):
        assert (await gateway.client.get("/metrics")).status_code == 200
        assert (await gateway.client.get("/dashboard/data")).status_code == 401


@pytest.mark.anyio
async def test_the_admin_token_as_x_api_key_is_refused(registry: Registry) -> None:
    async for gateway in open_gateway(registry, admin_token="t0ken", client_host="10.1.2.3"):
        sent = await gateway.client.post("/v2/repository/index", headers={"X-API-Key": "t0ken"})
        assert sent.status_code == 401
        assert sent.headers["www-authenticate"].startswith("Bearer")
        bearer = {"Authorization": "Bearer t0ken"}
        assert (
            await gateway.client.post("/v2/repository/index", headers=bearer)
        ).status_code == 200

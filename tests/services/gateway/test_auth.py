from __future__ import annotations

import pytest
from pydantic import SecretStr

from services.gateway.auth import check_admin, check_api_key
from services.gateway.errors import Forbidden, Unauthorized

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

"""Who may call what: an admin bearer token for the repository API, API keys for the rest.

- The admin token is read from `Authorization: Bearer` only (never `X-API-Key`, which is an
  inference key's header). With no admin token configured, the repository API answers
  loopback clients only.
- An API key is read from `Authorization: Bearer`, `X-API-Key`, or HTTP Basic's password
  (any user name): a browser opening /dashboard with keys set is asked for one, and then
  sends it with every request the page makes.

Tokens are compared in constant time (`hmac.compare_digest`) against every configured key,
so neither a key's content nor its position leaks through timing. A 401 carries
`WWW-Authenticate` naming the scheme to use.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import ipaddress
from collections.abc import Mapping, Sequence

from pydantic import SecretStr

from services.gateway.errors import Forbidden, Unauthorized

__all__ = ["BASIC", "BEARER", "check_admin", "check_api_key"]


BEARER = 'Bearer realm="mlgate"'
BASIC = 'Basic realm="mlgate", charset="UTF-8"'


def _bearer(headers: Mapping[str, str]) -> str | None:
    scheme, _, token = headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return None


def _basic_password(headers: Mapping[str, str]) -> str | None:
    scheme, _, encoded = headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    _, sep, password = decoded.partition(":")
    return (password or None) if sep else None


def _presented_key(headers: Mapping[str, str]) -> str | None:
    return _bearer(headers) or headers.get("x-api-key") or _basic_password(headers)


def _matches(token: str, secrets: Sequence[SecretStr]) -> bool:
    found = False
    for secret in secrets:
        found |= hmac.compare_digest(token.encode(), secret.get_secret_value().encode())
    return found


def check_admin(
    headers: Mapping[str, str], client_host: str | None, token: SecretStr | None
) -> None:
    if token is None:
        if not _is_loopback(client_host):
            raise Forbidden(
                "the repository API answers loopback clients only when MLGATE_ADMIN_TOKEN is unset"
            )
        return
    presented = _bearer(headers)
    if presented is None:
        raise Unauthorized(
            "the repository API needs 'Authorization: Bearer <MLGATE_ADMIN_TOKEN>'",
            challenge=BEARER,
        )
    if not _matches(presented, [token]):
        raise Forbidden("the admin token is not valid")


def check_api_key(
    headers: Mapping[str, str], keys: Sequence[SecretStr], *, challenge: str = BEARER
) -> None:
    """`challenge`: the scheme a 401 asks for (`BASIC` where a browser should prompt)."""
    if not keys:
        return
    presented = _presented_key(headers)
    if presented is None:
        raise Unauthorized(
            "this gateway needs an API key: 'Authorization: Bearer <key>', 'X-API-Key', "
            "or HTTP Basic with the key as the password",
            challenge=challenge,
        )
    if not _matches(presented, keys):
        raise Forbidden("the API key is not valid")


def _is_loopback(host: str | None) -> bool:
    if host is None:
        return False
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"

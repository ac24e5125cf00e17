"""Who may call what: an admin bearer token for the repository API, API keys for inference.

Tokens are compared in constant time (`hmac.compare_digest`) against every configured key,
so neither a key's content nor its position leaks through timing. With no admin token
configured, the repository API answers loopback clients only.
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Mapping, Sequence

from pydantic import SecretStr

from services.gateway.errors import Forbidden, Unauthorized

__all__ = ["check_admin", "check_api_key"]


def _presented(headers: Mapping[str, str]) -> str | None:
    authorization = headers.get("authorization", "")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() == "bearer" and token:
        return token.strip()
    return headers.get("x-api-key") or None


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
    presented = _presented(headers)
    if presented is None:
        raise Unauthorized("the repository API needs 'Authorization: Bearer <MLGATE_ADMIN_TOKEN>'")
    if not _matches(presented, [token]):
        raise Forbidden("the admin token is not valid")


def check_api_key(headers: Mapping[str, str], keys: Sequence[SecretStr]) -> None:
    if not keys:
        return
    presented = _presented(headers)
    if presented is None:
        raise Unauthorized(
            "this gateway needs an API key: 'Authorization: Bearer <key>' or 'X-API-Key'"
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

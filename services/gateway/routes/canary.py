"""Canary routes: start a canary on an alias, read it with its history, complete it (the
alias moves to it) or roll it back (admin for all but reading)."""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from registry.errors import BadRequest
from registry.names import ID_RULE, check_alias, positive_id
from registry.store import Registry
from services.gateway.auth import check_admin, check_api_key
from services.gateway.bodies import read_object, text_field
from services.gateway.monitoring import GatewayMonitoring
from services.gateway.params import model_name
from services.gateway.rest import guarded, json_response
from services.gateway.settings import GatewaySettings

__all__ = ["canary_routes"]

PATH = "/registry/models/{name}/aliases/{alias}/canary"


def canary_routes(settings: GatewaySettings) -> list[Route]:
    def registry(request: Request, *, admin: bool) -> Registry:
        if admin:
            client = request.client.host if request.client else None
            check_admin(request.headers, client, settings.admin_token)
        else:
            check_api_key(request.headers, settings.api_keys)
        found: GatewayMonitoring = request.app.state.monitoring
        return found.registry

    def target(request: Request) -> tuple[str, str]:
        return model_name(request.path_params["name"]), check_alias(request.path_params["alias"])

    async def canary(request: Request) -> Response:
        if request.method == "GET":
            store = registry(request, admin=False)
            name, alias = target(request)
            found = await asyncio.to_thread(store.canaries.of, name)
            mine = [c for c in found if c.alias == alias]
            running = next((c.to_json() for c in mine if c.status == "running"), None)
            return json_response({"running": running, "history": [c.to_json() for c in mine]})
        store = registry(request, admin=True)
        name, alias = target(request)
        document = await read_object(request)
        number = positive_id(document.get("version"))
        if number is None:
            raise BadRequest(f"'version' must be {ID_RULE}, got {document.get('version')!r}")
        reason = text_field(document, "reason", required=True)
        started = await asyncio.to_thread(
            store.canaries.start, name, alias, number, document.get("weight"), reason=reason
        )
        return json_response(started.to_json())

    async def promote(request: Request) -> Response:
        store = registry(request, admin=True)
        name, alias = target(request)
        reason = text_field(await read_object(request), "reason", required=True)
        done, event = await asyncio.to_thread(store.canaries.complete, name, alias, reason=reason)
        return json_response({"canary": done.to_json(), "alias_event": event.to_json()})

    async def rollback(request: Request) -> Response:
        store = registry(request, admin=True)
        name, alias = target(request)
        reason = text_field(await read_object(request), "reason", required=True)
        ended = await asyncio.to_thread(
            store.canaries.end, name, alias, "rolled_back", reason=reason
        )
        return json_response(ended.to_json())

    return [
        Route(PATH, guarded(canary), methods=["GET", "PUT"]),
        Route(f"{PATH}/promote", guarded(promote), methods=["POST"]),
        Route(f"{PATH}/rollback", guarded(rollback), methods=["POST"]),
    ]

"""The registry over HTTP: read models, versions (lineage, artifacts with their gate reports)
and aliases with their audit history (an API key, when keys are set); move an alias (the
admin token).

The routes are thin: each is one registry or task-store call in a worker thread (the
database is blocking), with the registry's own errors (404 unknown model or version, 409 an
artifact that did not pass the gate, 400 a reserved alias) leaving in the envelope.
"""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from registry.errors import BadRequest, NotFound
from registry.names import ID_RULE, check_alias, positive_id
from registry.records import ModelVersion
from registry.store import Registry
from services.gateway.auth import check_admin, check_api_key
from services.gateway.bodies import read_object, text_field
from services.gateway.monitoring import GatewayMonitoring
from services.gateway.params import model_name, version_number
from services.gateway.rest import guarded, json_response
from services.gateway.settings import GatewaySettings

__all__ = ["registry_routes", "version_summary"]


def registry_routes(settings: GatewaySettings) -> list[Route]:
    def monitoring(request: Request) -> GatewayMonitoring:
        found: GatewayMonitoring = request.app.state.monitoring
        return found

    def reader(request: Request) -> Registry:
        check_api_key(request.headers, settings.api_keys)
        return monitoring(request).registry

    def admin(request: Request) -> GatewayMonitoring:
        client = request.client.host if request.client else None
        check_admin(request.headers, client, settings.admin_token)
        return monitoring(request)

    async def models(request: Request) -> Response:
        found = await asyncio.to_thread(reader(request).models)
        return json_response(
            {
                "models": [
                    {
                        "name": m.name,
                        "created_at": m.created_at.isoformat(),
                        "versions": m.versions,
                        "latest_version": m.latest_version,
                        "latest_ready": m.latest_ready,
                        "aliases": m.aliases,
                    }
                    for m in found
                ]
            }
        )

    async def model(request: Request) -> Response:
        registry = reader(request)
        name = model_name(request.path_params["name"])
        versions = await asyncio.to_thread(registry.versions, name)
        aliases = {alias: v.version for v in versions for alias in v.aliases}
        return json_response(
            {"name": name, "aliases": aliases, "versions": [version_summary(v) for v in versions]}
        )

    async def version(request: Request) -> Response:
        registry = reader(request)
        name = model_name(request.path_params["name"])
        number = version_number(request.path_params["version"])
        return json_response(await asyncio.to_thread(registry.lineage, f"{name}:{number}"))

    async def aliases(request: Request) -> Response:
        registry = reader(request)
        name = model_name(request.path_params["name"])
        alias = request.query_params.get("alias")
        if alias is not None:
            check_alias(alias)
        current = await asyncio.to_thread(registry.versions, name)  # 404 for an unknown model
        history = await asyncio.to_thread(registry.alias_history, name, alias)
        pointed = {a: v.version for v in current for a in v.aliases}
        return json_response(
            {
                "name": name,
                "aliases": pointed if alias is None else {alias: pointed.get(alias)},
                "history": [e.to_json() for e in history],
            }
        )

    async def move(request: Request) -> Response:
        registry = admin(request).registry
        name = model_name(request.path_params["name"])
        alias = check_alias(request.path_params["alias"])
        document = await read_object(request)
        number = positive_id(document.get("version"))
        if number is None:
            raise BadRequest(f"'version' must be {ID_RULE}, got {document.get('version')!r}")
        reason = text_field(document, "reason", required=True)
        actor = text_field(document, "actor", required=False)
        event = await asyncio.to_thread(
            registry.set_alias, name, alias, number, reason=reason, actor=actor or "admin"
        )
        return json_response(event.to_json())

    async def shadow(request: Request) -> Response:
        registry = reader(request) if request.method == "GET" else admin(request).registry
        name = model_name(request.path_params["name"])
        alias = check_alias(request.path_params["alias"])
        if request.method == "DELETE":
            await asyncio.to_thread(registry.shadows.clear, name, alias)
            return Response(status_code=204)
        if request.method == "GET":
            found = await asyncio.to_thread(registry.shadows.of, name)
            rule = next((s for s in found if s.alias == alias), None)
            if rule is None:
                raise NotFound(f"alias {alias!r} of {name} has no shadow")
            return json_response(rule.to_json())
        document = await read_object(request)
        number = positive_id(document.get("version"))
        if number is None:
            raise BadRequest(f"'version' must be {ID_RULE}, got {document.get('version')!r}")
        rate = document.get("rate")
        reason = text_field(document, "reason", required=True)
        updated = await asyncio.to_thread(
            registry.shadows.set, name, alias, number, rate, reason=reason
        )
        return json_response(updated.to_json())

    return [
        Route(
            "/registry/models/{name}/aliases/{alias}/shadow",
            guarded(shadow),
            methods=["GET", "PUT", "DELETE"],
        ),
        Route("/registry/models", guarded(models), methods=["GET"]),
        Route("/registry/models/{name}", guarded(model), methods=["GET"]),
        Route("/registry/models/{name}/versions/{version}", guarded(version), methods=["GET"]),
        Route("/registry/models/{name}/aliases", guarded(aliases), methods=["GET"]),
        Route("/registry/models/{name}/aliases/{alias}", guarded(move), methods=["PUT"]),
    ]


def version_summary(version: ModelVersion) -> dict[str, Any]:
    """A version in a model's listing: what it is and where it stands, not its lineage."""
    return {
        "version": version.version,
        "status": version.status,
        "created_at": version.created_at.isoformat(),
        "created_by": version.created_by,
        "description": version.description,
        "aliases": list(version.aliases),
        "formats": version.servable_formats,
        "parent": version.parent,
        "task_id": version.task_id,
    }

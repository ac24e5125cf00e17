"""`POST /alerts/alertmanager`: Alertmanager's webhook receiver, opening retraining tasks.

Thin like the other routes: HTTP in, `monitors.tasks.alertmanager` does the parsing and the
opening, JSON out. Protected like the repository API (it writes to the registry's
database): the admin bearer token, or loopback clients only when none is set; configure
Alertmanager's `webhook_configs[].http_config.authorization.credentials` with the token.

Answers 200 with what each alert did, also when nothing opened: Alertmanager retries only
on 5xx, and a retry could not change the answer. A malformed body is a 400 naming the field.
"""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from monitors.tasks.alertmanager import open_tasks, parse_notification
from monitors.tasks.store import TaskStore
from registry.errors import BadRequest, NotFound
from registry.store import Registry
from services.gateway.auth import check_admin
from services.gateway.bodies import parse_json, read_body
from services.gateway.monitoring import GatewayMonitoring
from services.gateway.rest import guarded, json_response
from services.gateway.settings import GatewaySettings

__all__ = ["alert_routes", "task_store"]


def task_store(request: Request) -> TaskStore:
    """The one place the routes get their TaskStore (its policy settings go here)."""
    monitoring: GatewayMonitoring = request.app.state.monitoring
    return monitoring.tasks


def alert_routes(settings: GatewaySettings) -> list[Route]:
    async def alertmanager(request: Request) -> Response:
        client = request.client.host if request.client else None
        check_admin(request.headers, client, settings.admin_token)
        body = await read_body(request, settings.max_body_bytes)
        if not body.strip():
            raise BadRequest("the request body is empty; expected Alertmanager's webhook JSON")
        notification = parse_notification(parse_json(body))
        monitoring: GatewayMonitoring = request.app.state.monitoring
        registry = monitoring.registry

        def known(model: str, version: int) -> bool:
            return _has_version(registry, model, version)

        receipt = await asyncio.to_thread(
            open_tasks, task_store(request), notification, known=known
        )
        for outcome in receipt.outcomes:
            monitoring.announce(outcome)
        return json_response(receipt.to_json())

    return [Route("/alerts/alertmanager", guarded(alertmanager), methods=["POST"])]


def _has_version(registry: Registry, model: str, version: int) -> bool:
    try:
        registry.get(f"{model}:{version}")
    except NotFound:
        return False
    return True

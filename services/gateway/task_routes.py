"""Retraining task routes: list and read tasks; approve or reject them (admin).

Approving a `candidate` task promotes its candidate version: the gateway's first served
alias (`production` by default) moves to it, audited with the approver's reason, and the
gateway's next poll hot-swaps it in. Rejecting closes an open or candidate task.
"""

from __future__ import annotations

import asyncio

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from monitors.task_decisions import approve_task, reject_task
from registry.errors import BadRequest
from services.gateway.auth import check_admin, check_api_key
from services.gateway.monitoring import GatewayMonitoring
from services.gateway.rest import guarded, json_response, model_name, positive_int, read_body
from services.gateway.settings import GatewaySettings

__all__ = ["task_routes"]


def task_routes(settings: GatewaySettings) -> list[Route]:
    def plane(request: Request) -> GatewayMonitoring:
        found: GatewayMonitoring = request.app.state.monitoring
        return found

    def admin(request: Request) -> GatewayMonitoring:
        client = request.client.host if request.client else None
        check_admin(request.headers, client, settings.admin_token)
        return plane(request)

    async def listing(request: Request) -> Response:
        check_api_key(request.headers, settings.api_keys)
        query = request.query_params
        model = query.get("model")
        tasks = await asyncio.to_thread(
            plane(request).tasks.list,
            model=None if model is None else model_name(model),
            status=query.get("status"),
            limit=positive_int(query.get("limit", "100"), "limit"),
        )
        return json_response({"tasks": [t.to_json() for t in tasks]})

    async def one(request: Request) -> Response:
        check_api_key(request.headers, settings.api_keys)
        task = await asyncio.to_thread(plane(request).tasks.get, _task_id(request))
        return json_response(task.to_json())

    async def approve(request: Request) -> Response:
        monitoring = admin(request)
        reason, actor = await _decision(request)
        task = await asyncio.to_thread(
            approve_task,
            monitoring.tasks,
            monitoring.registry,
            _task_id(request),
            alias=settings.serve_aliases[0],
            reason=reason,
            actor=actor,
        )
        monitoring.announce(task)
        return json_response(task.to_json())

    async def reject(request: Request) -> Response:
        monitoring = admin(request)
        reason, actor = await _decision(request)
        task = await asyncio.to_thread(
            reject_task, monitoring.tasks, _task_id(request), reason=reason, actor=actor
        )
        monitoring.announce(task)
        return json_response(task.to_json())

    return [
        Route("/retraining/tasks", guarded(listing), methods=["GET"]),
        Route("/retraining/tasks/{task_id}", guarded(one), methods=["GET"]),
        Route("/retraining/tasks/{task_id}/approve", guarded(approve), methods=["POST"]),
        Route("/retraining/tasks/{task_id}/reject", guarded(reject), methods=["POST"]),
    ]


async def _decision(request: Request) -> tuple[str, str]:
    body = await read_body(request, 64 * 1024)
    try:
        document = orjson.loads(body) if body.strip() else {}
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"the request body is not valid JSON: {exc}") from None
    if not isinstance(document, dict):
        raise BadRequest('the body must be a JSON object: {"reason": "...", "actor": "..."}')
    reason = document.get("reason")
    if not isinstance(reason, str) or not reason.strip():
        raise BadRequest('a decision needs a "reason" (a non-empty string), for the audit log')
    actor = document.get("actor", "admin")
    if not isinstance(actor, str) or not actor.strip():
        raise BadRequest('"actor" must be a non-empty string')
    return reason.strip(), actor.strip()


def _task_id(request: Request) -> int:
    return positive_int(request.path_params["task_id"], "task id")

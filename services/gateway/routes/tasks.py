"""Retraining task routes: list and read tasks; open, approve or reject them (admin).

Approving a `candidate` task promotes its candidate version: the gateway's first served
alias (`production` by default) moves to it, audited with the approver's reason, and the
gateway's next poll hot-swaps it in. Rejecting closes an open or candidate task.
"""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from monitors.tasks.decisions import approve_task, reject_task
from registry.errors import BadRequest
from registry.names import ID_RULE, positive_id
from services.gateway.auth import check_admin, check_api_key
from services.gateway.bodies import read_object, text_field
from services.gateway.monitoring import GatewayMonitoring
from services.gateway.params import model_name, positive_int
from services.gateway.rest import guarded, json_response
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

    async def open_task(request: Request) -> Response:
        plane = admin(request)
        document = await read_object(request)
        name = model_name(text_field(document, "model", required=True))
        raw_version = document.get("version")
        number = None if raw_version is None else positive_id(raw_version)
        if raw_version is not None and number is None:
            raise BadRequest(f"'version' must be {ID_RULE}, got {raw_version!r}")
        reason = text_field(document, "reason", required=True)
        evidence = document.get("evidence", {})
        if not isinstance(evidence, dict):
            raise BadRequest("'evidence' must be a JSON object")
        ref = f"{name}@latest" if number is None else f"{name}:{number}"
        target = await asyncio.to_thread(plane.registry.get, ref)
        outcome = await asyncio.to_thread(
            plane.tasks.open,
            name,
            target.version,
            reason,
            evidence={**evidence, "opened_by": "api"},
            source="api",
            actor=text_field(document, "actor", required=False) or "admin",
        )
        if outcome.task is not None:
            plane.announce(outcome)
        status = 201 if outcome.action == "created" else 200
        body = {
            "action": outcome.action,
            "why": outcome.why,
            "task": None if outcome.task is None else outcome.task.to_json(),
        }
        return json_response(body, status)

    async def tasks(request: Request) -> Response:
        return await (open_task if request.method == "POST" else listing)(request)

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
        Route("/retraining/tasks", guarded(tasks), methods=["GET", "POST"]),
        Route("/retraining/tasks/{task_id}", guarded(one), methods=["GET"]),
        Route("/retraining/tasks/{task_id}/approve", guarded(approve), methods=["POST"]),
        Route("/retraining/tasks/{task_id}/reject", guarded(reject), methods=["POST"]),
    ]


async def _decision(request: Request) -> tuple[str, str]:
    expected = '{"reason": "...", "actor": "..."}'
    document = await read_object(request, expected=expected)
    reason = text_field(document, "reason", required=True)
    return reason, text_field(document, "actor", required=False) or "admin"


def _task_id(request: Request) -> int:
    return positive_int(request.path_params["task_id"], "task id")

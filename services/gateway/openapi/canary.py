"""The canary routes' paths and schemas (`routes.canary`)."""

from __future__ import annotations

from typing import Any

from services.gateway.openapi.common import (
    NULLABLE_TIME,
    STRING,
    TIME,
    Access,
    array,
    json_body,
    json_content,
    model_name,
    obj,
    ok,
    operation,
    path_parameter,
    ref,
)
from services.gateway.openapi.registry import ALIAS_RULE
from services.gateway.settings import GatewaySettings

__all__ = ["canary_paths", "canary_schemas"]

Json = dict[str, Any]
TAG = "Registry"
NULLABLE = {"type": ["string", "null"]}


def canary_paths(settings: GatewaySettings) -> Json:
    user, admin = Access.user(settings), Access.admin(settings)
    where = [
        path_parameter("name", model_name(), "The model"),
        path_parameter("alias", ALIAS_RULE, "The alias whose traffic is split"),
    ]
    one = ok("The canary", json_content(ref("schemas", "Canary")))
    reason = json_body(ref("schemas", "CanaryReason"))
    base = "/registry/models/{name}/aliases/{alias}/canary"
    return {
        base: {
            "get": operation(
                "getCanary",
                "The alias's running canary and every earlier one",
                TAG,
                user,
                ok=ok("Running and history", json_content(ref("schemas", "CanaryState"))),
                errors=(400, 404),
                parameters=where,
            ),
            "put": operation(
                "startCanary",
                "Give a version a share of the alias's traffic (admin)",
                TAG,
                admin,
                ok=one,
                errors=(400, 404, 409, 413),
                parameters=where,
                body=json_body(ref("schemas", "CanaryStart")),
                description="A version of the same model with a gate-passed export, other "
                "than the alias's; weight above 0 and below 1. A running canary is replaced. "
                "Requests with the same route key (X-Route-Key, or the parameter route_key) "
                "always reach the same version. Gateways roll it back when it does worse.",
            ),
        },
        f"{base}/promote": {
            "post": operation(
                "promoteCanary",
                "Complete the canary: the alias moves to it, audited (admin)",
                TAG,
                admin,
                ok=ok("The canary and the move", json_content(ref("schemas", "CanaryPromoted"))),
                errors=(400, 404, 409, 413),
                parameters=where,
                body=reason,
            )
        },
        f"{base}/rollback": {
            "post": operation(
                "rollbackCanary",
                "Roll the canary back: all traffic to the alias's version (admin)",
                TAG,
                admin,
                ok=one,
                errors=(400, 404, 413),
                parameters=where,
                body=reason,
            )
        },
    }


def canary_schemas() -> Json:
    canary = obj(
        {
            "id": {"type": "integer"},
            "model": STRING,
            "alias": STRING,
            "version": {"type": "integer"},
            "weight": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1},
            "status": {"enum": ["running", "rolled_back", "stopped", "completed"]},
            "started_at": TIME,
            "actor": STRING,
            "reason": STRING,
            "ended_at": NULLABLE_TIME,
            "ended_by": NULLABLE,
            "ended_reason": NULLABLE,
            "evidence": {"type": ["object", "null"]},
        },
        ["id", "model", "alias", "version", "weight", "status", "started_at"],
    )
    return {
        "Canary": canary,
        "CanaryState": obj(
            {
                "running": {"oneOf": [ref("schemas", "Canary"), {"type": "null"}]},
                "history": array(ref("schemas", "Canary")),
            },
            ["running", "history"],
        ),
        "CanaryStart": obj(
            {
                "version": {"type": "integer", "minimum": 1},
                "weight": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1},
                "reason": {"type": "string", "minLength": 1},
            },
            ["version", "weight", "reason"],
        ),
        "CanaryReason": obj({"reason": {"type": "string", "minLength": 1}}, ["reason"]),
        "CanaryPromoted": obj(
            {"canary": ref("schemas", "Canary"), "alias_event": {"type": "object"}},
            ["canary", "alias_event"],
        ),
    }

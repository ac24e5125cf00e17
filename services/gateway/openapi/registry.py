"""The registry's paths and schemas (`services/gateway/routes/registry.py`): models,
versions with their lineage, aliases with their history, an audited alias move, and
opening a retraining task (merged into `/retraining/tasks` beside its listing)."""

from __future__ import annotations

from typing import Any

from services.gateway.openapi.common import (
    COUNT,
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
    positive_int64,
    query_parameter,
    ref,
)
from services.gateway.settings import GatewaySettings

__all__ = ["open_task_operation", "registry_paths", "registry_schemas"]

Json = dict[str, Any]

TAG = "Registry"
NAME = path_parameter("name", model_name(), "The model")
ALIAS_RULE = {"type": "string", "pattern": "^[a-z][a-z0-9_-]*$", "maxLength": 64}
NULLABLE_VERSION = {"oneOf": [{"type": "integer"}, {"type": "null"}]}
TEXT = {"type": "string", "minLength": 1, "pattern": r"\S"}


def registry_paths(settings: GatewaySettings) -> Json:
    user, admin = Access.user(settings), Access.admin(settings)
    return {
        "/registry/models": {
            "get": operation(
                "listModels",
                "Every registered model: versions, newest, newest ready, aliases",
                TAG,
                user,
                ok=_json("The models", "ModelList"),
            )
        },
        "/registry/models/{name}": {
            "get": operation(
                "getModel",
                "A model's versions (status, aliases, servable formats) and its aliases",
                TAG,
                user,
                ok=_json("The model", "ModelDetail"),
                errors=(400, 404),
                parameters=[NAME],
            )
        },
        "/registry/models/{name}/versions/{version}": {
            "get": operation(
                "getVersion",
                "A version's lineage: data, code, params, metrics, parents, artifacts with "
                "their parity-gate reports",
                TAG,
                user,
                ok=_json("The lineage", "Lineage"),
                errors=(400, 404),
                parameters=[
                    NAME,
                    path_parameter("version", positive_int64("A version number"), "The version"),
                ],
            )
        },
        "/registry/models/{name}/aliases": {
            "get": operation(
                "getAliases",
                "Where the aliases point, and every move: who, when, why",
                TAG,
                user,
                ok=_json("The aliases and their history", "AliasHistory"),
                errors=(400, 404),
                parameters=[NAME, query_parameter("alias", ALIAS_RULE, "Only this alias")],
            )
        },
        "/registry/models/{name}/aliases/{alias}": {
            "put": operation(
                "moveAlias",
                "Point an alias at a version whose export passed the gate (audited)",
                TAG,
                admin,
                ok=_json("The move, as recorded", "AliasEvent"),
                errors=(400, 404, 409, 413),
                parameters=[NAME, path_parameter("alias", ALIAS_RULE, "The alias to move")],
                body=json_body(ref("schemas", "AliasMove")),
                description="Gateways serving the alias hot-swap to the version at their next "
                "poll. 409: the version has no artifact that passed the parity gate, or the "
                "alias already points there.",
            )
        },
        "/registry/models/{name}/aliases/{alias}/shadow": _shadow_item(user, admin),
    }


def _shadow_item(user: Access, admin: Access) -> Json:
    alias = path_parameter("alias", ALIAS_RULE, "The alias whose traffic is copied")
    rule = _json("The shadow", "Shadow")
    return {
        "get": operation(
            "getShadow",
            "The alias's shadow",
            TAG,
            user,
            ok=rule,
            errors=(400, 404),
            parameters=[NAME, alias],
        ),
        "put": operation(
            "setShadow",
            "Run a version on a copy of the alias's traffic (admin); its answers are logged, "
            "never returned",
            TAG,
            admin,
            ok=rule,
            errors=(400, 404, 409, 413),
            parameters=[NAME, alias],
            body=json_body(ref("schemas", "ShadowSet")),
            description="A version of the same model with a gate-passed export, other than "
            "the one the alias points to; rate above 0 and at most 1. Replaces any shadow "
            "the alias had. Gateways serving the alias load it at their next poll.",
        ),
        "delete": operation(
            "clearShadow",
            "Stop the alias's shadow (admin)",
            TAG,
            admin,
            ok={"description": "Cleared"},
            status=204,
            errors=(400, 404),
            parameters=[NAME, alias],
        ),
    }


def open_task_operation(settings: GatewaySettings) -> Json:
    found = operation(
        "openTask",
        "Open a retraining task by hand (the path the monitor and Alertmanager use)",
        "Retraining",
        Access.admin(settings),
        ok=_json("An open task of the same key was found, and updated", "TaskOpened"),
        errors=(400, 404, 413),
        body=json_body(ref("schemas", "TaskOpen")),
        description="201 with the new task when one was created; 200 when an open task of "
        "the same model, version and reason took the evidence instead.",
    )
    found["responses"]["201"] = _json("The task, opened", "TaskOpened")
    return found


def registry_schemas() -> Json:
    alias_event = obj(
        {
            "model": STRING,
            "alias": STRING,
            "from_version": NULLABLE_VERSION,
            "to_version": {"type": "integer"},
            "at": TIME,
            "actor": STRING,
            "reason": STRING,
        },
        ["model", "alias", "from_version", "to_version", "at", "actor", "reason"],
    )
    aliases = {"type": "object", "additionalProperties": NULLABLE_VERSION}
    return {
        "Shadow": obj(
            {
                "model": STRING,
                "alias": STRING,
                "version": {"type": "integer"},
                "rate": {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
                "updated_at": TIME,
                "actor": STRING,
                "reason": STRING,
            },
            ["model", "alias", "version", "rate", "updated_at", "actor", "reason"],
        ),
        "ShadowSet": obj(
            {
                "version": {"type": "integer", "minimum": 1},
                "rate": {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
                "reason": {"type": "string", "minLength": 1},
            },
            ["version", "rate", "reason"],
        ),
        "ModelList": obj(
            {
                "models": array(
                    obj(
                        {
                            "name": STRING,
                            "created_at": TIME,
                            "versions": COUNT,
                            "latest_version": NULLABLE_VERSION,
                            "latest_ready": NULLABLE_VERSION,
                            "aliases": aliases,
                        },
                        ["name", "versions", "aliases"],
                    )
                )
            },
            ["models"],
        ),
        "ModelDetail": obj(
            {
                "name": STRING,
                "aliases": aliases,
                "versions": array(
                    obj(
                        {
                            "version": {"type": "integer"},
                            "status": STRING,
                            "created_at": TIME,
                            "created_by": STRING,
                            "description": STRING,
                            "aliases": array(STRING),
                            "formats": array(STRING),
                            "parent": {"oneOf": [STRING, {"type": "null"}]},
                            "task_id": {"oneOf": [STRING, {"type": "null"}]},
                        },
                        ["version", "status", "aliases", "formats"],
                    )
                ),
            },
            ["name", "aliases", "versions"],
        ),
        "Lineage": {
            "type": "object",
            "required": ["ref", "status", "signature", "artifacts"],
            "description": "As `mlgate show --json`: ref, status, signature, datasets, code, "
            "params, metrics, problem, parents, and each artifact with its parity report",
        },
        "AliasEvent": alias_event,
        "AliasHistory": obj(
            {"name": STRING, "aliases": aliases, "history": array(alias_event)},
            ["name", "aliases", "history"],
        ),
        "AliasMove": obj(
            {"version": positive_int64("The version"), "reason": TEXT, "actor": TEXT},
            ["version", "reason"],
        ),
        "TaskOpen": obj(
            {
                "model": model_name(),
                "version": positive_int64("The serving version (default: @latest)"),
                "reason": TEXT,
                "evidence": {"type": "object"},
                "actor": TEXT,
            },
            ["model", "reason"],
        ),
        "TaskOpened": obj(
            {
                "action": STRING,
                "why": STRING,
                "task": {"oneOf": [ref("schemas", "Task"), {"type": "null"}]},
            },
            ["action", "why", "task"],
        ),
    }


def _json(description: str, schema: str) -> Json:
    return ok(description, json_content(ref("schemas", schema)))

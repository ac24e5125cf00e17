"""The pieces every path of the document shares: parameters, error responses, who may call.

An operation is built by `operation()` from an `Access` (which security requirement it
has, and so which of 401/403 it can answer) and the other statuses its route can answer,
each of which becomes a `$ref` to one response in `components.responses` that carries the
error envelope (`{"error": "..."}`, `errors.error_body`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from registry.names import MAX_NAME_LENGTH
from services.gateway.settings import GatewaySettings

__all__ = [
    "COUNT",
    "INT64_MAX",
    "NULLABLE_TIME",
    "NUMBER",
    "STRING",
    "STRINGS",
    "TIME",
    "Access",
    "array",
    "error_responses",
    "json_body",
    "json_content",
    "model_name",
    "obj",
    "ok",
    "operation",
    "path_parameter",
    "positive_int64",
    "query_parameter",
    "ref",
]

Json = dict[str, Any]

INT64_MAX = 2**63 - 1
"""The largest version, task id or check id: the registry stores them as 64-bit integers."""

# What `registry.names.check_model_name` accepts (no `..` anywhere, which the lookahead says).
NAME_PATTERN = r"^(?!.*\.\.)[a-z0-9]([a-z0-9._-]*[a-z0-9])?$"

# The envelope's statuses: (component name, description, carries Retry-After).
ERRORS: dict[int, tuple[str, str, bool]] = {
    400: (
        "BadRequest",
        "Malformed request: the message names the field and what is expected",
        False,
    ),
    401: ("Unauthorized", "No credentials where this gateway requires them", False),
    403: (
        "Forbidden",
        "Credentials that are not valid, or an admin call from a non-loopback client while "
        "MLGATE_ADMIN_TOKEN is unset",
        False,
    ),
    404: ("NotFound", "Unknown model, version, task or check, or a model not served here", False),
    409: (
        "Conflict",
        "The request conflicts with the current state (the message says which)",
        False,
    ),
    413: ("PayloadTooLarge", "Body over MLGATE_MAX_BODY_BYTES, or too many rows or items", False),
    422: ("ModelExecutionFailed", "The model raised on this request's input alone", False),
    429: ("QueueFull", "The model's queue is full; retry after Retry-After seconds", True),
    502: ("EngineFailed", "runtime triton: the Triton server failed the batch", False),
    503: (
        "Unavailable",
        "Not ready (loading, failed, unloaded), shed to keep the latency SLO (with "
        "Retry-After), or the serving engine is unreachable",
        True,
    ),
    504: ("DeadlineExceeded", "The request's deadline passed before compute", False),
}


STRING = {"type": "string"}
COUNT = {"type": "integer", "minimum": 0}
NUMBER = {"type": "number"}
STRINGS = {"type": "object", "additionalProperties": STRING}
TIME = {"type": "string", "description": "ISO 8601"}
NULLABLE_TIME = {"type": ["string", "null"], "description": "ISO 8601"}


def obj(properties: Json, required: list[str] | None = None, **extra: Any) -> Json:
    found: Json = {"type": "object", "properties": properties, **extra}
    if required:
        found["required"] = required
    return found


def array(items: Json, **extra: Any) -> Json:
    return {"type": "array", "items": items, **extra}


def ref(kind: str, name: str) -> Json:
    return {"$ref": f"#/components/{kind}/{name}"}


def json_content(schema: Json) -> Json:
    return {"application/json": {"schema": schema}}


def json_body(schema: Json, *, required: bool = True, description: str | None = None) -> Json:
    body: Json = {"required": required, "content": json_content(schema)}
    if description:
        body["description"] = description
    return body


def positive_int64(description: str) -> Json:
    return {"type": "integer", "minimum": 1, "maximum": INT64_MAX, "description": description}


def model_name() -> Json:
    return {
        "type": "string",
        "minLength": 1,
        "maxLength": MAX_NAME_LENGTH,
        "pattern": NAME_PATTERN,
        "description": "A registered model's name: lowercase letters, digits, '.', '_' and '-', "
        "starting and ending with a letter or digit, no '..'",
        "examples": ["mlp"],
    }


def path_parameter(name: str, schema: Json, description: str) -> Json:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": description,
        "schema": schema,
    }


def query_parameter(name: str, schema: Json, description: str) -> Json:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": schema,
    }


def error_responses() -> Json:
    """`components.responses`: one per error status, each the envelope."""
    responses: Json = {}
    for _, (name, description, retry) in sorted(ERRORS.items()):
        response: Json = {
            "description": description,
            "content": json_content(ref("schemas", "Error")),
        }
        if retry:
            response["headers"] = {
                "Retry-After": {
                    "description": "Whole seconds to wait (the queue's drain time plus jitter); "
                    "set when the request was refused for load",
                    "schema": {"type": "integer", "minimum": 1},
                }
            }
        responses[name] = response
    return responses


@dataclass(frozen=True)
class Access:
    """Who may call an operation: its security requirement and the statuses auth adds."""

    security: tuple[Json, ...]
    statuses: tuple[int, ...]
    note: str

    @classmethod
    def open(cls) -> Access:
        return cls((), (), "Open: no credentials.")

    @classmethod
    def user(cls, settings: GatewaySettings) -> Access:
        """Inference, metadata, monitoring: one of MLGATE_API_KEYS, when any is set."""
        if not settings.api_keys:
            return cls((), (), "Open on this gateway: MLGATE_API_KEYS is not set.")
        return cls(
            ({"apiKey": []}, {"apiKeyBearer": []}, {"apiKeyBasic": []}),
            (401, 403),
            "Needs one of MLGATE_API_KEYS, as `X-API-Key`, `Authorization: Bearer` or HTTP "
            "Basic's password.",
        )

    @classmethod
    def metrics(cls, settings: GatewaySettings) -> Access:
        """/metrics: a key when keys are set, unless MLGATE_OPEN_METRICS opens it."""
        if settings.open_metrics:
            return cls((), (), "Open: MLGATE_OPEN_METRICS is set.")
        return cls.user(settings)

    @classmethod
    def dashboard(cls, settings: GatewaySettings) -> Access:
        """/dashboard and its data: a key when keys are set, unless MLGATE_OPEN_DASHBOARD."""
        if settings.open_dashboard:
            return cls((), (), "Open: MLGATE_OPEN_DASHBOARD is set.")
        return cls.user(settings)

    @classmethod
    def admin(cls, settings: GatewaySettings) -> Access:
        """The repository API, task decisions, the Alertmanager webhook."""
        if settings.admin_token is None:
            return cls(
                (),
                (403,),
                "Admin: loopback clients only on this gateway (MLGATE_ADMIN_TOKEN is not set).",
            )
        return cls(
            ({"adminToken": []},),
            (401, 403),
            "Admin: needs `Authorization: Bearer <MLGATE_ADMIN_TOKEN>`.",
        )


def operation(
    operation_id: str,
    summary: str,
    tag: str,
    access: Access,
    *,
    ok: Json,
    errors: Iterable[int] = (),
    parameters: Iterable[Json] = (),
    body: Json | None = None,
    description: str = "",
    status: int = 200,
) -> Json:
    """One operation; `ok` is its `status` response, `errors` the statuses besides auth's."""
    responses: Json = {str(status): ok}
    for status in sorted({*errors, *access.statuses}):
        responses[str(status)] = ref("responses", ERRORS[status][0])
    found: Json = {
        "operationId": operation_id,
        "summary": summary,
        "description": f"{description}\n\n{access.note}".strip(),
        "tags": [tag],
        "security": [dict(requirement) for requirement in access.security],
        "responses": responses,
    }
    if parameters:
        found["parameters"] = list(parameters)
    if body is not None:
        found["requestBody"] = body
    return found


def ok(description: str, content: Mapping[str, Any], headers: Json | None = None) -> Json:
    response: Json = {"description": description, "content": dict(content)}
    if headers:
        response["headers"] = headers
    return response

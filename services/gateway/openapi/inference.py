"""The data plane's paths (`rest.build_routes`): Open Inference Protocol v2, v1 predict, the
repository API and /metrics.

These routes are plain Starlette routes on a fast path (`asgi.GatewayApp`), so nothing is
derived from them: their part of the document is written here once, and
tests/services/gateway/test_openapi.py checks that it lists exactly the router's paths and
methods. Each model path exists with and without `/versions/{version}`.
"""

from __future__ import annotations

from typing import Any

from services.gateway.openapi.common import (
    Access,
    json_body,
    json_content,
    model_name,
    ok,
    operation,
    path_parameter,
    positive_int64,
    ref,
)
from services.gateway.settings import GatewaySettings

__all__ = ["inference_paths"]

Json = dict[str, Any]

OIP = "Open Inference Protocol"
REPOSITORY = "Repository"
NAME = path_parameter("name", model_name(), "The model")
VERSION = path_parameter(
    "version", positive_int64("A version number"), "The version (default: the routed one)"
)
INFER_ERRORS = (400, 404, 413, 422, 429, 502, 503, 504)
HEADER_LENGTH = {
    "description": "Binary tensor extension: the JSON part's length; the raw tensors follow it",
    "schema": {"type": "integer", "minimum": 1},
}


def inference_paths(settings: GatewaySettings) -> Json:
    user, admin, open_ = Access.user(settings), Access.admin(settings), Access.open()
    paths: Json = {
        "/v2": {
            "get": operation(
                "serverMetadata",
                "Server metadata: name, version, protocol extensions",
                OIP,
                open_,
                ok=_json("The server", "ServerMetadata"),
            )
        },
        "/v2/health/live": {
            "get": operation(
                "serverLive", "Liveness", OIP, open_, ok=_json("The process answers", "Live")
            )
        },
        "/v2/health/ready": {
            "get": operation(
                "serverReady",
                "Readiness: 503 until the first sync has loaded the served models",
                OIP,
                open_,
                ok=_json("Ready", "Ready"),
                errors=(503,),
            )
        },
        "/v2/repository/index": {
            "post": operation(
                "repositoryIndex",
                "Every registered model with its served versions and their states",
                REPOSITORY,
                admin,
                ok=_json("The index", "RepositoryIndex"),
                errors=(400, 413),
                body=json_body(ref("schemas", "RepositoryIndexRequest"), required=False),
            )
        },
        "/v2/repository/models/{name}/load": {
            "post": operation(
                "repositoryModelLoad",
                "Load a version (and keep it loaded) with serving settings",
                REPOSITORY,
                admin,
                ok=_json("Loaded and ready", "Empty"),
                errors=(400, 404, 409, 413, 503),
                parameters=[NAME],
                body=json_body(ref("schemas", "LoadRequest"), required=False),
                description="Settings are validated, stored with the version and applied; a "
                "version that fails to load answers 503 with the reason.",
            )
        },
        "/v2/repository/models/{name}/unload": {
            "post": operation(
                "repositoryModelUnload",
                "Unload every version and keep the model unloaded until it is loaded again",
                REPOSITORY,
                admin,
                ok=_json("Unloaded", "Empty"),
                errors=(400, 404),
                parameters=[NAME],
            )
        },
        "/metrics": {
            "get": operation(
                "metrics",
                "Prometheus metrics (added up across workers)",
                "Monitoring",
                Access.metrics(settings),
                ok=ok("The exposition", {"text/plain": {"schema": {"type": "string"}}}),
            )
        },
        "/v1/models/{name}:predict": {
            "post": operation(
                "predictV1",
                'KServe v1: {"instances": [...]} → {"predictions": [...]}',
                "v1",
                user,
                ok=_json("The predictions", "PredictResponse"),
                errors=(400, 404, 413, 422, 429, 502, 503),
                parameters=[NAME],
                body=json_body(ref("schemas", "PredictRequest")),
                description="A tabular model also takes {feature: value} objects as instances.",
            )
        },
    }
    for suffix, versioned in (("", False), ("/versions/{version}", True)):
        base = "/v2/models/{name}" + suffix
        label = "Version" if versioned else ""
        parameters = [NAME, VERSION] if versioned else [NAME]
        paths[base] = {
            "get": operation(
                f"model{label}Metadata",
                "Metadata: inputs and outputs from the registry signature, serving parameters",
                OIP,
                user,
                ok=_json("The metadata", "ModelMetadata"),
                errors=(400, 404, 503),
                parameters=parameters,
            )
        }
        paths[f"{base}/ready"] = {
            "get": operation(
                f"model{label}Ready",
                "Whether the version (default: the routed one) is ready",
                OIP,
                user,
                ok=_json("Ready", "ModelReady"),
                errors=(400, 404, 503),
                parameters=parameters,
            )
        }
        paths[f"{base}/stats"] = {
            "get": operation(
                f"model{label}Stats",
                "Rows, requests, batches by dispatch reason, rejections, the fitted cost model",
                OIP,
                user,
                ok=_json("Statistics of each served version", "ModelStats"),
                errors=(400, 404, 503),
                parameters=parameters,
            )
        }
        paths[f"{base}/infer"] = {"post": _infer(f"model{label}Infer", user, parameters)}
    return paths


def _infer(operation_id: str, access: Access, parameters: list[Json]) -> Json:
    headers = [
        {
            "name": "Inference-Header-Content-Length",
            "in": "header",
            "required": False,
            **HEADER_LENGTH,
        },
        {
            "name": "X-Request-Deadline",
            "in": "header",
            "required": False,
            "description": "Absolute Unix time in seconds, a deadline propagated from upstream",
            "schema": {"type": "number"},
        },
        {
            "name": "Content-Encoding",
            "in": "header",
            "required": False,
            "description": "A compressed body (checked against the size limit after inflating)",
            "schema": {"type": "string", "enum": ["identity", "gzip", "deflate"]},
        },
    ]
    binary = {
        "schema": {
            "type": "string",
            "contentMediaType": "application/octet-stream",
            "description": "With Inference-Header-Content-Length: that many bytes of JSON "
            "(InferenceRequest), then the raw tensors of the inputs with binary_data_size",
        }
    }
    body = {
        "required": True,
        "content": {
            **json_content(ref("schemas", "InferenceRequest")),
            "application/octet-stream": binary,
        },
    }
    answer = ok(
        "The outputs; binary (application/octet-stream, the JSON part first) when an output "
        "asked for binary_data",
        {
            **json_content(ref("schemas", "InferenceResponse")),
            "application/octet-stream": {
                "schema": {"type": "string", "contentMediaType": "application/octet-stream"}
            },
        },
        headers={"Inference-Header-Content-Length": HEADER_LENGTH},
    )
    return operation(
        operation_id,
        "Inference: JSON tensors, or the binary tensor extension",
        OIP,
        access,
        ok=answer,
        errors=INFER_ERRORS,
        parameters=[*parameters, *headers],
        body=body,
        description="Priority and timeout (microseconds) go in `parameters`; a deadline that "
        "passed is 504, one shorter than the predicted latency is shed with 503.",
    )


def _json(description: str, schema: str) -> Json:
    return ok(description, json_content(ref("schemas", schema)))

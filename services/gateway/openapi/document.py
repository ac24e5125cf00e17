"""The gateway's OpenAPI 3.1 document, built from its settings when first asked for.

The settings decide the security requirements (API keys, admin token) and so which
operations can answer 401/403; everything else is the same for every gateway. The paths
come in two halves, `inference_paths` (the data plane's fast routes) and `control_paths`
(everything else); tests/services/gateway/test_openapi.py holds them to the router.
"""

from __future__ import annotations

import copy
from importlib.metadata import version as package_version
from typing import Any

from services.gateway.openapi.batch import batch_paths
from services.gateway.openapi.canary import canary_paths
from services.gateway.openapi.common import error_responses
from services.gateway.openapi.control import control_paths
from services.gateway.openapi.inference import inference_paths
from services.gateway.openapi.registry import open_task_operation, registry_paths
from services.gateway.openapi.schemas import schemas
from services.gateway.settings import GatewaySettings

__all__ = ["OPENAPI_VERSION", "build_document"]

OPENAPI_VERSION = "3.1.1"

DESCRIPTION = """\
mlgate serves registered models over the Open Inference Protocol v2 (the KServe/Triton
HTTP protocol, so `tritonclient` works unchanged) with adaptive batching, and watches them
for drift and quality.

Every 4xx and 5xx answer is one envelope, `{"error": "<what was wrong and what is
expected>"}`; 429 and load-shedding 503s carry `Retry-After`. Unknown paths are 404 and
known paths with another method 405, in the same envelope.
"""

TAGS = [
    {"name": "Open Inference Protocol", "description": "Health, metadata, statistics, inference"},
    {"name": "v1", "description": "KServe v1 predict, for people with curl"},
    {"name": "Repository", "description": "Load and unload models (admin)"},
    {"name": "Monitoring", "description": "Metrics, drift, quality, ground truth"},
    {"name": "Retraining", "description": "Retraining tasks and the Alertmanager webhook"},
    {"name": "Registry", "description": "Models, versions, lineage, aliases (moves: admin)"},
    {"name": "Batch", "description": "Files scored by a served version, below live traffic"},
    {"name": "Pages", "description": "The dashboard, and this document with its page"},
]


def build_document(settings: GatewaySettings) -> dict[str, Any]:
    # A copy: the parts share small schema dicts (common.STRING...), which a caller
    # editing its document must not change for the next one.
    return copy.deepcopy(_document(settings))


def _document(settings: GatewaySettings) -> dict[str, Any]:
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "mlgate",
            "summary": "Open Inference Protocol gateway with adaptive batching",
            "description": DESCRIPTION,
            "version": package_version("mlgate"),
            "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"},
        },
        "tags": TAGS,
        "paths": _paths(settings),
        "components": {
            "schemas": schemas(),
            "responses": error_responses(),
            "securitySchemes": {
                "apiKey": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "X-API-Key",
                    "description": "One of MLGATE_API_KEYS",
                },
                "apiKeyBearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "One of MLGATE_API_KEYS, as `Authorization: Bearer <key>`",
                },
                "apiKeyBasic": {
                    "type": "http",
                    "scheme": "basic",
                    "description": "One of MLGATE_API_KEYS as the password, any user name "
                    "(what a browser sends after /dashboard's 401)",
                },
                "adminToken": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "MLGATE_ADMIN_TOKEN, as `Authorization: Bearer <token>`",
                },
            },
        },
    }


def _paths(settings: GatewaySettings) -> dict[str, Any]:
    paths = {
        **inference_paths(settings),
        **control_paths(settings),
        **registry_paths(settings),
        **batch_paths(settings),
        **canary_paths(settings),
    }
    paths["/retraining/tasks"]["post"] = open_task_operation(settings)  # beside its listing
    return paths

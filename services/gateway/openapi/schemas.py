"""`components.schemas`: the bodies the gateway reads and writes, as JSON Schema 2020-12.
Here the data plane's and the repository API's; the control plane's are control_schemas.py.

What the code already states is taken from it, so the two cannot drift: the tensor
datatypes (`codec.DATATYPES`), the serving settings a load takes (the `Deployment` pydantic
model), task and quality statuses, the history bound. Objects whose contents depend on the
model or the check (drift results, quality figures, metadata parameters) are described to
the level the gateway promises and left open below it.
"""

from __future__ import annotations

from typing import Any

from services.gateway.codec import DATATYPES
from services.gateway.deployment import Deployment
from services.gateway.openapi.batch import batch_schemas
from services.gateway.openapi.canary import canary_schemas
from services.gateway.openapi.common import COUNT, INT64_MAX, NUMBER, STRING, array, obj, ref
from services.gateway.openapi.control_schemas import monitoring_schemas, task_schemas
from services.gateway.openapi.registry import registry_schemas

__all__ = ["schemas"]

Json = dict[str, Any]


def schemas() -> Json:
    return {
        **_data_plane(),
        **_repository(),
        **monitoring_schemas(),
        **task_schemas(),
        **registry_schemas(),
        **batch_schemas(),
        **canary_schemas(),
    }


def _data_plane() -> Json:
    datatype = {"type": "string", "enum": list(DATATYPES)}
    tensor = obj(
        {"name": STRING, "datatype": datatype, "shape": array({"type": "integer"})},
        ["name", "datatype", "shape"],
    )
    return {
        "Error": obj(
            {"error": {"type": "string", "description": "What was wrong and what is expected"}},
            ["error"],
            additionalProperties=False,
        ),
        "ServerMetadata": obj(
            {"name": STRING, "version": STRING, "extensions": array(STRING)},
            ["name", "version", "extensions"],
        ),
        "Live": obj({"live": {"type": "boolean"}}, ["live"]),
        "Ready": obj({"ready": {"const": True}}, ["ready"]),
        "ModelReady": obj({"name": STRING, "ready": {"const": True}}, ["name", "ready"]),
        "TensorMetadata": tensor,
        "ModelMetadata": obj(
            {
                "name": STRING,
                "versions": array(STRING, description="The versions served here"),
                "platform": STRING,
                "inputs": array(ref("schemas", "TensorMetadata")),
                "outputs": array(ref("schemas", "TensorMetadata")),
                "parameters": {
                    "type": "object",
                    "description": "served_version, artifact, artifact_digest, feature_names, "
                    "the runtime's device and providers, batching settings",
                },
            },
            ["name", "versions", "platform", "inputs", "outputs"],
        ),
        "ModelStats": obj({"model_stats": array(ref("schemas", "VersionStats"))}, ["model_stats"]),
        "VersionStats": obj(
            {
                "name": STRING,
                "version": STRING,
                "inference_count": {**COUNT, "description": "Rows answered"},
                "request_count": COUNT,
                "execution_count": {**COUNT, "description": "Batches run"},
                "mean_batch_size": NUMBER,
                "batch_reasons": {
                    "type": "object",
                    "additionalProperties": COUNT,
                    "description": "Batches by why they left: idle, full, max_delay, slo, no_gain",
                },
                "rejected": {"type": "object", "additionalProperties": COUNT},
                "cancelled": COUNT,
                "queue_ms_total": NUMBER,
                "compute_ms_total": NUMBER,
                "queued_rows": COUNT,
                "inflight_batches": COUNT,
                "cost_model": obj({"per_row_ms": NUMBER, "fixed_ms": NUMBER}),
            },
            ["name", "version", "inference_count", "request_count", "execution_count"],
        ),
        "InferenceRequest": obj(
            {
                "id": {
                    "type": "string",
                    "description": "Echoed in the answer; the key feedback uses",
                },
                "parameters": obj(
                    {
                        "timeout": {
                            "type": "number",
                            "minimum": 0,
                            "description": "Microseconds from arrival (Triton's meaning); 0: none",
                        },
                        "priority": {
                            **COUNT,
                            "description": "1 is the highest, 0 the default level",
                        },
                        "binary_data_output": {"type": "boolean"},
                    }
                ),
                "inputs": array(ref("schemas", "InferenceInput"), minItems=1),
                "outputs": array(
                    obj(
                        {"name": STRING, "parameters": obj({"binary_data": {"type": "boolean"}})},
                        ["name"],
                    )
                ),
            },
            ["inputs"],
        ),
        "InferenceInput": obj(
            {
                "name": {"type": "string", "minLength": 1},
                "shape": array(COUNT, minItems=1),
                "datatype": datatype,
                "data": {
                    "type": "array",
                    "description": "Row-major values, flat or nested (true/false for BOOL); "
                    "absent when parameters.binary_data_size is set",
                },
                "parameters": obj(
                    {
                        "binary_data_size": {
                            **COUNT,
                            "description": "Bytes of this input in the binary part of the body",
                        }
                    }
                ),
            },
            ["name", "shape", "datatype"],
        ),
        "InferenceResponse": obj(
            {
                "model_name": STRING,
                "model_version": STRING,
                "id": STRING,
                "outputs": array(
                    obj(
                        {
                            **tensor["properties"],
                            "data": {"type": "array", "description": "NaN is written as null"},
                            "parameters": obj({"binary_data_size": COUNT}),
                        },
                        ["name", "datatype", "shape"],
                    )
                ),
            },
            ["model_name", "model_version", "outputs"],
        ),
        "PredictRequest": obj(
            {
                "instances": array(
                    {"type": ["number", "boolean", "array", "object"]},
                    minItems=1,
                    description="One row each: a number, a list, or {feature: value}",
                )
            },
            ["instances"],
        ),
        "PredictResponse": obj(
            {"predictions": array({}), "model_version": STRING}, ["predictions", "model_version"]
        ),
    }


def _repository() -> Json:
    settings = Deployment.model_json_schema()
    parameters = {
        "version": {
            "oneOf": [
                {"type": "integer", "minimum": 1, "maximum": INT64_MAX},
                {"type": "string", "pattern": "^0*[1-9][0-9]*$"},
                {"type": "null"},
            ],
            "description": "The version to load (absent or null: the one the served alias "
            "points to)",
        },
        **{name: _untitled(field) for name, field in settings["properties"].items()},
    }
    return {
        "RepositoryIndexRequest": obj(
            {"ready": {"type": "boolean", "description": "Only versions that are ready"}},
            additionalProperties=True,
        ),
        "RepositoryIndex": array(
            obj(
                {
                    "name": STRING,
                    "version": STRING,
                    "state": {
                        "type": "string",
                        "enum": ["READY", "LOADING", "UNLOADING", "UNAVAILABLE"],
                    },
                    "reason": STRING,
                },
                ["name", "state", "reason"],
            )
        ),
        "LoadRequest": obj(
            {
                "parameters": obj(
                    parameters,
                    additionalProperties=False,
                    description="Serving settings, stored with the version (a restart keeps them)",
                )
            }
        ),
        "Empty": obj({}, additionalProperties=False),
    }


def _untitled(schema: Json) -> Json:
    return {k: v for k, v in schema.items() if k not in ("title", "default")}

"""The batch jobs' paths and schemas (`routes.batch`)."""

from __future__ import annotations

from typing import Any

from services.gateway.openapi.common import (
    COUNT,
    NUMBER,
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

__all__ = ["batch_paths", "batch_schemas"]

Json = dict[str, Any]
BATCH = "Batch"
NULLABLE = {"type": ["string", "null"]}


def batch_paths(settings: GatewaySettings) -> Json:
    user, admin = Access.user(settings), Access.admin(settings)
    job = ok("The job's record", json_content(ref("schemas", "BatchJob")))
    return {
        "/batch/jobs": {
            "post": operation(
                "submitBatchJob",
                "Score a file in the batch folder with a served version, below live traffic",
                BATCH,
                admin,
                ok={
                    **job,
                    "headers": {"Location": {"schema": STRING, "description": "The job"}},
                },
                status=202,
                errors=(400, 404, 413, 429, 503),
                body=json_body(ref("schemas", "BatchJobRequest")),
                description="Paths are inside MLGATE_BATCH_DIR (default <home>/batch). The "
                "file is checked before the job starts: a missing column or a file Arrow "
                "cannot read is a 400, and nothing is recorded. One job runs at a time per "
                "gateway process: another gets 429.",
            ),
            "get": operation(
                "listBatchJobs",
                "Batch runs (jobs and `mlgate predict`), newest first",
                BATCH,
                user,
                ok=ok("The runs", json_content(ref("schemas", "BatchJobList"))),
                errors=(400, 404),
                parameters=[
                    query_parameter("model", model_name(), "Only this model's"),
                    query_parameter("limit", positive_int64("At most this many"), "Default 50"),
                ],
            ),
        },
        "/batch/jobs/{job_id}": {
            "get": operation(
                "getBatchJob",
                "One batch run: status, progress, counts, digests",
                BATCH,
                user,
                ok=job,
                errors=(400, 404),
                parameters=[path_parameter("job_id", positive_int64("A run id"), "The run")],
            )
        },
    }


def batch_schemas() -> Json:
    nullable_digest = {"type": ["string", "null"], "description": "sha256"}
    job = obj(
        {
            "id": {"type": "integer"},
            "model": model_name(),
            "version": {"type": "integer"},
            "status": {"enum": ["running", "succeeded", "failed"]},
            "runner": STRING,
            "input_uri": STRING,
            "output_uri": STRING,
            "rejects_uri": NULLABLE,
            "input_digest": nullable_digest,
            "output_digest": nullable_digest,
            "rejects_digest": nullable_digest,
            "rows": COUNT,
            "scored": COUNT,
            "rejected": COUNT,
            "progress": {"type": "number", "minimum": 0, "maximum": 1},
            "seconds": NUMBER,
            "rows_per_s": {"type": ["integer", "null"]},
            "started_at": TIME,
            "updated_at": TIME,
            "actor": STRING,
            "error": NULLABLE,
            "details": {"type": "object"},
        },
        ["id", "model", "version", "status", "rows", "progress", "started_at"],
    )
    request = obj(
        {
            "model": model_name(),
            "version": positive_int64("A version number (default: the one served)"),
            "alias": {"type": "string", "description": "Or an alias naming the version"},
            "input": {"type": "string", "minLength": 1, "description": ".parquet or .csv"},
            "output": {"type": "string", "minLength": 1, "description": ".parquet or .csv"},
            "rejects": {"type": "string", "minLength": 1},
            "keep": array({"type": "string", "minLength": 1}),
            "max_reject_share": {"type": "number", "minimum": 0, "maximum": 1},
            "chunk_rows": {"type": "integer", "minimum": 1, "maximum": 1 << 22},
        },
        ["model", "input", "output"],
        additionalProperties=False,
    )
    return {
        "BatchJob": job,
        "BatchJobRequest": request,
        "BatchJobList": obj({"jobs": array(ref("schemas", "BatchJob"))}, ["jobs"]),
    }

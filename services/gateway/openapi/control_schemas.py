"""`components.schemas` of the control plane: drift checks, quality, feedback, the
dashboard's data, retraining tasks, decisions and the Alertmanager webhook.

Limits and statuses come from the modules that enforce them (`monitors.quality.feedback_body`,
`monitors.tasks.store`, `monitors.quality.store`).
"""

from __future__ import annotations

from typing import Any

from monitors.quality.feedback_body import MAX_ID_CHARS, MAX_ROW, MAX_SOURCE_CHARS
from monitors.quality.store import STATUSES as QUALITY_STATUSES
from monitors.tasks.store import STATUSES as TASK_STATUSES
from services.gateway.openapi.common import (
    COUNT,
    NULLABLE_TIME,
    NUMBER,
    STRING,
    STRINGS,
    TIME,
    array,
    model_name,
    obj,
    ref,
)

__all__ = ["monitoring_schemas", "task_schemas"]

Json = dict[str, Any]


def monitoring_schemas() -> Json:
    label = {"oneOf": [NUMBER, {"type": "boolean"}, array(NUMBER, minItems=1)]}
    moment = {"type": "string", "format": "date-time", "description": "ISO 8601 with a time zone"}
    item = {
        "id": {"type": "string", "minLength": 1, "maxLength": MAX_ID_CHARS},
        "row": {"type": "integer", "minimum": 0, "maximum": MAX_ROW},
        "label": label,
        "timestamp": {"oneOf": [moment, {"type": "null"}]},
    }
    source = {"type": "string", "minLength": 1, "maxLength": MAX_SOURCE_CHARS}
    return {
        "DriftCheck": obj(
            {
                "id": {"type": "integer"},
                "model": STRING,
                "version": {"type": "integer"},
                "checked_at": TIME,
                "window": obj({"start": TIME, "end": TIME, "rows": COUNT}),
                "reference_digest": STRING,
                "share": NUMBER,
                "detected": {"type": "boolean"},
                "consecutive_detections": COUNT,
                "config": {"type": "object"},
                "result": {"type": "object", "description": "Per-feature scores and thresholds"},
            },
            ["id", "model", "version", "checked_at", "share", "detected", "result"],
        ),
        "Quality": obj(
            {
                "id": {"type": "integer"},
                "model": STRING,
                "version": {"type": "integer"},
                "checked_at": TIME,
                "status": {"type": "string", "enum": list(QUALITY_STATUSES)},
                "metric": {"type": ["string", "null"]},
                "labelled_rows": COUNT,
                "history": array({"type": "object"}, description="Older evaluations, newest first"),
            },
            ["id", "model", "version", "checked_at", "status", "labelled_rows", "history"],
        ),
        "Feedback": {
            "oneOf": [
                obj({**item, "source": source}, ["id", "label"], additionalProperties=False),
                obj(
                    {
                        "feedback": array(
                            obj(item, ["id", "label"], additionalProperties=False), minItems=1
                        ),
                        "source": source,
                    },
                    ["feedback"],
                    additionalProperties=False,
                ),
            ]
        },
        "FeedbackReceipt": obj(
            {
                "model": STRING,
                "accepted": COUNT,
                "matched": COUNT,
                "unknown": COUNT,
                "replaced": COUNT,
                "unknown_ids": array(STRING, maxItems=100),
                "unknown_ids_total": COUNT,
                "note": STRING,
            },
            ["model", "accepted", "matched", "unknown", "replaced", "unknown_ids"],
        ),
        "DashboardData": obj(
            {
                "interval_s": {"type": ["number", "null"]},
                "generated_at": NUMBER,
                "models": {"type": "object", "additionalProperties": {"type": "object"}},
            },
            ["interval_s", "generated_at", "models"],
        ),
    }


def task_schemas() -> Json:
    alert = obj(
        {
            "status": {"enum": ["firing", "resolved"]},
            "labels": {
                **STRINGS,
                "description": "action=retrain alerts also need alertname, model and version",
            },
            "annotations": STRINGS,
            "startsAt": {"type": "string", "format": "date-time"},
            "endsAt": {
                "type": "string",
                "format": "date-time",
                "description": "Go's zero time (year 1): not ended",
            },
            "generatorURL": STRING,
            "fingerprint": {"type": "string", "minLength": 1},
        },
        ["status", "labels", "startsAt", "fingerprint"],
    )
    return {
        "Task": obj(
            {
                "id": {"type": "integer"},
                "key": STRING,
                "model": model_name(),
                "serving_version": {"type": "integer"},
                "reason": STRING,
                "status": {"type": "string", "enum": list(TASK_STATUSES)},
                "source": STRING,
                "window": obj(
                    {
                        "start": NULLABLE_TIME,
                        "end": NULLABLE_TIME,
                        "rows": {"type": ["integer", "null"]},
                    }
                ),
                "evidence": {"type": "object"},
                "duplicate_count": COUNT,
                "created_at": TIME,
                "updated_at": TIME,
                "claimed_by": {"type": ["string", "null"]},
                "candidate_version": {"type": ["integer", "null"]},
                "outcome": {"type": "object"},
                "error": {"type": ["string", "null"]},
                "events": array(
                    obj(
                        {
                            "at": TIME,
                            "from": {"type": ["string", "null"]},
                            "to": STRING,
                            "reason": STRING,
                            "actor": STRING,
                        }
                    )
                ),
            },
            ["id", "model", "serving_version", "reason", "status", "created_at", "events"],
        ),
        "TaskList": obj({"tasks": array(ref("schemas", "Task"))}, ["tasks"]),
        "Decision": obj(
            {
                "reason": {
                    "type": "string",
                    "minLength": 1,
                    "pattern": r"\S",
                    "description": "For the audit log",
                },
                "actor": {"type": "string", "minLength": 1, "pattern": r"\S", "default": "admin"},
            },
            ["reason"],
        ),
        "AlertmanagerWebhook": obj(
            {
                "version": {"const": "4"},
                "groupKey": {"type": "string", "minLength": 1},
                "truncatedAlerts": COUNT,
                "status": {"enum": ["firing", "resolved"]},
                "receiver": STRING,
                "groupLabels": STRINGS,
                "commonLabels": STRINGS,
                "commonAnnotations": STRINGS,
                "externalURL": STRING,
                "alerts": array(alert),
            },
            ["version", "groupKey", "status", "receiver", "alerts"],
        ),
        "AlertReceipt": obj(
            {
                "received": COUNT,
                "created": array({"type": "integer"}),
                "duplicates": array({"type": "integer"}),
                "refused": array(STRINGS),
                "ignored": array(STRINGS),
            },
            ["received", "created", "duplicates", "refused", "ignored"],
        ),
    }

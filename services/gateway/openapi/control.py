"""The control plane's paths: monitoring, feedback, retraining tasks, the Alertmanager
webhook, the dashboard, and this document with its page.

`routes.monitoring`, `routes.feedback`, `routes.tasks`, `routes.alerts`, `Dashboard.routes`
and `openapi.routes`; test_openapi.py checks the paths and methods against the router.
"""

from __future__ import annotations

from typing import Any

from monitors.tasks.store import STATUSES as TASK_STATUSES
from services.gateway.openapi.common import (
    Access,
    json_body,
    json_content,
    model_name,
    ok,
    operation,
    path_parameter,
    positive_int64,
    query_parameter,
    ref,
)
from services.gateway.routes.monitoring import MAX_HISTORY, MAX_LAST
from services.gateway.settings import GatewaySettings

__all__ = ["control_paths"]

Json = dict[str, Any]

MONITORING = "Monitoring"
TASKS = "Retraining"
PAGES = "Pages"
NAME = path_parameter("name", model_name(), "The model")
TASK_ID = path_parameter("task_id", positive_int64("A task id"), "The task")
VERSION = query_parameter("version", positive_int64("A version number"), "Default: any version")
CHECK = query_parameter("check", positive_int64("A drift check's id"), "Default: the latest")
HTML = {"text/html": {"schema": {"type": "string"}}}


def control_paths(settings: GatewaySettings) -> Json:
    user, admin, open_ = Access.user(settings), Access.admin(settings), Access.open()
    decision = json_body(
        ref("schemas", "Decision"), description="Why, for the audit log; `actor` defaults to admin"
    )
    return {
        "/monitoring/models/{name}/drift": {
            "get": operation(
                "driftCheck",
                "The latest drift check (or the one asked for) as JSON",
                MONITORING,
                user,
                ok=_json("The check", "DriftCheck"),
                errors=(400, 404),
                parameters=[NAME, VERSION, CHECK],
            )
        },
        "/monitoring/models/{name}/drift/report": {
            "get": operation(
                "driftReport",
                "The drift check's Evidently report, rendered on first request",
                MONITORING,
                user,
                ok=ok("The report", HTML),
                errors=(400, 404, 503),
                parameters=[NAME, VERSION, CHECK],
            )
        },
        "/monitoring/models/{name}/shadow": {
            "get": operation(
                "shadowComparison",
                "How the alias's shadow agrees with the version the alias points to",
                MONITORING,
                user,
                ok=ok("Agreement, latency and quality of both", json_content({"type": "object"})),
                errors=(400, 404),
                parameters=[
                    NAME,
                    query_parameter(
                        "last",
                        {"type": "integer", "minimum": 1, "maximum": MAX_LAST},
                        "Rows of each version's log to pair (default 10000)",
                    ),
                ],
                description="Rows are paired by request id: the requests both answers were "
                "logged for. Classifiers: the share of equal decisions with its interval, and "
                "their confusion; regression: the mean and p99 absolute difference.",
            )
        },
        "/monitoring/models/{name}/quality": {
            "get": operation(
                "quality",
                "The latest quality evaluation: realised, estimated, data quality",
                MONITORING,
                user,
                ok=_json("The evaluation, with `history` older ones", "Quality"),
                errors=(400, 404),
                parameters=[
                    NAME,
                    VERSION,
                    query_parameter(
                        "history",
                        {"type": "integer", "minimum": 0, "maximum": MAX_HISTORY},
                        "How many older evaluations to list (default 0)",
                    ),
                ],
            )
        },
        "/v1/models/{name}/feedback": {
            "post": operation(
                "feedback",
                "Ground truth for logged inferences, keyed by request id",
                MONITORING,
                user,
                ok=_json("What was matched, unknown and replaced", "FeedbackReceipt"),
                errors=(400, 404, 409, 413),
                parameters=[NAME],
                body=json_body(ref("schemas", "Feedback")),
                description="Labels are checked against the model's problem (a class index for "
                "a classifier); the model must be registered.",
            )
        },
        "/retraining/tasks": {
            "get": operation(
                "listTasks",
                "Retraining tasks, newest first",
                TASKS,
                user,
                ok=_json("The tasks", "TaskList"),
                errors=(400,),
                parameters=[
                    query_parameter("model", model_name(), "Only this model's"),
                    query_parameter(
                        "status", {"type": "string", "enum": list(TASK_STATUSES)}, "Only these"
                    ),
                    query_parameter("limit", positive_int64("At most this many"), "Default 100"),
                ],
            )
        },
        "/retraining/tasks/{task_id}": {
            "get": operation(
                "getTask",
                "One task with its events",
                TASKS,
                user,
                ok=_json("The task", "Task"),
                errors=(400, 404),
                parameters=[TASK_ID],
            )
        },
        "/retraining/tasks/{task_id}/approve": {
            "post": operation(
                "approveTask",
                "Approve a candidate: the served alias moves to its version",
                TASKS,
                admin,
                ok=_json("The task, promoted", "Task"),
                errors=(400, 404, 409, 413),
                parameters=[TASK_ID],
                body=decision,
            )
        },
        "/retraining/tasks/{task_id}/reject": {
            "post": operation(
                "rejectTask",
                "Reject an open or candidate task",
                TASKS,
                admin,
                ok=_json("The task, rejected", "Task"),
                errors=(400, 404, 409, 413),
                parameters=[TASK_ID],
                body=decision,
            )
        },
        "/alerts/alertmanager": {
            "post": operation(
                "alertmanagerWebhook",
                "Alertmanager's webhook: firing action=retrain alerts open retraining tasks",
                TASKS,
                admin,
                ok=_json("What each alert did (200 also when nothing opened)", "AlertReceipt"),
                errors=(400, 413),
                body=json_body(ref("schemas", "AlertmanagerWebhook")),
            )
        },
        **_pages(open_, Access.dashboard(settings)),
    }


def _pages(open_: Access, dashboard: Access) -> Json:
    asset = path_parameter(
        "name",
        {"type": "string", "minLength": 1, "examples": ["dashboard.js", "docs.css"]},
        "A file of the built bundle (dashboard and docs scripts, styles, source maps)",
    )
    script = {"schema": {"type": "string"}}
    return {
        "/dashboard": {
            "get": operation(
                "dashboard",
                "The dashboard: traffic, latency, batching, queue, drift, quality, tasks",
                PAGES,
                dashboard,
                ok=ok("The page", HTML),
                errors=(503,),
                description="503 names the build step when the front end is not built.",
            )
        },
        "/dashboard/data": {
            "get": operation(
                "dashboardData",
                "The dashboard's time series",
                PAGES,
                dashboard,
                ok=_json("The series of each model", "DashboardData"),
            )
        },
        "/dashboard/assets/{name}": {
            "get": operation(
                "dashboardAsset",
                "A bundled script, stylesheet or source map of the dashboard and of /docs",
                PAGES,
                open_,
                ok=ok(
                    "The file",
                    {"text/javascript": script, "text/css": script, "application/json": script},
                ),
                errors=(404,),
                parameters=[asset],
            )
        },
        "/openapi.json": {
            "get": operation(
                "openapi",
                "This document (OpenAPI 3.1)",
                PAGES,
                open_,
                ok=ok("The document", json_content({"type": "object"})),
            )
        },
        "/docs": {
            "get": operation(
                "docs",
                "This document, rendered (Swagger UI, bundled with the dashboard: works offline)",
                PAGES,
                open_,
                ok=ok("The page", HTML),
                errors=(503,),
            )
        },
    }


def _json(description: str, schema: str) -> Json:
    return ok(description, json_content(ref("schemas", schema)))

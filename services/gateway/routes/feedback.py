"""`POST /v1/models/{m}/feedback`: ground truth for logged inferences, keyed by request id.

Thin like the other routes: the body's rules and the store are `monitors.quality.feedback`. The
same API keys as inference; the model must be registered (404 otherwise), served here or
not. Database work runs in a worker thread. The answer counts what was `matched` against
this gateway's recent log, what is `unknown` (stored anyway), and what `replaced` an
earlier label; `mlgate_feedback_rows_total{model,outcome}` counts the same. Labels are
checked against the model's problem (a class index of a classifier; 400 naming the item
otherwise), so a wrong label never reaches a quality window.
"""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from monitors.quality.feedback import FeedbackReceipt, FeedbackStore
from monitors.quality.feedback_body import ParsedFeedback, check_labels, parse_feedback
from registry.quality.problem import Problem
from services.gateway.auth import check_api_key
from services.gateway.bodies import parse_json, read_body
from services.gateway.monitoring import GatewayMonitoring
from services.gateway.params import model_name
from services.gateway.rest import guarded, json_response
from services.gateway.settings import GatewaySettings

__all__ = ["feedback_routes"]


def feedback_routes(settings: GatewaySettings) -> list[Route]:
    async def feedback(request: Request) -> Response:
        check_api_key(request.headers, settings.api_keys)
        monitoring: GatewayMonitoring = request.app.state.monitoring
        name = model_name(request.path_params["name"])
        # 404 before reading the body; the labels are then checked against this problem.
        problem = await asyncio.to_thread(_problem, monitoring, name)
        body = await read_body(request, settings.max_body_bytes)
        parsed = parse_feedback(parse_json(body), max_items=settings.max_rows_per_request)
        check_labels(parsed, problem, name)
        receipt = await asyncio.to_thread(_store, monitoring, name, parsed)
        monitoring.metrics.count_feedback(
            name, matched=receipt.matched, unknown=receipt.unknown, replaced=receipt.replaced
        )
        return json_response(receipt.to_json())

    return [Route("/v1/models/{name}/feedback", guarded(feedback), methods=["POST"])]


def _problem(monitoring: GatewayMonitoring, model: str) -> Problem | None:
    """What the labels are checked against: the problem of the version this gateway routes
    the model to, else of the newest registered version."""
    routed = monitoring.manager.routed_version(model)
    ref = model if routed is None else f"{model}:{routed}"
    return monitoring.registry.get(ref).problem


def _store(monitoring: GatewayMonitoring, model: str, parsed: ParsedFeedback) -> FeedbackReceipt:
    return FeedbackStore(monitoring.registry.db).add(
        model, parsed.items, known=monitoring.log.recent_ids(model), source=parsed.source
    )

"""Batch job routes: submit a file to be scored by a served version (admin), and follow it.

`POST /batch/jobs` answers 202 with the job's record (`running`) and its `Location`; the
record lives in the registry, so `GET /batch/jobs/{id}` answers from any worker or replica.
"""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from registry.batch_runs import BatchRun
from registry.store import Registry
from services.gateway.auth import check_admin, check_api_key
from services.gateway.batch_jobs import BatchJobs
from services.gateway.bodies import read_object
from services.gateway.params import model_name, positive_int
from services.gateway.rest import guarded, json_response
from services.gateway.settings import GatewaySettings

__all__ = ["batch_routes", "job_json"]


def job_json(run: BatchRun) -> dict[str, object]:
    body = run.to_json()
    body["rows_per_s"] = round(run.rows / run.seconds) if run.seconds else None
    return body


def batch_routes(settings: GatewaySettings) -> list[Route]:
    def jobs(request: Request) -> BatchJobs:
        found: BatchJobs = request.app.state.batch_jobs
        return found

    def registry(request: Request) -> Registry:
        return jobs(request).registry

    async def submit(request: Request) -> Response:
        client = request.client.host if request.client else None
        check_admin(request.headers, client, settings.admin_token)
        body = await read_object(request)
        run = await jobs(request).submit(body)
        response = json_response(job_json(run), 202)
        response.headers["Location"] = f"/batch/jobs/{run.id}"
        return response

    async def listing(request: Request) -> Response:
        check_api_key(request.headers, settings.api_keys)
        query = request.query_params
        model = query.get("model")
        runs = await asyncio.to_thread(
            registry(request).batch_runs.list,
            None if model is None else model_name(model),
            limit=positive_int(query.get("limit", "50"), "limit"),
        )
        return json_response({"jobs": [job_json(run) for run in runs]})

    async def collection(request: Request) -> Response:
        return await (submit if request.method == "POST" else listing)(request)

    async def one(request: Request) -> Response:
        check_api_key(request.headers, settings.api_keys)
        run_id = positive_int(request.path_params["job_id"], "job id")
        run = await asyncio.to_thread(registry(request).batch_runs.get, run_id)
        return json_response(job_json(run))

    return [
        Route("/batch/jobs", guarded(collection), methods=["GET", "POST"]),
        Route("/batch/jobs/{job_id}", guarded(one), methods=["GET"]),
    ]

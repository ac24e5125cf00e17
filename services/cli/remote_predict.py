"""`mlgate predict --gateway URL`: submit the job to a running gateway and follow its record
until it ends, drawing its progress; a failed job is an error naming why."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from registry.errors import MlgateError
from registry.names import parse_ref
from services.client import Client

__all__ = ["submit_and_follow"]

_POLL_S = 0.5


def submit_and_follow(
    url: str,
    ref: str,
    source: str,
    output: str,
    *,
    rejects: str | None,
    keep: list[str],
    max_reject_share: float | None,
    chunk_rows: int,
    admin_token: str | None,
    api_key: str | None,
    progress: Any,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    parsed = parse_ref(ref)
    options: dict[str, Any] = {"keep": keep, "chunk_rows": chunk_rows}
    if rejects is not None:
        options["rejects"] = rejects
    if max_reject_share is not None:
        options["max_reject_share"] = max_reject_share
    with Client(url, admin_token=admin_token, api_key=api_key) as client, progress:
        job = client.submit_batch_job(
            parsed.name,
            source,
            output,
            version=parsed.version,
            alias=parsed.alias,
            **options,
        )
        while job["status"] == "running":
            sleep(_POLL_S)
            job = client.batch_job(job["id"])
            progress(job["rows"], job["progress"])
    if job["status"] != "succeeded":
        raise MlgateError(f"batch job {job['id']} failed: {job['error']}")
    return job

"""A typed Python client for a running gateway (httpx): inference (JSON or the binary tensor
extension), v1 predictions, feedback, tasks, drift, quality and the registry.

    from services.client import Client

    with Client("http://127.0.0.1:8000", api_key="...") as gateway:
        answer = gateway.infer("credit-risk", {"features": rows}, binary=True)
        answer.outputs["probability"]          # a numpy array
        gateway.move_alias("credit-risk", "production", 3, reason="won the shadow run")

Every error answer raises `GatewayError`, whose `status` is the HTTP status, `message` the
envelope's `error` and `retry_after` the seconds `Retry-After` asked for (429/503) or None.
The admin token goes only to the routes that need it (the repository API, alias moves,
task decisions), as `Authorization: Bearer`; the API key goes to every other route as
`X-API-Key`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any
from urllib.parse import quote

import httpx
import numpy as np
import orjson

from registry.errors import MlgateError
from services.gateway.codec import DATATYPES, HEADER_LENGTH, oip_datatype_of

__all__ = ["Client", "GatewayError", "InferResult"]


class GatewayError(MlgateError):
    """An error answer from the gateway: `status`, `message`, `retry_after` (seconds)."""

    def __init__(self, status: int, message: str, retry_after: float | None = None) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status
        self.status_code = status
        self.retry_after = retry_after


@dataclass(frozen=True)
class InferResult:
    model: str
    version: int
    outputs: dict[str, np.ndarray]
    request_id: str | None


class Client:
    """`url`: the gateway's base URL. `api_key`: one of MLGATE_API_KEYS, if set there.
    `admin_token`: MLGATE_ADMIN_TOKEN, for the admin routes. `transport`: an httpx transport
    (e.g. `httpx.ASGITransport(app)` to talk to an app in process)."""

    def __init__(
        self,
        url: str = "http://127.0.0.1:8000",
        *,
        api_key: str | None = None,
        admin_token: str | None = None,
        timeout_s: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._http = httpx.Client(base_url=url.rstrip("/"), timeout=timeout_s, transport=transport)
        self._user = {"x-api-key": api_key} if api_key else {}
        self._admin = {"authorization": f"Bearer {admin_token}"} if admin_token else {}

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # ------------------------------------------------------------------ health

    def live(self) -> bool:
        return self._http.get("/v2/health/live").status_code == 200

    def ready(self, model: str | None = None, version: int | None = None) -> bool:
        path = "/v2/health/ready" if model is None else f"{_model_path(model, version)}/ready"
        return self._http.get(path, headers=self._user).status_code == 200

    def metadata(self, model: str, version: int | None = None) -> dict[str, Any]:
        return self._json("GET", _model_path(model, version))

    # ------------------------------------------------------------------ inference

    def infer(
        self,
        model: str,
        inputs: Mapping[str, np.ndarray],
        *,
        version: int | None = None,
        binary: bool = False,
        request_id: str | None = None,
        outputs: Sequence[str] | None = None,
        parameters: Mapping[str, Any] | None = None,
        deadline: float | None = None,
    ) -> InferResult:
        """One OIP v2 inference. `binary`: send and receive tensors as raw bytes (the binary
        tensor extension) instead of JSON lists. `deadline`: absolute Unix time in seconds
        (`X-Request-Deadline`)."""
        entries: list[dict[str, Any]] = []
        blobs: list[bytes] = []
        for name, value in inputs.items():
            array = np.asarray(value)
            if array.dtype not in DATATYPES.values():
                raise TypeError(f"input {name!r}: dtype {array.dtype} has no OIP datatype")
            entry: dict[str, Any] = {
                "name": name,
                "shape": list(array.shape),
                "datatype": oip_datatype_of(array.dtype),
            }
            if binary:
                blob = np.ascontiguousarray(array).tobytes()
                entry["parameters"] = {"binary_data_size": len(blob)}
                blobs.append(blob)
            else:
                entry["data"] = array.reshape(-1).tolist()
            entries.append(entry)
        document: dict[str, Any] = {"inputs": entries}
        if request_id is not None:
            document["id"] = request_id
        extra = dict(parameters or {})
        if binary:
            extra["binary_data_output"] = True
        if extra:
            document["parameters"] = extra
        if outputs is not None:
            document["outputs"] = [{"name": n} for n in outputs]
        header = orjson.dumps(document)
        headers = dict(self._user)
        if blobs:
            headers[HEADER_LENGTH] = str(len(header))
            headers["content-type"] = "application/octet-stream"
        else:
            headers["content-type"] = "application/json"
        if deadline is not None:
            if not math.isfinite(deadline):
                raise ValueError(f"deadline must be a finite Unix time, got {deadline}")
            headers["x-request-deadline"] = repr(deadline)
        response = self._http.post(
            f"{_model_path(model, version)}/infer",
            content=b"".join([header, *blobs]),
            headers=headers,
        )
        _raise_for(response)
        return _infer_result(response)

    def predict(self, model: str, instances: Sequence[Any]) -> list[Any]:
        """KServe v1 `:predict`: rows (or feature objects) in, predictions out."""
        return list(
            self._json("POST", f"/v1/models/{_name(model)}:predict", {"instances": instances})[
                "predictions"
            ]
        )

    # ------------------------------------------------------------------ feedback

    def feedback(self, model: str, labels: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """Ground truth keyed by request id: `[{"id": ..., "label": ...}, ...]`."""
        return self._json("POST", f"/v1/models/{_name(model)}/feedback", {"feedback": labels})

    # ------------------------------------------------------------------ monitoring

    def drift(
        self, model: str, *, version: int | None = None, check: int | None = None
    ) -> dict[str, Any]:
        query = {k: v for k, v in (("version", version), ("check", check)) if v is not None}
        return self._json("GET", f"/monitoring/models/{_name(model)}/drift", params=query)

    def drift_report(
        self, model: str, *, version: int | None = None, check: int | None = None
    ) -> str:
        """The drift check's Evidently report (HTML)."""
        query = {k: v for k, v in (("version", version), ("check", check)) if v is not None}
        response = self._http.get(
            f"/monitoring/models/{_name(model)}/drift/report", params=query, headers=self._user
        )
        _raise_for(response)
        return response.text

    def quality(
        self, model: str, *, version: int | None = None, history: int = 0
    ) -> dict[str, Any]:
        query: dict[str, Any] = {"history": history}
        if version is not None:
            query["version"] = version
        return self._json("GET", f"/monitoring/models/{_name(model)}/quality", params=query)

    # ------------------------------------------------------------------ tasks

    def tasks(
        self, *, model: str | None = None, status: str | None = None, limit: int = 100
    ) -> list[dict[str, Any]]:
        query: dict[str, Any] = {"limit": limit}
        if model is not None:
            query["model"] = model
        if status is not None:
            query["status"] = status
        return list(self._json("GET", "/retraining/tasks", params=query)["tasks"])

    def task(self, task_id: int) -> dict[str, Any]:
        return self._json("GET", f"/retraining/tasks/{int(task_id)}")

    def open_task(
        self,
        model: str,
        reason: str,
        *,
        version: int | None = None,
        evidence: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Open a retraining task (admin): `{"action", "why", "task"}`."""
        body: dict[str, Any] = {"model": model, "reason": reason, "evidence": dict(evidence or {})}
        if version is not None:
            body["version"] = version
        return self._json("POST", "/retraining/tasks", body, admin=True)

    def approve_task(self, task_id: int, reason: str) -> dict[str, Any]:
        return self._json(
            "POST", f"/retraining/tasks/{int(task_id)}/approve", {"reason": reason}, admin=True
        )

    def reject_task(self, task_id: int, reason: str) -> dict[str, Any]:
        return self._json(
            "POST", f"/retraining/tasks/{int(task_id)}/reject", {"reason": reason}, admin=True
        )

    # ------------------------------------------------------------------ registry

    def set_shadow(
        self, model: str, version: int, rate: float, reason: str, *, alias: str = "production"
    ) -> dict[str, Any]:
        """Run `version` on `rate` of `alias`'s traffic, its answers logged only (admin)."""
        body = {"version": version, "rate": rate, "reason": reason}
        return self._json("PUT", _rule_path(model, alias, "shadow"), body, admin=True)

    def clear_shadow(self, model: str, *, alias: str = "production") -> None:
        path = _rule_path(model, alias, "shadow")
        _raise_for(self._http.request("DELETE", path, headers=dict(self._admin)))

    def shadow_report(self, model: str, *, last: int | None = None) -> dict[str, Any]:
        """How the shadow agrees with the version its alias points to."""
        params = None if last is None else {"last": last}
        return self._json("GET", f"/monitoring/models/{_name(model)}/shadow", params=params)

    def start_canary(
        self, model: str, version: int, weight: float, reason: str, *, alias: str = "production"
    ) -> dict[str, Any]:
        """Give `version` `weight` of the traffic `alias` routes (admin)."""
        body = {"version": version, "weight": weight, "reason": reason}
        return self._json("PUT", _rule_path(model, alias, "canary"), body, admin=True)

    def canary(self, model: str, *, alias: str = "production") -> dict[str, Any]:
        """`{"running": …, "history": […]}` of the alias's canaries."""
        return self._json("GET", _rule_path(model, alias, "canary"))

    def promote_canary(self, model: str, reason: str, *, alias: str = "production") -> Any:
        """Complete the canary: the alias moves to it (admin)."""
        path = _rule_path(model, alias, "canary/promote")
        return self._json("POST", path, {"reason": reason}, admin=True)

    def rollback_canary(self, model: str, reason: str, *, alias: str = "production") -> Any:
        path = _rule_path(model, alias, "canary/rollback")
        return self._json("POST", path, {"reason": reason}, admin=True)

    def submit_batch_job(
        self,
        model: str,
        source: str,
        output: str,
        *,
        version: int | None = None,
        alias: str | None = None,
        **options: Any,
    ) -> dict[str, Any]:
        """Score `source` into `output` (paths inside the gateway's batch folder) with a
        served version, below live traffic (admin); the job's record, `running`. `options`:
        rejects, keep, max_reject_share, chunk_rows."""
        body: dict[str, Any] = {"model": model, "input": source, "output": output, **options}
        if version is not None:
            body["version"] = version
        if alias is not None:
            body["alias"] = alias
        return self._json("POST", "/batch/jobs", body, admin=True)

    def batch_job(self, job_id: int) -> dict[str, Any]:
        """A batch run's record: status, progress, counts, digests."""
        return self._json("GET", f"/batch/jobs/{int(job_id)}")

    def models(self) -> list[dict[str, Any]]:
        return list(self._json("GET", "/registry/models")["models"])

    def model(self, name: str) -> dict[str, Any]:
        """A model's versions (status, aliases, servable formats) and its aliases."""
        return self._json("GET", f"/registry/models/{_name(name)}")

    def version(self, name: str, version: int) -> dict[str, Any]:
        """A version's lineage: data, code, params, metrics, parents, artifacts and their
        parity-gate reports."""
        return self._json("GET", f"/registry/models/{_name(name)}/versions/{int(version)}")

    def aliases(self, name: str, alias: str | None = None) -> dict[str, Any]:
        """Where the aliases point now, and every move (who, when, why)."""
        query = {} if alias is None else {"alias": alias}
        return self._json("GET", f"/registry/models/{_name(name)}/aliases", params=query)

    def move_alias(
        self, name: str, alias: str, version: int, *, reason: str, actor: str | None = None
    ) -> dict[str, Any]:
        """Point `alias` at a version whose export passed the gate (admin; audited)."""
        body: dict[str, Any] = {"version": version, "reason": reason}
        if actor is not None:
            body["actor"] = actor
        path = f"/registry/models/{_name(name)}/aliases/{quote(alias, safe='')}"
        return self._json("PUT", path, body, admin=True)

    # ------------------------------------------------------------------ plumbing

    def _json(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        params: Mapping[str, Any] | None = None,
        admin: bool = False,
    ) -> Any:
        headers = dict(self._admin if admin else self._user)
        content = None
        if body is not None:
            content = orjson.dumps(body)
            headers["content-type"] = "application/json"
        response = self._http.request(method, path, content=content, params=params, headers=headers)
        _raise_for(response)
        return orjson.loads(response.content)


def _name(model: str) -> str:
    return quote(model, safe="")


def _rule_path(model: str, alias: str, rule: str) -> str:
    """An alias's traffic rule: `shadow`, `canary`, or one of the canary's actions."""
    return f"/registry/models/{_name(model)}/aliases/{quote(alias, safe='')}/{rule}"


def _model_path(model: str, version: int | None) -> str:
    path = f"/v2/models/{_name(model)}"
    return path if version is None else f"{path}/versions/{int(version)}"


def _raise_for(response: httpx.Response) -> None:
    if response.status_code < 400:
        return
    try:
        message = str(orjson.loads(response.content)["error"])
    except (orjson.JSONDecodeError, KeyError, TypeError):
        message = response.text[:500] or response.reason_phrase
    retry = response.headers.get("retry-after")
    retry_after = float(retry) if retry and retry.isascii() and retry.isdigit() else None
    raise GatewayError(response.status_code, message, retry_after)


def _infer_result(response: httpx.Response) -> InferResult:
    body = response.content
    split = response.headers.get(HEADER_LENGTH)
    header, blob = (body, b"") if split is None else (body[: int(split)], body[int(split) :])
    document = orjson.loads(header)
    outputs: dict[str, np.ndarray] = {}
    offset = 0
    for entry in document["outputs"]:
        dtype = DATATYPES[entry["datatype"]]
        shape = entry["shape"]
        size = (entry.get("parameters") or {}).get("binary_data_size")
        if size is not None:
            outputs[entry["name"]] = np.frombuffer(
                blob[offset : offset + size], dtype=dtype
            ).reshape(shape)
            offset += size
        else:
            outputs[entry["name"]] = np.asarray(entry["data"], dtype=dtype).reshape(shape)
    return InferResult(
        model=document["model_name"],
        version=int(document["model_version"]),
        outputs=outputs,
        request_id=document.get("id"),
    )

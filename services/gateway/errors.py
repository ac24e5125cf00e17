"""The gateway's errors, and the one place that turns any error into a response.

The base class and the registry's errors live in `registry/errors.py`; the gateway adds
what only serving can go wrong with. Every error carries its HTTP status, so REST and
(later) gRPC map them through the same tables.

    MlgateError (registry/errors.py)
    ├── BadRequest (400)
    │   └── InvalidTensor           wrong name, datatype, shape, rows or values (`reason`)
    ├── Unauthorized (401)          no credentials where they are required
    ├── Forbidden (403)             credentials that are wrong, or a non-loopback admin
    ├── NotFound (404)              unknown model/version (registry) or one not loaded here
    ├── PayloadTooLarge (413)       body past the byte limit, or too many rows (`reason`)
    ├── ModelExecutionFailed (422)  the model raised on this request's input alone
    ├── QueueFull (429)             with Retry-After (the queue's drain time)
    ├── EngineFailed (502)          the serving engine behind the gateway (Triton) failed
    ├── Unavailable (503)
    │   ├── ModelNotReady           not loaded, loading, failed to load, or unloading
    │   ├── Overloaded              shed: predicted to miss its latency target (Retry-After)
    │   └── EngineUnavailable       the serving engine behind the gateway is unreachable
    └── DeadlineExceeded (504)      the client's deadline passed before compute
"""

from __future__ import annotations

import logging
import math
import random

from starlette.exceptions import HTTPException

from registry.errors import BadRequest, MlgateError, NotFound

__all__ = [
    "GRPC_STATUS",
    "DeadlineExceeded",
    "EngineFailed",
    "EngineUnavailable",
    "Forbidden",
    "InvalidTensor",
    "ModelExecutionFailed",
    "ModelNotLoaded",
    "ModelNotReady",
    "Overloaded",
    "PayloadTooLarge",
    "QueueFull",
    "Refusal",
    "Unauthorized",
    "Unavailable",
    "error_body",
    "retry_after",
]

log = logging.getLogger("mlgate.gateway")


class InvalidTensor(BadRequest):
    """`reason`: a machine word for why the tensors were refused (`validation.REFUSAL_REASONS`),
    by which the data plane counts refused rows for data-quality checks; None for a body that
    is malformed rather than wrong for the model (not counted)."""

    def __init__(self, message: str, reason: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason


class Unauthorized(MlgateError):
    """401, with `WWW-Authenticate: <challenge>` (RFC 9110 requires one on a 401; `auth`
    names the scheme)."""

    status_code = 401

    def __init__(self, message: str, *, challenge: str) -> None:
        super().__init__(message)
        self.challenge = challenge


class Forbidden(MlgateError):
    status_code = 403


class ModelNotLoaded(NotFound):
    pass


class PayloadTooLarge(MlgateError):
    """`reason` as for InvalidTensor: "too_many_rows" from validation, None for a body past
    the byte limit (refused before the model is known to be the one it was meant for)."""

    status_code = 413

    def __init__(self, message: str, reason: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason


class ModelExecutionFailed(MlgateError):
    status_code = 422


def retry_after(drain_s: float) -> str:
    """Retry-After in whole seconds, at least 1 (the header has no fractions): the drain
    time plus up to a second of jitter, so refused clients do not all come back at once."""
    return str(max(1, math.ceil(drain_s + random.random())))  # noqa: S311 - jitter, not crypto


class Refusal(MlgateError):
    """A request refused for load, not for what it is: it carries `Retry-After`."""

    def __init__(self, message: str, retry_after_s: float = 0.0) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s

    @property
    def retry_after(self) -> str:
        return retry_after(self.retry_after_s)


class QueueFull(Refusal):
    status_code = 429


class EngineFailed(MlgateError):
    status_code = 502


class Unavailable(MlgateError):
    status_code = 503


class ModelNotReady(Unavailable):
    pass


class Overloaded(Refusal, Unavailable):
    """503 with Retry-After: the gateway, or this model's queue, cannot meet the SLO now."""


class EngineUnavailable(Unavailable):
    pass


class DeadlineExceeded(MlgateError):
    status_code = 504


# The same statuses as gRPC codes (grpc.StatusCode names), for the gRPC transport.
GRPC_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "FAILED_PRECONDITION",
    413: "RESOURCE_EXHAUSTED",
    422: "INVALID_ARGUMENT",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    502: "UNAVAILABLE",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


def error_body(exc: BaseException) -> tuple[int, str, dict[str, str]]:
    """(status, message, extra headers) for any exception; 5xx details stay in the log."""
    if isinstance(exc, MlgateError):
        headers = {"Retry-After": exc.retry_after} if isinstance(exc, Refusal) else {}
        if isinstance(exc, Unauthorized):
            headers = {"WWW-Authenticate": exc.challenge}
        if exc.status_code >= 500 and not isinstance(
            exc, Unavailable | DeadlineExceeded | EngineFailed
        ):
            log.error("internal error: %s", exc.message)
        return exc.status_code, exc.message, headers
    if isinstance(exc, HTTPException):  # the router's own: no route (404), no method (405)
        return exc.status_code, f"{exc.detail}: no such route or method", dict(exc.headers or {})
    log.exception("unexpected error", exc_info=exc)
    return 500, "internal error: the gateway failed on this request; see its log", {}

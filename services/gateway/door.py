"""The door: refusing overload inside uvicorn's HTTP protocol, before any ASGI work.

Past capacity a gateway must refuse most of what arrives, and every refusal costs the same
one core the answers need: at 300 % of capacity, goodput holds only if a refusal costs a
small fraction of an answer. Refused in the endpoint, a request still costs uvicorn's
scope, a task, the ASGI call chain, a Starlette request and response and the envelope:
about half of what answering it costs on a small model. `DoorProtocol` (uvicorn's
httptools protocol, given to `uvicorn.run(http=...)` by `mlgate serve`) asks the app's
`Admission` when a POST to an inference path has its headers, and if the process cannot
meet the SLO, answers a prebuilt 503 with Retry-After from the parser's own callbacks:
no scope, no task, no body read beyond what the parser skips.

The app hands its `Admission` to the protocol through the lifespan state (`STATE_KEY`),
the one channel uvicorn gives from an app to its protocol. Pipelined requests (an earlier
one on the connection still unanswered) are left to the normal path, so responses never
leave out of order. An app without the key (or a server without this protocol) refuses
at the endpoint instead, with the same rule and message.

NOTE: this subclasses uvicorn's `HttpToolsProtocol` and relies on its parser callbacks
(`on_headers_complete`, `on_body`, `on_message_complete`), its `cycle` and `pipeline`, and
its keep-alive timer; `tests/services/gateway/test_door.py` runs it on a real server.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from services.gateway.errors import retry_after

__all__ = ["STATE_KEY", "DoorProtocol", "refusal_bytes"]

STATE_KEY = "mlgate.door"
_INFER_SUFFIXES = (b"/infer", b":predict")


def refusal_bytes(message: str, drain_s: float, *, keep_alive: bool) -> bytes:
    """A complete HTTP/1.1 503 in the gateway's error envelope."""
    body = orjson.dumps({"error": message})
    head = (
        b"HTTP/1.1 503 Service Unavailable\r\n"
        b"content-type: application/json\r\n"
        b"retry-after: " + retry_after(drain_s).encode() + b"\r\n"
        b"content-length: " + str(len(body)).encode() + b"\r\n"
    )
    if not keep_alive:
        head += b"connection: close\r\n"
    return head + b"\r\n" + body


class DoorProtocol(HttpToolsProtocol):
    _refusal: bytes | None = None
    _closing = False

    def on_headers_complete(self) -> None:
        door: Door | None = self.app_state.get(STATE_KEY)
        if (
            door is not None
            and self.parser.get_method() == b"POST"
            and (self.cycle is None or self.cycle.response_complete)
            and not self.pipeline
        ):
            path = self.url.split(b"?", 1)[0]
            if path.endswith(_INFER_SUFFIXES):
                refused = door.refuse(path)
                if refused is not None:
                    keep_alive = self.parser.should_keep_alive()
                    self._refusal = refusal_bytes(*refused, keep_alive=keep_alive)
                    self._closing = not keep_alive
                    return
        self._refusal = None
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        if self._refusal is None:
            super().on_body(body)

    def on_message_complete(self) -> None:
        refusal = self._refusal
        if refusal is None:
            super().on_message_complete()
            return
        self._refusal = None
        self.transport.write(refusal)
        self.server_state.total_requests += 1
        if self._closing:
            self.transport.close()
        elif self.timeout_keep_alive_task is None:
            self.timeout_keep_alive_task = self.loop.call_later(
                self.timeout_keep_alive, self.timeout_keep_alive_handler
            )


class Door:
    """What the protocol asks: `refuse(path)` → (message, drain seconds), or None to admit.
    `count(path)` records a refusal in the metrics."""

    def __init__(self, admission: Any, count: Callable[[bytes], None]) -> None:
        self.admission = admission
        self._count = count

    def refuse(self, path: bytes) -> tuple[str, float] | None:
        message = self.admission.refusal()
        if message is None:
            return None
        self._count(path)
        return message, self.admission.drain_s()

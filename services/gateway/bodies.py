"""Request bodies, read and parsed in one place: the size limit (413) and gzip/deflate
(`read_body`), JSON with one message for what is not JSON (`parse_json`), a JSON object
(`read_object`), and a required or optional text field of one (`text_field`)."""

from __future__ import annotations

import zlib
from typing import Any

import orjson
from starlette.requests import Request

from registry.errors import BadRequest
from services.gateway.errors import PayloadTooLarge

__all__ = ["SMALL_BODY", "parse_json", "read_body", "read_object", "text_field"]

SMALL_BODY = 64 * 1024
"""The limit for control-plane bodies (a decision, an alias move, a task): small JSON."""


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 past `limit` bytes, decompressed if gzip/deflate."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isascii() and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"the body is {declared} bytes; the limit is {limit}")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"the body exceeds the {limit}-byte limit")
        chunks.append(chunk)
    body = b"".join(chunks)
    encoding = request.headers.get("content-encoding", "identity").lower()
    if encoding == "identity":
        return body
    if encoding not in ("gzip", "deflate"):
        raise BadRequest(f"Content-Encoding {encoding!r} is not supported; use gzip or deflate")
    inflater = zlib.decompressobj(zlib.MAX_WBITS | 16 if encoding == "gzip" else zlib.MAX_WBITS)
    try:
        inflated = inflater.decompress(body, limit + 1)
    except zlib.error as exc:
        raise BadRequest(f"the body is not valid {encoding} data: {exc}") from None
    if len(inflated) > limit or inflater.unconsumed_tail:
        raise PayloadTooLarge(f"the decompressed body exceeds the {limit}-byte limit")
    return inflated


def parse_json(body: bytes, *, error: type[BadRequest] = BadRequest) -> Any:
    """The body as JSON, or `error` (a 400) saying where it stops being JSON."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise error(f"the request body is not valid JSON: {exc}") from None


async def read_object(
    request: Request, limit: int = SMALL_BODY, *, empty_ok: bool = False, expected: str = ""
) -> dict[str, Any]:
    """The body as a JSON object; an empty body is `{}` when `empty_ok`, else a 400.
    `expected`: what the body should look like, for the message."""
    body = await read_body(request, limit)
    hint = f": {expected}" if expected else ""
    if not body.strip():
        if empty_ok:
            return {}
        raise BadRequest(f"the request body is empty; expected a JSON object{hint}")
    document = parse_json(body)
    if not isinstance(document, dict):
        raise BadRequest(f"the request body must be a JSON object{hint}")
    return document


def text_field(document: dict[str, Any], field: str, *, required: bool) -> str:
    """A non-empty string field, stripped (at most 1,000 characters kept); "" when absent
    and not required."""
    value = document.get(field)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or not value.strip():
        raise BadRequest(f"{field!r} must be a non-empty string")
    return value.strip()[:1000]

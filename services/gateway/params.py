"""What a request names, checked the same way whatever the transport: a model name, a
version, an id, a deadline. A bad one is a 400 naming the rule (`BadRequest`)."""

from __future__ import annotations

import math
import time

from registry.errors import BadRequest
from registry.names import ID_RULE, check_model_name, positive_id_text

__all__ = ["DEADLINE_HEADER", "model_name", "positive_int", "unix_deadline", "version_number"]

DEADLINE_HEADER = "x-request-deadline"  # absolute Unix time in seconds, from an upstream caller


def model_name(name: str) -> str:
    return check_model_name(name)


def version_number(text: str | None) -> int | None:
    if text is None:
        return None
    version = positive_id_text(text)
    if version is None:
        raise BadRequest(f"model version {text[:40]!r} is not {ID_RULE}")
    return version


def positive_int(text: str, what: str) -> int:
    """A path or query parameter that must be a positive integer that the database can hold;
    400 naming it otherwise."""
    value = positive_id_text(text)
    if value is None:
        raise BadRequest(f"{what} must be {ID_RULE}, got {text[:40]!r}")
    return value


def unix_deadline(value: str | None) -> float | None:
    """An absolute Unix-time deadline header, on the time.monotonic() clock; a value that is
    not a finite number (`nan`, `inf`, `1e400`) is a 400."""
    if value is None:
        return None
    try:
        absolute = float(value)
    except ValueError:
        absolute = math.nan
    if not math.isfinite(absolute):
        raise BadRequest(
            f"{DEADLINE_HEADER} must be a Unix time in seconds (a finite number), "
            f"got {value[:40]!r}"
        )
    return time.monotonic() + (absolute - time.time())

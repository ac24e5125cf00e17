"""`"module:function"` entrypoints: model factories and trainers recorded in lineage."""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from typing import Any

from registry.errors import InvalidModelInput

__all__ = ["check_entrypoint", "resolve_entrypoint"]

_ENTRYPOINT_RE = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_][\w.]*")


def check_entrypoint(text: str, what: str) -> str:
    if not isinstance(text, str) or not _ENTRYPOINT_RE.fullmatch(text):
        raise InvalidModelInput(f"{what} {text!r} is not of the form 'package.module:function'")
    return text


def resolve_entrypoint(text: str, what: str) -> Callable[..., Any]:
    """Import `module` and return `function` (dots after the colon walk attributes)."""
    check_entrypoint(text, what)
    module_name, _, attribute_path = text.partition(":")
    try:
        target: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise InvalidModelInput(f"{what} {text!r}: cannot import {module_name!r}: {exc}") from exc
    for attribute in attribute_path.split("."):
        try:
            target = getattr(target, attribute)
        except AttributeError:
            raise InvalidModelInput(
                f"{what} {text!r}: {module_name!r} has no attribute {attribute_path!r}"
            ) from None
    if not callable(target):
        raise InvalidModelInput(f"{what} {text!r} is not callable")
    return target

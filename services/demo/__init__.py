"""`mlgate demo`: the credit-risk model trained, registered and promoted (`register`), then
the served loop driven by generated traffic (`loop`, `traffic`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from registry.lazy import lazy_names

if TYPE_CHECKING:
    from services.demo.register import run_demo

__all__ = ["run_demo"]

__getattr__ = lazy_names(__name__, {"run_demo": "services.demo.register"})

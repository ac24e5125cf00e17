"""End-to-end fixtures: a registry home with served models, reused from the gateway tests."""

from __future__ import annotations

from tests.services.gateway.conftest import home, template_home

__all__ = ["home", "template_home"]

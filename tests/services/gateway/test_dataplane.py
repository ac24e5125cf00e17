from __future__ import annotations

import pytest

from registry import Registry
from services.gateway.dataplane import DataPlane
from services.gateway.errors import ModelNotLoaded
from services.gateway.manager import ModelManager
from tests.services.gateway.conftest import settings


def test_not_ready_until_the_first_sync(registry: Registry) -> None:
    manager = ModelManager(registry, settings())
    plane = DataPlane(manager, max_rows=10)
    assert plane.live()
    assert not plane.ready()
    assert not plane.model_ready("mlp", None)
    with pytest.raises(ModelNotLoaded, match="not served here"):
        plane.model_metadata("mlp", None)

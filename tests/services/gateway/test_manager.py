"""Loading, swapping, reloading and unloading model versions (in process)."""

from __future__ import annotations

import asyncio
import functools
import gc
import operator
import stat
import weakref

import numpy as np
import pytest
import torch

from registry import Registry
from tests.services.gateway.conftest import PATIENCE_S, Gateway, open_gateway

pytestmark = pytest.mark.anyio


def corrupt(registry: Registry, ref: str, kind: str) -> None:
    artifact = registry.get(ref).servable_artifact(kind)
    assert artifact is not None
    path = registry.store.path_of(artifact.manifest) / artifact.manifest.files[0].name
    path.chmod(stat.S_IRUSR | stat.S_IWUSR)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


async def wait_for(condition: object, seconds: float = PATIENCE_S) -> None:
    """Poll until `condition()` holds; the limit only bounds a failing test."""
    deadline = asyncio.get_running_loop().time() + seconds
    while not condition():  # type: ignore[operator]
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


async def test_a_version_that_fails_to_load_marks_only_its_model(registry: Registry) -> None:
    corrupt(registry, "two:1", "onnx")
    async for gateway in open_gateway(registry):
        broken = await gateway.client.post(
            "/v2/models/two/infer",
            json={
                "inputs": [
                    {"name": "numeric", "shape": [1, 4], "datatype": "FP32", "data": [0] * 4}
                ]
            },
        )
        assert broken.status_code == 503
        assert "failed to load" in broken.json()["error"]
        assert "fails its checksum" in broken.json()["error"]
        assert (await gateway.client.get("/v2/models/two/ready")).status_code == 503
        assert (await gateway.client.get("/v2/health/ready")).status_code == 200
        assert (await gateway.infer("mlp", np.zeros((1, 6), np.float32))).status_code == 200
        index = (await gateway.client.post("/v2/repository/index")).json()
        (entry,) = [e for e in index if e["name"] == "two"]
        assert entry["state"] == "UNAVAILABLE"
        assert "checksum" in entry["reason"]


async def test_a_failed_swap_keeps_the_old_version_serving(registry: Registry) -> None:
    corrupt(registry, "mlp:2", "onnx")
    async for gateway in open_gateway(registry):
        registry.set_alias("mlp", "production", 2, reason="broken candidate")
        await wait_for(functools.partial(operator.contains, gateway.manager._failed, ("mlp", 2)))
        response = await gateway.infer("mlp", np.zeros((1, 6), np.float32))
        assert response.status_code == 200
        assert response.json()["model_version"] == "1"


async def test_an_alias_move_swaps_and_unloads_the_old_version(
    gateway: Gateway, registry: Registry
) -> None:
    old = gateway.manager._served[("mlp", 1)]
    session = weakref.ref(old.runtime._session)
    registry.set_alias("mlp", "production", 2, reason="better")
    await wait_for(lambda: gateway.manager._routes.get("mlp") == 2)
    await wait_for(lambda: ("mlp", 1) not in gateway.manager._served)
    assert (await gateway.infer("mlp", np.zeros((1, 6), np.float32))).json()["model_version"] == "2"
    assert old.state == "UNLOADING"
    assert old.runtime._session is None
    del old
    gc.collect()
    assert session() is None, "the onnxruntime session must be freed on unload"


async def test_new_serving_settings_reload_the_version(
    gateway: Gateway, registry: Registry
) -> None:
    before = gateway.manager._served[("mlp", 1)]
    registry.set_serving_config("mlp:1", {"max_batch_size": 4, "slo_ms": 900})
    await wait_for(lambda: gateway.manager._served[("mlp", 1)] is not before)
    metadata = (await gateway.client.get("/v2/models/mlp")).json()
    assert metadata["parameters"]["batching"]["max_batch_size"] == 4
    assert metadata["parameters"]["batching"]["slo_ms"] == 900
    assert (await gateway.infer("mlp", np.zeros((9, 6), np.float32))).status_code == 200
    stats = (await gateway.client.get("/v2/models/mlp/stats")).json()["model_stats"][0]
    assert stats["execution_count"] == 3  # 9 rows in batches of at most 4


async def test_an_unloaded_model_stays_unloaded_when_its_alias_moves(
    gateway: Gateway, registry: Registry
) -> None:
    await gateway.client.post("/v2/repository/models/mlp/unload")
    registry.set_alias("mlp", "production", 2, reason="while unloaded")
    await gateway.manager.sync()  # what each poll does, done now rather than waited for
    assert gateway.manager._aliases[("mlp", 2)] == ("production",)  # it saw the move
    assert [key for key in gateway.manager._served if key[0] == "mlp"] == []
    assert (await gateway.client.get("/v2/models/mlp/ready")).status_code == 503
    await gateway.client.post("/v2/repository/models/mlp/load")
    response = await gateway.infer("mlp", np.zeros((1, 6), np.float32))
    assert response.json()["model_version"] == "2"


async def test_loading_freezes_long_lived_objects_out_of_the_collector(gateway: Gateway) -> None:
    assert gc.get_freeze_count() > 10_000


async def test_only_versions_that_passed_the_gate_can_be_loaded(
    gateway: Gateway, registry: Registry
) -> None:
    from exporters import export
    from tests.fixtures import DataDependentBranch

    version = registry.register(
        DataDependentBranch(),
        "branchy",
        torch.rand(8, 4),
        factory="tests.fixtures:DataDependentBranch",
    )
    assert not export(registry, version.ref, "torchscript", method="trace").passed
    response = await gateway.client.post(
        "/v2/repository/models/branchy/load", json={"parameters": {"version": 1}}
    )
    assert response.status_code == 503
    assert "no artifact that passed the parity gate" in response.json()["error"]
    assert (await gateway.client.get("/v2/models/branchy/ready")).status_code == 503

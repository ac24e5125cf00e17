"""`services.client.Client` against a real gateway (uvicorn on a loopback port): inference
as JSON and as binary tensors, v1, feedback, tasks, monitoring, the registry, and errors."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import torch

from registry import Registry
from services.client import Client, GatewayError
from tests.fixtures import make_mlp
from tests.services.gateway.conftest import LiveServer


@pytest.fixture
def gateway(registry: Registry) -> Iterator[Client]:
    with (
        LiveServer(registry, admin_token="t0ken") as live,
        Client(live.url, admin_token="t0ken") as client,
    ):
        yield client


def expected(x: np.ndarray, seed: int = 0) -> np.ndarray:
    with torch.no_grad():
        return make_mlp(seed=seed)(torch.from_numpy(x)).numpy()


@pytest.mark.parametrize("binary", [False, True])
def test_inference_as_json_or_binary_tensors(gateway: Client, binary: bool) -> None:
    x = np.random.default_rng(1).standard_normal((3, 6)).astype(np.float32)
    answer = gateway.infer("mlp", {"x": x}, binary=binary, request_id="r-1")
    assert (answer.model, answer.version, answer.request_id) == ("mlp", 1, "r-1")
    (output,) = answer.outputs.values()
    assert output.dtype == np.float32
    np.testing.assert_allclose(output, expected(x), rtol=1e-4, atol=1e-5)
    one = gateway.infer("mlp", {"x": x}, version=1, binary=binary)
    assert one.version == 1
    (again,) = one.outputs.values()
    np.testing.assert_array_equal(again, output)


def test_v1_and_health(gateway: Client) -> None:
    assert gateway.live()
    assert gateway.ready()
    assert gateway.ready("mlp", 1)
    assert not gateway.ready("mlp", 2)  # registered, not served: only production is
    x = np.zeros((2, 6), np.float32)
    predictions = gateway.predict("mlp", x.tolist())
    np.testing.assert_allclose(
        np.asarray(predictions, np.float32).reshape(2, -1), expected(x), rtol=1e-4, atol=1e-5
    )
    assert gateway.metadata("mlp")["name"] == "mlp"


def test_errors_carry_the_status_and_the_message(gateway: Client) -> None:
    with pytest.raises(GatewayError) as unknown:
        gateway.infer("nope", {"x": np.zeros((1, 6), np.float32)})
    assert unknown.value.status == 404
    with pytest.raises(GatewayError) as bad:
        gateway.infer("mlp", {"x": np.zeros((1, 5), np.float32)})
    assert bad.value.status == 400
    assert "x" in bad.value.message
    with pytest.raises(GatewayError) as late:
        gateway.infer("mlp", {"x": np.zeros((1, 6), np.float32)}, deadline=1.0)
    assert late.value.status == 504
    with pytest.raises(ValueError, match="finite"):
        gateway.infer("mlp", {"x": np.zeros((1, 6), np.float32)}, deadline=float("nan"))
    with pytest.raises(TypeError, match="no OIP datatype"):
        gateway.infer("mlp", {"x": np.array([["a"] * 6])})


def test_feedback_tasks_and_monitoring(gateway: Client) -> None:
    answer = gateway.infer("mlp", {"x": np.zeros((1, 6), np.float32)}, request_id="fb-1")
    assert answer.request_id == "fb-1"
    receipt = gateway.feedback("mlp", [{"id": "fb-1", "label": 0.5}])
    assert set(receipt) >= {"accepted"}
    opened = gateway.open_task("mlp", "data_drift", evidence={"share": 0.7})
    task_id = opened["task"]["id"]
    assert gateway.task(task_id)["status"] == "open"
    assert [t["id"] for t in gateway.tasks(model="mlp")] == [task_id]
    rejected = gateway.reject_task(task_id, "a false alarm")
    assert rejected["status"] == "rejected"
    with pytest.raises(GatewayError) as none_yet:
        gateway.drift("mlp")
    assert none_yet.value.status == 404


def test_the_registry(gateway: Client) -> None:
    assert {m["name"] for m in gateway.models()} == {"mlp", "two"}
    assert [v["version"] for v in gateway.model("mlp")["versions"]] == [1, 2]
    assert gateway.version("mlp", 2)["ref"] == "mlp:2"
    moved = gateway.move_alias("mlp", "staging", 2, reason="to try it", actor="ana")
    assert (moved["alias"], moved["to_version"], moved["actor"]) == ("staging", 2, "ana")
    assert gateway.aliases("mlp")["aliases"] == {"production": 1, "staging": 2}
    with pytest.raises(GatewayError) as reserved:
        gateway.move_alias("mlp", "latest", 2, reason="x")
    assert reserved.value.status == 400


def test_admin_routes_without_the_token_are_refused(registry: Registry) -> None:
    with LiveServer(registry, admin_token="t0ken") as live, Client(live.url) as client:
        with pytest.raises(GatewayError) as refused:
            client.move_alias("mlp", "staging", 2, reason="x")
        assert refused.value.status == 401
        assert client.models()  # reads need no key on this gateway


def test_shadows(gateway: Client) -> None:
    rule = gateway.set_shadow("mlp", 2, 0.5, "before it serves")
    assert (rule["alias"], rule["version"], rule["rate"]) == ("production", 2, 0.5)
    report = gateway.shadow_report("mlp", last=100)
    assert (report["serving_version"], report["shadow"]["version"]) == (1, 2)
    gateway.clear_shadow("mlp")
    with pytest.raises(GatewayError) as gone:
        gateway.shadow_report("mlp")
    assert gone.value.status == 404
    with pytest.raises(GatewayError) as twice:
        gateway.clear_shadow("mlp")
    assert twice.value.status == 404

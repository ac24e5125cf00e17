"""gRPC behaviour that needs a server of its own: auth, admission, queue limits, model
states, message size, metrics and the inference log, binding."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import grpc  # type: ignore[import-untyped]
import httpx
import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families
from tritonclient.grpc import service_pb2 as pb2
from tritonclient.grpc import service_pb2_grpc

from monitors.log.reader import read_log
from monitors.settings import MonitorSettings
from registry import Registry
from services.gateway.admission import Admission
from services.gateway.app import create_app
from services.gateway.auth import check_admin
from services.gateway.errors import Forbidden
from services.gateway.rpc.service import peer_host
from tests.services.gateway.conftest import LiveServer, settings
from tests.services.gateway.rpc.test_grpc import (
    grpc_client,
    refused,
    rest_body,
    rest_error,
    rows,
    tensor,
    works,
)


def raw_request(model: str, x: np.ndarray) -> Any:
    request = pb2.ModelInferRequest(model_name=model)
    request.inputs.add(name="x", datatype="FP32", shape=list(x.shape))
    request.raw_input_contents.append(x.tobytes())
    return request


def test_api_keys_and_the_admin_token_come_in_metadata(registry: Registry) -> None:
    with LiveServer(registry, grpc_port=0, api_keys="alpha,beta", admin_token="root") as live:
        client = grpc_client(live)
        x = [tensor("x", rows(1))]
        assert client.is_server_live()  # health needs no key, as in REST
        for value, expected in [(None, "UNAUTHENTICATED"), ("Bearer gamma", "PERMISSION_DENIED")]:
            headers = {} if value is None else {"authorization": value}
            status, message = refused(client.infer, "mlp", x, headers=headers)
            rest = rest_error(live, "/v2/models/mlp/infer", rest_body(rows(1)), **headers)
            assert (status, message) == (expected, rest[1])
            assert refused(client.get_model_metadata, "mlp", headers=headers)[0] == expected
        assert client.infer("mlp", x, headers={"authorization": "Bearer alpha"})
        assert client.infer("mlp", x, headers={"x-api-key": "beta"})
        assert client.is_model_ready("mlp", headers={"x-api-key": "beta"})

        key = {"x-api-key": "alpha"}  # an API key is not the admin token
        wrong = {"authorization": "Bearer alpha"}
        cases = [({}, "UNAUTHENTICATED"), (key, "UNAUTHENTICATED"), (wrong, "PERMISSION_DENIED")]
        for headers, expected in cases:  # the admin token is read from Bearer only
            status, message = refused(client.unload_model, "two", headers=headers)
            rest = rest_error(live, "/v2/repository/models/two/unload", **headers)
            assert (status, message) == (expected, rest[1])
            assert refused(client.get_model_repository_index, headers=headers)[0] == (expected)
        client.unload_model("two", headers={"authorization": "Bearer root"})
        assert not client.is_model_ready("two", headers=key)
        client.close()


def test_the_admin_api_answers_loopback_peers_only_without_a_token() -> None:
    assert peer_host("ipv4:127.0.0.1:50432") == "127.0.0.1"
    assert peer_host("ipv6:[::1]:50432") == "::1"
    assert peer_host("ipv6:%5B::1%5D:50432") == "::1"
    assert peer_host("unix:/tmp/socket") is None
    check_admin({}, peer_host("ipv6:%5B::1%5D:1"), None)
    with pytest.raises(Forbidden, match="loopback clients only"):
        check_admin({}, peer_host("ipv4:10.1.2.3:50432"), None)
    with pytest.raises(Forbidden):
        check_admin({}, peer_host("unix:/tmp/socket"), None)


def test_unload_load_and_the_repository_index(registry: Registry) -> None:
    with LiveServer(registry, grpc_port=0) as live:
        client = grpc_client(live)
        index = client.get_model_repository_index(as_json=True)["models"]
        assert {"name": "two", "version": "1", "state": "READY"} in index
        client.unload_model("two")
        assert not client.is_model_ready("two")
        numeric = tensor("numeric", np.zeros((1, 4), np.float32))
        counts = tensor("counts", np.zeros((1, 3), np.int64), "INT64")
        status, message = refused(lambda: client.infer("two", [numeric, counts]))
        assert (status, message) == (
            "UNAVAILABLE",
            rest_error(live, "/v2/models/two/infer", {"inputs": []})[1],
        )
        entries = client.get_model_repository_index(as_json=True)["models"]
        assert {"name": "two", "state": "UNAVAILABLE", "reason": "unloaded"} in entries

        with grpc.insecure_channel(f"127.0.0.1:{live.app.state.grpc_port}") as channel:
            stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
            ready = stub.RepositoryIndex(pb2.RepositoryIndexRequest(ready=True))
            assert "two" not in {m.name for m in ready.models}
            for key, value, expected in [
                ("config", "{}", "unknown serving settings ['config']"),
                ("max_batch_size", "many", "max_batch_size"),
            ]:
                bad = pb2.RepositoryModelLoadRequest(model_name="two")
                bad.parameters[key].string_param = value
                with pytest.raises(grpc.RpcError) as caught:
                    stub.RepositoryModelLoad(bad)
                assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
                assert expected in caught.value.details()
            files = pb2.RepositoryModelLoadRequest(model_name="two")
            files.parameters["file:1/model.onnx"].bytes_param = b"onnx"
            with pytest.raises(grpc.RpcError) as caught:
                stub.RepositoryModelLoad(files)
            assert "file contents are not supported" in caught.value.details()
            load = pb2.RepositoryModelLoadRequest(model_name="two")
            load.parameters["max_batch_size"].int64_param = 8
            load.parameters["slo_ms"].string_param = "400.5"
            stub.RepositoryModelLoad(load)
        assert client.is_model_ready("two")
        config = client.get_model_config("two", as_json=True)["config"]
        assert (config["max_batch_size"], config["parameters"]["slo_ms"]["string_value"]) == (
            8,
            "400.5",
        )
        assert client.infer("two", [numeric, counts]).as_numpy("label").shape == (1,)
        status, _ = refused(lambda: client.unload_model("ghost"))
        assert status == "NOT_FOUND"
        client.close()


def test_a_request_the_queue_can_never_hold_is_resource_exhausted_without_retry(
    registry: Registry,
) -> None:
    registry.set_serving_config("mlp:1", {"max_batch_size": 2, "max_queue": 4})
    with LiveServer(registry, grpc_port=0) as live:
        with grpc.insecure_channel(f"127.0.0.1:{live.app.state.grpc_port}") as channel:
            stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
            with pytest.raises(grpc.RpcError) as caught:
                stub.ModelInfer.with_call(raw_request("mlp", rows(8)))
        assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "retry-after" not in dict(caught.value.trailing_metadata())
        rest = rest_error(live, "/v2/models/mlp/infer", rest_body(rows(8)))
        assert (413, caught.value.details()) == rest
        assert "max_queue 4" in rest[1]
        client = grpc_client(live)
        works(client)
        client.close()


def test_an_overloaded_gateway_refuses_grpc_too_with_retry_after(registry: Registry) -> None:
    with LiveServer(registry, grpc_port=0, loop_lag_shed_ms=1000) as live:
        client = grpc_client(live)
        dataplane = live.app.state.dataplane
        running = dataplane.admission
        # A loop far behind, and no probe task to bring it back.
        behind = Admission(1.0)
        behind.lag.observe(2.0)
        behind.lag.observe(2.0)
        dataplane.admission = behind
        status, message = refused(lambda: client.infer("mlp", [tensor("x", rows(1))]))
        rest = rest_error(live, "/v2/models/mlp/infer", rest_body(rows(1)))
        assert (status, message) == ("UNAVAILABLE", rest[1])
        assert "2000 ms behind" in message
        with grpc.insecure_channel(f"127.0.0.1:{live.app.state.grpc_port}") as channel:
            stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
            with pytest.raises(grpc.RpcError) as caught:
                stub.ModelInfer.with_call(raw_request("mlp", rows(1)))
        assert int(dict(caught.value.trailing_metadata())["retry-after"]) >= 1
        rejected = scrape(live)[("mlgate_rejected_total", ("mlp", "overload", "1"))]
        assert rejected == 3.0  # one per refusal, either transport
        dataplane.admission = running
        works(client)
        client.close()


def test_requests_over_max_body_bytes_are_refused(registry: Registry) -> None:
    with LiveServer(registry, grpc_port=0, max_body_bytes=2048) as live:
        client = grpc_client(live)
        status, message = refused(lambda: client.infer("mlp", [tensor("x", rows(100))]))
        assert status == "RESOURCE_EXHAUSTED"
        assert "2048" in message  # grpc's own words, naming the limit
        works(client)
        client.close()


def scrape(live: LiveServer) -> dict[tuple[str, tuple[str, ...]], float]:
    """Samples by (name, label values in label-name order)."""
    text = httpx.get(f"{live.url}/metrics").text
    return {
        (s.name, tuple(v for _, v in sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_grpc_requests_are_counted_timed_and_logged(registry: Registry) -> None:
    monitor = MonitorSettings(
        home=registry.settings.home, log_flush_interval_s=0.05, drift_monitor="off"
    )
    with LiveServer(registry, monitor=monitor, grpc_port=0) as live:
        client = grpc_client(live)
        for n in (1, 2, 3):
            client.infer("mlp", [tensor("x", rows(n))], request_id=f"g-{n}")
        refused(lambda: client.infer("mlp", [tensor("x", rows(2)[:, :4])]))
        refused(lambda: client.infer("ghost", [tensor("x", rows(1))]))
        client.is_model_ready("mlp")  # not an inference: not counted
        samples = scrape(live)
        # labels in name order: code, model, protocol, version
        assert samples[("mlgate_requests_total", ("200", "mlp", "grpc", "1"))] == 3
        assert samples[("mlgate_requests_total", ("400", "mlp", "grpc", "1"))] == 1
        assert samples[("mlgate_requests_total", ("404", "", "grpc", ""))] == 1
        assert samples[("mlgate_request_duration_seconds_count", ("mlp", "grpc", "1"))] == 4
        assert not any(k[1][2:3] == ("rest",) for k in samples if k[0] == "mlgate_requests_total")

        log = live.app.state.monitoring.log
        log.flush(10)
        window = read_log(live.app.state.monitoring.settings.log_path(), "mlp", 1)
        assert window.frame["request_id"].tolist() == ["g-1", "g-2", "g-2", "g-3", "g-3", "g-3"]
        client.close()


def test_grpc_is_off_unless_asked_and_a_taken_port_fails_the_start(registry: Registry) -> None:
    with LiveServer(registry) as live:
        assert live.app.state.grpc_port is None
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        app = create_app(settings(grpc_port=port), registry=registry)

        async def start() -> None:
            async with app.router.lifespan_context(app):
                pass

        with pytest.raises(OSError, match=f"cannot listen for gRPC on 127.0.0.1:{port}"):
            asyncio.run(start())

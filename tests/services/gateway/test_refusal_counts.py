"""Rows refused at validation, by reason, and rows answered: counted by a real gateway
(REST v2, v1 :predict, gRPC), written by its inference log, read back with `read_counts`."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import numpy as np
import orjson
import pytest

from monitors.log.counts import read_counts
from monitors.log.reader import read_log
from monitors.settings import MonitorSettings
from registry import Registry
from tests.services.gateway.conftest import Gateway, LiveServer, open_gateway
from tests.services.gateway.rpc.test_grpc import grpc_client, refused, rows, tensor

pytestmark = pytest.mark.anyio


def monitor(registry: Registry, **overrides: Any) -> MonitorSettings:
    values: dict[str, Any] = {
        "home": registry.settings.home,
        "log_flush_interval_s": 0.05,
        "drift_monitor": "off",
        **overrides,
    }
    return MonitorSettings(**values)


async def binary(gateway: Gateway, x: np.ndarray) -> httpx.Response:
    header = orjson.dumps(
        {
            "inputs": [
                {
                    "name": "x",
                    "shape": list(x.shape),
                    "datatype": "FP32",
                    "parameters": {"binary_data_size": x.nbytes},
                }
            ]
        }
    )
    return await gateway.client.post(
        "/v2/models/mlp/infer",
        content=header + x.tobytes(),
        headers={"Inference-Header-Content-Length": str(len(header))},
    )


async def post(gateway: Gateway, path: str, body: Any) -> httpx.Response:
    return await gateway.client.post(path, json=body)


def v2_body(x: np.ndarray, datatype: str = "FP32", name: str = "x") -> dict[str, Any]:
    entry = {"name": name, "shape": list(x.shape), "datatype": datatype, "data": x.ravel().tolist()}
    return {"inputs": [entry]}


async def test_refused_rows_are_counted_by_reason_and_sampling_spares_the_answered(
    registry: Registry,
) -> None:
    settings = monitor(registry, log_sample_rate=0.1)
    async for gateway in open_gateway(registry, monitor=settings, max_rows_per_request=50):
        infer = "/v2/models/mlp/infer"
        for seed in range(5):
            assert (await gateway.infer("mlp", rows(10, seed))).status_code == 200
        v1 = await post(gateway, "/v1/models/mlp:predict", {"instances": rows(3).tolist()})
        assert v1.status_code == 200

        expected = {
            # reason → the answer to a request refused for it
            "dtype": await post(gateway, infer, v2_body(rows(4).astype(np.float64), "FP64")),
            "shape": await post(gateway, infer, v2_body(rows(2)[:, :5])),
            "non_finite": await binary(gateway, np.full((3, 6), np.nan, np.float32)),
            "unknown_input": await post(
                gateway,
                infer,
                {"inputs": [*v2_body(rows(2))["inputs"], *v2_body(rows(2), name="y")["inputs"]]},
            ),
            "too_many_rows": await gateway.infer("mlp", rows(51)),
            "no_rows": await post(gateway, "/v1/models/mlp:predict", {"instances": []}),
            "missing_input": await post(
                gateway, "/v1/models/mlp:predict", {"instances": [{"f0": 1.0}, {"f0": 2.0}]}
            ),
        }
        for reason, response in expected.items():
            assert response.status_code == (413 if reason == "too_many_rows" else 400), reason
        # Refused before the data plane meets a version: not data, not counted.
        assert (await gateway.client.post(infer, content=b"{")).status_code == 400
        assert (await gateway.infer("ghost", rows(2))).status_code == 404
        # Refused by the data plane, but not at validation (the tensors were fine).
        response = await post(gateway, infer, {**v2_body(rows(2)), "outputs": [{"name": "z"}]})
        assert response.status_code == 400

        log = gateway.app.state.monitoring.log
        await asyncio.to_thread(log.flush, 10)
        directory = settings.log_path()
        counts = read_counts(directory, "mlp", 1)
        assert counts.answered_rows == 5 * 10 + 3 + 2  # the last 2: answered, then 400
        assert counts.refused_rows == {
            "dtype": 4,
            "missing_input": 2,
            "no_rows": 1,
            "non_finite": 3,
            "shape": 2,
            "too_many_rows": 51,
            "unknown_input": 2,
        }
        assert read_log(directory, "mlp", 1).rows < counts.answered_rows  # it was sampled
        assert read_counts(directory, "mlp", 2) == (0, {})


def test_grpc_refusals_are_counted_by_the_same_data_plane(registry: Registry) -> None:
    settings = monitor(registry)
    with LiveServer(registry, monitor=settings, grpc_port=0) as live:
        client = grpc_client(live)
        try:
            client.infer("mlp", [tensor("x", rows(4))])
            assert refused(lambda: client.infer("mlp", [tensor("x", rows(2)[:, :4])]))[0] == (
                "INVALID_ARGUMENT"
            )
            nan = np.full((5, 6), np.nan, np.float32)
            assert refused(lambda: client.infer("mlp", [tensor("x", nan)]))[0] == (
                "INVALID_ARGUMENT"
            )
        finally:
            client.close()
        live.app.state.monitoring.log.flush(10)
        counts = read_counts(settings.log_path(), "mlp", 1)
        assert counts == (4, {"non_finite": 5, "shape": 2})

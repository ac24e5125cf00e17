"""A real Prometheus scrapes a real gateway process on loopback; the series arrive."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from services.demo.traffic import GatewayProcess
from tests.support.prometheus import prometheus_server, query

pytestmark = pytest.mark.slow

RULES = Path(__file__).resolve().parents[2] / "deploy" / "prometheus" / "rules.yml"


def wait_for(base_url: str, promql: str, timeout_s: float = 60) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = query(base_url, promql)
        if found:
            return found
        time.sleep(0.5)
    raise AssertionError(f"Prometheus never returned data for {promql}")


def test_prometheus_scrapes_the_gateways_series(home: Path) -> None:
    env = {
        "MLGATE_DRIFT_INTERVAL_S": "0.5",
        "MLGATE_DRIFT_MIN_ROWS": "100",
        "MLGATE_LOG_FLUSH_INTERVAL_S": "0.2",
        # Every answer must be 200 while drift checks run in the gateway: the loop-lag shedder
        # would make that depend on how busy the machine is.
        "MLGATE_LOOP_LAG_SHED_MS": "0",
    }
    rng = np.random.default_rng(0)
    with GatewayProcess(home, None, env=env) as gateway:
        target = gateway.url.removeprefix("http://")
        with prometheus_server([target], rules=RULES) as prometheus, httpx.Client() as client:
            for i in range(300):
                row = rng.standard_normal(6).astype(np.float32)
                body = {
                    "id": f"r{i}",
                    "inputs": [
                        {"name": "x", "shape": [1, 6], "datatype": "FP32", "data": row.tolist()}
                    ],
                }
                answer = client.post(f"{gateway.url}/v2/models/mlp/infer", json=body)
                assert answer.status_code == 200
            up = wait_for(prometheus, f'up{{instance="{target}"}} == 1')
            assert up[0]["value"][1] == "1"
            requests = wait_for(
                prometheus,
                'sum(mlgate_requests_total{model="mlp",version="1",protocol="rest",code="200"})'
                " >= 300",
            )
            assert float(requests[0]["value"][1]) >= 300
            for series in (
                'mlgate_request_duration_seconds_bucket{model="mlp",le="0.25"}',
                'mlgate_batch_size_count{model="mlp"}',
                'mlgate_batches_total{model="mlp",reason="idle"}',
                'mlgate_queue_depth{model="mlp"}',
                'mlgate_queue_capacity{model="mlp"}',
                'mlgate_rejected_total{model="mlp",reason="shed"}',
                'mlgate_model_info{model="mlp",version="1",alias="production",format="onnx"}',
                'mlgate_inference_log_rows_total{outcome="flushed"} > 0',
                # The in-process monitor checked a window of the logged rows.
                'mlgate_drift_share{model="mlp",version="1"}',
                'mlgate_drift_last_check_timestamp_seconds{model="mlp"} > 0',
                'mlgate_drift_score{model="mlp",version="1"}',
                # The recording rules evaluate over the scraped series.
                'mlgate:request_slo_errors:ratio_rate5m{model="mlp"}',
            ):
                assert wait_for(prometheus, series), series

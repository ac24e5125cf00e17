"""kill -9 of a gateway process: every inference-log row it acknowledged as flushed survives."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from monitors.log.inference_log import InferenceLog, LogSettings
from monitors.log.reader import read_log
from services.demo.traffic import GatewayProcess

pytestmark = pytest.mark.slow


def flushed_rows(client: httpx.Client, url: str) -> int:
    text = client.get(f"{url}/metrics").text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "mlgate_inference_log_rows_total" and (
                sample.labels.get("outcome") == "flushed"
            ):
                return int(sample.value)
    raise AssertionError("no mlgate_inference_log_rows_total{outcome=flushed} in /metrics")


def infer(client: httpx.Client, url: str, request_id: str, row: np.ndarray) -> None:
    body = {
        "id": request_id,
        "inputs": [{"name": "x", "shape": [1, 6], "datatype": "FP32", "data": row.tolist()}],
    }
    assert client.post(f"{url}/v2/models/mlp/infer", json=body).status_code == 200


def test_acknowledged_rows_survive_kill_9(home: Path) -> None:
    env = {
        "MLGATE_LOG_FLUSH_INTERVAL_S": "0.2",
        "MLGATE_DRIFT_MONITOR": "off",
        "MLGATE_LOOP_LAG_SHED_MS": "0",  # every request must be acknowledged, however busy
    }
    rng = np.random.default_rng(0)
    rows = rng.standard_normal((400, 6)).astype(np.float32)
    with GatewayProcess(home, None, env=env) as gateway, httpx.Client() as client:
        for i in range(200):
            infer(client, gateway.url, f"req-{i}", rows[i])
        deadline = time.monotonic() + 30
        while (acknowledged := flushed_rows(client, gateway.url)) < 200:
            assert time.monotonic() < deadline, f"only {acknowledged} rows flushed"
            time.sleep(0.05)
        # More traffic, then the kill lands while some of it is still in memory.
        for i in range(200, 400):
            infer(client, gateway.url, f"req-{i}", rows[i])
        acknowledged = flushed_rows(client, gateway.url)
        os.killpg(gateway.pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                os.killpg(gateway.pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.05)

    log_dir = home / "inference_log"
    # The dead process left its segment open; what a reader sees now, before any recovery:
    before = read_log(log_dir, "mlp", 1)
    # Recovery (what the next gateway start does) turns it into a closed Parquet segment.
    recovery = InferenceLog(LogSettings(directory=log_dir, replica="recovery"))
    recovery.start(recover_all=True)
    recovery.close(10)
    after = read_log(log_dir, "mlp", 1)
    assert not list(log_dir.rglob("*.arrows")), "recovery left an open segment behind"
    for window in (before, after):
        ids = list(window.frame["request_id"])
        assert len(ids) == len(set(ids)), "a row was written twice"
        assert len(ids) >= acknowledged
        # Rows are flushed in the order they were recorded: the acknowledged ones are the
        # first `acknowledged` requests, each one row.
        assert {f"req-{i}" for i in range(acknowledged)} <= set(ids)
        inputs, _ = window.tensors()
        order = [int(i.removeprefix("req-")) for i in ids]
        np.testing.assert_array_equal(inputs["x"], rows[order])

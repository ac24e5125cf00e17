"""Many replicas on loopback: a real PostgreSQL registry, a shared artifact store (a
`file://` fsspec URL), a shared inference log folder, two `mlgate serve` processes, one
`mlgate monitor` and one `mlgate retrain --worker`, each with its own home.

What must hold: drift seen across both gateways (each gets half of every drifted round,
and both replicas' segments are in the one log the monitor reads) opens exactly one task;
the retrainer's promotion reaches both gateways, which fetch the new version's artifact
from the shared store into their own homes.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, closing, contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from examples.credit_risk.data import FEATURES, LABEL, generate
from registry import Registry
from services.demo.loop import DRIFT, LOOP_ENV, GatewayClient
from services.demo.register import run_demo
from services.demo.traffic import GatewayProcess

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

MODEL = "credit-risk"
HALF = 300  # drifted rows per gateway per round: below MLGATE_DRIFT_MIN_ROWS (500)


def _env(shared: Path) -> dict[str, str]:
    """The demo's fast monitor settings, with drift checked by `mlgate monitor` alone and
    retraining left to the worker process."""
    return {
        **LOOP_ENV,
        "MLGATE_RETRAINER": "off",
        # The traffic stops once a task opens: retrain on what its window holds by then.
        "MLGATE_RETRAIN_MIN_LABELLED_ROWS": "200",
        # ...and promote on the offline comparison: no live traffic follows for a stage.
        "MLGATE_RETRAIN_STAGE": "none",
        "MLGATE_DRIFT_MONITOR": "external",
        "MLGATE_ARTIFACTS_URL": f"file://{shared / 'artifacts'}",
        "MLGATE_LOG_DIR": str(shared / "inference_log"),
    }


@contextmanager
def _process(argv: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A CLI child in its own session, stopped by its process group; output to `log`."""
    with log.open("wb") as output:
        child = subprocess.Popen(
            [sys.executable, "-m", "services.cli", *argv],
            env={**os.environ, **env},
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield child
        assert child.poll() is None, f"{argv} exited early; see {log}:\n{log.read_text()[-3000:]}"
    finally:
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGTERM)
            try:
                child.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(child.pid, signal.SIGKILL)
                child.wait()


def test_two_gateways_one_monitor_one_retrainer_share_one_registry(
    postgres_url: str, tmp_path: Path
) -> None:
    shared = tmp_path / "shared"
    env = _env(shared)
    registry = Registry(
        url=postgres_url, home=tmp_path / "trainer", artifacts_url=env["MLGATE_ARTIFACTS_URL"]
    )
    try:
        run_demo(registry, rows=6000, seed=7, name=MODEL, progress=lambda _: None,
                 log=lambda _: None)  # fmt: skip
    finally:
        registry.close()

    with ExitStack() as stack:
        gateways: list[GatewayClient] = []
        for name in ("a", "b"):
            process = GatewayProcess(
                tmp_path / f"gateway-{name}",
                postgres_url,
                env={**env, "MLGATE_LOG_REPLICA": f"gateway-{name}"},
            )
            url = stack.enter_context(process).url
            gateways.append(stack.enter_context(closing(GatewayClient(url, MODEL))))
        common = ["--registry-url", postgres_url]
        monitor = ["--home", str(tmp_path / "monitor"), *common, "monitor"]
        stack.enter_context(_process(monitor, env, tmp_path / "monitor.log"))
        worker = ["--home", str(tmp_path / "retrainer"), *common, "retrain", "--worker"]
        stack.enter_context(_process([*worker, "--interval", "0.5"], env, tmp_path / "worker.log"))
        for gateway in gateways:
            assert gateway.served_version() == "1"
        for name in ("a", "b"):  # each fetched v1 from the shared store into its own home
            assert any((tmp_path / f"gateway-{name}" / "artifacts").rglob("model.onnx"))

        # Drifted traffic with labels, half to each gateway, until the monitor opens a task.
        rounds = 0
        deadline = time.monotonic() + 180
        while not gateways[0].api.tasks(model=MODEL):
            assert time.monotonic() < deadline, "drift across both gateways opened no task"
            for index, gateway in enumerate(gateways):
                chunk = generate(HALF, seed=100 + 2 * rounds + index, drift=DRIFT)
                prefix = f"r{rounds}g{index}"
                gateway.traffic(chunk[FEATURES].to_numpy(np.float32), prefix)
                labels = [{"id": f"{prefix}-{i}", "label": int(v)}
                          for i, v in enumerate(chunk[LABEL])]  # fmt: skip
                gateway.api.feedback(MODEL, labels)
            rounds += 1
            time.sleep(1.0)

        # Both replicas' segments are in the one log the monitor read.
        segments = " ".join(p.name for p in (shared / "inference_log" / MODEL / "1").iterdir())
        assert "-gateway-a-" in segments
        assert "-gateway-b-" in segments

        task_id = gateways[0].api.tasks(model=MODEL)[0]["id"]

        def finished() -> Any:
            task = gateways[1].api.task(task_id)
            return task if task["status"] in ("promoted", "rejected", "failed") else None

        task = gateways[1].wait("the retrained version", finished, 300)
        assert task["status"] == "promoted", task
        version = str(task["candidate_version"])
        for gateway in gateways:  # the promotion reaches both, through the shared registry

            def serving(client: GatewayClient = gateway) -> bool:
                return client.served_version() == version

            gateway.wait(f"v{version} serving at {gateway.url}", serving, 60)
            answer = gateway.api.infer(
                MODEL, {"features": np.zeros((1, len(FEATURES)), np.float32)}
            )
            assert str(answer.version) == version
        # A storm of drifted windows across two replicas still opened only one task.
        assert len(gateways[0].api.tasks(model=MODEL)) == 1
        assert gateways[0].api.drift(MODEL)["model"] == MODEL

"""The demo's whole loop, against a real gateway process with its monitor and retrainer.

After `run_demo` has trained, registered, exported and promoted credit-risk:1, one
`mlgate serve` process (drift monitor and retraining worker in process) is driven through:

    in-distribution traffic  → a drift check that finds no drift
    drifted traffic + labels → drift detected → exactly one retraining task
    the task                 → retrained, gated, better on held-out drifted rows, promoted
    drifted traffic again    → served by v2, whose check finds no drift

Each step records its time and its key figure; a step that does not happen within its
time limit raises `LoopStepFailed`, so `mlgate demo` exits non-zero unless all happened.
Only HTTP is used against the gateway (what a user of it would do).
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from examples.credit_risk.data import FEATURES, LABEL, Drift, generate
from registry.errors import MlgateError
from services.traffic import GatewayProcess, infer_body, send

__all__ = ["DRIFT", "LOOP_ENV", "GatewayClient", "LoopStep", "LoopStepFailed", "run_loop"]

# A recession, and the rules changed with it: high utilisation now signals *less* risk
# (say, a new lender policy); the served model's ranking is wrong on it, not only shifted.
DRIFT = Drift(income_factor=0.7, utilization_shift=0.15, late_payment_factor=2.0,
              concept_shift=-5.0)  # fmt: skip
# The monitor and retrainer at demo speed: checks every 2 s, confirmed after 3. The
# recession moves 4 to 6 of the 14 features (incomes, savings, utilisation, late
# payments), so dataset drift is declared at a share of 0.25 instead of Evidently's 0.5.
CHUNK = 600  # drifted requests per check window (MLGATE_DRIFT_MIN_ROWS is 500)
LOOP_ENV = {
    "MLGATE_DRIFT_INTERVAL_S": "2",
    "MLGATE_DRIFT_SHARE": "0.25",
    "MLGATE_DRIFT_MIN_ROWS": "500",
    "MLGATE_ALERT_CONSECUTIVE_CHECKS": "3",
    "MLGATE_TASK_MIN_ROWS": "500",
    "MLGATE_LOG_FLUSH_INTERVAL_S": "0.25",
    "MLGATE_LOG_MAX_ROWS_PER_S": "20000",
    "MLGATE_RETRAINER": "inprocess",
    "MLGATE_RETRAIN_INTERVAL_S": "0.5",
    "MLGATE_POLL_INTERVAL_S": "0.5",
    # Every demo request must be answered, and training runs in this same process: the
    # event-loop-lag shedder would turn a busy machine's late loop into failed steps.
    "MLGATE_LOOP_LAG_SHED_MS": "0",
}


class LoopStepFailed(MlgateError):
    status_code = 500


@dataclass
class LoopStep:
    name: str
    seconds: float
    figure: str
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class GatewayClient:
    """A running gateway over HTTP, as a user drives it (also the replica e2e test's)."""

    url: str
    model: str

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(f"{self.url}{path}", timeout=30) as response:  # noqa: S310
            return orjson.loads(response.read())

    def maybe(self, path: str) -> Any:
        try:
            return self.get(path)
        except urllib.error.HTTPError:
            return None

    def post(self, path: str, document: Any) -> Any:
        request = urllib.request.Request(  # noqa: S310 - our own loopback gateway
            f"{self.url}{path}", data=orjson.dumps(document), method="POST",
            headers={"content-type": "application/json"},
        )  # fmt: skip
        with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310
            return orjson.loads(response.read())

    def traffic(self, rows: np.ndarray, prefix: str) -> None:
        bodies = [
            infer_body("features", rows[i : i + 1], f"{prefix}-{i}") for i in range(len(rows))
        ]
        report = send(self.url, self.model, bodies, concurrency=16, advance=lambda: None)
        if report.statuses.get(200, 0) != len(rows):
            raise LoopStepFailed(f"traffic {prefix}: answers {report.statuses}")

    def wait(self, what: str, probe: Callable[[], Any], timeout_s: float) -> Any:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            found = probe()
            if found:
                return found
            time.sleep(0.25)
        raise LoopStepFailed(f"{what} did not happen within {timeout_s:g} s")


def run_loop(
    home: Path,
    registry_url: str | None,
    name: str,
    *,
    seed: int,
    rows: int = 3000,
    log: Callable[[LoopStep], None] = lambda step: None,
) -> list[LoopStep]:
    steps: list[LoopStep] = []

    def done(step_name: str, started: float, figure: str, **details: Any) -> None:
        step = LoopStep(step_name, round(time.perf_counter() - started, 1), figure, details)
        steps.append(step)
        log(step)

    started = time.perf_counter()
    with GatewayProcess(home, registry_url, env=LOOP_ENV) as process:
        gateway = GatewayClient(process.url, name)
        done("serve", started, f"{name}:1 ready at {process.url}")
        monitoring = f"/monitoring/models/{name}/drift"

        started = time.perf_counter()
        clean = generate(rows, seed=seed + 11)
        gateway.traffic(clean[FEATURES].to_numpy(np.float32), "clean")
        first = gateway.wait(
            "a drift check of the first traffic", lambda: gateway.maybe(monitoring), 60
        )
        if first["detected"]:
            raise LoopStepFailed(f"in-distribution traffic was reported as drift: {first['share']}")
        done("in-distribution traffic", started,
             f"{rows} requests; drift share {first['share']:.2f}: no drift")  # fmt: skip

        # Drifted traffic, with its ground truth, in chunks until drift is confirmed: each
        # chunk is a new window, and a task needs `MLGATE_ALERT_CONSECUTIVE_CHECKS` of them.
        started = time.perf_counter()
        sent = labelled = 0
        detected: Any = None
        tasks: list[Any] = []
        deadline = time.monotonic() + 120
        while not tasks:
            if time.monotonic() > deadline:
                raise LoopStepFailed("drifted traffic opened no retraining task within 120 s")
            chunk = generate(CHUNK, seed=seed + 100 + sent, drift=DRIFT)
            gateway.traffic(chunk[FEATURES].to_numpy(np.float32), f"drift{sent}")
            labels = [{"id": f"drift{sent}-{i}", "label": int(v)}
                      for i, v in enumerate(chunk[LABEL])]  # fmt: skip
            gateway.post(f"/v1/models/{name}/feedback", {"feedback": labels})
            sent, labelled = sent + CHUNK, labelled + len(labels)
            time.sleep(1.0)  # about one check per chunk
            latest = gateway.maybe(monitoring)
            if detected is None and latest is not None and latest["detected"]:
                detected = latest
                done("drift detected", started,
                     f"share {latest['share']:.2f} in check {latest['id']}, after {sent} "
                     "drifted requests")  # fmt: skip
            tasks = gateway.get(f"/retraining/tasks?model={name}")["tasks"]
        report = home / "reports" / "demo-drift.html"
        report.parent.mkdir(parents=True, exist_ok=True)
        with urllib.request.urlopen(  # noqa: S310
            f"{gateway.url}{monitoring}/report?check={detected['id']}", timeout=120
        ) as response:
            report.write_bytes(response.read())
        steps[-1].details["report"] = str(report)
        done("one task opened", started,
             f"task {tasks[0]['id']} ({tasks[0]['reason']}) after {sent} drifted requests with "
             f"{labelled} labels; {len(tasks)} task(s)")  # fmt: skip

        started = time.perf_counter()
        task = gateway.wait(
            "the retrained version",
            lambda: (
                (t := gateway.get(f"/retraining/tasks/{tasks[0]['id']}"))["status"]
                in ("promoted", "rejected", "failed")
                and t
            ),
            240,
        )
        if task["status"] != "promoted":
            raise LoopStepFailed(f"task {task['id']} ended {task['status']}: {task['error']}")
        outcome = task["outcome"]
        version = task["candidate_version"]
        done("retrained, gated, promoted", started,
             f"v{version} {outcome['metric']} {outcome['candidate']:.3f} vs v1 "
             f"{outcome['serving']:.3f} on {outcome['rows']} held-out drifted rows")  # fmt: skip

        started = time.perf_counter()
        gateway.wait(
            f"v{version} serving",
            lambda: (
                gateway.get(f"/v2/models/{name}")["parameters"]["served_version"] == str(version)
            ),
            60,
        )
        again = generate(rows, seed=seed + 13, drift=DRIFT)
        gateway.traffic(again[FEATURES].to_numpy(np.float32), "after")
        cleared = gateway.wait(
            f"a drift check of v{version}",
            lambda: gateway.maybe(f"{monitoring}?version={version}"),
            60,
        )
        if cleared["detected"]:
            raise LoopStepFailed(f"v{version} still reports drift: share {cleared['share']}")
        if len(gateway.get(f"/retraining/tasks?model={name}")["tasks"]) != 1:
            raise LoopStepFailed("more than one retraining task was opened")
        done("served by the new version", started,
             f"v{version}: drift share {cleared['share']:.2f}, no drift")  # fmt: skip
    return steps

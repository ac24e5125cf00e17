"""The demo's whole loop, against a real gateway process with its monitor and retrainer.

After `run_demo` has trained, registered, exported and promoted credit-risk:1, one
`mlgate serve` process (monitor and retraining worker in process) is driven through:

    in-distribution traffic + labels  → no drift; quality holds against the baseline
    harmless drift + labels           → drift flagged on the same features check after
                                        check, quality holds: a finding, not a task
    harmful drift + labels            → the label relation changed: realised quality falls
                                        significantly, exactly one task opens
    the task                          → retrained on the rows that showed the harm, gated,
                                        judged on held-out rows, a canary on 30 % of the
                                        traffic, promoted on the live rows
    the same world again              → served by v2, whose quality is surely above
                                        where v1 had fallen

Each step records its time and its key figure; a step that does not happen within its
time limit raises `LoopStepFailed`, so `mlgate demo` exits non-zero unless all happened.
Only HTTP is used against the gateway (what a user of it would do).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from examples.credit_risk.data import FEATURES, LABEL, Drift, generate
from registry.errors import MlgateError
from services.client import Client, GatewayError
from services.demo.traffic import GatewayProcess, infer_body, send

__all__ = [
    "DRIFT",
    "HARMLESS",
    "LOOP_ENV",
    "GatewayClient",
    "LoopStep",
    "LoopStepFailed",
    "run_loop",
]

# A recession, and the rules changed with it: high utilisation now signals *less* risk
# (say, a new lender policy); the served model's ranking is wrong on it, not only shifted.
DRIFT = Drift(
    income_factor=0.7, utilization_shift=0.15, late_payment_factor=2.0, concept_shift=-10.0
)
# Older applicants who pay late more often: the inputs move, the rules do not, and the
# model ranks them as well as before.
HARMLESS = Drift(age_shift=12.0, late_payment_factor=2.0)
CHUNK = 600  # requests per phase chunk (MLGATE_DRIFT_MIN_ROWS is 500): one check each
# The monitor and retrainer at demo speed: a round every 2 s, drift confirmed on the same
# features in 3 checks, quality over the newest 1000 labelled rows in 2 s buckets, a
# significant fall confirmed in 2 rounds.
LOOP_ENV = {
    "MLGATE_DRIFT_INTERVAL_S": "2",
    "MLGATE_DRIFT_MIN_ROWS": "500",
    "MLGATE_ALERT_CONSECUTIVE_CHECKS": "3",
    "MLGATE_TASK_MIN_ROWS": "500",
    "MLGATE_QUALITY_BUCKET_S": "2",
    "MLGATE_QUALITY_WINDOW_ROWS": "1000",
    "MLGATE_QUALITY_MIN_LABELS": "300",
    "MLGATE_QUALITY_CONSECUTIVE": "2",
    "MLGATE_LOG_FLUSH_INTERVAL_S": "0.25",
    "MLGATE_LOG_MAX_ROWS_PER_S": "20000",
    "MLGATE_RETRAINER": "inprocess",
    "MLGATE_RETRAIN_INTERVAL_S": "0.5",
    # Retrain on at least 2000 labelled rows of the changed world: a task opened earlier
    # waits for them (traffic goes on meanwhile), and v2 learns the new rules well.
    "MLGATE_RETRAIN_MIN_LABELLED_ROWS": "2000",
    "MLGATE_RETRAIN_LABEL_WAIT_S": "1",
    # The candidate answers 30 % of the traffic as a canary first, and is promoted once it
    # has answered 300 logged rows without the gateway rolling it back.
    "MLGATE_RETRAIN_STAGE": "canary",
    "MLGATE_RETRAIN_STAGE_WEIGHT": "0.3",
    "MLGATE_RETRAIN_STAGE_ROWS": "300",
    "MLGATE_CANARY_CHECK_S": "1",
    # The gateway trains in this same process: over a few hundred requests its p99 is the
    # training's noise, not the canary's. The judge waits for 1000 answers a side.
    "MLGATE_CANARY_MIN_REQUESTS": "1000",
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
    """A running gateway as a user drives it: the typed client (`services.client`), plus
    concurrent labelled traffic and waits on what the monitor makes of it (also the replica
    e2e test's)."""

    url: str
    model: str
    api: Client = field(init=False)

    def __post_init__(self) -> None:
        self.api = Client(self.url, timeout_s=120)

    def close(self) -> None:
        self.api.close()

    def served_version(self) -> str:
        return str(self.api.metadata(self.model)["parameters"]["served_version"])

    def quality(self, version: int) -> Any:
        """The latest quality evaluation of `version`, or None before the first one."""
        try:
            return self.api.quality(self.model, version=version)
        except GatewayError as exc:
            if exc.status == 404:
                return None
            raise

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
    with (
        GatewayProcess(home, registry_url, env=LOOP_ENV) as process,
        contextlib.closing(GatewayClient(process.url, name)) as gateway,
    ):
        phases = _Phases(gateway, name, seed)
        done("serve", started, f"{name}:1 ready at {process.url}")

        started = time.perf_counter()
        clean = phases.send("clean", rows, None)
        quality = phases.quality_after(clean, 1)
        if quality["status"] != "holding":
            raise LoopStepFailed(f"in-distribution traffic: quality {quality['status']}")
        drift = gateway.api.drift(name)
        done(
            "in-distribution traffic",
            started,
            f"{clean} labelled requests; drift share {drift['share']:.2f}; {_figure(quality)}",
        )

        started = time.perf_counter()
        finding = phases.until("a drift finding", "harmless", HARMLESS, _finding, 1)
        if gateway.api.tasks(model=name):
            raise LoopStepFailed("harmless drift opened a retraining task")
        decision = finding["decision"]
        checks = decision["evidence"]["drift"]["checks"]
        report = _report(gateway, home, name, checks[-1])
        done(
            "harmless drift: a finding",
            started,
            f"{decision['summary']}; no task",
            report=str(report),
        )

        started = time.perf_counter()
        fallen = phases.until("a retraining task", "harmful", DRIFT, _task_opened, 1)
        task = gateway.api.tasks(model=name)[0]
        done(
            "harmful drift: quality falls, one task",
            started,
            f"{_figure(fallen)}; {_figure(fallen, 'estimated')} (blind to a changed "
            f"relation); task {task['id']} ({task['reason']})",
        )

        started = time.perf_counter()
        task = phases.while_open(task["id"], DRIFT)
        if task["status"] != "promoted":
            raise LoopStepFailed(f"task {task['id']} ended {task['status']}: {task['error']}")
        compared = task["outcome"]["window"]
        version = task["candidate_version"]
        stage = task["outcome"].get("stage") or {}
        done(
            "retrained, gated, judged, promoted",
            started,
            f"v{version} {compared['metric']} {compared['challenger']:.3f} vs v1 "
            f"{compared['champion']:.3f} on {compared['n']} held-out rows of the task's "
            f"window, gain {compared['gain']:+.3f} [{compared['lower']:+.3f}, "
            f"{compared['upper']:+.3f}]; then a canary on {stage.get('weight', 0):.0%} of "
            f"the traffic, promoted after {stage.get('rows', 0)} live rows",
            stage=stage,
        )

        started = time.perf_counter()
        gateway.wait(
            f"v{version} serving",
            lambda: gateway.served_version() == str(version),
            60,
        )
        after = phases.send("after", rows, DRIFT)
        recovered = phases.quality_after(after, version)
        fell = (fallen.get("realised") or {}).get("figure") or {}
        now = (recovered.get("realised") or {}).get("figure") or {}
        if not now or now["lower"] <= fell.get("upper", 1.0):
            raise LoopStepFailed(
                f"v{version}'s quality did not recover: {_figure(recovered)} against v1's "
                f"fallen {fell.get('value')}"
            )
        if len(gateway.api.tasks(model=name)) != 1:
            raise LoopStepFailed("more than one retraining task was opened")
        done(
            "served by v2: quality recovers",
            started,
            f"v{version} {_figure(recovered)} (v1 had fallen to {fell.get('value', 0):.3f})",
        )
    return steps


class _Phases:
    """Traffic with its labels, in chunks, and waits on what the monitor makes of it."""

    def __init__(self, gateway: GatewayClient, name: str, seed: int) -> None:
        self.gateway, self.name, self.seed = gateway, name, seed
        self.sent = 0

    def send(self, prefix: str, rows: int, drift: Drift | None) -> int:
        """`rows` requests and then their labels; returns how many were labelled."""
        for start in range(0, rows, CHUNK):
            self._chunk(prefix, min(CHUNK, rows - start), drift)
        return rows

    def until(
        self,
        what: str,
        prefix: str,
        drift: Drift,
        found: Callable[[GatewayClient, str, Any], bool],
        version: int,
        timeout_s: float = 150,
    ) -> Any:
        """Chunks of traffic with labels until the latest evaluation shows `found`."""
        deadline = time.monotonic() + timeout_s
        while True:
            if time.monotonic() > deadline:
                raise LoopStepFailed(f"{prefix} traffic showed no {what} within {timeout_s:g} s")
            self._chunk(prefix, CHUNK, drift)
            time.sleep(1.0)  # about one monitoring round per chunk
            latest = self.gateway.quality(version)
            if latest is not None and found(self.gateway, self.name, latest):
                return latest

    def while_open(self, task_id: int, drift: Drift, timeout_s: float = 240) -> Any:
        """The task once it has ended, traffic going on meanwhile: a task that waits for
        enough labelled rows in its window gets them, and a candidate in its canary stage
        its live rows, as they would from live traffic."""
        deadline = time.monotonic() + timeout_s
        while True:
            task = self.gateway.api.task(task_id)
            if task["status"] in ("promoted", "rejected", "failed", "needs-trainer"):
                return task
            if time.monotonic() > deadline:
                raise LoopStepFailed(f"task {task_id} did not end within {timeout_s:g} s")
            staged = (task["outcome"].get("stage") or {}).get("state") == "running"
            if task["status"] == "open" or staged:  # labels to wait for, or a live stage
                self._chunk("waiting", CHUNK, drift)
            time.sleep(0.5)

    def quality_after(self, labelled: int, version: int, timeout_s: float = 60) -> Any:
        """The first evaluation of `version` whose realised figure counts these labels."""
        wanted = min(labelled, int(LOOP_ENV["MLGATE_QUALITY_WINDOW_ROWS"]))

        def judged() -> Any:
            latest = self.gateway.quality(version)
            realised = (latest or {}).get("realised") or {}
            return latest if realised.get("judged") and realised.get("rows", 0) >= wanted else None

        return self.gateway.wait(f"a quality evaluation of v{version}", judged, timeout_s)

    def _chunk(self, prefix: str, rows: int, drift: Drift | None) -> None:
        data = generate(rows, seed=self.seed + 100 + self.sent, drift=drift)
        tag = f"{prefix}{self.sent}"
        self.gateway.traffic(data[FEATURES].to_numpy(np.float32), tag)
        labels = [{"id": f"{tag}-{i}", "label": int(v)} for i, v in enumerate(data[LABEL])]
        self.gateway.api.feedback(self.name, labels)
        self.sent += rows


def _finding(gateway: GatewayClient, name: str, latest: Any) -> bool:
    return bool((latest.get("decision") or {}).get("outcome") == "finding")


def _task_opened(gateway: GatewayClient, name: str, latest: Any) -> bool:
    return bool(gateway.api.tasks(model=name))


def _figure(check: Any, part: str = "realised") -> str:
    figure = (check.get(part) or {}).get("figure")
    baseline = check.get("baseline")
    if not figure:
        return f"{part} {check.get('metric')}: -"
    text = (
        f"{part} {check['metric']} {figure['value']:.3f} [{figure['lower']:.3f}, "
        f"{figure['upper']:.3f}] on {figure['n']} rows"
    )
    if baseline and part == "realised":
        text += f" vs baseline {baseline['value']:.3f}"
    return text


def _report(gateway: GatewayClient, home: Path, name: str, check_id: int) -> Path:
    """The Evidently HTML report of the drift check behind the finding."""
    report = home / "reports" / "demo-drift.html"
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text(gateway.api.drift_report(name, check=check_id), encoding="utf-8")
    return report

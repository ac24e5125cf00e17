"""Retraining task routes: list, read, approve (moves the alias), reject; errors; metric."""

from __future__ import annotations

import asyncio
import time

import pytest

from monitors.tasks.store import TaskStore
from registry import Registry
from tests.services.gateway.conftest import Gateway, open_gateway
from tests.services.gateway.test_metrics_endpoint import get, scrape

pytestmark = pytest.mark.anyio


def candidate(registry: Registry, version: int = 1) -> int:
    """An open task moved by a (pretend) worker to candidate with version 2."""
    store = TaskStore(registry.db)
    opened = store.open("mlp", version, "data_drift", evidence={"drift_share": 0.7},
                        source="monitor", actor="test")  # fmt: skip
    assert opened.task is not None
    claimed = store.claim("worker")
    assert claimed is not None
    store.transition(claimed.id, "candidate", reason="v2 wins on held-out rows",
                     actor="worker", candidate_version=2)  # fmt: skip
    return opened.task.id


async def test_tasks_are_listed_read_and_approved(registry: Registry, gateway: Gateway) -> None:
    task_id = await asyncio.to_thread(candidate, registry)
    listed = (await gateway.client.get("/retraining/tasks")).json()["tasks"]
    assert [t["id"] for t in listed] == [task_id]
    assert (await gateway.client.get("/retraining/tasks?status=open")).json() == {"tasks": []}
    one = (await gateway.client.get(f"/retraining/tasks/{task_id}")).json()
    assert one["status"] == "candidate"
    assert [e["to"] for e in one["events"]] == ["open", "running", "candidate"]
    samples = await scrape(gateway)
    assert get(samples, "mlgate_retraining_tasks", model="mlp", status="candidate") == 1.0
    assert get(samples, "mlgate_retraining_tasks", model="mlp", status="open") == 0.0

    approved = await gateway.client.post(
        f"/retraining/tasks/{task_id}/approve", json={"reason": "looks right", "actor": "alice"}
    )
    assert approved.status_code == 200, approved.text
    assert approved.json()["status"] == "promoted"
    history = await asyncio.to_thread(registry.alias_history, "mlp", "production")
    assert history[-1].to_version == 2
    assert "retraining task" in history[-1].reason
    # The gateway's poll picks the promotion up and serves version 2.
    deadline = time.monotonic() + 60
    while gateway.manager.routed_version("mlp") != 2:
        assert time.monotonic() < deadline, "the gateway never served the promoted version"
        await asyncio.sleep(0.05)


async def test_reject_and_the_errors(registry: Registry, gateway: Gateway) -> None:
    store = TaskStore(registry.db)
    opened = await asyncio.to_thread(
        lambda: store.open("mlp", 1, "manual", evidence={}, source="cli", actor="t")
    )
    assert opened.task is not None
    task_id = opened.task.id
    cases = [
        ("GET", "/retraining/tasks/99", None, 404, "no retraining task 99"),
        ("GET", "/retraining/tasks/zero", None, 400, "task id must be a positive integer"),
        ("GET", "/retraining/tasks?status=done", None, 400, "unknown task status 'done'"),
        ("POST", f"/retraining/tasks/{task_id}/approve", {"reason": "ok"}, 409,
         "is open, not candidate"),
        ("POST", f"/retraining/tasks/{task_id}/reject", {}, 400, "'reason' must be"),
        ("POST", f"/retraining/tasks/{task_id}/reject", {"reason": 3}, 400, "reason"),
    ]  # fmt: skip
    for method, path, body, status, text in cases:
        answer = await gateway.client.request(method, path, json=body)
        assert answer.status_code == status, (path, answer.text)
        assert text in answer.json()["error"], (path, answer.text)
    rejected = await gateway.client.post(
        f"/retraining/tasks/{task_id}/reject", json={"reason": "a known data outage"}
    )
    assert rejected.json()["status"] == "rejected"
    again = await gateway.client.post(
        f"/retraining/tasks/{task_id}/reject", json={"reason": "twice"}
    )
    assert again.status_code == 409


async def test_decisions_need_the_admin(registry: Registry) -> None:
    async for remote in open_gateway(registry, client_host="10.0.0.5"):
        answer = await remote.client.post("/retraining/tasks/1/reject", json={"reason": "x"})
        assert answer.status_code == 403
        assert (await remote.client.get("/retraining/tasks")).status_code == 200

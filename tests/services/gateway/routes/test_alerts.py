"""`POST /alerts/alertmanager` through the gateway: Alertmanager's real payload → one task."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from monitors.tasks.store import TaskStore
from registry import Registry
from tests.services.gateway.conftest import Gateway, open_gateway

pytestmark = pytest.mark.anyio
PATH = "/alerts/alertmanager"
FIXTURE = Path(__file__).parents[3] / "support" / "alertmanager_payload.json"


def payload(**alert: Any) -> dict[str, Any]:
    """The fixture, as Alertmanager sends it, with the first alert's fields replaced."""
    document: dict[str, Any] = json.loads(FIXTURE.read_text())
    document["alerts"][0].update(alert)
    return document


async def post(gateway: Gateway, document: Any) -> dict[str, Any]:
    response = await gateway.client.post(PATH, json=document)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


async def test_the_alert_opens_one_task_and_its_repeat_is_a_duplicate(
    gateway: Gateway, registry: Registry
) -> None:
    first = await post(gateway, payload())
    (task_id,) = first["created"]
    assert first == {
        "received": 1,
        "created": [task_id],
        "duplicates": [],
        "refused": [],
        "ignored": [],
    }
    store = TaskStore(registry.db)
    task = store.get(task_id)
    assert (task.model, task.serving_version, task.reason) == ("mlp", 1, "realised_drop")
    assert (task.status, task.source, task.duplicate_count) == ("open", "alertmanager", 0)
    assert task.evidence["fingerprint"] == "5e5a1f3c9b2d7e40"
    assert task.evidence["groupKey"] == payload()["groupKey"]
    assert task.events[0].actor == "alertmanager"

    again = await post(gateway, payload())  # Alertmanager's repeat_interval re-send
    assert again["created"] == []
    assert again["duplicates"] == [task_id]
    assert store.get(task_id).duplicate_count == 1
    assert len(store.list()) == 1


async def test_a_storm_of_alerts_for_one_version_is_one_task(
    gateway: Gateway, registry: Registry
) -> None:
    storm = [payload(fingerprint=f"{i:016x}") for i in range(20)]
    answers = await asyncio.gather(*(post(gateway, document) for document in storm))
    created = [i for answer in answers for i in answer["created"]]
    duplicates = [i for answer in answers for i in answer["duplicates"]]
    assert len(created) == 1
    assert duplicates == created * 19
    (task,) = TaskStore(registry.db).list(model="mlp")
    assert task.id == created[0]
    assert task.duplicate_count == 19


async def test_resolved_and_unlabelled_alerts_open_nothing(
    gateway: Gateway, registry: Registry
) -> None:
    resolved = await post(gateway, payload(status="resolved", endsAt="2026-11-23T09:00:00Z"))
    assert resolved["ignored"] == [{"alert": "5e5a1f3c9b2d7e40", "why": "resolved"}]
    latency = payload(labels={"alertname": "MlgateLatencyBudgetFastBurn", "model": "mlp"})
    ignored = await post(gateway, latency)
    assert ignored["ignored"] == [{"alert": "5e5a1f3c9b2d7e40", "why": "no action=retrain label"}]
    assert ignored["created"] == []
    assert ignored["received"] == 1
    assert TaskStore(registry.db).list() == []


async def test_an_alert_for_a_version_not_in_the_registry_is_refused(
    gateway: Gateway, registry: Registry
) -> None:
    labels = {**payload()["alerts"][0]["labels"], "version": "9"}
    answer = await post(gateway, payload(labels=labels))
    assert answer["refused"] == [
        {"alert": "5e5a1f3c9b2d7e40", "why": "mlp:9 is not a version in the registry"}
    ]
    unknown = {**labels, "model": "nosuchmodel", "version": "1"}
    assert (await post(gateway, payload(labels=unknown)))["refused"][0]["why"].startswith(
        "nosuchmodel:1"
    )
    assert TaskStore(registry.db).list() == []


async def test_the_receiver_is_admin_only(registry: Registry) -> None:
    async for remote in open_gateway(registry, client_host="10.0.0.5"):
        response = await remote.client.post(PATH, json=payload())
        assert response.status_code == 403
        assert "loopback clients only" in response.json()["error"]
    async for gateway in open_gateway(registry, client_host="10.0.0.5", admin_token="t0ken"):
        assert (await gateway.client.post(PATH, json=payload())).status_code == 401
        wrong = await gateway.client.post(
            PATH, json=payload(), headers={"Authorization": "Bearer nope"}
        )
        assert wrong.status_code == 403
        assert TaskStore(registry.db).list() == []
        right = await gateway.client.post(
            PATH, json=payload(), headers={"Authorization": "Bearer t0ken"}
        )
        assert right.status_code == 200
        assert len(right.json()["created"]) == 1


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"", "the request body is empty"),
        (b"{not json", "the request body is not valid JSON"),
        (b"[]", "must be a JSON object"),
        (json.dumps({**payload(), "version": "3"}).encode(), "format version '4'"),
        (json.dumps(payload(fingerprint=7)).encode(), "'alerts[0].fingerprint' must be a string"),
    ],
)
async def test_bad_bodies_are_400_naming_the_problem(
    gateway: Gateway, registry: Registry, body: bytes, fragment: str
) -> None:
    response = await gateway.client.post(
        PATH, content=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert fragment in response.json()["error"]
    assert TaskStore(registry.db).list() == []


async def test_the_body_size_is_limited(registry: Registry) -> None:
    async for gateway in open_gateway(registry, max_body_bytes=512):
        response = await gateway.client.post(PATH, json=payload())
        assert response.status_code == 413
        assert "limit is 512" in response.json()["error"]


async def test_only_post_is_routed(gateway: Gateway) -> None:
    assert (await gateway.client.get(PATH)).status_code == 405

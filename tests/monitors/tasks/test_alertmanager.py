"""Alertmanager's webhook format: parsing, every validation error, alert → task mapping."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from monitors.tasks.alertmanager import (
    alert_key,
    open_tasks,
    parse_notification,
    task_reason,
)
from monitors.tasks.store import TaskStore
from registry import Registry
from registry.errors import BadRequest, InvalidName

FIXTURE = Path(__file__).parents[2] / "support" / "alertmanager_payload.json"


def payload() -> dict[str, Any]:
    """A fresh copy of the fixture: one firing MlgateQualityDropped alert for mlp v1, as
    deploy/prometheus/rules.yml renders it (the one alert there with action=retrain)."""
    document: dict[str, Any] = json.loads(FIXTURE.read_text())
    return document


def first(document: dict[str, Any]) -> dict[str, Any]:
    alert: dict[str, Any] = document["alerts"][0]
    return alert


def test_the_real_format_parses() -> None:
    notification = parse_notification(payload())
    assert notification.receiver == "mlgate-retraining"
    assert notification.status == "firing"
    assert notification.group_key.startswith('{}/{action="retrain"}:')
    assert notification.external_url == "http://alertmanager:9093"
    assert notification.group_labels == {
        "alertname": "MlgateQualityDropped",
        "model": "mlp",
        "version": "1",
    }
    assert notification.common_labels["severity"] == "ticket"
    assert "summary" in notification.common_annotations
    assert notification.truncated_alerts == 0
    (alert,) = notification.alerts
    assert alert.name == "MlgateQualityDropped"
    assert alert.wants_retraining
    assert alert.status == "firing"
    assert alert.starts_at == datetime(2026, 11, 23, 6, 4, 30, 512000, tzinfo=UTC)
    assert alert.starts_at_text == "2026-11-23T06:04:30.512Z"
    assert alert.ends_at is None  # Go's zero time: still firing
    assert alert.fingerprint == "5e5a1f3c9b2d7e40"
    assert alert.generator_url.startswith("http://prometheus:9090/graph")
    assert alert.annotations["summary"] == "mlp v1: accuracy significantly below its baseline"


def test_optional_fields_default_and_nanosecond_times_parse() -> None:
    document = payload()
    for name in ("groupLabels", "commonLabels", "commonAnnotations", "externalURL"):
        del document[name]
    del document["truncatedAlerts"]
    alert = first(document)
    del alert["annotations"], alert["generatorURL"]
    alert["startsAt"] = "2026-11-23T06:04:30.123456789+01:00"
    alert["endsAt"] = "2026-11-23T07:00:00Z"
    alert["status"] = "resolved"
    notification = parse_notification(document)
    assert notification.group_labels == {}
    assert notification.external_url == ""
    assert notification.truncated_alerts == 0
    (parsed,) = notification.alerts
    assert parsed.annotations == {}
    assert parsed.generator_url == ""
    assert parsed.starts_at == datetime(2026, 11, 23, 5, 4, 30, 123456, tzinfo=UTC)
    assert parsed.ends_at == datetime(2026, 11, 23, 7, tzinfo=UTC)


def test_alerts_that_retrain_nothing_need_no_model_labels() -> None:
    document = payload()
    first(document)["labels"] = {"alertname": "MlgateLatencyBudgetFastBurn", "model": "mlp"}
    (alert,) = parse_notification(document).alerts
    assert not alert.wants_retraining


Edit = Callable[[dict[str, Any]], Any]


def _set(path: str, value: Any) -> Edit:
    def edit(document: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        target: Any = document
        for part in parents:
            target = target[int(part)] if isinstance(target, list) else target[part]
        target[last] = value

    return edit


def _drop(path: str) -> Edit:
    def edit(document: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        target: Any = document
        for part in parents:
            target = target[int(part)] if isinstance(target, list) else target[part]
        del target[last]

    return edit


INVALID: list[tuple[Edit, str]] = [
    (_drop("version"), "'version' is missing"),
    (_set("version", 4), "'version' must be a string, got int"),
    (_set("version", "3"), "'version' is '3'; this receiver understands"),
    (_drop("alerts"), "'alerts' is missing"),
    (_set("alerts", {"a": 1}), "'alerts' must be an array, got dict"),
    (_set("alerts", ["firing"]), "'alerts[0]' must be a JSON object"),
    (_drop("receiver"), "'receiver' is missing"),
    (_drop("status"), "'status' is missing"),
    (_set("status", "pending"), "'status' is 'pending'; expected one of"),
    (_drop("groupKey"), "'groupKey' is missing"),
    (_set("groupKey", ""), "'groupKey' is empty"),
    (_set("groupLabels", ["model"]), "'groupLabels' must be an object, got list"),
    (_set("commonLabels.version", 1), "'commonLabels.version' must be a string"),
    (_set("commonAnnotations", "x"), "'commonAnnotations' must be an object"),
    (_set("externalURL", 9093), "'externalURL' must be a string, got int"),
    (_set("truncatedAlerts", -1), "'truncatedAlerts' must be a count"),
    (_set("truncatedAlerts", "0"), "'truncatedAlerts' must be an integer, got str"),
    (_set("truncatedAlerts", True), "'truncatedAlerts' must be an integer, got bool"),
    (_drop("alerts.0.status"), "'alerts[0].status' is missing"),
    (_set("alerts.0.status", "active"), "'alerts[0].status' is 'active'"),
    (_drop("alerts.0.labels"), "'alerts[0].labels' is missing"),
    (_set("alerts.0.labels", None), "'alerts[0].labels' must be an object, got NoneType"),
    (_set("alerts.0.labels.version", 1), "'alerts[0].labels.version' must be a string"),
    (_set("alerts.0.annotations", []), "'alerts[0].annotations' must be an object"),
    (_drop("alerts.0.startsAt"), "'alerts[0].startsAt' is missing"),
    (_set("alerts.0.startsAt", "yesterday"), "'alerts[0].startsAt' is not an RFC 3339 time"),
    (_set("alerts.0.startsAt", "2026-11-23T06:04:30"), "'alerts[0].startsAt' has no time zone"),
    (_set("alerts.0.endsAt", 0), "'alerts[0].endsAt' must be a string, got int"),
    (_set("alerts.0.endsAt", "soon"), "'alerts[0].endsAt' is not an RFC 3339 time"),
    (_set("alerts.0.generatorURL", None), "'alerts[0].generatorURL' must be a string"),
    (_drop("alerts.0.fingerprint"), "'alerts[0].fingerprint' is missing"),
    (_set("alerts.0.fingerprint", ""), "'alerts[0].fingerprint' is empty"),
    (_drop("alerts.0.labels.model"), "has action=retrain but no 'model' label"),
    (_drop("alerts.0.labels.version"), "has action=retrain but no 'version' label"),
    (_set("alerts.0.labels.version", ""), "has action=retrain but no 'version' label"),
    (_drop("alerts.0.labels.alertname"), "has action=retrain but no 'alertname' label"),
    (_set("alerts.0.labels.version", "one"), "'alerts[0].labels.version' must be a positive"),
    (_set("alerts.0.labels.version", "0"), "'alerts[0].labels.version' must be a positive"),
    (_set("alerts.0.labels.version", "-2"), "'alerts[0].labels.version' must be a positive"),
    (_set("alerts.0.labels.alertname", "A" * 65), "is too long to be a task reason"),
]


@pytest.mark.parametrize(("edit", "message"), INVALID)
def test_every_malformed_field_is_a_bad_request_naming_it(edit: Edit, message: str) -> None:
    document = payload()
    edit(document)
    with pytest.raises(BadRequest) as raised:
        parse_notification(document)
    assert message in str(raised.value)
    assert raised.value.status_code == 400


@pytest.mark.parametrize("document", [[], "alerts", None, 4])
def test_a_body_that_is_not_an_object_is_refused(document: Any) -> None:
    with pytest.raises(BadRequest, match="must be a JSON object"):
        parse_notification(document)


def test_a_retraining_alert_for_a_malformed_model_name_is_refused() -> None:
    document = payload()
    first(document)["labels"]["model"] = "not a name!"
    with pytest.raises(InvalidName):
        parse_notification(document)


def test_reasons_are_mapped_or_the_alertname_lowercased() -> None:
    # The reason the in-process monitor opens for the same fall: one task, not two.
    assert task_reason("MlgateQualityDropped") == "realised_drop"
    assert task_reason("MlgateDriftDetected") == "data_drift"  # for rules that add the label
    assert task_reason("MlgatePredictionShift") == "mlgatepredictionshift"


def test_the_key_is_one_per_alert_episode() -> None:
    notification = parse_notification(payload())
    (alert,) = notification.alerts
    again = parse_notification(payload()).alerts[0]
    assert alert_key(notification.group_key, alert) == alert_key(notification.group_key, again)
    assert len(alert_key(notification.group_key, alert)) == 64
    keys = {alert_key(notification.group_key, alert), alert_key("{}:other", alert)}
    for field, value in (("fingerprint", "0000000000000001"), ("startsAt", "2026-11-24T00:00:00Z")):
        document = payload()
        first(document)[field] = value
        keys.add(alert_key(notification.group_key, parse_notification(document).alerts[0]))
    assert len(keys) == 4


# ------------------------------------------------------------------ opening tasks


def test_a_firing_retraining_alert_opens_one_task_with_its_evidence(registry: Registry) -> None:
    store = TaskStore(registry.db)
    notification = parse_notification(payload())
    receipt = open_tasks(store, notification)
    (task_id,) = receipt.created
    assert receipt.to_json() == {
        "received": 1,
        "created": [task_id],
        "duplicates": [],
        "refused": [],
        "ignored": [],
    }
    task = store.get(task_id)
    assert (task.model, task.serving_version, task.reason) == ("mlp", 1, "realised_drop")
    assert (task.source, task.status, task.duplicate_count) == ("alertmanager", "open", 0)
    assert task.key == alert_key(notification.group_key, notification.alerts[0])
    assert task.window_start == datetime(2026, 11, 23, 6, 4, 30, 512000, tzinfo=UTC)
    assert task.evidence["alertname"] == "MlgateQualityDropped"
    assert task.evidence["fingerprint"] == "5e5a1f3c9b2d7e40"
    assert task.evidence["groupKey"] == notification.group_key
    assert task.evidence["startsAt"] == "2026-11-23T06:04:30.512Z"
    assert task.evidence["labels"]["severity"] == "ticket"
    assert task.evidence["annotations"]["summary"].startswith("mlp v1")
    assert task.evidence["generatorURL"].startswith("http://prometheus:9090/")
    # The rule's figures travel as annotations; a quality alert carries no drift share.
    assert task.evidence["annotations"]["realised"] == "0.81"
    assert task.evidence["annotations"]["baseline"] == "0.9"
    assert "drift_share" not in task.evidence
    assert [(e.to_status, e.actor) for e in task.events] == [("open", "alertmanager")]
    assert receipt.outcomes[0].task is not None
    assert receipt.outcomes[0].task.id == task_id

    repeat = open_tasks(store, parse_notification(payload()))  # Alertmanager's repeat
    assert repeat.created == ()
    assert repeat.duplicates == (task_id,)
    assert store.get(task_id).duplicate_count == 1


@pytest.mark.parametrize(
    ("where", "text", "share"),
    [("annotations", "0.62", 0.62), ("annotations", "66.67%", 0.6667), ("labels", "1", 1.0)],
)
def test_drift_share_is_taken_from_an_annotation_or_label(
    registry: Registry, where: str, text: str, share: float
) -> None:
    # A team's own rule that retrains on drift, with the share MlgateDriftDetected renders.
    document = payload()
    first(document)["labels"]["alertname"] = "MlgateDriftDetected"
    first(document)[where]["drift_share"] = text
    receipt = open_tasks(TaskStore(registry.db), parse_notification(document))
    task = receipt.outcomes[0].task
    assert task is not None
    assert task.evidence["drift_share"] == pytest.approx(share)
    opened = TaskStore(registry.db).get(task.id).events[0]
    assert opened.reason == f"data_drift: drift share {share:.2f}"


def test_an_empty_drift_share_means_unknown(registry: Registry) -> None:
    # What the rule's annotation template renders when Prometheus has no share.
    document = payload()
    first(document)["annotations"]["drift_share"] = ""
    task = open_tasks(TaskStore(registry.db), parse_notification(document)).outcomes[0].task
    assert task is not None
    assert "drift_share" not in task.evidence


@pytest.mark.parametrize(("text", "message"), [("lots", "not a number"), ("150%", "between")])
def test_a_malformed_drift_share_is_refused(registry: Registry, text: str, message: str) -> None:
    document = payload()
    first(document)["annotations"]["drift_share"] = text
    with pytest.raises(BadRequest, match=message):
        open_tasks(TaskStore(registry.db), parse_notification(document))


def test_resolved_and_other_alerts_open_nothing(registry: Registry) -> None:
    store = TaskStore(registry.db)
    document = payload()
    resolved = copy.deepcopy(first(document))
    resolved.update(status="resolved", endsAt="2026-11-23T08:00:00Z", fingerprint="aa")
    latency = {
        "status": "firing",
        "labels": {"alertname": "MlgateLatencyBudgetFastBurn", "model": "mlp"},
        "startsAt": "2026-11-23T06:00:00Z",
        "fingerprint": "bb",
    }
    document["alerts"] = [resolved, latency]
    receipt = open_tasks(store, parse_notification(document))
    assert receipt.to_json() == {
        "received": 2,
        "created": [],
        "duplicates": [],
        "refused": [],
        "ignored": [
            {"alert": "aa", "why": "resolved"},
            {"alert": "bb", "why": "no action=retrain label"},
        ],
    }
    assert store.list() == []


def test_versions_the_registry_does_not_know_are_refused(registry: Registry) -> None:
    store = TaskStore(registry.db)
    asked: list[tuple[str, int]] = []

    def known(model: str, version: int) -> bool:
        asked.append((model, version))
        return False

    receipt = open_tasks(store, parse_notification(payload()), known=known)
    assert asked == [("mlp", 1)]
    assert receipt.refused == (
        {"alert": "5e5a1f3c9b2d7e40", "why": "mlp:1 is not a version in the registry"},
    )
    assert store.list() == []


def test_the_stores_refusals_are_reported(registry: Registry) -> None:
    store = TaskStore(registry.db, cooldown_s=3600)
    done = open_tasks(store, parse_notification(payload())).created[0]
    store.claim("worker")
    store.transition(done, "candidate", reason="trained", actor="worker", candidate_version=2)
    store.transition(done, "promoted", reason="better", actor="person")
    document = payload()
    first(document)["startsAt"] = "2026-11-24T06:00:00Z"  # a new episode: a new key
    receipt = open_tasks(store, parse_notification(document))
    assert receipt.created == ()
    assert receipt.duplicates == ()
    (refusal,) = receipt.refused
    assert refusal["alert"] == "5e5a1f3c9b2d7e40"
    assert "cooling down until" in refusal["why"]
    assert receipt.outcomes[0].action == "refused"

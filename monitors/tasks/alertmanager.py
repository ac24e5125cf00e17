"""Alertmanager's webhook → retraining tasks: the same opening path as the in-process monitor.

Alertmanager (0.25+) POSTs one JSON document (`"version": "4"`) per notification of an
alert group: `receiver`, `status`, `alerts[]` (each with `status`, `labels`, `annotations`,
`startsAt`, `endsAt`, `generatorURL`, `fingerprint`), `groupLabels`, `commonLabels`,
`commonAnnotations`, `externalURL`, `groupKey`, `truncatedAlerts`. It is validated strictly,
each problem a `BadRequest` naming the field: a malformed body should fail loudly at the
first test notification, not open odd tasks later.

**Which alerts open tasks.** Only *firing* alerts labelled `action="retrain"` (as
`MlgateQualityDropped` in deploy/prometheus/rules.yml is: a significant quality fall; drift
alone is a finding, and `MlgateDriftDetected` carries no such label); they must carry
`model`, a positive integer `version` and `alertname`. Every other alert is acknowledged
and ignored, so a receiver that is also sent latency alerts (which have no `version`)
still answers 200. Resolved alerts open nothing: a task is closed by its own lifecycle,
not by the alert.

**Idempotency.** Alertmanager re-sends a firing group every `repeat_interval` (and after a
restart). The task key is sha256(groupKey, fingerprint, startsAt), the same for every
re-send of one alert episode, so a repeat is counted as a duplicate, never a second task;
an alert for a model, version and reason that already has an active task is a duplicate
too (`TaskStore.open` looks for that first). A storm of alerts is one task.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from monitors.tasks.store import OpenOutcome, TaskStore
from registry.errors import BadRequest
from registry.names import ID_RULE, check_model_name, positive_id_text

__all__ = [
    "REASONS",
    "Alert",
    "AlertReceipt",
    "Notification",
    "alert_key",
    "open_tasks",
    "parse_notification",
    "task_reason",
]

log = logging.getLogger("mlgate.monitors")

# alertname → task reason, in the vocabulary the monitor's decision policy uses
# (monitors/quality/policy.py: realised_drop, estimated_drop, data_quality,
# important_drift, schedule), so that an alert and the in-process monitor finding the same
# problem open one task (the store deduplicates on model, version and reason). An alert
# not listed here gets its name, lowercased.
REASONS = {"MlgateQualityDropped": "realised_drop", "MlgateDriftDetected": "data_drift"}
_REASON_MAX = 64  # retraining_tasks.reason is String(64)
_STATUSES = ("firing", "resolved")


@dataclass(frozen=True, slots=True)
class Alert:
    status: str
    labels: dict[str, str]
    annotations: dict[str, str]
    starts_at: datetime
    starts_at_text: str  # as sent: part of the key, so it must not depend on our parsing
    ends_at: datetime | None  # None while firing (Alertmanager sends 0001-01-01T00:00:00Z)
    generator_url: str
    fingerprint: str

    @property
    def name(self) -> str:
        return self.labels.get("alertname", "")

    @property
    def wants_retraining(self) -> bool:
        return self.labels.get("action") == "retrain"


@dataclass(frozen=True, slots=True)
class Notification:
    receiver: str
    status: str
    alerts: tuple[Alert, ...]
    group_labels: dict[str, str]
    common_labels: dict[str, str]
    common_annotations: dict[str, str]
    external_url: str
    group_key: str
    truncated_alerts: int


def parse_notification(document: Any) -> Notification:
    """Alertmanager's webhook body, checked; `BadRequest` names the first wrong field."""
    if not isinstance(document, dict):
        raise BadRequest("the Alertmanager webhook body must be a JSON object")
    version = _field(document, "version", str, "")
    if version != "4":
        raise BadRequest(
            f"'version' is {version!r}; this receiver understands Alertmanager's webhook "
            "format version '4'"
        )
    raw_alerts = _field(document, "alerts", list, "")
    alerts = tuple(_alert(raw, f"alerts[{i}]") for i, raw in enumerate(raw_alerts))
    truncated = _field(document, "truncatedAlerts", int, "", default=0)
    if isinstance(truncated, bool) or truncated < 0:
        raise BadRequest(f"'truncatedAlerts' must be a count, got {truncated!r}")
    return Notification(
        receiver=_field(document, "receiver", str, ""),
        status=_status(document, ""),
        alerts=alerts,
        group_labels=_strings(document, "groupLabels", ""),
        common_labels=_strings(document, "commonLabels", ""),
        common_annotations=_strings(document, "commonAnnotations", ""),
        external_url=_field(document, "externalURL", str, "", default=""),
        group_key=_nonempty(document, "groupKey", ""),
        truncated_alerts=truncated,
    )


def _alert(raw: Any, where: str) -> Alert:
    if not isinstance(raw, dict):
        raise BadRequest(f"'{where}' must be a JSON object")
    at = f"{where}."
    labels = _strings(raw, "labels", at, required=True)
    alert = Alert(
        status=_status(raw, at),
        labels=labels,
        annotations=_strings(raw, "annotations", at),
        starts_at=_time(raw, "startsAt", at),
        starts_at_text=raw["startsAt"],
        ends_at=_end(raw, at),
        generator_url=_field(raw, "generatorURL", str, at, default=""),
        fingerprint=_nonempty(raw, "fingerprint", at),
    )
    if alert.wants_retraining:  # only these must name what to retrain
        for name in ("alertname", "model", "version"):
            if not labels.get(name):
                raise BadRequest(
                    f"'{at}labels' has action=retrain but no '{name}' label; a retraining "
                    "alert needs alertname, model and version"
                )
        check_model_name(labels["model"])
        _version(labels["version"], at)
        task_reason(alert.name)  # a name too long for a reason fails here, not at insert
    return alert


_REQUIRED: Any = object()


def _field(raw: dict[str, Any], name: str, kind: type, at: str, default: Any = _REQUIRED) -> Any:
    """`raw[name]`, checked to be a `kind`; `at` is the field's path ("alerts[2].")."""
    if name not in raw:
        if default is _REQUIRED:
            raise BadRequest(f"'{at}{name}' is missing")
        return default
    value = raw[name]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise BadRequest(f"'{at}{name}' must be {_KINDS[kind]}, got {type(value).__name__}")
    return value


_KINDS = {str: "a string", list: "an array", int: "an integer", dict: "an object"}


def _nonempty(raw: dict[str, Any], name: str, at: str) -> str:
    value: str = _field(raw, name, str, at)
    if not value:
        raise BadRequest(f"'{at}{name}' is empty")
    return value


def _status(raw: dict[str, Any], at: str) -> str:
    status: str = _field(raw, "status", str, at)
    if status not in _STATUSES:
        raise BadRequest(f"'{at}status' is {status!r}; expected one of {list(_STATUSES)}")
    return status


def _strings(raw: dict[str, Any], name: str, at: str, required: bool = False) -> dict[str, str]:
    found: dict[str, Any] = _field(raw, name, dict, at, _REQUIRED if required else {})
    for key, value in found.items():
        if not isinstance(value, str):
            raise BadRequest(
                f"'{at}{name}.{key}' must be a string (label and annotation values are), "
                f"got {type(value).__name__}"
            )
    return dict(found)


def _time(raw: dict[str, Any], name: str, at: str) -> datetime:
    text: str = _field(raw, name, str, at)
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise BadRequest(f"'{at}{name}' is not an RFC 3339 time: {text!r}") from None
    if parsed.tzinfo is None:
        raise BadRequest(f"'{at}{name}' has no time zone: {text!r}")
    return parsed


def _end(raw: dict[str, Any], at: str) -> datetime | None:
    if "endsAt" not in raw:
        return None
    ends = _time(raw, "endsAt", at)
    return None if ends.year == 1 else ends  # Go's zero time: "not ended"


def _version(text: str, at: str) -> int:
    version = positive_id_text(text)
    if version is None:
        raise BadRequest(f"'{at}labels.version' must be {ID_RULE}, got {text[:40]!r}")
    return version


def task_reason(alertname: str) -> str:
    """The task reason an alert opens: REASONS' entry, else the alert's name lowercased."""
    reason = REASONS.get(alertname, alertname.lower())
    if len(reason) > _REASON_MAX:
        raise BadRequest(
            f"alertname {alertname!r} is too long to be a task reason ({_REASON_MAX} max)"
        )
    return reason


def alert_key(group_key: str, alert: Alert) -> str:
    """One key per alert episode: every re-send of it by Alertmanager has the same one."""
    text = f"{group_key}\x00{alert.fingerprint}\x00{alert.starts_at_text}"
    return hashlib.sha256(text.encode()).hexdigest()


def _evidence(notification: Notification, alert: Alert) -> dict[str, Any]:
    evidence: dict[str, Any] = {
        "alertname": alert.name,
        "labels": alert.labels,
        "annotations": alert.annotations,
        "startsAt": alert.starts_at_text,
        "generatorURL": alert.generator_url,
        "groupKey": notification.group_key,
        "fingerprint": alert.fingerprint,
        "externalURL": notification.external_url,
    }
    share = alert.annotations.get("drift_share", alert.labels.get("drift_share"))
    if share is not None and share.strip():  # the rule's template leaves it empty if unknown
        evidence["drift_share"] = _share(share)
    return evidence


def _share(text: str) -> float:
    """`0.62` or `62%` (what humanizePercentage writes), as a fraction."""
    percent = text.strip().endswith("%")
    try:
        share = float(text.strip().rstrip("%")) / (100 if percent else 1)
    except ValueError:
        raise BadRequest(f"drift_share {text!r} is not a number or a percentage") from None
    if not 0 <= share <= 1:
        raise BadRequest(f"drift_share {text!r} is not between 0 and 1 (0% and 100%)")
    return share


@dataclass(frozen=True, slots=True)
class AlertReceipt:
    """What one notification did; `outcomes` (not in the JSON) for whoever notifies."""

    received: int
    created: tuple[int, ...]
    duplicates: tuple[int, ...]
    refused: tuple[dict[str, str], ...]
    ignored: tuple[dict[str, str], ...]
    outcomes: tuple[OpenOutcome, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "received": self.received,
            "created": list(self.created),
            "duplicates": list(self.duplicates),
            "refused": list(self.refused),
            "ignored": list(self.ignored),
        }


def open_tasks(
    store: TaskStore,
    notification: Notification,
    *,
    known: Callable[[str, int], bool] | None = None,
) -> AlertReceipt:
    """Open (or count a duplicate on) one task per firing retraining alert.

    `known(model, version)`: whether the registry has that version; an alert for one it
    does not (a typo in a rule's labels) is refused rather than opening a task no retrainer
    can run. Blocking (database writes): call it off the event loop.
    """
    created: list[int] = []
    duplicates: list[int] = []
    refused: list[dict[str, str]] = []
    ignored: list[dict[str, str]] = []
    outcomes: list[OpenOutcome] = []
    for alert in notification.alerts:
        if not alert.wants_retraining:
            ignored.append({"alert": alert.fingerprint, "why": "no action=retrain label"})
            continue
        if alert.status != "firing":
            ignored.append({"alert": alert.fingerprint, "why": "resolved"})
            continue
        model, version = alert.labels["model"], int(alert.labels["version"])
        if known is not None and not known(model, version):
            why = f"{model}:{version} is not a version in the registry"
            refused.append({"alert": alert.fingerprint, "why": why})
            continue
        outcome = store.open(
            model,
            version,
            task_reason(alert.name),
            evidence=_evidence(notification, alert),
            source="alertmanager",
            actor="alertmanager",
            key=alert_key(notification.group_key, alert),
            window_start=alert.starts_at,
        )
        outcomes.append(outcome)
        if outcome.task is None:
            refused.append({"alert": alert.fingerprint, "why": outcome.why})
        elif outcome.action == "created":
            created.append(outcome.task.id)
            log.info("alert %s opened %s", alert.name, outcome.why)
        else:
            duplicates.append(outcome.task.id)
    return AlertReceipt(
        received=len(notification.alerts),
        created=tuple(created),
        duplicates=tuple(duplicates),
        refused=tuple(refused),
        ignored=tuple(ignored),
        outcomes=tuple(outcomes),
    )

"""The rows written into the legacy databases of legacy_schema.py: a model with two
versions, an export, a dataset, an alias and its moves, a serving config; a drift check, a
task and its event, a label, a quality check and a policy."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

__all__ = ["monitoring_rows", "registry_rows"]

_AT = datetime(2026, 11, 20, 9, 30, tzinfo=UTC)

_SIGNATURE = {
    "inputs": [{"name": "x", "dtype": "float32", "shape": [-1, 3]}],
    "outputs": [{"name": "score", "dtype": "float32", "shape": [-1, 1]}],
    "feature_names": {"x": ["a", "b", "c"]},
    "batch_dim": 0,
}


# No ids: the database numbers the rows 1, 2, ... in insert order, as it did for mlgate,
# and PostgreSQL's sequences stay in step for the rows added after the upgrade.
def registry_rows(schema_version: int) -> dict[str, list[dict[str, Any]]]:
    version = {
        "model_id": 1,
        "status": "ready",
        "source_format": "pytorch",
        "created_at": _AT,
        "created_by": "trainer@host",
        "description": "",
        "signature": _SIGNATURE,
        "task_id": None,
    }
    rows: dict[str, list[dict[str, Any]]] = {
        "mlgate_meta": [{"key": "schema_version", "value": str(schema_version)}],
        "models": [{"name": "churn", "created_at": _AT}],
        "versions": [
            {**version, "number": 1, "lineage": {"params": {"lr": 0.1}}, "parent_version_id": None},
            {
                **version,
                "number": 2,
                "lineage": {"params": {"lr": 0.05}},
                "parent_version_id": 1,
                "task_id": "7",
            },
        ],
        "artifacts": [
            {
                "version_id": 1,
                "kind": "source",
                "digest": "a" * 64,
                "manifest": {"files": [{"name": "state_dict.pt", "sha256": "b" * 64, "size": 9}]},
                "status": "stored",
                "details": {},
                "parity": None,
                "created_at": _AT,
            },
            {
                "version_id": 1,
                "kind": "onnx",
                "digest": "e" * 64,
                "manifest": {"files": [{"name": "model.onnx", "sha256": "f" * 64, "size": 7}]},
                "status": "passed",
                "details": {"opset": 18},
                "parity": {"passed": True},
                "created_at": _AT,
            },
        ],
        "datasets": [
            {
                "version_id": 1,
                "name": "train",
                "role": "training",
                "digest": "c" * 64,
                "source": "s3://bucket/train.parquet",
                "rows": 300,
            },
        ],
        "aliases": [{"model_id": 1, "name": "production", "version_id": 2, "updated_at": _AT}],
        "alias_events": [
            {
                "model_id": 1,
                "alias": "production",
                "from_version": None,
                "to_version": 1,
                "at": _AT,
                "actor": "ops",
                "reason": "first",
            },
            {
                "model_id": 1,
                "alias": "production",
                "from_version": 1,
                "to_version": 2,
                "at": _AT,
                "actor": "ops",
                "reason": "better",
            },
        ],
    }
    if schema_version >= 2:
        rows["serving_configs"] = [
            {
                "version_id": 2,
                "config": {"max_batch_size": 32},
                "updated_at": _AT,
                "updated_by": "ops",
            }
        ]
    return rows


def monitoring_rows(with_quality: bool) -> dict[str, list[dict[str, Any]]]:
    rows: dict[str, list[dict[str, Any]]] = {
        "drift_checks": [
            {
                "model": "churn",
                "version": 2,
                "checked_at": _AT,
                "window_start": _AT,
                "window_end": _AT,
                "rows": 500,
                "reference_digest": "d" * 64,
                "share": 0.5,
                "detected": True,
                "consecutive": 2,
                "config": {"threshold": 0.3},
                "result": {"features": {}},
            },
        ],
        "retraining_tasks": [
            {
                "key": "k" * 64,
                "model": "churn",
                "serving_version": 2,
                "reason": "drift",
                "status": "open",
                "source": "monitor",
                "window_start": _AT,
                "window_end": _AT,
                "rows": 500,
                "evidence": {"share": 0.5},
                "duplicate_count": 1,
                "created_at": _AT,
                "updated_at": _AT,
                "claimed_by": None,
                "candidate_version": None,
                "outcome": {},
                "error": None,
            },
        ],
        "task_events": [
            {
                "task_id": 1,
                "at": _AT,
                "from_status": None,
                "to_status": "open",
                "reason": "drift confirmed",
                "actor": "monitor",
            },
        ],
        "feedback": [
            {
                "model": "churn",
                "request_id": "r-1",
                "row": 0,
                "label": 1,
                "received_at": _AT,
                "known_at": None,
                "source": "api",
            },
        ],
    }
    if with_quality:
        rows["quality_checks"] = [
            {
                "model": "churn",
                "version": 2,
                "checked_at": _AT,
                "status": "holding",
                "metric": "roc_auc",
                "labelled_rows": 120,
                "result": {"value": 0.8},
            },
        ]
        rows["monitor_policies"] = [
            {
                "model": "churn",
                "version": 0,
                "settings": {"quality_min_labels": 50},
                "updated_at": _AT,
                "updated_by": "ops",
            },
        ]
    return rows

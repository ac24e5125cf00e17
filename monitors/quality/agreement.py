"""How two versions of a model agree on the same requests: a shadow beside the version it
shadows, or any two versions whose answers the inference log holds under shared request
ids (`mlgate compare`, `GET /monitoring/models/{m}/shadow`).

The newest `last` logged rows of each version are paired by (request id, row). Classifiers
(the first version's problem, from its quality profile): the share of rows where both took
the same decision, with a Wilson interval, and the confusion between their decisions.
Regression, or a version without a profile: the mean and p99 of the absolute difference of
their predictions. Each version's latency over the paired rows (p50, p99), and the latest
quality evaluation of each, with its interval, once labels have come back.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from monitors.log.reader import LogWindow, read_log
from monitors.quality.store import QualityStore
from registry.errors import BadRequest
from registry.quality.intervals import wilson
from registry.quality.problem import Problem, read_predictions
from registry.quality.profile import read_profile
from registry.store import Registry

__all__ = ["LATENCY_FACTOR", "LATENCY_SLACK_S", "compare_versions", "slower", "worse_quality"]

# When a version on live traffic answers worse than the one it would replace (a canary's
# rollback, a retrained candidate's live stage): slower, or of worse quality.
LATENCY_FACTOR = 1.5
LATENCY_SLACK_S = 0.005


def compare_versions(
    registry: Registry,
    log_dir: Path,
    model: str,
    first: int,
    second: int,
    *,
    last: int = 10_000,
) -> dict[str, Any]:
    if first == second:
        raise BadRequest(f"compare two different versions of {model}, not {first} with itself")
    records = [registry.get(f"{model}:{v}") for v in (first, second)]  # 404 for unknown ones
    windows = [read_log(log_dir, model, v, last=last, inputs=False) for v in (first, second)]
    pairs = _paired(*windows)
    problem = _problem(registry, records[0])
    output = problem.output if problem is not None else records[0].signature.output_names[0]
    body: dict[str, Any] = {
        "model": model,
        "versions": [first, second],
        "rows": {str(first): windows[0].rows, str(second): windows[1].rows},
        "paired": len(pairs[0]),
        "problem": None if problem is None else problem.to_json(),
        "latency_ms": {
            str(v): _latency(w, p) for v, w, p in zip((first, second), windows, pairs, strict=True)
        },
        "quality": {str(v): _quality(registry, model, v) for v in (first, second)},
    }
    if not len(pairs[0]):
        body["agreement"] = None
        return body
    outputs = [
        w.sample(p).tensors(inputs=False)[1][output] for w, p in zip(windows, pairs, strict=True)
    ]
    body["agreement"] = (
        _decisions(problem, *outputs)
        if problem is not None and problem.classifier
        else _differences(problem, *outputs)
    )
    return body


def _paired(a: LogWindow, b: LogWindow) -> tuple[np.ndarray, np.ndarray]:
    """Positions in `a` and in `b` of the rows both logged under one (request id, row)."""
    if not a.rows or not b.rows:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    left = a.table.select(["request_id", "row"]).to_pandas().reset_index(names="a")
    right = b.table.select(["request_id", "row"]).to_pandas().reset_index(names="b")
    joined = left.merge(right, on=["request_id", "row"]).drop_duplicates(["request_id", "row"])
    return joined["a"].to_numpy(np.int64), joined["b"].to_numpy(np.int64)


def _problem(registry: Registry, record: Any) -> Problem | None:
    artifact = record.artifact("quality")
    if artifact is None:
        return None
    return read_profile(registry.open_artifact(artifact)).problem


def _decisions(problem: Problem, a: np.ndarray, b: np.ndarray) -> dict[str, Any]:
    first, second = (read_predictions(problem, o).label for o in (a, b))
    same = int((first == second).sum())
    low, high = wilson(same, len(first), 0.95)
    classes = sorted(set(first.tolist()) | set(second.tolist()))
    index = {c: i for i, c in enumerate(classes)}
    confusion = np.zeros((len(classes), len(classes)), np.int64)
    np.add.at(confusion, ([index[c] for c in first], [index[c] for c in second]), 1)
    return {
        "kind": "decisions",
        "same_decision": same / len(first),
        "interval": [low, high],
        "classes": classes,
        "confusion": confusion.tolist(),
        "confusion_note": "rows: the first version's decision; columns: the second's",
    }


def _differences(problem: Problem | None, a: np.ndarray, b: np.ndarray) -> dict[str, Any]:
    if problem is not None:
        first, second = (read_predictions(problem, o).label for o in (a, b))
    else:
        first, second = (np.asarray(o, np.float64).reshape(len(o), -1) for o in (a, b))
    gap = np.abs(first - second)
    return {
        "kind": "differences",
        "mean_abs_difference": float(gap.mean()),
        "p99_abs_difference": float(np.quantile(gap, 0.99)),
        "max_abs_difference": float(gap.max()),
    }


def _latency(window: LogWindow, positions: np.ndarray) -> dict[str, float] | None:
    if not len(positions):
        return None
    seconds = window.table.column("latency_s").to_numpy()[positions]
    return {
        "p50": float(np.quantile(seconds, 0.5) * 1000),
        "p99": float(np.quantile(seconds, 0.99) * 1000),
    }


def _quality(registry: Registry, model: str, version: int) -> dict[str, Any] | None:
    latest = QualityStore(registry.db).latest(model, version)
    if latest is None:
        return None
    return {
        "check": latest.id,
        "at": latest.checked_at.isoformat(),
        "status": latest.status,
        "metric": latest.metric,
        "labelled_rows": latest.labelled_rows,
        "realised": latest.result.get("realised"),
        "estimated": latest.result.get("estimated"),
    }


def slower(p99_s: float | None, reference_p99_s: float | None) -> str | None:
    """Why `p99_s` is too slow beside `reference_p99_s` (above 1.5× plus 5 ms), or None."""
    if p99_s is None or reference_p99_s is None:
        return None
    if p99_s <= LATENCY_FACTOR * reference_p99_s + LATENCY_SLACK_S:
        return None
    return f"latency: p99 {p99_s * 1000:.1f} ms against {reference_p99_s * 1000:.1f} ms"


def worse_quality(ours: Any, theirs: Any) -> str | None:
    """Why the realised figure `ours` is worse than `theirs`: their intervals apart, on the
    worse side; None when they overlap or either is missing."""
    if not isinstance(ours, dict) or not isinstance(theirs, dict):
        return None
    higher = bool(ours.get("higher_is_better", True))
    apart = ours["upper"] < theirs["lower"] if higher else ours["lower"] > theirs["upper"]
    if not apart:
        return None
    return (
        f"quality: {ours['value']:.3f} [{ours['lower']:.3f}, {ours['upper']:.3f}] against "
        f"{theirs['value']:.3f} [{theirs['lower']:.3f}, {theirs['upper']:.3f}]"
    )

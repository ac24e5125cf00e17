"""The quality monitor: each round, a version's new predictions and labels, and its figures.

For one version, a round (`evaluate`):

1. reads the predictions logged since the previous round (the inference log, up to two
   flush intervals ago, like the drift monitor) and folds them into the version's time
   buckets (`buckets.py`, a bounded uniform sample per bucket), fetching the labels that
   already came back for the rows that entered a sample;
2. joins the labels received since the previous round into the samples of the buckets
   still within the label horizon (`labels.py`), and forgets older buckets;
3. computes the realised figures over the newest labelled rows, the estimated figures
   over the newest predictions, and each bucket's primary metric (`figures.py`), and
   holds them against the baseline registered with the version;
4. returns the evaluation (a `QualityCheck`, not stored yet: the decision policy adds
   its verdict first).

Its cost is bounded by the rows logged since the previous round (the log's rate cap
bounds those), the labels received since then, and `window_rows` / `bucket_rows` for
every figure: not by how much traffic or how many labels there were before.

A version registered before versions had a quality profile, or whose problem is unknown,
still gets evaluations: they say why there are no figures.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from monitors.log.reader import read_log
from monitors.quality.buckets import Bucket, BucketStore
from monitors.quality.fallbacks import early_baseline, problem_from_feedback
from monitors.quality.feedback import FeedbackStore
from monitors.quality.figures import (
    QualityThresholds,
    Rolling,
    bucket_summary,
    judge,
    rolling_estimated,
    rolling_realised,
)
from monitors.quality.labels import LabelTally, join, label_lookup
from monitors.quality.store import QualityCheck, QualityStore
from registry.quality.metrics import Figure
from registry.quality.problem import Problem
from registry.quality.profile import QualityProfile, read_profile
from registry.records import ModelVersion
from registry.store import Registry

__all__ = ["QualityMonitor", "QualitySettings"]

log = logging.getLogger("mlgate.monitors")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_STATE = "state.json"


@dataclass(frozen=True)
class QualitySettings:
    folder: Path
    """Where the buckets live (`$MLGATE_HOME/quality`)."""
    log_dir: Path
    flush_interval_s: float
    bucket_s: float = 3600.0
    bucket_rows: int = 2000
    horizon_s: float = 3 * 86400.0
    thresholds: QualityThresholds = field(default_factory=QualityThresholds)


class QualityMonitor:
    def __init__(
        self,
        registry: Registry,
        settings: QualitySettings,
        *,
        feedback: FeedbackStore | None = None,
        store: QualityStore | None = None,
    ) -> None:
        self.registry = registry
        self.settings = settings
        self.feedback = feedback or FeedbackStore(registry.db)
        self.store = store or QualityStore(registry.db)
        self._profiles: dict[tuple[str, int], QualityProfile | None] = {}
        self._buckets: dict[tuple[str, int], BucketStore] = {}
        self._summaries: dict[tuple[str, int, int], tuple[int, dict[str, Any]]] = {}

    def profile(self, model: str, version: int) -> QualityProfile | None:
        """The version's quality profile (None for versions registered before profiles)."""
        key = (model, version)
        if key not in self._profiles:
            record = self.registry.get(f"{model}:{version}")
            artifact = record.artifact("quality")
            self._profiles[key] = (
                None if artifact is None else read_profile(self.registry.open_artifact(artifact))
            )
        return self._profiles[key]

    def evaluate(
        self,
        model: str,
        version: int,
        *,
        thresholds: QualityThresholds | None = None,
        record: ModelVersion | None = None,
        now: datetime | None = None,
    ) -> QualityCheck:
        """One round for one version (see the module doc); the result is not stored.

        `record` is the version's registry record when the caller already read it."""
        now = now or datetime.now(UTC)
        limits = thresholds or self.settings.thresholds
        record = record or self.registry.get(f"{model}:{version}")
        profile = self.profile(model, version)
        problem = profile.problem if profile is not None else record.problem
        buckets = self._store(model, version)
        state = self._read_state(model, version)
        horizon = now - timedelta(seconds=self.settings.horizon_s)
        self._read_predictions(record, buckets, state, max(state.read_until, horizon), now)
        self._read_labels(model, buckets, state, now, horizon)
        buckets.expire(horizon.timestamp())
        self._summaries = {
            k: v
            for k, v in self._summaries.items()
            if (k[0], k[1]) != (model, version) or k[2] + buckets.bucket_s > horizon.timestamp()
        }
        recent = buckets.recent(horizon.timestamp())
        buckets.save(recent)
        if problem is None:
            problem = self._problem_from_feedback(record, recent, state, limits)
        calibration = None if profile is None else profile.calibration
        summaries = [self._summary(model, version, b, problem, calibration, limits) for b in recent]
        previous = self.store.latest(model, version)
        result: dict[str, Any] = {
            "problem": None if problem is None else problem.to_json(),
            "reason": "" if problem is not None else _unknown(record, profile, limits),
            "baseline": None,
            "baseline_reason": "" if profile is None else profile.baseline_reason,
            "realised": None,
            "estimated": None,
            "buckets": summaries,
            "labels": state.tally.to_json(),
            "streaks": {"realised": 0, "estimated": 0},
            "thresholds": asdict(limits),
            "decision": None,
        }
        status, metric, labelled = "unknown", None, 0
        if problem is not None:
            metric = limits.metric_for(problem)
            realised, unusable = rolling_realised(recent, problem, limits)
            estimated = rolling_estimated(recent, problem, calibration, limits)
            labelled = realised.rows
            baseline = (
                None
                if profile is None or profile.baseline is None
                else (profile.baseline.figures.get(metric))
            )
            result["baseline_source"] = "evaluation data registered with the version"
            if profile is not None and profile.baseline is not None and baseline is None:
                result["baseline_reason"] = profile.baseline.missing.get(metric, "")
            if baseline is None:
                baseline = self._early_baseline(recent, problem, metric, state, limits)
                result["baseline_source"] = (
                    None
                    if baseline is None
                    else (
                        f"the version's first {baseline.n} labelled predictions (no evaluation "
                        "data was registered: weaker evidence)"
                    )
                )
            result["baseline"] = None if baseline is None else baseline.to_json()
            result["realised"] = self._held(realised, metric, baseline, limits, "realised")
            result["estimated"] = self._held(estimated, metric, baseline, limits, "estimated")
            result["labels"]["unusable_in_window"] = unusable
            streaks = (previous.result.get("streaks") if previous else None) or {}
            for name in ("realised", "estimated"):
                worse = bool((result[name].get("verdict") or {}).get("worse"))
                result["streaks"][name] = int(streaks.get(name, 0)) + 1 if worse else 0
            status = _status(realised, baseline, result["realised"])
        self._write_state(model, version, state)
        return QualityCheck(model, version, now, status, metric, labelled, result)

    # ---------------------------------------------------------------- reading

    def _read_predictions(
        self,
        record: ModelVersion,
        buckets: BucketStore,
        state: _State,
        start: datetime,
        now: datetime,
    ) -> None:
        end = now - timedelta(seconds=2 * self.settings.flush_interval_s)
        if end <= start:
            return
        window = read_log(
            self.settings.log_dir, record.name, record.version, start=start, end=end, inputs=False
        )
        state.read_until = end
        if not window.rows:
            return
        _, outputs = window.tensors()
        problem = record.problem
        name = problem.output if problem is not None else next(iter(outputs), None)
        if name is None or name not in outputs:
            return
        output = np.asarray(outputs[name], np.float64).reshape(window.rows, -1)
        # Only the columns used: a wide model's features would cost most of the round.
        frame = window.table.select(["ts", "request_id", "row"]).to_pandas()
        ts_us = frame["ts"].to_numpy(dtype="datetime64[us]").astype(np.int64)
        request_id = frame["request_id"].astype(str).to_numpy(dtype=object)
        row = frame["row"].to_numpy(np.int32)
        changed = buckets.fold(ts_us, request_id, row, output)
        ids = sorted({rid for bucket, added in changed for rid in bucket.request_id[added]})
        if ids:
            lookup, unusable = label_lookup(self.feedback.labels_for(record.name, ids))
            state.tally.unusable += unusable
            state.tally.add_delays(join(changed, lookup))

    def _read_labels(
        self, model: str, buckets: BucketStore, state: _State, now: datetime, horizon: datetime
    ) -> None:
        # NOTE: a label's `received_at` is stamped before its transaction commits; reading
        # up to a few seconds ago keeps a label committed late from being skipped.
        until = now - timedelta(seconds=_COMMIT_MARGIN_S)
        if until <= state.labels_until:
            return
        # Labels received before the horizon began belong to predictions older than it.
        since = max(state.labels_until, horizon)
        received = self.feedback.received_labels(model, since, until)
        state.labels_until = until
        if received.empty:
            return
        lookup, unusable = label_lookup(received)
        state.tally.unusable += unusable
        recent: list[tuple[Bucket, np.ndarray | None]] = [
            (b, None) for b in buckets.recent(horizon.timestamp())
        ]
        state.tally.add_delays(join(recent, lookup))

    # ---------------------------------------------------------------- fallbacks

    @staticmethod
    def _problem_from_feedback(
        record: ModelVersion, recent: list[Bucket], state: _State, limits: QualityThresholds
    ) -> Problem | None:
        if state.inferred is None:
            found = problem_from_feedback(record.signature, recent, limits.min_labels)
            state.inferred = None if found is None else found.to_json()
        return None if state.inferred is None else Problem.from_json(state.inferred)

    @staticmethod
    def _early_baseline(
        recent: list[Bucket],
        problem: Problem,
        metric: str,
        state: _State,
        limits: QualityThresholds,
    ) -> Figure | None:
        frozen = state.early or {}
        if frozen.get("metric") != metric:
            figure = early_baseline(recent, problem, metric, limits)
            state.early = None if figure is None else {"metric": metric, **figure.to_json()}
            frozen = state.early or {}
        return None if not frozen else Figure.from_json(frozen)

    # ---------------------------------------------------------------- figures

    def _summary(
        self,
        model: str,
        version: int,
        bucket: Bucket,
        problem: Any,
        calibration: Any,
        limits: QualityThresholds,
    ) -> dict[str, Any]:
        key = (model, version, bucket.start_s)
        cached = self._summaries.get(key)
        if cached is not None and cached[0] == bucket.revision and bucket.revision:
            return cached[1]
        summary = bucket_summary(
            bucket, self._store(model, version).bucket_s, problem, calibration, limits
        )
        self._summaries[key] = (bucket.revision, summary)
        return summary

    @staticmethod
    def _held(
        rolling: Rolling,
        metric: str,
        baseline: Any,
        limits: QualityThresholds,
        what: str,
    ) -> dict[str, Any]:
        document = rolling.to_json()
        figure = None if rolling.scores is None else rolling.scores.figures.get(metric)
        document["figure"] = None if figure is None else figure.to_json()
        document["verdict"] = None
        if figure is not None and baseline is not None and rolling.judged:
            verdict = judge(
                metric,
                figure,
                baseline,
                tolerance=limits.tolerance,
                relative_tolerance=limits.relative_tolerance,
                what=what,
            )
            document["verdict"] = verdict.to_json()
        return document

    # ---------------------------------------------------------------- state

    def _store(self, model: str, version: int) -> BucketStore:
        key = (model, version)
        if key not in self._buckets:
            self._buckets[key] = BucketStore(
                self.settings.folder / model / str(version),
                bucket_s=self.settings.bucket_s,
                sample_rows=self.settings.bucket_rows,
            )
        return self._buckets[key]

    def _read_state(self, model: str, version: int) -> _State:
        path = self.settings.folder / model / str(version) / _STATE
        if not path.exists():
            return _State(_EPOCH, _EPOCH, LabelTally())
        data = json.loads(path.read_text("utf-8"))
        return _State(
            datetime.fromisoformat(data["read_until"]),
            datetime.fromisoformat(data["labels_until"]),
            LabelTally.from_json(data.get("tally") or {}),
            data.get("inferred"),
            data.get("early"),
        )

    def _write_state(self, model: str, version: int, state: _State) -> None:
        folder = self.settings.folder / model / str(version)
        folder.mkdir(parents=True, exist_ok=True)
        partial = folder / f"{_STATE}.tmp"
        partial.write_text(
            json.dumps(
                {
                    "read_until": state.read_until.isoformat(),
                    "labels_until": state.labels_until.isoformat(),
                    "tally": state.tally.to_json(),
                    "inferred": state.inferred,
                    "early": state.early,
                }
            ),
            encoding="utf-8",
        )
        partial.replace(folder / _STATE)


_COMMIT_MARGIN_S = 5.0


@dataclass
class _State:
    read_until: datetime
    labels_until: datetime
    tally: LabelTally
    inferred: dict[str, Any] | None = None
    """The problem the feedback showed (a version registered without one), once found."""
    early: dict[str, Any] | None = None
    """The baseline from the first labelled predictions (no evaluation data), frozen."""


def _status(realised: Rolling, baseline: Any, held: dict[str, Any]) -> str:
    if not realised.judged:
        return "insufficient"
    if baseline is None:
        return "no-baseline"
    verdict = held.get("verdict") or {}
    return "degraded" if verdict.get("worse") else "holding"


def _unknown(
    record: ModelVersion, profile: QualityProfile | None, limits: QualityThresholds
) -> str:
    reason = profile.problem_reason if profile is not None else record.problem_reason
    return (
        f"no quality figures: the model's task is unknown ({reason}); once "
        f"{limits.min_labels} labels have come back, they may show it"
    )

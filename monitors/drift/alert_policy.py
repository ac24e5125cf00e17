"""When drift is confirmed: the rule that turns drift checks into a retraining task.

A model version's drift is confirmed when its last `consecutive` checks (default 3: three
minutes at the default check interval) each found it:

- the dataset drifted: the share of drifted input features reached the check's
  `drift_share` (Evidently's rule, `MLGATE_DRIFT_SHARE`, default 0.5); or
- a named feature's drift severity (score relative to its threshold, ≥ 1 drifted) reached
  the threshold given for it (`MLGATE_ALERT_FEATURE_THRESHOLDS='{"income": 1.5}'`): for a
  feature that matters on its own, whatever the others do.

One clean check resets the run. The task's window is the run's: from the first confirming
check's window start (which also keys the task, so every later check of the same run is a
duplicate of it) to the latest's end. Its evidence is what a person or a retraining job
needs: the share, the top features with score, method and threshold, the checks, links to
the stored result and its HTML report, the window bounds and rows, the serving version
and the reference digest.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from monitors.drift.check_store import DriftCheck
from monitors.drift.result import DriftResult

__all__ = ["AlertPolicy", "Confirmation"]

TOP_FEATURES = 5


@dataclass(frozen=True)
class Confirmation:
    model: str
    version: int
    reason: str
    checks: tuple[DriftCheck, ...]  # oldest first
    evidence: dict[str, Any]

    @property
    def window_start(self) -> Any:
        return self.checks[0].window_start

    @property
    def window_end(self) -> Any:
        return self.checks[-1].window_end

    @property
    def rows(self) -> int:
        return sum(c.rows for c in self.checks)


@dataclass(frozen=True)
class AlertPolicy:
    consecutive: int = 3
    feature_thresholds: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.consecutive < 1:
            raise ValueError(f"consecutive must be at least 1, got {self.consecutive}")

    def confirm(self, history: Sequence[DriftCheck]) -> Confirmation | None:
        """`history`: a version's checks, newest first. A confirmation, or None."""
        if len(history) < self.consecutive:
            return None
        run = list(history[: self.consecutive])
        reasons = [self._why(check) for check in run]
        if not all(reasons):
            return None
        # Extend the run back to where it began, so the window (and the task's key) is
        # the same for every check of one uninterrupted run.
        for check in history[self.consecutive :]:
            if not self._why(check):
                break
            run.append(check)
        run.reverse()
        latest = run[-1]
        reason = "feature_drift" if all(r == "feature_drift" for r in reasons) else "data_drift"
        return Confirmation(
            latest.model, latest.version, reason, tuple(run), self._evidence(run, reason)
        )

    def _why(self, check: DriftCheck) -> str | None:
        if check.detected:
            return "data_drift"
        result = DriftResult.from_json(check.result)
        for name, threshold in self.feature_thresholds.items():
            feature = next((f for f in result.features if f.column == name), None)
            if feature is not None and feature.computed and feature.severity >= threshold:
                return "feature_drift"
        return None

    def _evidence(self, run: list[DriftCheck], reason: str) -> dict[str, Any]:
        latest = run[-1]
        result = DriftResult.from_json(latest.result)
        base = f"/monitoring/models/{latest.model}/drift"
        return {
            "reason": reason,
            "drift_share": latest.share,
            "drift_share_threshold": result.drift_share,
            "consecutive_checks": len(run),
            "required_checks": self.consecutive,
            "top_features": [
                {
                    "feature": f.column,
                    "role": f.role,
                    "score": f.score,
                    "method": f.method,
                    "threshold": f.threshold,
                    "drifted": f.drifted,
                }
                for f in result.top_features(TOP_FEATURES)
            ],
            "feature_thresholds": dict(self.feature_thresholds),
            "prediction_drift": result.prediction_drift,
            "checks": [c.id for c in run],
            "result": f"{base}?version={latest.version}&check={latest.id}",
            "report": f"{base}/report?check={latest.id}",
            "window": {
                "start": run[0].window_start.isoformat(),
                "end": latest.window_end.isoformat(),
                "rows": sum(c.rows for c in run),
            },
            "serving_version": latest.version,
            "reference_digest": latest.reference_digest,
        }

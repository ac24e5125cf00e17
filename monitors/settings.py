"""Monitoring settings: every field is also an `MLGATE_*` environment variable.

Shared by the gateway (which logs rows and, by default, runs the drift monitor in
process) and `mlgate monitor` (the monitor as its own process). Nothing is read at import.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["MonitorSettings"]


class MonitorSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MLGATE_", extra="ignore")

    home: Path = Path(".mlgate")
    """`MLGATE_HOME`: the inference log and drift reports live under it by default."""
    log_dir: Path | None = None
    """`MLGATE_LOG_DIR`: the inference log's folder (default `$MLGATE_HOME/inference_log`).
    Replicas that share one monitor write here on shared storage."""
    log_sample_rate: float = Field(default=1.0, ge=0, le=1)
    """`MLGATE_LOG_SAMPLE_RATE`: the share of requests whose rows are logged."""
    log_max_rows_per_s: float = Field(default=1000.0, ge=0)
    """`MLGATE_LOG_MAX_ROWS_PER_S`: the cap on logged rows per second (all models)."""
    log_flush_interval_s: float = Field(default=1.0, gt=0)
    """`MLGATE_LOG_FLUSH_INTERVAL_S`: how often rows are written and fsynced; a crash
    loses at most this much of the log."""
    log_segment_max_bytes: int = Field(default=64 * 1024 * 1024, gt=0)
    """`MLGATE_LOG_SEGMENT_MAX_BYTES`: a segment is closed (and turned into Parquet) past this."""
    log_segment_max_age_s: float = Field(default=3600.0, gt=0)
    """`MLGATE_LOG_SEGMENT_MAX_AGE_S`: ... or when it is this old."""
    log_retention_s: float = Field(default=7 * 24 * 3600.0, gt=0)
    """`MLGATE_LOG_RETENTION_S`: closed segments older than this are deleted."""
    log_replica: str | None = None
    """`MLGATE_LOG_REPLICA`: this writer's name in segment file names (default: host name and
    port), stable across restarts so a restarted gateway closes the segments it left open."""

    drift_monitor: Literal["inprocess", "external", "off"] = "inprocess"
    """`MLGATE_DRIFT_MONITOR`: `inprocess` runs drift checks inside the gateway; `external`
    leaves them to one `mlgate monitor` process (many replicas) and only publishes its
    results; `off` neither checks nor publishes."""
    monitor_priority: Literal["idle", "low", "normal"] = "idle"
    """`MLGATE_MONITOR_PRIORITY`: the CPU priority of the process that runs a gateway's
    rounds with `inprocess`: `idle` (SCHED_IDLE: only time serving leaves; on a machine
    saturated on every core, rounds wait), `low` (nice 19: a small share even then), or
    `normal`."""
    drift_interval_s: float = Field(default=60.0, gt=0)
    """`MLGATE_DRIFT_INTERVAL_S`: how often the monitor looks for a new window."""
    drift_window_rows: int = Field(default=10_000, gt=0)
    """`MLGATE_DRIFT_WINDOW_ROWS`: a window holds at most this many rows (uniform sample of
    the rows logged since the previous window): a check's cost is bounded by it."""
    drift_min_rows: int = Field(default=500, gt=0)
    """`MLGATE_DRIFT_MIN_ROWS`: no check until a window has this many rows."""
    drift_share: float = Field(default=0.5, gt=0, le=1)
    """`MLGATE_DRIFT_SHARE`: dataset drift when at least this share of input features drift."""
    drift_method: str | None = None
    """`MLGATE_DRIFT_METHOD`: one Evidently stat test for every column (default: Evidently's
    choice per column)."""
    drift_threshold: float | None = Field(default=None, gt=0)
    """`MLGATE_DRIFT_THRESHOLD`: one threshold for every column (default: the method's)."""
    drift_feature_methods: dict[str, str] = {}
    """`MLGATE_DRIFT_FEATURE_METHODS`: JSON, per-feature stat tests, e.g. `{"income": "psi"}`."""
    drift_feature_thresholds: dict[str, float] = {}
    """`MLGATE_DRIFT_FEATURE_THRESHOLDS`: JSON, per-feature thresholds."""
    drift_metric_features: int = Field(default=50, gt=0)
    """`MLGATE_DRIFT_METRIC_FEATURES`: at most this many `mlgate_drift_score` series per
    version (the most drifted; predictions always): the `feature` label stays bounded."""

    quality_bucket_s: float = Field(default=3600.0, gt=0)
    """`MLGATE_QUALITY_BUCKET_S`: realised and estimated quality are kept per time bucket of
    predictions this long (tumbling, by when the prediction was made)."""
    quality_bucket_rows: int = Field(default=2000, gt=0)
    """`MLGATE_QUALITY_BUCKET_ROWS`: a bucket keeps a uniform sample of at most this many
    predictions (with their labels): the cost of a bucket is bounded by it."""
    quality_horizon_s: float = Field(default=3 * 86400.0, gt=0)
    """`MLGATE_QUALITY_HORIZON_S`: labels are joined to predictions up to this old; older
    buckets are final and forgotten."""
    quality_window_rows: int = Field(default=2000, gt=0)
    """`MLGATE_QUALITY_WINDOW_ROWS`: the realised figure is over the newest this many
    labelled predictions, the estimated one over the newest this many predictions."""
    quality_min_labels: int = Field(default=200, ge=2)
    """`MLGATE_QUALITY_MIN_LABELS`: no judgement of realised quality on fewer labels."""
    quality_min_coverage: float = Field(default=0.1, ge=0, le=1)
    """`MLGATE_QUALITY_MIN_COVERAGE`: a bucket's labels count once at least this share of
    its predictions is labelled (raise it when early labels are biased)."""
    quality_min_rows: int = Field(default=200, ge=1)
    """`MLGATE_QUALITY_MIN_ROWS`: no judgement of estimated quality on fewer predictions."""
    quality_metric: str | None = None
    """`MLGATE_QUALITY_METRIC`: the metric decisions use (default: accuracy for classifiers,
    mae for regression)."""
    quality_tolerance: float = Field(default=0.02, ge=0)
    """`MLGATE_QUALITY_TOLERANCE`: a fall counts when the interval is this far below the
    baseline, for metrics in [0, 1] (accuracy, ROC AUC, F1, R²)."""
    quality_relative_tolerance: float = Field(default=0.1, ge=0)
    """`MLGATE_QUALITY_RELATIVE_TOLERANCE`: the same for errors (MAE, RMSE, log loss,
    calibration error), as a share of the baseline."""
    quality_consecutive: int = Field(default=2, ge=1)
    """`MLGATE_QUALITY_CONSECUTIVE`: evaluations in a row with a significant fall before a
    task opens."""
    policy_drift_importance: float = Field(default=0.5, gt=0, le=1)
    """`MLGATE_POLICY_DRIFT_IMPORTANCE`: drift on features holding this share of the model's
    importance opens a task when no quality figure can judge it."""
    retrain_schedule_s: float | None = Field(default=None, gt=0)
    """`MLGATE_RETRAIN_SCHEDULE_S`: open a `schedule` task this long after the model's last
    task, whatever the evidence (usually set per model: `mlgate policy`)."""
    dq_max_refused_share: float = Field(default=0.05, ge=0, le=1)
    """`MLGATE_DQ_MAX_REFUSED_SHARE`: more rows refused at validation is a breach."""
    dq_warn_out_of_range_share: float = Field(default=0.01, ge=0, le=1)
    """`MLGATE_DQ_WARN_OUT_OF_RANGE_SHARE`: a feature's values outside the reference's range
    beyond this share is a warning."""
    dq_max_out_of_range_share: float = Field(default=0.5, ge=0, le=1)
    """`MLGATE_DQ_MAX_OUT_OF_RANGE_SHARE`: ... and a breach beyond this one (a unit change)."""
    dq_warn_unseen_share: float = Field(default=0.01, ge=0, le=1)
    """`MLGATE_DQ_WARN_UNSEEN_SHARE`: values of a discrete feature the reference never had."""
    dq_max_unseen_share: float = Field(default=0.5, ge=0, le=1)
    """`MLGATE_DQ_MAX_UNSEEN_SHARE`: ... a breach beyond this share (an encoding change)."""
    dq_max_missing_share: float = Field(default=0.05, ge=0, le=1)
    """`MLGATE_DQ_MAX_MISSING_SHARE`: NaN values beyond this share is a breach."""

    alert_consecutive_checks: int = Field(default=3, ge=1)
    """`MLGATE_ALERT_CONSECUTIVE_CHECKS`: drift is confirmed (and a retraining task opened)
    after this many drifted checks in a row."""
    alert_feature_thresholds: dict[str, float] = {}
    """`MLGATE_ALERT_FEATURE_THRESHOLDS`: JSON, per-feature severity thresholds that confirm
    drift on their own (severity: score relative to its threshold, >= 1 drifted)."""
    task_cooldown_s: float = Field(default=3600.0, ge=0)
    """`MLGATE_TASK_COOLDOWN_S`: after a model's retrained version is promoted, no new task
    opens for it for this long."""
    task_min_rows: int = Field(default=500, ge=0)
    """`MLGATE_TASK_MIN_ROWS`: a drift-confirmed window with fewer rows opens no task."""
    task_default_window_s: float = Field(default=86400.0, gt=0)
    """`MLGATE_TASK_DEFAULT_WINDOW_S`: a task opened by a person or by Alertmanager without a
    window gets the last this many seconds as its window."""
    task_webhook_url: str | None = None
    """`MLGATE_TASK_WEBHOOK_URL`: an http(s) URL that is POSTed `{"event", "task"}` JSON
    when a retraining task opens or is updated (retried, with an `Idempotency-Key`);
    unset: nobody is notified."""

    retrainer: Literal["inprocess", "off"] = "off"
    """`MLGATE_RETRAINER`: `inprocess` runs a retraining worker inside the gateway (one
    process for everything, as `mlgate demo` does); `off` leaves tasks to
    `mlgate retrain --worker` processes or to the outbound webhook."""
    retrain_interval_s: float = Field(default=5.0, gt=0)
    """`MLGATE_RETRAIN_INTERVAL_S`: how often an idle in-process worker looks for a task."""
    retrain_margin: float = Field(default=0.01, ge=0)
    """`MLGATE_RETRAIN_MARGIN`: how much better (in the task's primary metric: accuracy, or
    MAE for regression) a candidate must be on the held-out window to be promoted without a
    person, with the interval of the difference above zero."""
    retrain_auto_promote: bool = True
    """`MLGATE_RETRAIN_AUTO_PROMOTE`: false leaves every candidate for approval."""
    retrain_min_labelled_rows: int = Field(default=200, ge=1)
    """`MLGATE_RETRAIN_MIN_LABELLED_ROWS`: fewer labelled rows in the window fail the task."""
    retrain_holdout_fraction: float = Field(default=0.3, gt=0, lt=1)
    """`MLGATE_RETRAIN_HOLDOUT_FRACTION`: the labelled rows kept back for the comparison."""
    retrain_max_forgetting: float = Field(default=0.05, ge=0)
    """`MLGATE_RETRAIN_MAX_FORGETTING`: a candidate worse than the serving version by more
    than this on the original evaluation data is declined, unless the serving version
    itself fell on the task's window (the old labels no longer hold)."""
    retrain_stage: Literal["none", "canary", "shadow"] = "none"
    """`MLGATE_RETRAIN_STAGE`: a candidate that won the offline comparison meets live traffic
    first: `canary` (a share of it, services/retraining/stage.py), promoted once it answered
    enough requests without the gateways rolling it back; `shadow` (a copy of it,
    services/retraining/shadow_stage.py), promoted once enough paired rows show it no
    slower and of no worse quality."""
    retrain_stage_weight: float = Field(default=0.1, gt=0, lt=1)
    """`MLGATE_RETRAIN_STAGE_WEIGHT`: the canary's share of the alias's requests, or the
    share a shadow sees a copy of."""
    retrain_stage_rows: int = Field(default=500, ge=1)
    """`MLGATE_RETRAIN_STAGE_ROWS`: rows the candidate must answer live (as the inference log
    holds them; a shadow's paired with the serving version's) before it is judged."""
    retrain_stage_timeout_s: float = Field(default=86400.0, gt=0)
    """`MLGATE_RETRAIN_STAGE_TIMEOUT_S`: a canary that has not answered enough rows by then is
    stopped and its candidate left for a person (no data is no evidence)."""
    retrain_label_wait_s: float = Field(default=300.0, gt=0)
    """`MLGATE_RETRAIN_LABEL_WAIT_S`: a task whose window has too few labels yet goes back to
    open, and is tried again after this long."""

    def log_path(self) -> Path:
        return self.log_dir if self.log_dir is not None else self.home / "inference_log"

    def reports_path(self) -> Path:
        return self.home / "reports"

    def quality_path(self) -> Path:
        """Where the quality monitor keeps its buckets of sampled predictions and labels."""
        return self.home / "quality"

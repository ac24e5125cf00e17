"""The Prometheus rules, their promtool unit tests, the example config and the Grafana
dashboard in deploy/, checked with the real tools.

promtool (Debian's 2.42) validates the rule and config files and runs
deploy/prometheus/rules_test.yml, where every alert has a case that fires and one that must
not. The dashboard is read as data: every expression may use only the metrics of the
gateway's /metrics contract and the recording rules in rules.yml. The slow tests load the
rules into a real Prometheus and send it every dashboard expression, so a typo in PromQL
fails here rather than as an empty panel.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import prometheus_client
import pytest
import yaml  # type: ignore[import-untyped]  # PyYAML ships no stubs; types-PyYAML is not a dependency

from tests.support.prometheus import (
    PrometheusError,
    api_get,
    ensure_prometheus,
    prometheus_server,
    query,
)

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
RULES = DEPLOY / "prometheus" / "rules.yml"
RULES_TEST = DEPLOY / "prometheus" / "rules_test.yml"
CONFIG = DEPLOY / "prometheus" / "prometheus.yml"
DASHBOARD = DEPLOY / "grafana" / "mlgate.json"

# The gateway's /metrics contract: DESIGN.md, "Public contracts" -> "Metrics", completed by
# the monitoring brief with mlgate_queue_capacity, mlgate_drift_consecutive_detections,
# mlgate_inference_log_rows_total, for the retraining loop mlgate_feedback_rows_total, and
# the quality series of monitors/quality/gauges.py.
# Name -> type; a histogram also exposes _bucket, _count and _sum. Keep in step with the
# collectors in monitors/.
CONTRACT_METRICS: dict[str, str] = {
    "mlgate_requests_total": "counter",
    "mlgate_request_duration_seconds": "histogram",
    "mlgate_queue_duration_seconds": "histogram",
    "mlgate_compute_duration_seconds": "histogram",
    "mlgate_batch_size": "histogram",
    "mlgate_batches_total": "counter",
    "mlgate_queue_depth": "gauge",
    "mlgate_queue_capacity": "gauge",
    "mlgate_rejected_total": "counter",
    "mlgate_model_info": "gauge",
    "mlgate_drift_score": "gauge",
    "mlgate_drift_share": "gauge",
    "mlgate_drift_detected": "gauge",
    "mlgate_drift_consecutive_detections": "gauge",
    "mlgate_drift_last_check_timestamp_seconds": "gauge",
    "mlgate_inference_log_rows_total": "counter",
    "mlgate_retraining_tasks": "gauge",
    "mlgate_feedback_rows_total": "counter",
    "mlgate_quality": "gauge",
    "mlgate_quality_lower": "gauge",
    "mlgate_quality_upper": "gauge",
    "mlgate_quality_estimated": "gauge",
    "mlgate_quality_estimated_lower": "gauge",
    "mlgate_quality_estimated_upper": "gauge",
    "mlgate_quality_baseline": "gauge",
    "mlgate_quality_labelled_rows": "gauge",
    "mlgate_label_coverage": "gauge",
    "mlgate_quality_degraded": "gauge",
    "mlgate_drift_finding": "gauge",
    "mlgate_data_quality_breaches": "gauge",
    "mlgate_data_quality_warnings": "gauge",
    "mlgate_data_quality_refused_share": "gauge",
    "mlgate_data_quality_out_of_range_share": "gauge",
    "mlgate_labelled_rows_total": "counter",
    "mlgate_label_delay_seconds": "histogram",
}
SEVERITIES = {"page", "ticket", "warning"}

METRIC_NAME = re.compile(r"mlgate_[a-z_]+")
RECORDING_RULE_NAME = re.compile(r"mlgate:[a-z_:0-9]+")


def _run_promtool(*args: str) -> subprocess.CompletedProcess[str]:
    _, promtool = ensure_prometheus()
    return subprocess.run(
        [str(promtool), *args], capture_output=True, text=True, timeout=120, check=False
    )


def _load_yaml(path: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(path.read_text())
    return loaded


def _rules() -> list[dict[str, Any]]:
    return [rule for group in _load_yaml(RULES)["groups"] for rule in group["rules"]]


def _alert_names() -> list[str]:
    return [rule["alert"] for rule in _rules() if "alert" in rule]


def _recording_rule_names() -> set[str]:
    return {rule["record"] for rule in _rules() if "record" in rule}


def _allowed_names() -> set[str]:
    allowed = set(CONTRACT_METRICS)
    for name, kind in CONTRACT_METRICS.items():
        if kind == "histogram":
            allowed |= {f"{name}_bucket", f"{name}_count", f"{name}_sum"}
    return allowed | _recording_rule_names()


def unknown_metric_names(expressions: list[str], allowed: set[str]) -> set[str]:
    """Every mlgate metric or recording-rule name in `expressions` that is not allowed."""
    found: set[str] = set()
    for expr in expressions:
        found |= set(METRIC_NAME.findall(expr)) | set(RECORDING_RULE_NAME.findall(expr))
    return found - allowed


def _dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def _rows(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    return [panel for panel in dashboard["panels"] if panel["type"] == "row"]


def _panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    """Every chart: the top-level ones and those inside collapsed rows; rows themselves not."""
    charts = [panel for panel in dashboard["panels"] if panel["type"] != "row"]
    return charts + [panel for row in _rows(dashboard) for panel in row.get("panels", [])]


def _panel_exprs(dashboard: dict[str, Any]) -> list[str]:
    return [target["expr"] for panel in _panels(dashboard) for target in panel["targets"]]


def _panel(dashboard: dict[str, Any], title: str) -> dict[str, Any]:
    (found,) = (panel for panel in _panels(dashboard) if panel["title"] == title)
    return found


def _expr(dashboard: dict[str, Any], title: str, ref: str = "A") -> str:
    (expr,) = (t["expr"] for t in _panel(dashboard, title)["targets"] if t["refId"] == ref)
    return expr


def _variable_queries(dashboard: dict[str, Any]) -> list[str]:
    return [
        variable["definition"]
        for variable in dashboard["templating"]["list"]
        if variable["type"] == "query"
    ]


# --- promtool ------------------------------------------------------------------------


def test_promtool_accepts_the_rules() -> None:
    result = _run_promtool("check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr
    rule_count = len(_rules())
    assert f"SUCCESS: {rule_count} rules found" in result.stdout


def test_promtool_unit_tests_pass() -> None:
    # promtool resolves rule_files relative to the test file, not the working directory.
    result = _run_promtool("test", "rules", str(RULES_TEST))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


@pytest.mark.parametrize(
    ("rule", "weakened", "alert"),
    [
        # 2 drifted checks instead of 3
        (
            "(mlgate_drift_consecutive_detections) >= 3",
            "(mlgate_drift_consecutive_detections) >= 2",
            "MlgateDriftDetected",
        ),
        # a fall held for 1 minute instead of 5
        (
            "(mlgate_quality_degraded) == 1\n        for: 5m",
            "(mlgate_quality_degraded) == 1\n        for: 1m",
            "MlgateQualityDropped",
        ),
        # data-quality warnings counted as breaches
        (
            "(mlgate_data_quality_breaches) > 0",
            "(mlgate_data_quality_warnings) > 0",
            "MlgateDataQualityBreach",
        ),
    ],
)
def test_promtool_unit_tests_can_fail(tmp_path: Path, rule: str, weakened: str, alert: str) -> None:
    """The same tests against weakened rules fail, naming the alert."""
    text = RULES.read_text()
    assert text.count(rule) == 1
    (tmp_path / "rules.yml").write_text(text.replace(rule, weakened))
    (tmp_path / "rules_test.yml").write_text(RULES_TEST.read_text())
    result = _run_promtool("test", "rules", str(tmp_path / "rules_test.yml"))
    assert result.returncode != 0
    assert f"alertname: {alert}" in result.stdout + result.stderr


def test_promtool_accepts_the_example_config() -> None:
    result = _run_promtool("check", "config", str(CONFIG))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 1 rule files found" in result.stdout


# --- what the rules promise --------------------------------------------------------


def test_every_alert_says_what_to_do() -> None:
    for rule in _rules():
        if "alert" not in rule:
            continue
        annotations = rule.get("annotations", {})
        assert annotations.get("summary"), rule["alert"]
        assert len(annotations.get("description", "")) > 80, rule["alert"]
        assert rule["labels"]["severity"] in SEVERITIES, rule["alert"]


def test_the_expected_alerts_exist() -> None:
    assert sorted(_alert_names()) == sorted(
        [
            "MlgateLatencyBudgetFastBurn",
            "MlgateLatencyBudgetSlowBurn",
            "MlgateQueueSaturated",
            "MlgateRequestsRejected",
            "MlgateDriftDetected",
            "MlgateDriftMonitorStale",
            "MlgateQualityDropped",
            "MlgateDriftWithoutHarm",
            "MlgateDataQualityBreach",
        ]
    )
    labels = {rule["alert"]: rule["labels"] for rule in _rules() if "alert" in rule}
    # Drift alone is a finding: only a significant quality fall asks for a retrain.
    assert labels["MlgateDriftDetected"] == {"severity": "warning"}
    assert labels["MlgateDriftWithoutHarm"] == {"severity": "warning"}
    assert labels["MlgateQualityDropped"] == {"severity": "ticket", "action": "retrain"}
    assert labels["MlgateDataQualityBreach"] == {"severity": "ticket"}
    retraining = {name for name, found in labels.items() if found.get("action") == "retrain"}
    assert retraining == {"MlgateQualityDropped"}


def test_every_alert_has_a_firing_and_a_silent_unit_test() -> None:
    fires: set[str] = set()
    silent: set[str] = set()
    for case in _load_yaml(RULES_TEST)["tests"]:
        for check in case.get("alert_rule_test", []):
            (fires if check.get("exp_alerts") else silent).add(check["alertname"])
    alerts = set(_alert_names())
    assert alerts - fires == set(), "alerts with no test where they fire"
    assert alerts - silent == set(), "alerts with no test where they must stay quiet"
    promql_tested = {
        name
        for case in _load_yaml(RULES_TEST)["tests"]
        for check in case.get("promql_expr_test", [])
        for name in RECORDING_RULE_NAME.findall(check["expr"])
    }
    assert len(promql_tested & _recording_rule_names()) >= 2


def test_rules_use_only_contract_metrics() -> None:
    texts = [rule["expr"] for rule in _rules()]
    texts += [text for rule in _rules() for text in rule.get("annotations", {}).values()]
    assert unknown_metric_names(texts, _allowed_names()) == set()


# --- the Grafana dashboard -----------------------------------------------------------


def test_dashboard_is_a_templated_grafana_dashboard() -> None:
    dashboard = _dashboard()
    assert dashboard["schemaVersion"] == 39
    variables = {variable["name"]: variable for variable in dashboard["templating"]["list"]}
    assert variables["DS_PROMETHEUS"]["type"] == "datasource"
    assert variables["DS_PROMETHEUS"]["query"] == "prometheus"
    assert variables["model"]["definition"] == "label_values(mlgate_model_info, model)"
    assert variables["version"]["definition"].startswith("label_values(mlgate_model_info")
    ids = [panel["id"] for panel in _panels(dashboard) + _rows(dashboard)]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for row in _rows(dashboard):
        assert "targets" not in row, row["title"]
    for panel in _panels(dashboard):
        assert panel["datasource"]["uid"] == "${DS_PROMETHEUS}", panel["title"]
        assert panel["targets"], f"panel {panel['title']!r} has no targets"
        for target in panel["targets"]:
            assert target["expr"].strip(), panel["title"]
            assert target["datasource"]["uid"] == "${DS_PROMETHEUS}", panel["title"]


def test_dashboard_uses_only_contract_metrics_and_recording_rules() -> None:
    dashboard = _dashboard()
    texts = _panel_exprs(dashboard) + _variable_queries(dashboard)
    assert unknown_metric_names(texts, _allowed_names()) == set()
    # Each contract metric is on the dashboard, so none is exported unwatched.
    used = {name for text in texts for name in METRIC_NAME.findall(text)}
    bases = {re.sub(r"_(bucket|count|sum)$", "", name) for name in used}
    assert set(CONTRACT_METRICS) - bases == set()


# Published from the stored quality evaluation (monitors/quality/gauges.py): every replica
# exports the same value, so a panel takes the max across replicas, never the sum.
QUALITY_SERIES = {name for name in CONTRACT_METRICS if "quality" in name or "label" in name} | {
    "mlgate_drift_finding"
}
# Several metrics per version (accuracy, F1, AUC...): a chart keeps the primary one, the
# one with a baseline.
PRIMARY = "and on (model, version, metric) mlgate_quality_baseline"


def test_the_quality_row_charts_every_quality_series_per_version() -> None:
    dashboard = _dashboard()
    (row,) = (row for row in _rows(dashboard) if row["title"] == "Quality")
    assert row["collapsed"] is False  # its panels follow it at the top level
    below = [p for p in _panels(dashboard) if p["gridPos"]["y"] > row["gridPos"]["y"]]
    exprs = [target["expr"] for panel in below for target in panel["targets"]]
    used = {re.sub(r"_(bucket|count|sum)$", "", n) for e in exprs for n in METRIC_NAME.findall(e)}
    assert QUALITY_SERIES - used == set()
    for expr in exprs:
        assert "sum" not in expr, expr
        assert re.search(r"\bmax by \(model, version\b", expr), expr
        for name in METRIC_NAME.findall(expr):
            if re.fullmatch(r"mlgate_quality(_estimated)?(_lower|_upper)?", name):
                assert PRIMARY in expr, expr


def test_name_check_reports_names_outside_the_contract() -> None:
    exprs = [
        "rate(mlgate_requests_total[5m])",
        "mlgate_request_latency_seconds_bucket",
        "mlgate:request_errors:ratio_rate5m",
    ]
    assert unknown_metric_names(exprs, _allowed_names()) == {
        "mlgate_request_latency_seconds_bucket",
        "mlgate:request_errors:ratio_rate5m",
    }


# --- the Prometheus helper -----------------------------------------------------------


def test_ensure_prometheus_finds_both_binaries() -> None:
    server, promtool = ensure_prometheus()
    assert server.name == "prometheus"
    assert promtool.name == "promtool"
    version = subprocess.run(
        [str(promtool), "--version"], capture_output=True, text=True, check=True
    )
    assert "promtool, version 2." in version.stdout + version.stderr


def test_ensure_prometheus_explains_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An empty PATH: neither the binaries nor apt-get can be found.
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(PrometheusError, match="install Debian's prometheus package"):
        ensure_prometheus()


@pytest.fixture(scope="module")
def rules_server() -> Iterator[str]:
    """One real Prometheus with deploy/prometheus/rules.yml loaded, no targets."""
    with prometheus_server([], rules=RULES) as url:
        yield url


def _evaluated_rule_groups(url: str, timeout_s: float = 30.0) -> list[dict[str, Any]]:
    """The rule groups once every rule was evaluated at least once (health not unknown)."""
    deadline = time.monotonic() + timeout_s
    while True:
        groups: list[dict[str, Any]] = api_get(url, "rules")["groups"]
        rules = [rule for group in groups for rule in group["rules"]]
        if rules and all(rule["health"] != "unknown" for rule in rules):
            return groups
        if time.monotonic() > deadline:
            raise AssertionError(f"rules not evaluated within {timeout_s}s: {groups}")
        time.sleep(0.2)


@pytest.mark.slow
def test_rules_load_and_evaluate_in_a_real_prometheus(rules_server: str) -> None:
    groups = _evaluated_rule_groups(rules_server)
    expected = sorted(group["name"] for group in _load_yaml(RULES)["groups"])
    assert sorted(group["name"] for group in groups) == expected
    loaded = {rule["name"]: rule for group in groups for rule in group["rules"]}
    assert set(loaded) == set(_alert_names()) | _recording_rule_names()
    unhealthy = {name: rule.get("lastError") for name, rule in loaded.items()}
    assert {name: err for name, err in unhealthy.items() if loaded[name]["health"] != "ok"} == {}


def _as_promql(expr: str) -> str:
    """A dashboard expression with Grafana's variables replaced by values Prometheus takes."""
    promql = re.sub(r'=~"\$(model|version)"', '=~".*"', expr)
    promql = promql.replace("$__rate_interval", "1m").replace("$__range", "1h")
    assert "$" not in promql, f"unreplaced Grafana variable in {expr!r}"
    return promql


@pytest.mark.slow
def test_every_dashboard_query_parses_in_a_real_prometheus(rules_server: str) -> None:
    dashboard = _dashboard()
    rejected: dict[str, str] = {}
    for expr in _panel_exprs(dashboard):
        try:
            query(rules_server, _as_promql(expr))
        except PrometheusError as error:
            rejected[expr] = str(error)
    # label_values(SELECTOR, LABEL) is Grafana's; the selector inside must be PromQL.
    for definition in _variable_queries(dashboard):
        match = re.fullmatch(r"label_values\((.+), *([a-z_]+)\)", definition)
        assert match, definition
        selector, label = match.groups()
        try:
            query(rules_server, f"count by ({label}) ({_as_promql(selector)})")
        except PrometheusError as error:
            rejected[definition] = str(error)
    assert rejected == {}


def test_the_quality_panels_answer_once_per_version_on_the_primary_metric(
    tmp_path: Path,
) -> None:
    """promtool evaluates the Quality row's queries over two replicas that export the same
    stored evaluation, with F1 published beside the primary metric (accuracy, the one with
    a baseline): one answer per version, on the primary metric, never doubled."""
    dashboard = _dashboard()
    fraud = 'model="fraud",version="3"'
    accuracy = f'{fraud},metric="accuracy"'
    series = {
        f"mlgate_quality{{{accuracy}}}": "0.81x40",
        f'mlgate_quality{{{fraud},metric="f1"}}': "0.5x40",
        f"mlgate_quality_lower{{{accuracy}}}": "0.79x40",
        f"mlgate_quality_estimated{{{accuracy}}}": "0.86x40",
        f'mlgate_quality_estimated{{{fraud},metric="f1"}}': "0.4x40",
        f"mlgate_quality_baseline{{{accuracy}}}": "0.9x40",
        f"mlgate_quality_degraded{{{fraud}}}": "1x40",
        f"mlgate_drift_finding{{{fraud}}}": "0x40",
        'mlgate_quality_degraded{model="churn",version="1"}': "0x40",
        'mlgate_drift_finding{model="churn",version="1"}': "1x40",
        # One label joined per second (15 per 15 s sample).
        f"mlgate_labelled_rows_total{{{fraud}}}": "0+15x40",
        # Half the labels within a minute, all within 10 minutes: p90 = 60 + 540 * 0.8.
        f'mlgate_label_delay_seconds_bucket{{{fraud},le="10"}}': "0x40",
        f'mlgate_label_delay_seconds_bucket{{{fraud},le="60"}}': "0+5x40",
        f'mlgate_label_delay_seconds_bucket{{{fraud},le="600"}}': "0+10x40",
        f'mlgate_label_delay_seconds_bucket{{{fraud},le="+Inf"}}': "0+10x40",
        f'mlgate_data_quality_out_of_range_share{{{fraud},feature="s3"}}': "0.6x40",
        f'mlgate_data_quality_out_of_range_share{{{fraud},feature="s4"}}': "0.1x40",
    }
    replicas = [
        {"series": name.replace("}", f',instance="{instance}",job="mlgate"}}'), "values": values}
        for instance in ("gw-1:8000", "gw-2:8000")
        for name, values in series.items()
    ]
    quality = "Quality: realised vs estimated vs baseline (primary metric)"
    # (panel, refId) -> what it must answer, in thousandths (promtool compares exactly).
    expected: dict[tuple[str, str], dict[str, int]] = {
        (quality, "A"): {f"{{{accuracy}}}": 810},
        (quality, "B"): {f"{{{accuracy}}}": 790},
        (quality, "D"): {f"{{{accuracy}}}": 860},
        (quality, "G"): {f"{{{accuracy}}}": 900},
        ("Quality state (latest evaluation)", "A"): {
            f"{{{fraud}}}": 2000,  # degraded
            '{model="churn",version="1"}': 1000,  # drift, quality holds
        },
        ("Labels joined to predictions", "A"): {f"{{{fraud}}}": 1000},
        ("Label delay p50 / p90", "B"): {f"{{{fraud}}}": 492000},
        ("Features most out of the reference's range (latest window)", "A"): {
            f'{{{fraud},feature="s3"}}': 600,
            f'{{{fraud},feature="s4"}}': 100,
        },
    }
    checks = [
        {
            "expr": f"round(1000 * ({_as_promql(_expr(dashboard, title, ref))}))",
            "eval_time": "9m",
            "exp_samples": [{"labels": labels, "value": value} for labels, value in want.items()],
        }
        for (title, ref), want in expected.items()
    ]
    document = {
        "rule_files": [],
        "evaluation_interval": "15s",
        "tests": [{"interval": "15s", "input_series": replicas, "promql_expr_test": checks}],
    }
    (tmp_path / "quality_test.yml").write_text(yaml.safe_dump(document, sort_keys=False))
    result = _run_promtool("test", "rules", str(tmp_path / "quality_test.yml"))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow
def test_query_raises_with_prometheus_error_text(rules_server: str) -> None:
    with pytest.raises(PrometheusError, match="parse error"):
        query(rules_server, "sum(rate(mlgate_requests_total[5m])")
    # A scalar result comes back in the same shape as a vector.
    (result,) = query(rules_server, "1 + 1")
    assert result["metric"] == {}
    assert result["value"][1] == "2"


@pytest.mark.slow
def test_prometheus_server_scrapes_a_target_and_stops() -> None:
    registry = prometheus_client.CollectorRegistry()
    depth = prometheus_client.Gauge(
        "mlgate_queue_depth", "rows waiting", ["model", "version"], registry=registry
    )
    depth.labels(model="fraud", version="3").set(7)
    exporter, thread = prometheus_client.start_http_server(0, addr="127.0.0.1", registry=registry)
    try:
        target = f"127.0.0.1:{exporter.server_port}"
        with prometheus_server([target]) as url:
            deadline = time.monotonic() + 30
            series = query(url, "mlgate_queue_depth")
            while not series and time.monotonic() < deadline:
                time.sleep(0.2)
                series = query(url, "mlgate_queue_depth")
            assert len(series) == 1
            assert series[0]["metric"] == {
                "__name__": "mlgate_queue_depth",
                "model": "fraud",
                "version": "3",
                "instance": target,
                "job": "mlgate",
            }
            assert series[0]["value"][1] == "7"
        # Stopped by its PID: nothing listens on its port any more.
        host, port = url.removeprefix("http://").split(":")
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection((host, int(port)), timeout=2).close()
    finally:
        exporter.shutdown()
        exporter.server_close()
        thread.join(timeout=5)


@pytest.mark.slow
def test_prometheus_server_reports_a_server_that_cannot_start(tmp_path: Path) -> None:
    broken = tmp_path / "rules.yml"
    broken.write_text('groups: [{name: broken, rules: [{alert: A, expr: "sum("}]}]\n')
    with (
        pytest.raises(PrometheusError, match="prometheus exited with 1") as raised,
        prometheus_server([], rules=broken),
    ):
        pytest.fail("the server should not have started")
    assert "error loading config" in str(raised.value)


@pytest.mark.slow
def test_api_get_raises_on_an_unknown_endpoint(rules_server: str) -> None:
    with pytest.raises(PrometheusError, match="HTTP 404"):
        api_get(rules_server, "no_such_endpoint")
    # A real endpoint answers normally.
    assert httpx.get(f"{rules_server}/-/healthy", timeout=5).status_code == 200

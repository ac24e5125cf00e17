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
# mlgate_inference_log_rows_total and, for the retraining loop, mlgate_feedback_rows_total.
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
}

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


def _panel_exprs(dashboard: dict[str, Any]) -> list[str]:
    return [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]


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


def test_promtool_unit_tests_can_fail(tmp_path: Path) -> None:
    """The same tests against rules that alert on 2 drifted checks instead of 3 fail."""
    weakened = RULES.read_text().replace(
        "(mlgate_drift_consecutive_detections) >= 3", "(mlgate_drift_consecutive_detections) >= 2"
    )
    assert weakened != RULES.read_text()
    (tmp_path / "rules.yml").write_text(weakened)
    (tmp_path / "rules_test.yml").write_text(RULES_TEST.read_text())
    result = _run_promtool("test", "rules", str(tmp_path / "rules_test.yml"))
    assert result.returncode != 0
    assert "alertname: MlgateDriftDetected" in result.stdout + result.stderr


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
        assert rule["labels"]["severity"] in {"page", "ticket"}, rule["alert"]


def test_the_expected_alerts_exist() -> None:
    assert sorted(_alert_names()) == sorted(
        [
            "MlgateLatencyBudgetFastBurn",
            "MlgateLatencyBudgetSlowBurn",
            "MlgateQueueSaturated",
            "MlgateRequestsRejected",
            "MlgateDriftDetected",
            "MlgateDriftMonitorStale",
        ]
    )
    drift = next(rule for rule in _rules() if rule.get("alert") == "MlgateDriftDetected")
    assert drift["labels"] == {"severity": "ticket", "action": "retrain"}


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
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for panel in dashboard["panels"]:
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

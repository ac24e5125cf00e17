from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from registry import Registry
from services.cli import app


def test_the_demo_runs_the_loop_so_far(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(
        app,
        [
            "--home",
            str(tmp_path),
            "demo",
            "--rows",
            "3000",
            "--requests",
            "60",
            "--concurrency",
            "4",
            "--json",
        ],
    )
    assert result.exit_code == 0, (result.stdout, result.stderr)
    outcome = json.loads(result.stdout)
    assert outcome["ref"] == "credit-risk:1"
    assert outcome["exports"]["onnx"]["status"] == "passed"
    assert outcome["exports"]["torchscript"]["status"] == "passed"
    assert outcome["promoted"] == {"alias": "production", "from": None, "to": 1}
    assert 0.6 < outcome["metrics"]["auc"] < 1.0
    traffic = outcome["traffic"]
    assert traffic["statuses"] == {"200": 60}
    assert traffic["requests"] == 60
    assert traffic["p50_ms"] > 0
    assert traffic["p99_ms"] >= traffic["p50_ms"]
    assert traffic["mean_batch_size"] >= 1

    registry = Registry(home=tmp_path)
    production = registry.get("credit-risk@production")
    assert production.lineage["trainer"] == "examples.credit_risk.train:train"
    assert production.signature.output_names == ["default_probability"]
    assert len(production.signature.feature_names["features"]) == 14
    assert production.lineage["datasets"][0]["source"].startswith(
        "generated://examples.credit_risk"
    )

    again = runner.invoke(
        app, ["--home", str(tmp_path), "demo", "--rows", "3000", "--requests", "0"]
    )
    assert again.exit_code == 0, again.stderr
    assert "credit-risk:2 is credit-risk@production" in again.stdout
    assert "production: 1 → 2" in again.stdout
    registry.close()

"""Batch jobs through a real gateway (in process, its lifespan running): a file in the batch
folder scored by the served version below live traffic, followed from its record, and every
way a job is refused before it starts."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pandas as pd
import pytest
from typer.testing import CliRunner

from registry.store import Registry
from services.cli import app
from tests.services.gateway.conftest import (
    FEATURES,
    PATIENCE_S,
    Gateway,
    HeldBatch,
    LiveServer,
    open_gateway,
)

pytestmark = pytest.mark.anyio


def _batch_folder(registry: Registry) -> Path:
    folder = registry.settings.home / "batch"
    folder.mkdir(exist_ok=True)
    return folder


def _frame(rows: int) -> pd.DataFrame:
    frame = pd.DataFrame(
        np.random.default_rng(2).standard_normal((rows, 6)).astype(np.float32), columns=FEATURES
    )
    frame.insert(0, "id", np.arange(rows) * 10)
    return frame


async def _finished(gateway: Gateway, job_id: int) -> dict[str, Any]:
    deadline = time.monotonic() + PATIENCE_S
    while True:
        job = (await gateway.client.get(f"/batch/jobs/{job_id}")).json()
        if job["status"] != "running":
            return job
        assert time.monotonic() < deadline, f"job {job_id} still running after {PATIENCE_S} s"
        await asyncio.sleep(0.02)


async def test_a_job_scores_a_file_with_the_served_version(
    gateway: Gateway, registry: Registry
) -> None:
    folder = _batch_folder(registry)
    frame = _frame(3000)
    frame.loc[5, "f2"] = np.inf
    frame.to_parquet(folder / "in.parquet")

    submitted = await gateway.client.post(
        "/batch/jobs",
        json={"model": "mlp", "input": "in.parquet", "output": "out/s.parquet", "keep": ["id"]},
    )
    assert submitted.status_code == 202, submitted.text
    job = submitted.json()
    assert submitted.headers["location"] == f"/batch/jobs/{job['id']}"
    assert (job["model"], job["version"], job["status"]) == ("mlp", 1, "running")
    live = await gateway.infer("mlp", np.ones((2, 6), np.float32))  # served meanwhile
    assert live.status_code == 200

    done = await _finished(gateway, job["id"])
    assert done["status"] == "succeeded", done
    assert (done["rows"], done["scored"], done["rejected"], done["progress"]) == (
        3000,
        2999,
        1,
        1.0,
    )
    assert done["runner"].startswith("gateway ")
    assert done["details"]["batch_size"] == 32  # the version's max_batch_size
    scores = pd.read_parquet(folder / "out" / "s.parquet")
    good = frame.drop(index=[5])
    assert scores["id"].tolist() == good["id"].tolist()
    _, _, onnx = registry.open_servable("mlp:1", "onnx")
    expected = ort.InferenceSession(str(onnx / "model.onnx")).run(
        None, {"x": good[FEATURES].to_numpy()}
    )[0]
    produced = scores.drop(columns=["row", "id"]).to_numpy()
    np.testing.assert_allclose(produced, expected.reshape(len(good), -1), rtol=1e-5, atol=1e-6)
    rejects = pd.read_parquet(done["rejects_uri"])
    assert rejects[["row", "reason"]].values.tolist() == [[5, "f2: NaN or infinite"]]

    listed = (await gateway.client.get("/batch/jobs", params={"model": "mlp"})).json()["jobs"]
    assert [j["id"] for j in listed] == [job["id"]]
    assert [r.id for r in registry.batch_runs.list("mlp")] == [job["id"]]


async def test_a_job_that_fails_is_recorded_and_the_gateway_keeps_serving(
    gateway: Gateway, registry: Registry
) -> None:
    folder = _batch_folder(registry)
    frame = _frame(30_000)  # CSV past its first block: the bad value is met mid-file
    frame.to_csv(folder / "in.csv", index=False)
    lines = (folder / "in.csv").read_text().splitlines()
    lines[-5] = lines[-5].rsplit(",", 1)[0] + ",oops"
    (folder / "in.csv").write_text("\n".join(lines) + "\n")

    submitted = await gateway.client.post(
        "/batch/jobs", json={"model": "mlp", "version": 1, "input": "in.csv", "output": "o.csv"}
    )
    assert submitted.status_code == 202, submitted.text
    done = await _finished(gateway, submitted.json()["id"])
    assert done["status"] == "failed"
    assert "invalid value 'oops'" in done["error"]
    assert not (folder / "o.csv").exists()
    assert sorted(p.name for p in folder.iterdir()) == ["in.csv"]
    assert (await gateway.infer("mlp", np.ones((1, 6), np.float32))).status_code == 200


async def test_what_a_job_is_refused_before_it_starts(registry: Registry, hold: Any) -> None:
    folder = _batch_folder(registry)
    _frame(7).to_parquet(folder / "seven.parquet")
    _frame(10).drop(columns=["f4"]).to_parquet(folder / "lacking.parquet")
    held: HeldBatch = hold(7)
    async for gateway in open_gateway(registry, inline_max_ms=0):
        job = {"model": "mlp", "input": "seven.parquet", "output": "o.parquet"}
        cases: list[tuple[dict[str, Any], int, str]] = [
            ({**job, "colour": "red"}, 400, "unknown batch job fields ['colour']"),
            ({**job, "model": None}, 400, "'model' must be a non-empty string"),
            ({**job, "model": "nope"}, 404, "nope"),
            ({**job, "version": 2, "alias": "production"}, 400, "not both"),
            ({**job, "version": 2}, 404, "mlp:2"),
            ({**job, "version": "³"}, 400, "'version' must be"),
            ({**job, "alias": "staging"}, 404, "staging"),
            ({**job, "input": "../../etc/passwd.csv"}, 400, "inside the batch folder"),
            ({**job, "input": "/etc/hosts.csv"}, 400, "inside the batch folder"),
            ({**job, "input": "a\x00b.csv"}, 400, "not a usable path"),
            ({**job, "input": "x" * 300 + ".csv"}, 400, "not a usable path"),
            ({**job, "input": "missing.parquet"}, 400, "no such file"),
            ({**job, "output": "o.json"}, 400, "ends in .parquet, .pq or .csv"),
            ({**job, "input": "lacking.parquet"}, 400, "lacks columns ['f4']"),
            ({**job, "keep": "id"}, 400, "'keep' must be a list"),
            ({**job, "keep": ["nope"]}, 400, "columns to keep ['nope']"),
            ({**job, "max_reject_share": 2}, 400, "from 0 to 1"),
            ({**job, "max_reject_share": True}, 400, "from 0 to 1"),
            ({**job, "chunk_rows": 0}, 400, "'chunk_rows' must be"),
            ({**job, "output": "seven.parquet"}, 400, "three different files"),
        ]
        for body, status, message in cases:
            answer = await gateway.client.post("/batch/jobs", json=body)
            assert answer.status_code == status, (body, answer.text)
            assert message in answer.json()["error"], (body, answer.text)
        assert registry.batch_runs.list() == []  # nothing was recorded
        assert (await gateway.client.post("/batch/jobs", content=b"[1]")).status_code == 400

        first = await gateway.client.post("/batch/jobs", json=job)
        assert first.status_code == 202
        await asyncio.to_thread(held.started.wait, PATIENCE_S)
        second = await gateway.client.post("/batch/jobs", json={**job, "output": "p.parquet"})
        assert second.status_code == 429
        assert "is running in this gateway process" in second.json()["error"]
        assert second.headers["retry-after"]
        held.release()
        assert (await _finished(gateway, first.json()["id"]))["status"] == "succeeded"

        assert (await gateway.client.get("/batch/jobs/999")).status_code == 404
        assert (await gateway.client.get("/batch/jobs/abc")).status_code == 400


async def test_a_job_needs_the_admin(registry: Registry) -> None:
    async for remote in open_gateway(registry, client_host="10.0.0.5"):
        answer = await remote.client.post(
            "/batch/jobs", json={"model": "mlp", "input": "a.csv", "output": "b.csv"}
        )
        assert answer.status_code == 403
        assert (await remote.client.get("/batch/jobs")).status_code == 200


def test_mlgate_predict_submits_to_a_gateway_and_follows_the_job(
    live: LiveServer, registry: Registry, tmp_path: Path
) -> None:
    folder = _batch_folder(registry)
    _frame(500).to_parquet(folder / "in.parquet")
    _frame(5).drop(columns=["f0"]).to_parquet(folder / "lacking.parquet")
    runner = CliRunner()
    home = ["--home", str(tmp_path / "elsewhere")]  # the command opens no registry of its own
    remote = ["--gateway", live.url, "--json"]

    done = runner.invoke(
        app, [*home, "predict", "mlp@production", "in.parquet", "-o", "out.csv", *remote]
    )
    assert done.exit_code == 0, (done.stdout, done.stderr)
    job = json.loads(done.stdout)
    assert (job["status"], job["version"], job["scored"]) == ("succeeded", 1, 500)
    assert pd.read_csv(folder / "out.csv")["row"].tolist() == list(range(500))

    refused = runner.invoke(
        app, [*home, "predict", "mlp", "lacking.parquet", "-o", "o.csv", "--gateway", live.url]
    )
    assert refused.exit_code == 1
    assert refused.stderr.startswith("error: 400: ")
    assert "lacks columns ['f0']" in refused.stderr
    unserved = runner.invoke(
        app, [*home, "predict", "mlp:2", "in.parquet", "-o", "o.csv", "--gateway", live.url]
    )
    assert unserved.exit_code == 1
    assert "404" in unserved.stderr
    local_only = runner.invoke(
        app,
        [
            *home,
            "predict",
            "mlp",
            "in.parquet",
            "-o",
            "o.csv",
            "--gateway",
            live.url,
            "--threads",
            "2",
        ],
    )
    assert local_only.exit_code == 2
    assert "a gateway runs the version as it serves it" in local_only.stderr

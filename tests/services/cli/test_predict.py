"""`mlgate predict` and `mlgate runs` over a real registry, a real ONNX export and real
Parquet and CSV files: the predictions equal the runtime's on the same rows, rejected rows
carry their reason, the output is whole or absent, and every run is recorded."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from registry.manifest import sha256_file
from registry.store import Registry
from tests.services.cli.test_cli import FEATURES, _register
from tests.services.conftest import Run


@pytest.fixture
def served(mlgate: Run, files: dict[str, Path]) -> str:
    _register(mlgate, files)
    mlgate("export", "churn:1", "--format", "onnx")
    mlgate("promote", "churn", "1", "--alias", "production", "--reason", "first")
    return "churn@production"


def _frame(rows: int, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(rng.standard_normal((rows, 6)), columns=FEATURES)
    frame.insert(0, "id", [f"r{i}" for i in range(rows)])
    return frame[["id", *reversed(FEATURES)]]  # the file's column order is not the model's


def _onnx(tmp_path: Path) -> ort.InferenceSession:
    registry = Registry(home=tmp_path / "home")
    try:
        _, _, folder = registry.open_servable("churn:1", "onnx")
        return ort.InferenceSession(str(folder / "model.onnx"))
    finally:
        registry.close()


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_a_file_is_scored_as_the_runtime_scores_it(
    mlgate: Run, served: str, tmp_path: Path, suffix: str
) -> None:
    frame = _frame(5000)
    frame.loc[7, "f3"] = np.inf  # refused by the deployment (allow_non_finite is off)
    frame.loc[4000, "f3"] = None  # an empty cell
    source = tmp_path / f"in{suffix}"
    frame.to_parquet(source) if suffix == ".parquet" else frame.to_csv(source, index=False)
    output = tmp_path / "out" / f"scores{suffix}"

    result = mlgate(
        "predict",
        served,
        str(source),
        "-o",
        str(output),
        "--keep",
        "id",
        "--chunk-rows",
        "700",
        "--batch-size",
        "64",
        "--json",
    )
    run = json.loads(result.stdout)
    assert (run["model"], run["version"], run["status"]) == ("churn", 1, "succeeded")
    assert (run["rows"], run["scored"], run["rejected"]) == (5000, 4998, 2)
    assert run["input_digest"] == sha256_file(source)
    assert run["output_digest"] == sha256_file(output)
    assert run["reasons"] == {"f3: NaN or infinite": 1, "f3: empty": 1}

    scored = pd.read_parquet(output) if suffix == ".parquet" else pd.read_csv(output)
    good = frame.drop(index=[7, 4000])
    assert scored["row"].tolist() == good.index.tolist()
    assert scored["id"].tolist() == good["id"].tolist()
    session = _onnx(tmp_path)
    expected = session.run(None, {"x": good[FEATURES].to_numpy(np.float32)})[0]
    outputs = [c for c in scored.columns if c not in ("row", "id")]
    np.testing.assert_allclose(
        scored[outputs].to_numpy(), expected.reshape(len(good), -1), rtol=1e-5, atol=1e-6
    )

    rejects = (
        pd.read_parquet(run["rejects_uri"])
        if suffix == ".parquet"
        else pd.read_csv(run["rejects_uri"])
    )
    assert rejects["row"].tolist() == [7, 4000]
    assert rejects["reason"].tolist() == ["f3: NaN or infinite", "f3: empty"]
    assert rejects["id"].tolist() == ["r7", "r4000"]

    [listed] = json.loads(mlgate("runs", "churn", "--json").stdout)
    assert listed["id"] == run["id"]
    assert (
        json.loads(mlgate("runs", "--digest", run["output_digest"], "--json").stdout)[0]["id"]
        == run["id"]
    )
    assert json.loads(mlgate("runs", "--digest", "0" * 64, "--json").stdout) == []


def test_a_file_that_cannot_be_scored_is_one_line_and_writes_nothing(
    mlgate: Run, served: str, tmp_path: Path
) -> None:
    output = tmp_path / "scores.parquet"
    lacking = tmp_path / "lacking.parquet"
    _frame(10).drop(columns=["f2"]).to_parquet(lacking)
    text = tmp_path / "text.parquet"
    _frame(10).astype({"f1": str}).to_parquet(text)
    truncated = tmp_path / "truncated.parquet"
    _frame(1000).to_parquet(truncated)
    truncated.write_bytes(truncated.read_bytes()[:-100])
    cut = tmp_path / "cut.csv"
    _frame(1000).to_csv(cut, index=False)
    cut.write_text(cut.read_text()[:-40])  # the last line loses its last fields
    word = tmp_path / "word.csv"
    _frame(20_000).to_csv(word, index=False)  # 2.4 MB: the word is past the first block
    lines = word.read_text().splitlines()
    lines[19_000] = lines[19_000].rsplit(",", 1)[0] + ",abc"  # found after rows were written
    word.write_text("\n".join(lines) + "\n")

    (tmp_path / "model.json").write_text("{}")
    cases = {
        lacking: "lacks columns ['f2']",
        text: "input 'x' takes float32 numbers",
        truncated: "not a readable parquet file",
        cut: "columns",
        word: "invalid value 'abc'",
        tmp_path / "none.csv": "no such file",
        tmp_path / "model.json": "ends in .parquet, .pq or .csv",
    }
    for source, message in cases.items():
        failed = mlgate("predict", served, str(source), "-o", str(output), code=1)
        assert message in failed.stderr, (source.name, failed.stderr)
        assert failed.stderr.startswith("error: ")
        assert failed.stderr.count("\n") == 1
        assert sorted(p.name for p in tmp_path.iterdir() if "scores" in p.name) == []
    usage = mlgate(
        "predict", served, str(lacking), "-o", str(output), "--max-reject-share", "2", code=2
    )
    assert "between 0 and 1" in usage.stderr
    missing_keep = mlgate("predict", served, str(word), "-o", str(output), "--keep", "nope", code=1)
    assert "lacks the columns to keep ['nope']" in missing_keep.stderr
    assert (
        "no version 9" in mlgate("predict", "churn:9", str(word), "-o", str(output), code=1).stderr
    )
    wrong_suffix = mlgate("predict", served, str(word), "-o", str(tmp_path / "s.txt"), code=1)
    assert "ends in .parquet, .pq or .csv" in wrong_suffix.stderr


def test_too_many_rejects_fail_the_run_when_told_and_keep_the_rejects(
    mlgate: Run, served: str, tmp_path: Path
) -> None:
    frame = _frame(100)
    frame.loc[:9, "f0"] = np.inf  # 10 %
    source = tmp_path / "in.parquet"
    frame.to_parquet(source)
    output = tmp_path / "scores.parquet"

    failed = mlgate(
        "predict", served, str(source), "-o", str(output), "--max-reject-share", "0.05", code=1
    )
    assert "10.0% of rows were rejected (10 of 100)" in failed.stderr
    assert not output.exists()
    assert pq.read_table(tmp_path / "scores.rejects.parquet").num_rows == 10
    [run] = json.loads(mlgate("runs", "churn", "--json").stdout)
    assert run["status"] == "failed"
    assert "max-reject-share" in run["error"]
    assert run["output_digest"] is None  # nothing was written where it names

    passed = json.loads(
        mlgate(
            "predict", served, str(source), "-o", str(output), "--max-reject-share", "0.1", "--json"
        ).stdout
    )
    assert (passed["status"], passed["scored"]) == ("succeeded", 90)
    shown = mlgate("runs").stdout
    for word in ("churn:1", "failed", "succeeded", "max-reject-share"):
        assert word in shown


PEAK = """
import resource, subprocess, sys
done = subprocess.run(sys.argv[1:], capture_output=True, text=True)
if done.returncode:
    sys.exit(done.stderr)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)  # KiB, the child's peak
"""


def _peak_kib(home: Path, source: Path, output: Path) -> int:
    command = [sys.executable, "-m", "services.cli", "--home", str(home), "predict"]
    command += ["churn@production", str(source), "-o", str(output), "--chunk-rows", "25000"]
    done = subprocess.run(
        [sys.executable, "-c", PEAK, *command], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    return int(done.stdout)


def test_a_million_rows_score_with_the_memory_of_a_quarter_million(
    served: str, tmp_path: Path
) -> None:
    rng = np.random.default_rng(5)
    peaks = {}
    for rows in (250_000, 1_000_000):  # 10 and 40 chunks: the pipeline is full in both
        table = pa.table({name: rng.standard_normal(rows) for name in FEATURES})
        source = tmp_path / f"in-{rows}.parquet"
        pq.write_table(table, source, row_group_size=100_000)
        output = tmp_path / f"out-{rows}.parquet"
        peaks[rows] = _peak_kib(tmp_path / "home", source, output)
        assert pq.ParquetFile(output).metadata.num_rows == rows
    # Holding the whole file would add about 65 MiB for the extra 750,000 rows (6 float64
    # inputs, their float32 tensors, the row numbers and the outputs); chunked, the peaks
    # measured 10 MiB apart (docs/batch.md).
    assert peaks[1_000_000] - peaks[250_000] < 20 * 1024, peaks

"""load_tests.peer_report on a small synthetic result shaped like bench_peers.one_model's."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from load_tests.peer_report import LOADS, SLO_MS, targets, write_report

PEERS = ("mlgate", "bentoml", "triton")
SHARES = {"50%": 0.5, "90%": 0.9, "150%": 1.5, "300%": 3.0}
CONNECTIONS = (1, 8, 64, 256)
LIMIT = {  # load_tests.limit's JSON: string keys, as json.loads gives them
    "rows_per_s": {"1": 2_000.0, "8": 6_000.0, "64": 9_000.0, "256": 12_000.0},
    "best_batch": 256,
    "best_rows_per_s": 12_000.0,
    "per_row_ratio_1_vs_64": 20.0,
}


def _row(
    ok_rps: float,
    p99_ms: float | None,
    *,
    errors: dict[str, int] | None = None,
    offered_rps: float | None = None,
) -> dict[str, Any]:
    """One cell of `summary`, as bench_peers.median_row (+ offered_rps for open loads)."""
    row: dict[str, Any] = {
        "ok_rps": ok_rps,
        "p50_ms": None if p99_ms is None else round(p99_ms / 4, 3),
        "p99_ms": p99_ms,
        "mean_batch": 1.0,
        "errors": errors or {},
        "refused_rps": 0.0,
        "refusals": {k: v for k, v in (errors or {}).items() if k in ("429", "503")},
        "refusals_without_retry_after": 0,
        "p99_includes_refusals": False,
        "requests": int(ok_rps * 2),
        "server_cpu_us": 180.5,
        "cpu_us_per_success": None if errors else 180.5,
        "cpu_us_per_refusal_derived": None,
        "generator_cpu_s": 0.25,
        "send_lag_p99_ms": None if offered_rps is None else 0.01,
        "repeats": 1,
        "failed_runs": 0,
        "failures": [],
        "drain_failed": 0,
    }
    if offered_rps is not None:
        row["offered_rps"] = offered_rps
    return row


def _result(
    *,
    c64: dict[str, tuple[float, float]] | None = None,
    over: dict[str, Any] | None = None,
    peers: tuple[str, ...] = PEERS,
) -> dict[str, Any]:
    """A result whose c64 cells are (ok_rps, p99_ms) per peer; `over` replaces mlgate's 150%."""
    c64 = {"mlgate": (8000.0, 20.0), "bentoml": (3000.0, 40.0), "triton": (6000.0, 30.0)} | (
        c64 or {}
    )
    saturation = c64["mlgate"][0] if "mlgate" in peers else 1000.0
    summary: dict[str, dict[str, dict[str, Any]]] = {}
    runs: list[dict[str, Any]] = []
    for peer in peers:
        rps, p99 = c64[peer]
        cells = {
            "c1": _row(rps / 4, p99 / 10),
            "c8": _row(rps / 2, p99 / 4),
            "c64": _row(rps, p99),
            "c256": _row(rps * 0.9, p99 * 4),
        }
        for label, share in SHARES.items():
            offered = saturation * share
            cells[label] = _row(min(offered, rps), p99 * share, offered_rps=offered)
        if peer == "mlgate":
            cells["150%"] = _row(
                saturation, 120.0, errors={"503": 40}, offered_rps=saturation * 1.5
            )
            if over is not None:
                cells["150%"] = {**cells["150%"], **over}
        summary[peer] = cells
        for load in CONNECTIONS:
            runs.append(
                {"shape": "closed", "load": load, "ok_rps": rps, "p50_ms": 1.0, "p99_ms": p99}
                | {"errors": {}, "generator_cpu_s": 0.3, "requests": int(rps * 2)}
                | {"server_cpu_s": 1.5, "mean_batch": 1.0, "peer": peer, "repeat": 0}
                | {"seconds": 2.0}
            )
        for share in SHARES.values():
            runs.append(
                {"shape": "open", "load": saturation * share, "errors": {}, "requests": 100}
                | {"ok_rps": rps, "p50_ms": 1.0, "p99_ms": p99, "all_p99_ms": p99}
                | {"send_lag_p99_ms": 0.02 * share, "tick_lag_p99_ms": 1.1}
                | {"generator_cpu_s": 0.2}
                | {"server_cpu_s": 1.0, "mean_batch": 1.0, "peer": peer, "repeat": 0}
                | {"seconds": 2.0, "share": share}
            )
    return {
        "key": "wide",  # the in-process target is judged for the compute-bound model only
        "model": "wide-mlp",
        "widths": [16, 64, 64, 4],
        "limit": LIMIT,
        "saturation_rps": saturation,
        "summary": summary,
        "runs": runs,
        "date": "2026-11-23",
        "seconds": 2.0,
        "repeats": 1,
        "command": "python -m load_tests.bench_peers --models tiny --repeats 1",
        "connections": list(CONNECTIONS),
        "open_shares": list(SHARES.values()),
        "saturation_from": "mlgate's closed loop at 64 connections",
        "cpu_method": "per success: server CPU ÷ 200s",
        "cpu_reference": {"mlgate": {"load": "c64", "cpu_us_per_success": 180.5, "runs": 1}},
        "workers": None,
        "failures": [],
        "events": [],
    }


def _verdicts(result: dict[str, Any]) -> dict[str, str]:
    """Each target's verdict, keyed by a word from its goal."""
    found: dict[str, str] = {}
    for goal, _, verdict in targets(result):
        key = next(w for w in ("bentoml", "triton", "in-process", "150 %") if w in goal)
        found[key] = verdict
    return found


def test_all_targets_met() -> None:
    rows = targets(_result())
    assert [goal for goal, _, _ in rows] == [
        "≥ 2× bentoml's throughput at 64 connections at equal or better p99",
        "≥ 1× triton's throughput at 64 connections",
        "≥ 80 % of the in-process limit at 64 connections (batch ≤ 64 there)",
        f"at 150 % load: accepted p99 ≤ SLO ({SLO_MS:g} ms), excess only 429/503",
    ]
    assert [verdict for _, _, verdict in rows] == ["met"] * 4
    measured = [m for _, m, _ in rows]
    assert measured[0] == "2.67× (p99 20.0 vs 40.0 ms)"
    assert measured[1] == "1.33× (p99 20.0 vs 30.0 ms)"
    # 8,000 req/s of one row each against 9,000 rows/s at batch 64, 12,000 at batch 256
    assert measured[2] == "89% of batch-64 onnxruntime (9,000 rows/s); 67% of its best batch"
    assert measured[3] == "p99 120.0 ms; refused 503: 40"


@pytest.mark.parametrize(
    ("mlgate", "bentoml", "verdict"),
    [
        ((8000.0, 20.0), (3000.0, 40.0), "met"),  # 2.67×, lower p99
        ((6000.0, 20.0), (3000.0, 40.0), "met"),  # exactly 2×
        ((6000.0, 40.0), (3000.0, 40.0), "met"),  # equal p99 is "equal or better"
        ((5900.0, 20.0), (3000.0, 40.0), "**missed**"),  # under 2×
        ((4000.0, 10.0), (3000.0, 40.0), "**missed**"),  # faster and quicker, but not 2×
        ((9000.0, 41.0), (3000.0, 40.0), "**missed**"),  # 3×, at a worse p99
        ((8000.0, 20.0), (0.0, 40.0), "met"),  # bentoml answered nothing: infinitely ahead
    ],
)
def test_the_bentoml_target_needs_twice_the_throughput_at_no_worse_p99(
    mlgate: tuple[float, float], bentoml: tuple[float, float], verdict: str
) -> None:
    found = _verdicts(_result(c64={"mlgate": mlgate, "bentoml": bentoml}))
    assert found["bentoml"] == verdict


@pytest.mark.parametrize(
    ("triton", "verdict"),
    [
        ((7999.0, 5.0), "met"),  # p99 does not count against Triton
        ((8000.0, 20.0), "met"),  # 1× is enough
        ((8001.0, 20.0), "**missed**"),
    ],
)
def test_the_triton_target_is_throughput_alone(triton: tuple[float, float], verdict: str) -> None:
    assert _verdicts(_result(c64={"triton": triton}))["triton"] == verdict


@pytest.mark.parametrize(("rps", "verdict"), [(7_200.0, "met"), (7_199.0, "**missed**")])
def test_the_limit_target_is_80_percent_of_batch_64(rps: float, verdict: str) -> None:
    assert _verdicts(_result(c64={"mlgate": (rps, 20.0)}))["in-process"] == verdict


@pytest.mark.parametrize(
    ("over", "verdict"),
    [
        ({"p99_ms": 120.0, "errors": {"429": 5, "503": 40}}, "met"),
        ({"p99_ms": SLO_MS, "errors": {}}, "met"),  # at the SLO is within it
        ({"p99_ms": 251.0, "errors": {"503": 40}}, "**missed**"),
        ({"p99_ms": 120.0, "errors": {"503": 40, "504": 1}}, "**missed**"),
        ({"p99_ms": 120.0, "errors": {"500": 2}}, "**missed**"),
        ({"p99_ms": 120.0, "errors": {"unfinished": 3}}, "**missed**"),
        ({"p99_ms": 120.0, "errors": {"connect_errors": 1}}, "**missed**"),
        ({"p99_ms": None, "errors": {"503": 12_000}}, "**missed**"),  # nothing accepted
    ],
)
def test_the_overload_target_needs_p99_within_slo_and_only_429_or_503(
    over: dict[str, Any], verdict: str
) -> None:
    rows = targets(_result(over=over))
    goal, measured, found = rows[-1]
    assert goal.startswith("at 150 % load")
    assert found == verdict
    if over["p99_ms"] is None:
        assert measured.startswith("p99 – ms")


def test_only_the_peers_present_are_judged() -> None:
    assert list(_verdicts(_result(peers=("mlgate",)))) == ["in-process", "150 %"]
    assert list(_verdicts(_result(peers=("mlgate", "triton")))) == [
        "triton",
        "in-process",
        "150 %",
    ]
    assert targets(_result(peers=("bentoml", "triton"))) == []  # nothing to judge mlgate by


def test_the_limit_target_is_not_judged_for_the_overhead_bound_model() -> None:
    result = _result()
    result["key"] = "tiny"
    assert list(_verdicts(result)) == ["bentoml", "triton", "150 %"]


def test_write_report_writes_the_tables_and_a_png(tmp_path: Path) -> None:
    result = _result(c64={"bentoml": (5000.0, 40.0)}, over={"errors": {"503": 40, "504": 2}})
    stem = tmp_path / "x"
    write_report(result, stem)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.md", "x.png"]
    assert (tmp_path / "x.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")

    text = (tmp_path / "x.md").read_text()
    lines = text.splitlines()
    assert lines[0] == "# Peer benchmark: wide-mlp (16, 64, 64, 4), 2026-11-23"
    assert "`python -m load_tests.bench_peers --models tiny --repeats 1`" in text
    assert "(8,000 req/s, mlgate's closed loop at 64 connections)" in text  # saturation
    assert "In-process onnxruntime on core 0 (rows/s by batch size): 1: 2,000, 8: 6,000, " in text
    assert "64: 9,000, 256: 12,000;" in text
    assert "batch 64 is 20.0× cheaper per row than batch 1" in text
    # the main table: a row per peer and load, with the open loads' offered rate
    header = (
        "| peer | load | answered 200/s | refused/s | p50 ms | p99 ms | mean batch "
        "| server CPU µs per 200 | refusals | other errors | runs |"
    )
    assert header in lines
    table = [line for line in lines if line.startswith(("| mlgate |", "| bentoml |", "| triton |"))]
    assert len(table) == len(PEERS) * len(LOADS)
    assert "| mlgate | c64 | 8,000 | 0 | 5.00 | 20.00 | 1.00 | 180 | 0 | 0 | 1/1 |" in lines
    assert (
        "| mlgate | 150% (12,000/s) | 8,000 | 0 | 30.00 | 120.00 | 1.00 | 180 | 503: 40 "
        "| 504: 2 | 1/1 |" in lines
    )
    assert (
        "| triton | 50% (4,000/s) | 4,000 | 0 | 3.75 | 15.00 | 1.00 | 180 | 0 | 0 | 1/1 |" in lines
    )
    # the ratios: a column per other peer
    assert "| load | bentoml | triton |" in lines
    assert "| c64 | 1.60× (20.0 / 40.0) | 1.33× (20.0 / 30.0) |" in lines
    ratios = [
        line for line in lines if line.startswith(tuple(f"| {x} |" for x in LOADS)) and "×" in line
    ]
    assert len(ratios) == len(LOADS)
    # the targets, with their verdicts: bentoml at 1.6× and a 504 in the overload are missed
    assert "| target | measured | verdict |" in lines
    verdicts = [line.rsplit("|", 2)[1].strip() for line in lines if line.startswith("| ≥ ")]
    verdicts += [line.rsplit("|", 2)[1].strip() for line in lines if line.startswith("| at 150")]
    assert verdicts == ["**missed**", "met", "met", "**missed**"]
    # the generators' own load, and the plot
    assert (
        "Load generators: wrk used at most 15% of its core; the open-loop generator at most 10%"
        in text
    )
    assert "![throughput and p99 against load](x.png)" in lines


def test_write_report_without_mlgate_has_no_ratios_or_targets(tmp_path: Path) -> None:
    write_report(_result(peers=("bentoml", "triton")), tmp_path / "peers")
    text = (tmp_path / "peers.md").read_text()
    assert "| bentoml | c64 |" in text
    assert "mlgate ÷ peer" not in text
    assert "| target |" not in text
    assert (tmp_path / "peers.png").read_bytes().startswith(b"\x89PNG")


def test_write_report_draws_loads_without_an_answered_p99(tmp_path: Path) -> None:
    """A peer that answered nothing at 150 % has p99 None: a gap in the plot, – in the table."""
    result = _result()
    result["summary"]["triton"]["150%"] = _row(0.0, None, errors={"unfinished": 9}, offered_rps=1)
    write_report(result, tmp_path / "gap")
    text = (tmp_path / "gap.md").read_text()
    assert "| triton | 150% (1/s) | 0 | 0 | – | – | 1.00 | 180 | 0 | unfinished: 9 | 1/1 |" in text
    assert "| 150% | 1.33× (120.0 / –) |" not in text  # ratio against 0 answers is inf
    assert "inf× (120.0 / –)" in text
    assert (tmp_path / "gap.png").read_bytes().startswith(b"\x89PNG")


def test_write_report_of_an_overhead_bound_model(tmp_path: Path) -> None:
    """An in-process limit far above every peer (the tiny model's) is left off the plot."""
    result = _result()
    result["key"] = "tiny"
    result["limit"] = {
        **LIMIT,
        "rows_per_s": {"1": 200_000.0, "64": 5_700_000.0, "256": 8_200_000.0},
    }
    write_report(result, tmp_path / "tiny")
    assert "64: 5,700,000, 256: 8,200,000;" in (tmp_path / "tiny.md").read_text()
    assert "in-process" not in _verdicts(result)
    assert (tmp_path / "tiny.png").read_bytes().startswith(b"\x89PNG")


def test_write_report_of_refusals_cpu_workers_and_failures(tmp_path: Path) -> None:
    """The new rows: refusals apart from goodput, CPU per success and per refusal, the
    workers table with its ratio, the failed runs."""
    result = _result(peers=("mlgate",))
    over = result["summary"]["mlgate"]["300%"]
    over.update(
        refused_rps=12_000.0,
        refusals={"429": 100, "503": 200},
        refusals_without_retry_after=200,
        errors={"429": 100, "503": 200},
        cpu_us_per_success=None,
        cpu_us_per_refusal_derived=35.5,
    )
    result["summary"]["mlgate"]["c256"].update(
        refusals={"429": 5}, errors={"429": 5}, p99_includes_refusals=True
    )
    cell = _row(8000.0, 20.0) | {"processes": [1], "server_cores": 0.9, "generator_cores": 0.1}
    result["workers"] = {
        "connections": 64,
        "cells": {
            "1": cell | {"tree_changed": 0},
            "2": cell | {"ok_rps": 12_000.0, "processes": [4], "tree_changed": 1},
        },
        "ratio_2_over_1": {"ok_rps": 1.5, "p99_ms": 1.0, "server_cpu_us": 1.0},
    }
    result["failures"] = [
        {"peer": "mlgate", "shape": "closed", "load": 8, "repeat": 0, "reason": "it hung"}
    ]
    write_report(result, tmp_path / "new")
    text = (tmp_path / "new.md").read_text()
    lines = text.splitlines()
    assert (
        "| mlgate | 300% (24,000/s) | 8,000 | 12,000 | 15.00 | 60.00 | 1.00 | 180 "
        "| 429: 100, 503: 200 (200 without Retry-After) | 0 | 1/1 |" in lines
    )
    assert (
        "| mlgate | c256 | 7,200 | 0 | 20.00 | 80.00 † | 1.00 | 180 | 429: 5 | 0 | 1/1 |" in lines
    )
    assert "P = 180 µs, from 1 c64 run without a refusal." in text
    assert "| 300% | 8,000 | 12,000 | – | 36 |" in lines
    assert "| c64 | 8,000 | 0 | 180 | – |" in lines
    assert "Neither the server nor wrk is pinned" in text
    assert "| 2 | 4 | 12,000 | 0 | 5.00 | 20.00 | 1.00 | 180 | 0.90 | 0.10 " in text
    assert "2 workers ÷ 1 worker: answered 200s/s 1.50×" in text
    assert "- mlgate closed 8 0: it hung" in lines

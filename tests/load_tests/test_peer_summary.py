"""load_tests.peer_summary on hand-made runs: goodput apart from refusals, CPU per success
and per refusal, failed runs, the workers comparison, the saturation."""

from __future__ import annotations

from typing import Any

import pytest

from load_tests.peer_summary import (
    derive_refusal_cpu,
    median_row,
    saturation,
    summarize,
    workers_summary,
)


def _run(
    load: int,
    ok: int,
    refused: dict[str, int] | None = None,
    *,
    cpu_s: float = 1.0,
    shape: str = "closed",
    peer: str = "mlgate",
    **extra: Any,
) -> dict[str, Any]:
    refused = refused or {}
    return {
        "peer": peer,
        "shape": shape,
        "load": load,
        "status": "ok",
        "ok": ok,
        "ok_rps": ok / 2,
        "refused": refused,
        "refused_rps": sum(refused.values()) / 2,
        "refusals_without_retry_after": refused.get("503", 0),
        "errors": dict(refused),
        "p50_ms": 1.0,
        "p99_ms": 5.0,
        "p99_of": "all" if shape != "open" else "200",
        "mean_batch": 1.0,
        "requests": ok + sum(refused.values()),
        "server_cpu_s": cpu_s,
        "duration_s": 2.0,
        "generator_cpu_s": 0.2,
        "seconds": 2.0,
        "repeat": 0,
        "processes": 1,
        **extra,
    }


def _failed(load: int, reason: str = "mlgate did not answer", **tags: Any) -> dict[str, Any]:
    return {"peer": "mlgate", "shape": "closed", "load": load, "status": "failed"} | {
        "reason": reason,
        **tags,
    }


def test_refusals_are_apart_from_goodput_and_failed_runs_are_counted() -> None:
    row = median_row(
        [
            _run(64, 1000, {"429": 10}),
            _run(64, 3000, {"503": 30}),
            _run(64, 2000),
            _failed(64, "it hung"),
        ]
    )
    assert row["ok_rps"] == 1000.0  # the median of 500, 1500, 1000: 200s only
    assert row["refused_rps"] == 5.0
    assert row["refusals"] == {"429": 10, "503": 30}
    assert row["refusals_without_retry_after"] == 30
    assert row["p99_includes_refusals"] is True  # wrk's p99, refusals among the answers
    assert row["repeats"] == 3
    assert row["failed_runs"] == 1
    assert row["failures"] == ["it hung"]
    # CPU per 200: 1 s over 1000, 3000, 2000 successes; not a success's own cost here
    assert row["server_cpu_us"] == 500.0
    assert row["cpu_us_per_success"] is None


def test_a_cell_of_failed_runs_only_has_no_figures() -> None:
    row = median_row([_failed(8), _failed(8)])
    assert row["ok_rps"] is None
    assert row["server_cpu_us"] is None
    assert row["repeats"] == 0
    assert row["failed_runs"] == 2


def test_cpu_per_refusal_is_derived_from_the_unrefused_c64_runs() -> None:
    runs = [
        _run(64, 10_000, cpu_s=2.0),  # 200 µs a success
        _run(64, 10_000, {"503": 5}, cpu_s=9.0),  # refused: not a price
        _run(256, 10_000, {"429": 5_000}, cpu_s=2.5),  # 2.0 s on successes, 0.5 on 5,000
        _run(256, 10_000, {"429": 4_000}, cpu_s=2.2),  # 0.2 s on 4,000 refusals
        _run(8, 10_000, {"429": 100}, cpu_s=3.0),  # under 5 % refused: too noisy
    ]
    cells = {"c64": median_row(runs[:2]), "c256": median_row(runs[2:4]), "c8": median_row(runs[4:])}
    reference = derive_refusal_cpu(cells, runs)
    assert reference == {"load": "c64", "cpu_us_per_success": 200.0, "runs": 1}
    assert cells["c256"]["cpu_us_per_refusal_derived"] == pytest.approx(75.0)  # of 100, 50
    assert cells["c256"]["cpu_us_per_refusal_upper_bound"] is False
    assert cells["c8"]["cpu_us_per_refusal_derived"] is None
    assert cells["c64"]["cpu_us_per_refusal_derived"] is None


def test_nothing_is_derived_without_an_unrefused_c64_run() -> None:
    runs = [_run(64, 100, {"503": 50}), _run(256, 100, {"503": 50})]
    cells = {"c64": median_row(runs[:1]), "c256": median_row(runs[1:])}
    assert derive_refusal_cpu(cells, runs) is None
    assert cells["c256"]["cpu_us_per_refusal_derived"] is None


def test_summarize_keeps_the_order_run_and_the_offered_rate() -> None:
    runs = [
        _run(1, 100),
        _run(64, 400),
        _run(1000, 300, shape="open", share=0.5),
        _run(100, 50, peer="fastapi"),
    ]
    summary, references = summarize(runs, ["mlgate", "fastapi", "bentoml"])
    assert list(summary) == ["mlgate", "fastapi"]  # bentoml ran nothing
    assert list(summary["mlgate"]) == ["c1", "c64", "50%"]
    assert summary["mlgate"]["50%"]["offered_rps"] == 1000
    assert references["mlgate"]["cpu_us_per_success"] == 2500.0
    assert references["fastapi"] is None


def test_saturation_is_mlgates_best_median_closed_loop() -> None:
    runs = [_run(1, 100), _run(64, 400), _run(64, 600), _run(256, 300), _failed(8)]
    assert saturation(runs) == (250.0, "mlgate's closed loop at 64 connections")
    assert saturation([_failed(64)]) == (None, "no successful closed-loop run of mlgate")


def test_workers_summary_has_the_ratio_of_two_workers_to_one() -> None:
    def worker(count: int, ok: int, processes: int, **extra: Any) -> dict[str, Any]:
        run = _run(64, ok, shape="workers", peer=f"mlgate-w{count}", **extra)
        return run | {"workers": count, "processes": processes}

    runs = [
        worker(1, 1000, 1),
        worker(2, 1800, 4),
        worker(2, 1600, 4, tree_changed={"exited": 1, "started": 1}),
        _failed(64, "w2 hung") | {"shape": "workers", "workers": 2},
    ]
    found = workers_summary(runs)
    assert found is not None
    one, two = found["cells"]["1"], found["cells"]["2"]
    assert (one["processes"], two["processes"]) == ([1], [4])
    assert two["ok_rps"] == 850.0
    assert two["failed_runs"] == 1
    assert two["tree_changed"] == 1
    assert two["server_cores"] == 0.5  # 1 s of CPU in 2 s
    assert found["ratio_2_over_1"]["ok_rps"] == 1.7
    assert workers_summary([_run(64, 10)]) is None


def test_a_derived_cost_with_requests_left_unanswered_is_an_upper_bound() -> None:
    runs = [
        _run(64, 10_000, cpu_s=2.0),
        _run(1000, 10_000, {"503": 5_000}, cpu_s=2.5, shape="open", share=3.0),
    ]
    runs[1]["errors"]["unfinished"] = 151  # over 1 % of the 15,000 answers
    cells = {"c64": median_row(runs[:1]), "300%": median_row(runs[1:])}
    derive_refusal_cpu(cells, runs)
    assert cells["300%"]["cpu_us_per_refusal_derived"] == 100.0
    assert cells["300%"]["cpu_us_per_refusal_upper_bound"] is True
    runs[1]["errors"]["unfinished"] = 150  # 1 % exactly: still a plain estimate
    derive_refusal_cpu(cells, runs)
    assert cells["300%"]["cpu_us_per_refusal_upper_bound"] is False

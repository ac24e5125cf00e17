"""The peer benchmark's medians: a cell per peer and load, CPU per success and per refusal,
the workers comparison.

A cell holds the medians of its successful runs (`repeats`) and counts the failed ones
(`failed_runs`, with their reasons). Goodput and refusals stay apart: `ok_rps` (200s per
second, the throughput), `refused_rps` (429s and 503s per second), `refusals` (totals by
status), `refusals_without_retry_after` (totals), `errors` (every outcome but 200, as
before: refusals, 504s, socket errors, unfinished requests).

CPU, from the server's process tree, per run:

    server_cpu_us        server CPU ÷ 200s: what each success cost, refusals' work included
    cpu_us_per_success   the same, only in cells without a refusal (a success's own cost)
    cpu_us_per_refusal_derived
                         (server CPU − 200s × P) ÷ refusals, the median over the cell's
                         runs where refusals are at least 5 % of the answers; P is the same
                         peer's CPU per success at c64, the median over its c64 runs without
                         a refusal: derived, not measured, and it assumes a success costs
                         under overload what it costs at 64 connections unrefused
    cpu_us_per_refusal_upper_bound
                         more than 1 % of the requests were left unanswered (unfinished at
                         the end of the open loop's drain, broken connections): the server
                         may have computed them, and their CPU is in the figure
"""

from __future__ import annotations

import statistics
from typing import Any

__all__ = [
    "MIN_REFUSED_SHARE",
    "REFERENCE",
    "derive_refusal_cpu",
    "label",
    "median_row",
    "saturation",
    "summarize",
    "workers_summary",
]

REFERENCE = "c64"  # the unrefused cell whose CPU per success prices the successes elsewhere
MIN_REFUSED_SHARE = 0.05  # below it, the subtraction's noise swamps the refusals' cost
UNANSWERED_SHARE = 0.01  # more requests left unanswered: the derived cost is an upper bound


def label(run: dict[str, Any]) -> str:
    """The cell a run belongs to: c64, 150%, w2 …"""
    if run["shape"] == "open":
        return f"{run['share']:.0%}"
    if run["shape"] == "workers":
        return f"w{run['workers']}"
    return f"c{run['load']}"


def _cpu_per_success(run: dict[str, Any]) -> float | None:
    return run["server_cpu_s"] * 1e6 / run["ok"] if run.get("ok") else None


def median_row(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The medians of the cell's successful runs, the totals of their outcomes."""
    good = [r for r in runs if r.get("status", "ok") == "ok"]

    def med(key: str) -> float | None:
        return _median([r[key] for r in good if r.get(key) is not None])

    def total(key: str) -> dict[str, int]:
        found: dict[str, int] = {}
        for run in good:
            for status, count in run.get(key, {}).items():
                found[status] = found.get(status, 0) + count
        return found

    refusals = total("refused")
    per_success = _median([x for r in good if (x := _cpu_per_success(r)) is not None])
    return {
        "ok_rps": med("ok_rps"),
        "refused_rps": med("refused_rps"),
        "refusals": refusals,
        "refusals_without_retry_after": sum(r.get("refusals_without_retry_after", 0) for r in good),
        "p50_ms": med("p50_ms"),
        "p99_ms": med("p99_ms"),
        # wrk's p99 is of every answer: with refusals in the cell it is not the 200s' alone
        "p99_includes_refusals": bool(refusals) and any(r.get("p99_of") == "all" for r in good),
        "mean_batch": med("mean_batch"),
        "errors": total("errors"),
        "requests": sum(r.get("requests", 0) for r in good),
        "server_cpu_us": None if per_success is None else round(per_success, 1),
        "cpu_us_per_success": None if refusals or per_success is None else round(per_success, 1),
        "cpu_us_per_refusal_derived": None,  # filled in by derive_refusal_cpu
        "cpu_us_per_refusal_upper_bound": False,
        "generator_cpu_s": med("generator_cpu_s"),
        "send_lag_p99_ms": med("send_lag_p99_ms"),
        "repeats": len(good),
        "failed_runs": len(runs) - len(good),
        "failures": [r["reason"] for r in runs if r.get("status") == "failed"],
        "drain_failed": sum(1 for r in good if r.get("drain_failed")),
    }


def _refused(run: dict[str, Any]) -> int:
    return sum(run.get("refused", {}).values())


def _unanswered(run: dict[str, Any]) -> int:
    return sum(run["errors"].get(key, 0) for key in ("unfinished", "socket"))


def derive_refusal_cpu(cells: dict[str, dict[str, Any]], runs: list[dict[str, Any]]) -> Any:
    """Fill in `cpu_us_per_refusal_derived` of a peer's cells that have refusals; return the
    price of a success: the median CPU per success of its REFERENCE runs without a refusal
    (None, and nothing derived, where every one of them had refusals)."""
    good = [r for r in runs if r.get("status", "ok") == "ok"]
    prices = [
        price
        for r in good
        if label(r) == REFERENCE and not _refused(r) and (price := _cpu_per_success(r))
    ]
    reference = _median(prices)
    if reference is None:
        return None
    for name, cell in cells.items():
        chosen = [
            r
            for r in good
            if label(r) == name
            and r["shape"] != "probe"
            and _refused(r)
            and _refused(r) >= MIN_REFUSED_SHARE * (_refused(r) + r["ok"])
        ]
        if chosen:
            estimates = [
                (r["server_cpu_s"] * 1e6 - r["ok"] * reference) / _refused(r) for r in chosen
            ]
            cell["cpu_us_per_refusal_derived"] = round(statistics.median(estimates), 1)
            # requests left unanswered (the open loop's `unfinished`, broken connections)
            # may have been computed all the same: their CPU is charged to the refusals
            cell["cpu_us_per_refusal_upper_bound"] = any(
                _unanswered(r) > UNANSWERED_SHARE * (_refused(r) + r["ok"]) for r in chosen
            )
    return {"load": REFERENCE, "cpu_us_per_success": round(reference, 1), "runs": len(prices)}


def summarize(
    runs: list[dict[str, Any]], peers: list[str]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """{peer: {cell: medians}} for the closed and open shapes, in the order run; and each
    peer's price of a success that priced its refusals (derive_refusal_cpu)."""
    summary: dict[str, Any] = {}
    references: dict[str, Any] = {}
    for name in peers:
        mine = [r for r in runs if r["peer"] == name and r["shape"] in ("closed", "open")]
        probes = [r for r in runs if r["peer"] == name and r["shape"] == "probe"]
        cells: dict[str, Any] = {}
        for run in mine:
            cells.setdefault(label(run), [])
        for cell in cells:
            chosen = [r for r in mine if label(r) == cell]
            cells[cell] = median_row(chosen)
            if chosen[0]["shape"] == "open":
                cells[cell]["offered_rps"] = chosen[0]["load"]
        references[name] = derive_refusal_cpu(cells, mine + probes)  # probes: c64 too
        if cells:
            summary[name] = cells
    return summary, references


def saturation(runs: list[dict[str, Any]]) -> tuple[float | None, str]:
    """mlgate's closed-loop saturation: the best median 200s/s over its connection counts."""
    medians: dict[int, list[float]] = {}
    for run in runs:
        if run["peer"] == "mlgate" and run["shape"] in ("closed", "probe"):
            medians.setdefault(run["load"], [])
            if run["status"] == "ok":
                medians[run["load"]].append(run["ok_rps"])
    best = {c: statistics.median(v) for c, v in medians.items() if v}
    if not best:
        return None, "no successful closed-loop run of mlgate"
    top = max(best, key=lambda c: best[c])
    return best[top], f"mlgate's closed loop at {top} connections"


def workers_summary(runs: list[dict[str, Any]]) -> dict[str, Any] | None:
    """mlgate --workers 1 against --workers 2: medians, processes seen, and the ratios."""
    mine = [r for r in runs if r["shape"] == "workers"]
    if not mine:
        return None
    cells: dict[str, Any] = {}
    for count in sorted({r["workers"] for r in mine}):
        chosen = [r for r in mine if r["workers"] == count]
        good = [r for r in chosen if r["status"] == "ok"]
        cells[str(count)] = {
            **median_row(chosen),
            "processes": sorted({r["processes"] for r in good}),
            "server_cores": _median([r["server_cpu_s"] / r["duration_s"] for r in good]),
            "generator_cores": _median([r["generator_cpu_s"] / r["duration_s"] for r in good]),
            "tree_changed": sum(1 for r in good if r.get("tree_changed")),
        }
    ratio: dict[str, float | None] = {}
    if "1" in cells and "2" in cells:
        for key in ("ok_rps", "p99_ms", "cpu_us_per_success", "server_cpu_us"):
            one, two = cells["1"][key], cells["2"][key]
            ratio[key] = round(two / one, 3) if one and two is not None else None
    return {"connections": mine[0]["load"], "cells": cells, "ratio_2_over_1": ratio}


def _median(values: list[float]) -> float | None:
    return round(statistics.median(values), 3) if values else None

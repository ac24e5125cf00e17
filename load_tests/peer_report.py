"""The peer benchmark's report: a Markdown table per model, the ratios, the targets, a PNG plot."""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["targets", "write_report"]

SLO_MS = 250.0
LOADS = ("c1", "c8", "c64", "50%", "90%", "150%")


def _fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return str(value)


def _errors(errors: dict[str, int]) -> str:
    return ", ".join(f"{k}: {v}" for k, v in sorted(errors.items())) or "0"


def targets(result: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(goal, measured, verdict) for each of the issue's targets this run can judge."""
    summary = result["summary"]
    rows: list[tuple[str, str, str]] = []
    mine = summary.get("mlgate", {})
    if not mine:
        return rows
    top = mine["c64"]
    for peer, factor in (("bentoml", 2.0), ("triton", 1.0)):
        if peer not in summary:
            continue
        theirs = summary[peer]["c64"]
        ratio = top["ok_rps"] / theirs["ok_rps"] if theirs["ok_rps"] else float("inf")
        p99_ok = top["p99_ms"] <= theirs["p99_ms"]
        met = ratio >= factor and (p99_ok or peer != "bentoml")
        rows.append(
            (
                f"≥ {factor:g}× {peer}'s throughput at 64 connections"
                + (" at equal or better p99" if peer == "bentoml" else ""),
                f"{ratio:.2f}× (p99 {top['p99_ms']:.1f} vs {theirs['p99_ms']:.1f} ms)",
                "met" if met else "**missed**",
            )
        )
    limit = result["limit"]["rows_per_s"]
    if result.get("key") == "wide":  # the target is set for the compute-bound model only
        share64, share_best = top["ok_rps"] / limit["64"], top["ok_rps"] / max(limit.values())
        rows.append(
            (
                "≥ 80 % of the in-process limit at 64 connections (batch ≤ 64 there)",
                f"{share64:.0%} of batch-64 onnxruntime ({limit['64']:,.0f} rows/s); "
                f"{share_best:.0%} of its best batch",
                "met" if share64 >= 0.8 else "**missed**",
            )
        )
    over = mine["150%"]
    bad = {k: v for k, v in over["errors"].items() if k not in ("429", "503")}
    rows.append(
        (
            f"at 150 % load: accepted p99 ≤ SLO ({SLO_MS:g} ms), excess only 429/503",
            f"p99 {_fmt(over['p99_ms'])} ms; refused {_errors(over['errors'])}",
            "met"
            if over["p99_ms"] is not None and over["p99_ms"] <= SLO_MS and not bad
            else "**missed**",
        )
    )
    return rows


def _plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    for peer, loads in result["summary"].items():
        ys = [loads[x]["ok_rps"] for x in LOADS]
        p99 = [loads[x]["p99_ms"] for x in LOADS]
        left.plot(LOADS, ys, marker="o", label=peer)
        right.plot(
            LOADS, [p if p is not None else float("nan") for p in p99], marker="o", label=peer
        )
    limit = result["limit"]["rows_per_s"]["64"]
    top = max(
        loads["ok_rps"] or 0 for peer in result["summary"].values() for loads in peer.values()
    )
    if limit < 3 * top:  # an overhead-bound model's limit would flatten every line
        left.axhline(limit, color="grey", linestyle="--", label="in-process, batch 64")
    left.set(
        title=f"{result['model']}: answered requests/s",
        xlabel="load (closed c=N, open % of mlgate's saturation)",
        ylabel="requests/s",
    )
    right.axhline(SLO_MS, color="grey", linestyle=":", label="mlgate SLO")
    right.set(title="p99 latency of answered requests", xlabel="load", ylabel="ms", yscale="log")
    left.legend(fontsize=8)
    right.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def write_report(result: dict[str, Any], stem: Path) -> None:
    summary, limit = result["summary"], result["limit"]
    lines = [
        f"# Peer benchmark: {result['model']} {tuple(result['widths'])}, {result['date']}",
        "",
        f"`{result['command']}` — {result['seconds']:g} s a run, {result['repeats']} repeats, "
        "medians. Every server on core 0 with one onnxruntime thread; the load generator on "
        "core 1. Closed loop: wrk. Open loop: load_tests.openloop at 50/90/150 % of "
        f"mlgate's closed-loop saturation ({result['saturation_rps']:,.0f} req/s).",
        "",
        "In-process onnxruntime on core 0 (rows/s by batch size): "
        + ", ".join(f"{b}: {v:,.0f}" for b, v in limit["rows_per_s"].items())
        + f"; batch 64 is {limit['per_row_ratio_1_vs_64']}× cheaper per row than batch 1.",
        "",
        "| peer | load | answered req/s | p50 ms | p99 ms | mean batch | server CPU µs/req "
        "| not 200 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for peer, loads in summary.items():
        for load in LOADS:
            row = loads[load]
            label = load if load.startswith("c") else f"{load} ({row['offered_rps']:,.0f}/s)"
            lines.append(
                f"| {peer} | {label} | {_fmt(row['ok_rps'], 0)} | {_fmt(row['p50_ms'], 2)} | "
                f"{_fmt(row['p99_ms'], 2)} | {_fmt(row['mean_batch'], 2)} | "
                f"{_fmt(row['server_cpu_us'], 0)} | {_errors(row['errors'])} |"
            )
    others = [p for p in summary if p != "mlgate"]
    if "mlgate" in summary and others:
        lines += [
            "",
            "mlgate ÷ peer, answered requests/s (p99 mlgate / peer, ms):",
            "",
            "| load | " + " | ".join(others) + " |",
            "|---|" + "---|" * len(others),
        ]
        for load in LOADS:
            mine = summary["mlgate"][load]
            cells = []
            for peer in others:
                theirs = summary[peer][load]
                ratio = mine["ok_rps"] / theirs["ok_rps"] if theirs["ok_rps"] else float("inf")
                cells.append(f"{ratio:.2f}× ({_fmt(mine['p99_ms'])} / {_fmt(theirs['p99_ms'])})")
            lines.append(f"| {load} | " + " | ".join(cells) + " |")
    goals = targets(result)
    if goals:
        lines += ["", "| target | measured | verdict |", "|---|---|---|"]
        lines += [f"| {goal} | {measured} | {verdict} |" for goal, measured, verdict in goals]
    wrk = [r["generator_cpu_s"] / r["seconds"] for r in result["runs"] if r["shape"] == "closed"]
    # The generator kept its schedule if, wherever the server kept up (everything answered,
    # at the offered rate), requests left as soon as they were issued: a slow generator
    # would delay them all alike.
    lag = [
        r["send_lag_p99_ms"]
        for r in result["runs"]
        if r["shape"] == "open"
        and not r["errors"]
        and r["ok_rps"] >= 0.98 * r["load"]
        and r["send_lag_p99_ms"] is not None
    ]
    generator = [
        r["generator_cpu_s"] / r["seconds"] for r in result["runs"] if r["shape"] == "open"
    ]
    lines += [
        "",
        f"Load generators: wrk used at most {max(wrk):.0%} of its core; the open-loop generator "
        f"at most {max(generator):.0%}"
        + (
            f"; in every open-loop run the server kept up with, a request left at most "
            f"{max(lag):.2f} ms (p99) after it was issued"
            if lag
            else ""
        )
        + ".",
        "",
        f"![throughput and p99 against load]({stem.name}.png)",
        "",
    ]
    stem.with_suffix(".md").write_text("\n".join(lines))
    _plot(result, stem.with_suffix(".png"))

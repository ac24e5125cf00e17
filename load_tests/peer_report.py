"""The peer benchmark's report: a Markdown table per model, the ratios, mlgate's CPU per success
and per refusal, the workers comparison, the targets, the failed runs, a PNG plot.

Renders whatever loads the result holds (a partial run, --shapes closed say, has no open
rows), and results written before refusals were counted apart (their rows show "–").
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["LOADS", "SLO_MS", "targets", "write_report"]

SLO_MS = 250.0
LOADS = ("c1", "c8", "c64", "c256", "50%", "90%", "150%", "300%")
REFUSALS = ("429", "503")


def _fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return str(value)


def _errors(errors: dict[str, int]) -> str:
    return ", ".join(f"{k}: {v}" for k, v in sorted(errors.items())) or "0"


def _ratio(mine: float | None, theirs: float | None) -> str:
    if mine is None or theirs is None:
        return "–"
    return f"{mine / theirs:.2f}×" if theirs else "inf×"


def _loads(cells: dict[str, Any]) -> list[str]:
    """The cells present, in LOADS order (then any others, as stored)."""
    return [x for x in LOADS if x in cells] + [x for x in cells if x not in LOADS]


def targets(result: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(goal, measured, verdict) for each of the issue's targets this run can judge."""
    summary = result["summary"]
    rows: list[tuple[str, str, str]] = []
    mine = summary.get("mlgate", {})
    top = mine.get("c64")
    if top is not None and top["ok_rps"] is not None:
        for peer, factor in (("bentoml", 2.0), ("triton", 1.0)):
            theirs = summary.get(peer, {}).get("c64")
            if theirs is None or theirs["ok_rps"] is None:
                continue
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
        limit = (result.get("limit") or {}).get("rows_per_s")
        if limit and result.get("key") == "wide":  # set for the compute-bound model only
            share64, share_best = top["ok_rps"] / limit["64"], top["ok_rps"] / max(limit.values())
            rows.append(
                (
                    "≥ 80 % of the in-process limit at 64 connections (batch ≤ 64 there)",
                    f"{share64:.0%} of batch-64 onnxruntime ({limit['64']:,.0f} rows/s); "
                    f"{share_best:.0%} of its best batch",
                    "met" if share64 >= 0.8 else "**missed**",
                )
            )
    over = mine.get("150%")
    if over is not None:
        bad = {k: v for k, v in over["errors"].items() if k not in REFUSALS}
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


def _refusals(row: dict[str, Any]) -> str:
    found = row.get("refusals")
    if found is None:  # an older result: refusals were among the errors
        found = {k: v for k, v in row["errors"].items() if k in REFUSALS}
    text = _errors(found)
    bare = row.get("refusals_without_retry_after")
    if found and bare:
        text += f" ({bare:,} without Retry-After)"
    return text


def _main_table(summary: dict[str, Any]) -> list[str]:
    lines = [
        "| peer | load | answered 200/s | refused/s | p50 ms | p99 ms | mean batch "
        "| server CPU µs per 200 | refusals | other errors | runs |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for peer, loads in summary.items():
        for load in _loads(loads):
            row = loads[load]
            name = load if load.startswith("c") else f"{load} ({row['offered_rps']:,.0f}/s)"
            p99 = _fmt(row["p99_ms"], 2) + (" †" if row.get("p99_includes_refusals") else "")
            others = {k: v for k, v in row["errors"].items() if k not in REFUSALS}
            if row.get("drain_failed"):
                others["did not drain"] = row["drain_failed"]
            runs = row["repeats"] + row.get("failed_runs", 0)
            lines.append(
                f"| {peer} | {name} | {_fmt(row['ok_rps'], 0)} | {_fmt(row.get('refused_rps'), 0)} "
                f"| {_fmt(row['p50_ms'], 2)} | {p99} | {_fmt(row['mean_batch'], 2)} | "
                f"{_fmt(row['server_cpu_us'], 0)} | {_refusals(row)} | {_errors(others)} | "
                f"{row['repeats']}/{runs} |"
            )
    return lines


def _ratios(summary: dict[str, Any]) -> list[str]:
    others = [p for p in summary if p != "mlgate"]
    if "mlgate" not in summary or not others:
        return []
    lines = [
        "",
        "mlgate ÷ peer, answered 200s/s (p99 mlgate / peer, ms):",
        "",
        "| load | " + " | ".join(others) + " |",
        "|---|" + "---|" * len(others),
    ]
    for load in _loads(summary["mlgate"]):
        mine = summary["mlgate"][load]
        cells = []
        for peer in others:
            theirs = summary[peer].get(load)
            if theirs is None:
                cells.append("–")
                continue
            cells.append(
                f"{_ratio(mine['ok_rps'], theirs['ok_rps'])} "
                f"({_fmt(mine['p99_ms'])} / {_fmt(theirs['p99_ms'])})"
            )
        lines.append(f"| {load} | " + " | ".join(cells) + " |")
    return lines


def _cpu(result: dict[str, Any]) -> list[str]:
    mine = result["summary"].get("mlgate")
    if not mine or "cpu_method" not in result:
        return []
    lines = [
        "",
        "mlgate's CPU (its process tree) per success and per refusal. "
        + result["cpu_method"][0].upper()
        + result["cpu_method"][1:]
        + ". The per-refusal figure is **derived, not measured**: it assumes a success costs "
        "under overload what it costs at 64 connections unrefused (larger batches under "
        "overload make successes cheaper, and the figure too low, even negative); ≤ marks "
        "an upper bound, where over 1 % of the requests were left unanswered (the server may "
        "have computed them, and their CPU is charged to the refusals). "
        + _price(result.get("cpu_reference", {}).get("mlgate")),
        "",
        "| load | answered 200/s | refused/s | CPU µs per success | CPU µs per refusal (derived) |",
        "|---|---|---|---|---|",
    ]
    for load in _loads(mine):
        row = mine[load]
        lines.append(
            f"| {load} | {_fmt(row['ok_rps'], 0)} | {_fmt(row.get('refused_rps'), 0)} | "
            f"{_fmt(row.get('cpu_us_per_success'), 0)} | "
            + ("≤ " if row.get("cpu_us_per_refusal_upper_bound") else "")
            + f"{_fmt(row.get('cpu_us_per_refusal_derived'), 0)} |"
        )
    return lines


def _price(reference: dict[str, Any] | None) -> str:
    if reference is None:
        return "No c64 run without a refusal: nothing could be derived."
    return (
        f"P = {reference['cpu_us_per_success']:,.0f} µs, from {reference['runs']} "
        f"{reference['load']} run{'s' if reference['runs'] > 1 else ''} without a refusal."
    )


def _workers(result: dict[str, Any]) -> list[str]:
    workers = result.get("workers")
    if not workers:
        return []
    lines = [
        "",
        f"`mlgate serve --workers N`, wrk at {workers['connections']} connections. Neither the "
        "server nor wrk is pinned: the workers use both cores, and wrk (unpinned too) shares "
        "them, so its CPU comes out of the same two cores (the generator column).",
        "",
        "| workers | processes | answered 200/s | refused/s | p50 ms | p99 ms | mean batch "
        "| server CPU µs per 200 | server cores | wrk cores | other errors | runs |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for count, row in workers["cells"].items():
        others = {k: v for k, v in row["errors"].items() if k not in REFUSALS}
        if row.get("tree_changed"):
            others["a process exited or started"] = row["tree_changed"]
        p99 = _fmt(row["p99_ms"], 2) + (" †" if row.get("p99_includes_refusals") else "")
        lines.append(
            f"| {count} | {', '.join(map(str, row['processes'])) or '–'} | "
            f"{_fmt(row['ok_rps'], 0)} | {_fmt(row['refused_rps'], 0)} | "
            f"{_fmt(row['p50_ms'], 2)} | {p99} | {_fmt(row['mean_batch'], 2)} | "
            f"{_fmt(row['server_cpu_us'], 0)} | {_fmt(row['server_cores'], 2)} | "
            f"{_fmt(row['generator_cores'], 2)} | {_errors(others)} | "
            f"{row['repeats']}/{row['repeats'] + row['failed_runs']} |"
        )
    ratio = workers["ratio_2_over_1"]
    if ratio:
        lines += [
            "",
            f"2 workers ÷ 1 worker: answered 200s/s {_fmt(ratio['ok_rps'], 2)}×, "
            f"p99 {_fmt(ratio['p99_ms'], 2)}×, server CPU per 200 "
            f"{_fmt(ratio['server_cpu_us'], 2)}×.",
        ]
    return lines


def _resumes(result: dict[str, Any]) -> str:
    """How the successful runs' resumes went: slow answers, SIGCONTs sent again."""
    resumes = [r["resume"] for r in result["runs"] if r.get("resume")]
    if not resumes:
        return ""
    slowest = max(x["waited_s"] for x in resumes)
    nudged = sum(1 for x in resumes if x["resent_sigcont"])
    refused = sum(1 for x in resumes if x["failed_probes"])
    return (
        f"After resuming, every peer answered within {slowest:.2f} s; in {refused} of "
        f"{len(resumes)} runs a first probe failed before one answered; SIGCONT was sent again "
        f"to a process still stopped in {nudged}."
    )


def _failures(result: dict[str, Any]) -> list[str]:
    failures, events = result.get("failures", []), result.get("events", [])
    if "failures" not in result:
        return []
    lines = ["", "Failed runs: none."]
    if failures or events:
        lines = ["", f"Failed runs and starts ({len(failures)}; details in the JSON):", ""]
        for f in failures:
            keys = ("peer", "shape", "load", "share", "workers", "repeat")
            lines.append(f"- {' '.join(str(f[k]) for k in keys if k in f)}: {f['reason']}")
        lines += [f"- {e['peer']} {e['event']} (after: {e['after']})" for e in events]
    resumes = _resumes(result)
    return [*lines, "", resumes] if resumes else lines


def _generators(result: dict[str, Any]) -> str:
    runs = [r for r in result["runs"] if r.get("status", "ok") == "ok"]
    wrk = [r["generator_cpu_s"] / r["seconds"] for r in runs if r["shape"] == "closed"]
    generator = [r["generator_cpu_s"] / r["seconds"] for r in runs if r["shape"] == "open"]
    # The generator kept its schedule if, wherever the server kept up (everything answered,
    # at the offered rate), requests left as soon as they were issued: a slow generator
    # would delay them all alike.
    lag = [
        r["send_lag_p99_ms"]
        for r in runs
        if r["shape"] == "open"
        and not r["errors"]
        and r["ok_rps"] >= 0.98 * r["load"]
        and r["send_lag_p99_ms"] is not None
    ]
    parts = []
    if wrk:
        parts.append(f"wrk used at most {max(wrk):.0%} of its core")
    if generator:
        parts.append(f"the open-loop generator at most {max(generator):.0%}")
    if lag:
        parts.append(
            f"in every open-loop run the server kept up with, a request left at most "
            f"{max(lag):.2f} ms (p99) after it was issued"
        )
    return f"Load generators: {'; '.join(parts)}." if parts else ""


def _plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    shown = [x for x in LOADS if any(x in cells for cells in result["summary"].values())]
    for peer, loads in result["summary"].items():
        xs = [i for i, x in enumerate(shown) if x in loads]
        ys = [loads[shown[i]]["ok_rps"] for i in xs]
        p99 = [loads[shown[i]]["p99_ms"] for i in xs]
        left.plot(xs, [y if y is not None else float("nan") for y in ys], marker="o", label=peer)
        right.plot(xs, [p if p is not None else float("nan") for p in p99], marker="o", label=peer)
    for axes in (left, right):
        axes.set_xticks(range(len(shown)), shown)
    limit = (result.get("limit") or {}).get("rows_per_s", {}).get("64")
    top = max(
        (loads["ok_rps"] or 0 for peer in result["summary"].values() for loads in peer.values()),
        default=0,
    )
    if limit and limit < 3 * top:  # an overhead-bound model's limit would flatten every line
        left.axhline(limit, color="grey", linestyle="--", label="in-process, batch 64")
    left.set(
        title=f"{result['model']}: answered (200) requests/s",
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
    summary, limit = result["summary"], result.get("limit")
    shapes = result.get("shapes", ("closed", "open"))
    shares = "/".join(f"{s * 100:g}" for s in result.get("open_shares", (0.5, 0.9, 1.5)))
    closed = " / ".join(str(c) for c in result.get("connections", (1, 8, 64)))
    saturation = result.get("saturation_rps")
    setup = [
        f"Closed loop: wrk at {closed} connections." if "closed" in shapes else "",
        f"Open loop: load_tests.openloop at {shares} % of mlgate's closed-loop saturation "
        f"({_fmt(saturation, 0)} req/s"
        + (f", {result['saturation_from']}" if "saturation_from" in result else "")
        + ")."
        if "open" in shapes
        else "",
        "Workers: see below." if "workers" in shapes else "",
    ]
    lines = [
        f"# Peer benchmark: {result['model']} {tuple(result['widths'])}, {result['date']}",
        "",
        f"`{result['command']}` — {result['seconds']:g} s a run, {result['repeats']} repeats, "
        "medians. Every server on core 0 with one onnxruntime thread; the load generator on "
        "core 1. " + " ".join(x for x in setup if x),
        "",
    ]
    if limit:
        lines += [
            "In-process onnxruntime on core 0 (rows/s by batch size): "
            + ", ".join(f"{b}: {v:,.0f}" for b, v in limit["rows_per_s"].items())
            + f"; batch 64 is {limit['per_row_ratio_1_vs_64']}× cheaper per row than batch 1.",
            "",
        ]
    if summary:
        lines += _main_table(summary)
        lines += [
            "",
            "Answered 200/s is the throughput: refusals (429, 503) are counted apart, never in "
            "it. p50/p99 are of the 200s in the open loop; † marks a closed-loop p99 (wrk's, "
            "over every answer) that includes refusals. Runs: successful/attempted.",
        ]
    lines += _ratios(summary) + _cpu(result) + _workers(result)
    goals = targets(result)
    if goals:
        lines += ["", "| target | measured | verdict |", "|---|---|---|"]
        lines += [f"| {goal} | {measured} | {verdict} |" for goal, measured, verdict in goals]
    lines += _failures(result)
    generators = _generators(result)
    lines += ["", generators] if generators else []
    if summary:
        lines += ["", f"![throughput and p99 against load]({stem.name}.png)"]
        _plot(result, stem.with_suffix(".png"))
    stem.with_suffix(".md").write_text("\n".join([*lines, ""]))

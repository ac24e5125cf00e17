"""How the CLI shows registry records to a person: tables and the lineage tree (rich)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.console import Group
from rich.markup import escape
from rich.table import Table
from rich.tree import Tree

from registry.records import AliasEvent, ModelSummary
from services.cli.render_quality import profile_lines

__all__ = ["drift_table", "export_line", "export_lines", "lineage_tree", "models_table"]


def models_table(models: Sequence[ModelSummary]) -> Table:
    table = Table(title="Registered models")
    for column in ("model", "versions", "newest", "newest ready", "aliases"):
        table.add_column(column)
    for model in models:
        aliases = ", ".join(f"{a}→{v}" for a, v in sorted(model.aliases.items())) or "-"
        table.add_row(
            model.name,
            str(model.versions),
            str(model.latest_version or "-"),
            str(model.latest_ready or "-"),
            aliases,
        )
    return table


def export_line(kind: str, artifact: dict[str, Any]) -> str:
    parity = artifact.get("parity") or {}
    details = artifact.get("details") or {}
    mark = "[green]passed[/]" if artifact["status"] == "passed" else f"[red]{artifact['status']}[/]"
    text = f"{kind} {mark} · {_files(artifact)}"
    if details.get("exporter"):
        text += escape(f" · {details['exporter']}")
    if details.get("opset"):
        text += f" · opset {details['opset']}"
    if parity.get("batch_sizes"):
        text += escape(
            f" · batches {parity['batch_sizes']} · max |Δ| {_number(parity.get('max_abs_diff'))}"
            f" · max rel {_number(parity.get('max_rel_diff'))}"
        )
    return text


def export_lines(artifact: dict[str, Any], prefix: str = "") -> list[str]:
    """The summary line of an export, then one line per parity failure."""
    failures = (artifact.get("parity") or {}).get("failures", [])
    return [prefix + export_line(artifact["kind"], artifact)] + [
        f"{' ' * len(prefix)}  [red]✗[/] {escape(failure)}" for failure in failures
    ]


def _number(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, int | float) else "-"


def lineage_tree(lineage: dict[str, Any], history: Sequence[AliasEvent]) -> Group:
    aliases = ", ".join(lineage["aliases"]) or "no alias"
    root = Tree(
        f"[bold]{escape(lineage['ref'])}[/] · "
        + escape(
            f"{lineage['status']} · {aliases} · registered {lineage['created_at'][:19]} "
            f"by {lineage['created_by']}"
        )
    )
    signature = root.add("signature")
    for spec in lineage["signature"]["inputs"]:
        features = lineage["signature"]["feature_names"].get(spec["name"])
        label = f"in  {_spec(spec)}"
        if features:
            label += escape(f" · features: {', '.join(features)}")
        signature.add(label)
    for spec in lineage["signature"]["outputs"]:
        signature.add(f"out {_spec(spec)}")

    data = root.add("data")
    for dataset in lineage.get("datasets", []):
        data.add(
            escape(
                f"{dataset['name']} ({dataset['role']}) · {dataset['rows']} rows · sha256 "
                f"{dataset['digest'][:16]}… · {dataset['source']}"
            )
        )
    reference = lineage.get("reference")
    if reference:
        data.add(f"reference sample · {reference['rows']} of {reference['sampled_from']} rows")
    if not lineage.get("datasets") and not reference:
        data.add("[dim]none recorded[/]")

    code = root.add("code")
    git = lineage.get("code")
    if git:
        dirty = " [yellow](dirty)[/]" if git["dirty"] else ""
        code.add(
            escape(f"git {git['commit'][:12]}")
            + dirty
            + escape(f" on {git['branch']} in {git['root']}")
        )
    else:
        code.add("[dim]not in a git work tree[/]")
    if lineage.get("trainer"):
        code.add(escape(f"trainer {lineage['trainer']}"))
    factory = lineage.get("factory") or {}
    if factory.get("entrypoint"):
        code.add(escape(f"factory {factory['entrypoint']}({_kwargs(factory.get('kwargs') or {})})"))
    elif factory.get("error"):
        code.add(f"[yellow]no rebuildable factory: {escape(factory['error'])}[/]")
    if lineage.get("imported"):
        code.add(escape(f"imported from {lineage['imported'].get('original')}"))

    if lineage.get("params"):
        params = root.add("params")
        for key, value in lineage["params"].items():
            params.add(escape(f"{key} = {value}"))
    if lineage.get("metrics"):
        metrics = root.add("metrics")
        for key, metric in lineage["metrics"].items():
            metrics.add(escape(f"{key} = {metric['value']:.4g} on {metric['dataset']}"))

    if lineage.get("quality"):
        quality = root.add("quality")
        for line in profile_lines(lineage["quality"]):
            quality.add(line)
    elif lineage.get("problem") is None and "problem_reason" not in lineage:
        root.add("[dim]quality · registered before versions recorded their task[/]")

    parents = root.add("parents")
    if lineage.get("ancestors"):
        for ancestor in lineage["ancestors"]:
            task = f" (task {ancestor['task_id']})" if ancestor.get("task_id") else ""
            parents.add(escape(f"{ancestor['ref']}{task}"))
    else:
        parents.add("[dim]none: trained from scratch[/]")
    if lineage.get("task_id"):
        root.add(escape(f"produced by retraining task {lineage['task_id']}"))

    artifacts = root.add("artifacts")
    for artifact in lineage["artifacts"]:
        if artifact["kind"] in ("onnx", "torchscript"):
            artifacts.add(export_line(artifact["kind"], artifact))
        else:
            artifacts.add(f"{artifact['kind']} · {_files(artifact)}")

    env = lineage.get("environment") or {}
    root.add(
        escape(
            "environment · "
            + ", ".join(f"{k} {v}" for k, v in env.items() if k != "platform" and v)
        )
    )
    if history:
        moves = root.add("alias history")
        for event in history:
            was = f"{event.from_version}" if event.from_version is not None else "∅"
            moves.add(
                escape(
                    f"{event.at.isoformat()[:19]} {event.alias}: {was} → {event.to_version} by "
                    f"{event.actor}: {event.reason}"
                )
            )
    return Group(root)


def _spec(spec: dict[str, Any]) -> str:
    dims = ", ".join("batch" if i == 0 and d == -1 else str(d) for i, d in enumerate(spec["shape"]))
    return escape(f"{spec['name']}: {spec['dtype']}[{dims}]")


def _kwargs(kwargs: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in kwargs.items())


def _files(artifact: dict[str, Any]) -> str:
    size = sum(f["size"] for f in artifact["files"])
    return f"{len(artifact['files'])} file(s), {size:,} bytes · {artifact['digest'][:12]}"


def drift_table(check: dict[str, Any], limit: int = 20) -> Group:
    """A stored drift check: the headline, then the most drifted columns first."""
    result = check["result"]
    window = check["window"]
    verdict = "[bold red]drift[/]" if check["detected"] else "[green]no drift[/]"
    headline = (
        f"{check['model']}:{check['version']} check {check['id']} · {verdict} · "
        f"{result['drifted_count']}/{result['input_columns']} input features drifted "
        f"(share {check['share']:.2f}, threshold {result['drift_share']:.2f}) · "
        f"prediction drift: {'yes' if result['prediction_drift'] else 'no'}\n"
        f"window {window['start']} → {window['end']}, {window['rows']} rows vs "
        f"{result['rows_reference']} reference rows (digest {check['reference_digest'][:12]}) · "
        f"{check['consecutive_detections']} drifted checks in a row"
    )
    table = Table()
    for column in ("column", "role", "method", "threshold", "score", "drifted"):
        table.add_column(column)
    features = sorted(
        result["features"],
        key=lambda f: (not f["drifted"], f["role"] != "prediction", f["column"]),
    )
    for feature in features[:limit]:
        score = "-" if feature["score"] is None else f"{feature['score']:.4g}"
        table.add_row(
            escape(feature["column"]),
            feature["role"],
            feature["method"] or "-",
            "-" if feature["threshold"] is None else f"{feature['threshold']:g}",
            score if feature["reason"] is None else f"{score} ({escape(feature['reason'])})",
            "[red]yes[/]" if feature["drifted"] else "no",
        )
    if len(features) > limit:
        table.caption = f"{len(features) - limit} more columns in --json"
    return Group(headline, table)

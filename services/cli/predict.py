"""`mlgate predict` (score a Parquet or CSV file with one version) and `mlgate runs` (the
records of past runs)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from services.cli.common import JsonOption, app, emit_json, err, out, reports_errors, share

__all__ = ["predict", "runs"]


@app.command()
@reports_errors
def predict(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="NAME, NAME:VERSION or NAME@ALIAS.")],
    source: Annotated[Path, typer.Argument(metavar="INPUT", help="A .parquet or .csv file.")],
    output: Annotated[
        Path, typer.Option("-o", "--output", help="Where the predictions go (.parquet or .csv).")
    ],
    rejects: Annotated[
        Path | None,
        typer.Option(help="Where rejected rows go (default: OUTPUT's NAME.rejects.SUFFIX)."),
    ] = None,
    keep: Annotated[
        list[str] | None,
        typer.Option("--keep", help="An input column to copy to the output (an id); repeat it."),
    ] = None,
    max_reject_share: Annotated[
        float | None,
        typer.Option(
            parser=share,
            metavar="SHARE",
            help="Fail (and write no output) when more than this share of rows is rejected.",
        ),
    ] = None,
    chunk_rows: Annotated[
        int, typer.Option(min=1, max=1 << 22, help="Rows read at a time.")
    ] = 65536,
    batch_size: Annotated[
        int, typer.Option(min=1, max=1 << 20, help="Rows per model call.")
    ] = 1024,
    threads: Annotated[
        int | None,
        typer.Option(min=1, max=256, help="The runtime's threads (default: its serving config)."),
    ] = None,
    gateway: Annotated[
        str | None,
        typer.Option(
            metavar="URL",
            help="Submit the job to this gateway instead: it scores the file with the version "
            "it serves, below live traffic; INPUT and OUTPUT are then paths in its batch "
            "folder (MLGATE_BATCH_DIR).",
        ),
    ] = None,
    admin_token: Annotated[
        str | None,
        typer.Option(envvar="MLGATE_ADMIN_TOKEN", help="With --gateway: its admin token."),
    ] = None,
    api_key: Annotated[
        str | None,
        typer.Option(envvar="MLGATE_API_KEY", help="With --gateway: a key, if it needs one."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Score a file with a registered version, in chunks: memory stays flat for any size.
    Rows that fail validation go to a rejects file with their reason; the output appears
    whole or not at all; the run is recorded in the registry (`mlgate runs`)."""
    from services.cli.progress import ScoreDisplay
    from services.scoring.job import ScoreOptions
    from services.scoring.local import score_locally

    if gateway is not None:
        if threads is not None or batch_size != 1024:
            raise typer.BadParameter(
                "a gateway runs the version as it serves it", param_hint=("--threads/--batch-size")
            )
        from services.cli.remote_predict import submit_and_follow

        job = submit_and_follow(
            gateway,
            ref,
            str(source),
            str(output),
            rejects=None if rejects is None else str(rejects),
            keep=list(keep or ()),
            max_reject_share=max_reject_share,
            chunk_rows=chunk_rows,
            admin_token=admin_token,
            api_key=api_key,
            progress=ScoreDisplay(err, f"scoring {source.name} at {gateway}", enabled=not as_json),
        )
        emit_json(job) if as_json else out.print(_remote_summary(job))
        return
    registry = ctx.obj.registry()
    options = ScoreOptions(
        chunk_rows=chunk_rows,
        batch_size=batch_size,
        keep=tuple(keep or ()),
        max_reject_share=max_reject_share,
    )
    with ScoreDisplay(err, f"scoring {source.name}", enabled=not as_json) as display:
        run, report = score_locally(
            registry,
            ref,
            source,
            output,
            options,
            rejects=rejects,
            threads=threads,
            progress=display,
        )
    if as_json:
        emit_json({**run.to_json(), "reasons": dict(report.reasons.most_common(10))})
        return
    out.print(_summary(run, report))


def _remote_summary(job: dict[str, Any]) -> str:
    rate = f"{job['rows_per_s']:,} rows/s" if job.get("rows_per_s") else "-"
    line = (
        f"job {job['id']} ({job['runner']}): {job['model']}:{job['version']} scored "
        f"{job['scored']:,} of {job['rows']:,} rows in {job['seconds']:.1f} s ({rate}) → "
        f"{job['output_uri']}"
    )
    if job["rejected"]:
        line += f"\n{job['rejected']:,} rejected → {job['rejects_uri']}"
    return line


def _summary(run: Any, report: Any) -> str:
    rate = f"{run.rows / run.seconds:,.0f} rows/s" if run.seconds else "-"
    line = (
        f"run {run.id}: {run.model}:{run.version} scored {run.scored:,} of {run.rows:,} rows "
        f"in {run.seconds:.1f} s ({rate}) → {run.output_uri}"
    )
    if run.rejected:
        reasons = ", ".join(f"{reason} ({n:,})" for reason, n in report.reasons.most_common(3))
        line += f"\n{run.rejected:,} rejected → {run.rejects_uri}: {reasons}"
    return line


@app.command()
@reports_errors
def runs(
    ctx: typer.Context,
    name: Annotated[str | None, typer.Argument(help="One model (default: every model).")] = None,
    digest: Annotated[
        str | None,
        typer.Option(help="Only runs that read or wrote a file with this sha256."),
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000, help="How many, newest first.")] = 20,
    as_json: JsonOption = False,
) -> None:
    """The records of files scored with `mlgate predict`: version, digests, counts, time."""
    from rich.table import Table

    found = ctx.obj.registry().batch_runs.list(name, digest=digest, limit=limit)
    if as_json:
        emit_json([run.to_json() for run in found])
        return
    table = Table("run", "version", "status", "rows", "rejected", "s", "output", "started")
    for run in found:
        output = run.output_uri or run.rejects_uri
        table.add_row(
            str(run.id),
            f"{run.model}:{run.version}",
            run.status,
            f"{run.rows:,}",
            f"{run.rejected:,}",
            f"{run.seconds:.1f}",
            "-" if output is None else Path(output).name,
            run.started_at.strftime("%Y-%m-%d %H:%M"),
        )
    out.print(table)
    for run in found:
        if run.error:
            out.print(f"run {run.id}: {run.error}")

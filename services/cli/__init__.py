"""The `mlgate` command line (typer): `main` is the console entry point.

One module per group of commands (`registry`, `serve`, `deploy`, `monitor`, `quality`,
`retrain`, `tasks`), their shared state and one-line errors (`common`), progress bars
(`progress`) and the tables they print (`render`, `render_quality`). `entry` imports them all,
each of them light: heavy libraries are imported inside the command that uses them.
"""

from services.cli.entry import app, main

__all__ = ["app", "main"]

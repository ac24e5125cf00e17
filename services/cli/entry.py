"""The `mlgate` command line. Each command is a thin shell over the registry, the exporters
and the gateway; the commands live beside it in `services/cli/`.

Start-up: importing this module imports typer, rich and our error classes, nothing heavy.
Each command imports what it uses (torch, onnx, onnxruntime, pandas, Evidently, FastAPI,
SQLAlchemy) inside its function, so `mlgate --help` takes a fifth of a second;
tests/services/cli/test_imports.py keeps it so.
"""

from __future__ import annotations

import gc

from services.cli import (
    canary,
    deploy,
    monitor,
    predict,
    quality,
    registry,
    retrain,
    serve,
    shadow,
    tasks,
)
from services.cli.common import app

__all__ = ["app", "main"]

# Importing the command modules registers their commands on `app`.
_COMMANDS = (canary, deploy, monitor, predict, quality, registry, retrain, serve, shadow, tasks)


def main() -> None:
    """Console entry point (`mlgate`)."""
    try:
        app(prog_name="mlgate")
    finally:
        # The command is done, and the interpreter's exit would now walk every object its
        # imports made (SQLAlchemy, numpy: 0.1-0.2 s of `mlgate models`) looking for
        # garbage cycles. Frozen, they are skipped; objects are still freed by reference
        # counting, only the finalisers of cycles left at exit (which Python does not
        # promise to run) are not run. The registries the command opened are closed by
        # then (`CliState.close`).
        gc.freeze()

"""What `mlgate` imports before it runs a command: none of the heavy libraries.

Importing `services.cli.entry`, building its click command and asking `--help` of it and of every
command and subcommand must not import what only some commands use; each command imports
those in its own body. Checked in a fresh interpreter: this one has imported them all.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]

# Libraries that commands import when they run, never before: the ML stack, the data stack,
# the registry's database layer (and its migrations) and the gateway's web stack.
HEAVY = (
    "aiohttp",
    "alembic",
    "evidently",
    "fastapi",
    "grpc",
    "matplotlib",
    "numpy",
    "onnx",
    "onnxruntime",
    "onnxscript",
    "pandas",
    "prometheus_client",
    "pyarrow",
    "scipy",
    "sklearn",
    "sqlalchemy",
    "starlette",
    "torch",
    "tritonclient",
    "uvicorn",
)

PROBE = """
import json, sys

heavy = json.loads(sys.argv[1])
loaded = lambda: sorted(m for m in heavy if m in sys.modules)

import services.cli.entry

seen = {"import": loaded()}
from typer.main import get_command
from typer.testing import CliRunner

command = get_command(services.cli.entry.app)
seen["command"] = loaded()
runner = CliRunner()
helped = []

def ask_help(group, path):
    result = runner.invoke(services.cli.entry.app, [*path, "--help"])
    if result.exit_code != 0:
        raise SystemExit(f"{path} --help exited {result.exit_code}: {result.output}")
    helped.append(" ".join(path))
    for name, sub in sorted(getattr(group, "commands", {}).items()):
        ask_help(sub, [*path, name])

ask_help(command, [])
seen["help"] = loaded()
print(json.dumps({"seen": seen, "helped": helped}))
"""


def test_the_cli_and_its_help_import_no_heavy_library() -> None:
    completed = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(HEAVY)],
        cwd=ROOT,  # `-c` puts the working directory first on sys.path: this checkout
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert completed.returncode == 0, completed.stderr
    report = json.loads(completed.stdout)
    assert report["seen"] == {"import": [], "command": [], "help": []}
    # `--help` reached the app, every command (serve, models, ...) and the subcommands.
    assert {"", "serve", "models", "register", "demo", "tasks"} <= set(report["helped"])
    assert any(path.startswith("tasks ") for path in report["helped"])

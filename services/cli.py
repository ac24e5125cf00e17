"""The `mlgate` command line. Each command is a thin shell over the registry, the exporters
and the gateway; the commands live in `cli_registry.py` and `cli_serve.py`.
"""

from __future__ import annotations

from services import (
    cli_deploy,
    cli_monitor,
    cli_quality,
    cli_registry,
    cli_retrain,
    cli_serve,
    cli_tasks,
)
from services.cli_common import app

__all__ = ["app", "main"]

# Importing the command modules registers their commands on `app`.
_COMMANDS = (cli_deploy, cli_monitor, cli_quality, cli_registry, cli_retrain, cli_serve, cli_tasks)


def main() -> None:
    """Console entry point (`mlgate`)."""
    app(prog_name="mlgate")


if __name__ == "__main__":  # `python -m services.cli`, as the demo starts the gateway
    main()

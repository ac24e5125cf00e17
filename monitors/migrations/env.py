"""Run by Alembic for every command on monitoring's tables (see registry/migrate.py)."""

from monitors.schema import MonitorBase
from registry.migrate import run_environment

run_environment(MonitorBase.metadata)

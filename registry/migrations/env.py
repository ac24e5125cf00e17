"""Run by Alembic for every command on the registry's tables (see registry/migrate.py)."""

from registry.migrate import run_environment
from registry.schema import Base

run_environment(Base.metadata)

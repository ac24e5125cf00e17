"""Alembic owns the schema: mlgate_meta's schema_version becomes 3.

mlgate before Alembic ran create_all and accepted schema versions 1 and 2 only; it could
not see a later revision's changes to an existing table. From here on it refuses the
database with its own message ("has schema version 3; this mlgate expects 2"). The
alembic_version table is the schema's version now; this row stays at 3. Downgraded to
0002 (`python -m registry.migrations downgrade 0002`), the database opens in those
releases again.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_META = sa.table("mlgate_meta", sa.column("key", sa.String), sa.column("value", sa.String))


def _set_schema_version(value: str) -> None:
    op.execute(sa.update(_META).where(_META.c.key == "schema_version").values(value=value))


def upgrade() -> None:
    _set_schema_version("3")


def downgrade() -> None:
    _set_schema_version("2")

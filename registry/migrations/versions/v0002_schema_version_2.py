"""Schema version 2: how the gateway serves a version (serving_configs).

Before Alembic this was the one hand-written upgrade: create_all added the table to a
schema version 1 database and the schema_version row became 2.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_META = sa.table("mlgate_meta", sa.column("key", sa.String), sa.column("value", sa.String))


def _set_schema_version(value: str) -> None:
    op.execute(sa.update(_META).where(_META.c.key == "schema_version").values(value=value))


def upgrade() -> None:
    op.create_table(
        "serving_configs",
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("config", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.String(length=256), nullable=False),
        sa.ForeignKeyConstraint(["version_id"], ["versions.id"]),
        sa.PrimaryKeyConstraint("version_id"),
    )
    _set_schema_version("2")


def downgrade() -> None:
    op.drop_table("serving_configs")
    _set_schema_version("1")

"""Batch runs: every file scored with a version (`mlgate predict`, a gateway's batch job),
written when it starts and updated as it goes, with its digests and counts, so that a
prediction file can be traced to the exact version and input."""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "batch_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("runner", sa.String(length=512), nullable=False),
        sa.Column("input_uri", sa.Text(), nullable=False),
        sa.Column("input_digest", sa.String(length=64), nullable=True),
        sa.Column("output_uri", sa.Text(), nullable=False),
        sa.Column("output_digest", sa.String(length=64), nullable=True),
        sa.Column("rejects_uri", sa.Text(), nullable=True),
        sa.Column("rejects_digest", sa.String(length=64), nullable=True),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.Column("scored", sa.Integer(), nullable=False),
        sa.Column("rejected", sa.Integer(), nullable=False),
        sa.Column("progress", sa.Double(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("seconds", sa.Double(), nullable=False),
        sa.Column("actor", sa.String(length=256), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["version_id"],
            ["versions.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("batch_runs", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_batch_runs_input_digest"), ["input_digest"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_batch_runs_version_id"), ["version_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("batch_runs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_batch_runs_version_id"))
        batch_op.drop_index(batch_op.f("ix_batch_runs_input_digest"))

    op.drop_table("batch_runs")

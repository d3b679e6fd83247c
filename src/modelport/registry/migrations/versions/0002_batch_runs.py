"""Batch runs, their chunk checkpoints, and schedules (see :mod:`modelport.registry.runs`).

Revision ID: 0002_batch_runs
Revises: 0001_initial
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_batch_runs"
down_revision: str | None = "0001_initial"
branch_labels: tuple[str, ...] | None = None
depends_on: tuple[str, ...] | None = None

_NAME = 128
_RUN_ID = 32


def upgrade() -> None:
    """Create ``batch_runs``, ``batch_chunks`` and ``batch_schedules``."""
    op.create_table(
        "batch_runs",
        sa.Column("run_id", sa.String(_RUN_ID), nullable=False),
        sa.Column("schedule", sa.String(_NAME), nullable=True),
        sa.Column("model_ref", sa.String(1024), nullable=False),
        sa.Column("model_name", sa.String(_NAME), nullable=True),
        sa.Column("model_version", sa.Integer(), nullable=True),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("destination", sa.Text(), nullable=False),
        sa.Column("rejects", sa.Text(), nullable=True),
        sa.Column("options", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("rows_read", sa.BigInteger(), nullable=False),
        sa.Column("rows_written", sa.BigInteger(), nullable=False),
        sa.Column("rows_rejected", sa.BigInteger(), nullable=False),
        sa.Column("chunks", sa.Integer(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("error_type", sa.String(64), nullable=True),
        sa.Column("owner", sa.String(255), nullable=True),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("run_id", name="pk_batch_runs"),
    )
    op.create_index("ix_batch_runs_schedule", "batch_runs", ["schedule"])
    op.create_index("ix_batch_runs_status", "batch_runs", ["status"])
    op.create_index("ix_batch_runs_started_at", "batch_runs", ["started_at"])
    op.create_table(
        "batch_chunks",
        sa.Column("run_id", sa.String(_RUN_ID), nullable=False),
        sa.Column("chunk_index", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("rows_read", sa.BigInteger(), nullable=False),
        sa.Column("rows_written", sa.BigInteger(), nullable=False),
        sa.Column("rows_rejected", sa.BigInteger(), nullable=False),
        sa.Column("position", sa.JSON(), nullable=False),
        sa.Column("committed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("run_id", "chunk_index", name="pk_batch_chunks"),
    )
    op.create_table(
        "batch_schedules",
        sa.Column("name", sa.String(_NAME), nullable=False),
        sa.Column("cron", sa.String(255), nullable=False),
        sa.Column("timezone", sa.String(64), nullable=False),
        sa.Column("retries", sa.Integer(), nullable=False),
        sa.Column("retry_delay_s", sa.Float(), nullable=False),
        sa.Column("job", sa.JSON(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(255), nullable=False),
        sa.Column("next_run_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_run_id", sa.String(_RUN_ID), nullable=True),
        sa.Column("last_status", sa.String(16), nullable=True),
        sa.Column("last_run_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("pending_run_id", sa.String(_RUN_ID), nullable=True),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("retry_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("lease_owner", sa.String(255), nullable=True),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("name", name="pk_batch_schedules"),
    )


def downgrade() -> None:
    """Drop the batch tables."""
    op.drop_table("batch_schedules")
    op.drop_table("batch_chunks")
    op.drop_index("ix_batch_runs_started_at", table_name="batch_runs")
    op.drop_index("ix_batch_runs_status", table_name="batch_runs")
    op.drop_index("ix_batch_runs_schedule", table_name="batch_runs")
    op.drop_table("batch_runs")

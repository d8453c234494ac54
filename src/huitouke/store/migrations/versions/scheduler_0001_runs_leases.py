"""scheduler: run history and leases

Revision ID: scheduler_0001
Revises:
Create Date: 2026-12-06 15:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import huitouke.store.types

revision: str = "scheduler_0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = ("scheduler",)
depends_on: str | Sequence[str] | None = "core_0001"


def upgrade() -> None:
    op.create_table(
        "scheduler_runs",
        sa.Column("run_id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("job", sa.String(length=64), nullable=False),
        sa.Column("slot", huitouke.store.types.UTCDateTime(), nullable=True),
        sa.Column("trigger", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("started_at", huitouke.store.types.UTCDateTime(), nullable=False),
        sa.Column("finished_at", huitouke.store.types.UTCDateTime(), nullable=True),
        sa.Column("duration_ms", sa.Float(), nullable=True),
        sa.Column("error_code", sa.String(length=64), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("error_zh", sa.Text(), nullable=True),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.CheckConstraint(
            "trigger IN ('schedule', 'catch_up', 'manual')",
            name=op.f("ck_scheduler_runs_trigger_known"),
        ),
        sa.CheckConstraint(
            "status IN ('running', 'succeeded', 'skipped', 'failed')",
            name=op.f("ck_scheduler_runs_status_known"),
        ),
        sa.PrimaryKeyConstraint("run_id", name=op.f("pk_scheduler_runs")),
        sa.UniqueConstraint("job", "slot", name="uq_scheduler_runs_job_slot"),
    )
    op.create_index("ix_scheduler_runs_started", "scheduler_runs", ["started_at"], unique=False)
    op.create_table(
        "scheduler_leases",
        sa.Column("name", sa.String(length=80), nullable=False),
        sa.Column("holder", sa.String(length=255), nullable=False),
        sa.Column("acquired_at", huitouke.store.types.UTCDateTime(), nullable=False),
        sa.Column("expires_at", huitouke.store.types.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_scheduler_leases")),
    )


def downgrade() -> None:
    op.drop_table("scheduler_leases")
    op.drop_index("ix_scheduler_runs_started", table_name="scheduler_runs")
    op.drop_table("scheduler_runs")

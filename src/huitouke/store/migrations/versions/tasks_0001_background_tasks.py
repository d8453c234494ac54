"""tasks: background tasks started from the console, with progress

Revision ID: tasks_0001
Revises:
Create Date: 2026-12-06 18:45:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import huitouke.store.types

revision: str = "tasks_0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = ("tasks",)
depends_on: str | Sequence[str] | None = "core_0001"


def upgrade() -> None:
    op.create_table(
        "background_tasks",
        sa.Column("task_id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("active_key", sa.String(length=255), nullable=True),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("done", sa.Integer(), nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("stage", sa.String(length=128), nullable=True),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.Column("error_code", sa.String(length=64), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("error_zh", sa.Text(), nullable=True),
        sa.Column("created_by", sa.String(length=128), nullable=False),
        sa.Column("created_at", huitouke.store.types.UTCDateTime(), nullable=False),
        sa.Column("started_at", huitouke.store.types.UTCDateTime(), nullable=True),
        sa.Column("finished_at", huitouke.store.types.UTCDateTime(), nullable=True),
        sa.Column("heartbeat_at", huitouke.store.types.UTCDateTime(), nullable=True),
        sa.Column("holder", sa.String(length=255), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.CheckConstraint(
            "status IN ('queued', 'running', 'succeeded', 'failed')",
            name=op.f("ck_background_tasks_status_known"),
        ),
        sa.PrimaryKeyConstraint("task_id", name=op.f("pk_background_tasks")),
        sa.UniqueConstraint("active_key", name=op.f("uq_background_tasks_active_key")),
    )
    with op.batch_alter_table("background_tasks", schema=None) as batch_op:
        batch_op.create_index("ix_background_tasks_status", ["status", "created_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("background_tasks", schema=None) as batch_op:
        batch_op.drop_index("ix_background_tasks_status")
    op.drop_table("background_tasks")

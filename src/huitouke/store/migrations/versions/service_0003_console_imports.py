"""service: console_imports (export files uploaded in the console and what their import did)

Revision ID: service_0003_console_imports
Revises: service_0002
Create Date: 2026-12-06 15:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import huitouke.store.types

revision: str = "service_0003_console_imports"
down_revision: str | Sequence[str] | None = "service_0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "console_imports",
        sa.Column("import_id", sa.String(length=32), nullable=False),
        sa.Column("user_name", sa.String(length=64), nullable=False),
        sa.Column("file_name", sa.String(length=255), nullable=False),
        sa.Column("size_bytes", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("preset", sa.String(length=40), nullable=True),
        sa.Column("batch_id", sa.Integer(), nullable=True),
        sa.Column("started_at", huitouke.store.types.UTCDateTime(), nullable=False),
        sa.Column("finished_at", huitouke.store.types.UTCDateTime(), nullable=True),
        sa.Column("rows_read", sa.Integer(), nullable=True),
        sa.Column("orders_inserted", sa.Integer(), nullable=True),
        sa.Column("orders_updated", sa.Integer(), nullable=True),
        sa.Column("orders_unchanged", sa.Integer(), nullable=True),
        sa.Column("rows_rejected", sa.Integer(), nullable=True),
        sa.Column("rejects_by_reason", sa.JSON(), nullable=True),
        sa.Column("rejects_csv", sa.LargeBinary(), nullable=True),
        sa.Column("warnings", sa.JSON(), nullable=True),
        sa.Column("error_code", sa.String(length=64), nullable=True),
        sa.Column("error", sa.JSON(), nullable=True),
        sa.CheckConstraint(
            "status IN ('running', 'done', 'failed')",
            name=op.f("ck_console_imports_status_known"),
        ),
        sa.PrimaryKeyConstraint("import_id", name=op.f("pk_console_imports")),
    )
    with op.batch_alter_table("console_imports", schema=None) as batch_op:
        batch_op.create_index("ix_console_imports_started_at", ["started_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("console_imports", schema=None) as batch_op:
        batch_op.drop_index("ix_console_imports_started_at")
    op.drop_table("console_imports")

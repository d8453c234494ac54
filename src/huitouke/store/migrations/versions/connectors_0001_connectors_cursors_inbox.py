"""connectors: connectors, their sync cursors and the raw webhook inbox

Revision ID: connectors_0001
Revises:
Create Date: 2026-12-06 15:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import huitouke.store.types

revision: str = "connectors_0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = ("connectors",)
depends_on: str | Sequence[str] | None = "core_0001"


def upgrade() -> None:
    op.create_table(
        "connectors",
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("api_base_url", sa.String(length=500), nullable=False),
        sa.Column("shop", sa.String(length=200), nullable=True),
        sa.Column("credentials", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("overlap_seconds", sa.Integer(), nullable=False),
        sa.Column("page_size", sa.Integer(), nullable=False),
        sa.Column("created_at", huitouke.store.types.UTCDateTime(), nullable=False),
        sa.Column("updated_at", huitouke.store.types.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_connectors")),
    )
    op.create_table(
        "connector_cursors",
        sa.Column("connector", sa.String(length=32), nullable=False),
        sa.Column("watermark", huitouke.store.types.UTCDateTime(), nullable=True),
        sa.Column("pulled", sa.Integer(), nullable=False),
        sa.Column("sync_started_at", huitouke.store.types.UTCDateTime(), nullable=True),
        sa.Column("sync_finished_at", huitouke.store.types.UTCDateTime(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("connector", name=op.f("pk_connector_cursors")),
    )
    op.create_table(
        "connector_inbox",
        sa.Column("inbox_id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("connector", sa.String(length=32), nullable=False),
        sa.Column("object_id", sa.String(length=160), nullable=False),
        sa.Column("updated_at", huitouke.store.types.UTCDateTime(), nullable=False),
        sa.Column("topic", sa.String(length=64), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("received_at", huitouke.store.types.UTCDateTime(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("applied_at", huitouke.store.types.UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("inbox_id", name=op.f("pk_connector_inbox")),
        sa.UniqueConstraint(
            "connector", "object_id", "updated_at", name="uq_connector_inbox_delivery"
        ),
    )
    with op.batch_alter_table("connector_inbox", schema=None) as batch_op:
        batch_op.create_index("ix_connector_inbox_status", ["connector", "status"], unique=False)


def downgrade() -> None:
    op.drop_table("connector_inbox")
    op.drop_table("connector_cursors")
    op.drop_table("connectors")

"""wecom: external contacts joining customer groups (群活码 joins)

Revision ID: identity_gaps_0001
Revises:
Create Date: 2026-12-06 18:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import huitouke.store.types

revision: str = "identity_gaps_0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = ("identity_gaps",)
depends_on: str | Sequence[str] | None = "wecom_0001"


def upgrade() -> None:
    op.create_table(
        "wecom_group_joins",
        sa.Column("join_id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("chat_id", sa.String(length=64), nullable=False),
        sa.Column("external_userid", sa.String(length=64), nullable=False),
        sa.Column("join_time", sa.Integer(), nullable=False),
        sa.Column("join_scene", sa.Integer(), nullable=True),
        sa.Column("state", sa.String(length=64), nullable=True),
        sa.Column("code", sa.String(length=30), nullable=True),
        sa.Column("customer_id", sa.String(length=128), nullable=True),
        sa.Column("event_id", sa.Integer(), nullable=False),
        sa.Column("recorded_at", huitouke.store.types.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("join_id", name=op.f("pk_wecom_group_joins")),
        sa.UniqueConstraint(
            "chat_id", "external_userid", "join_time", name="uq_wecom_group_joins_once"
        ),
    )
    op.create_index(
        "ix_wecom_group_joins_customer_id", "wecom_group_joins", ["customer_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_wecom_group_joins_customer_id", table_name="wecom_group_joins")
    op.drop_table("wecom_group_joins")

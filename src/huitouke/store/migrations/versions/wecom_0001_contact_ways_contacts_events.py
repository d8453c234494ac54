"""wecom: channel live codes, external contacts, callback events

Revision ID: wecom_0001
Revises:
Create Date: 2026-12-06 16:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import huitouke.store.types

revision: str = "wecom_0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = ("wecom",)
depends_on: str | Sequence[str] | None = "core_0003"


def upgrade() -> None:
    op.create_table(
        "wecom_contact_ways",
        sa.Column("code", sa.String(length=30), nullable=False),
        sa.Column("config_id", sa.String(length=64), nullable=False),
        sa.Column("qr_code", sa.Text(), nullable=False),
        sa.Column("users", sa.JSON(), nullable=False),
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("tags", sa.JSON(), nullable=False),
        sa.Column("welcome_zh", sa.Text(), nullable=False),
        sa.Column("welcome_en", sa.Text(), nullable=False),
        sa.Column("survey", sa.JSON(), nullable=False),
        sa.Column("group_chats", sa.JSON(), nullable=False),
        sa.Column("group_config_id", sa.String(length=64), nullable=True),
        sa.Column("group_qr_code", sa.Text(), nullable=True),
        sa.Column("created_at", huitouke.store.types.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("code", name=op.f("pk_wecom_contact_ways")),
    )
    op.create_table(
        "wecom_contacts",
        sa.Column("external_userid", sa.String(length=64), nullable=False),
        sa.Column("follow_user", sa.String(length=64), nullable=False),
        sa.Column("customer_id", sa.String(length=128), nullable=False),
        sa.Column("linked_by", sa.String(length=16), nullable=False),
        sa.Column("code", sa.String(length=30), nullable=True),
        sa.Column("name", sa.String(length=200), nullable=True),
        sa.Column("added_at", huitouke.store.types.UTCDateTime(), nullable=False),
        sa.Column("removed_at", huitouke.store.types.UTCDateTime(), nullable=True),
        sa.Column("welcome", sa.String(length=16), nullable=False),
        sa.Column("welcome_error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("external_userid", name=op.f("pk_wecom_contacts")),
    )
    op.create_index("ix_wecom_contacts_customer_id", "wecom_contacts", ["customer_id"])
    op.create_table(
        "wecom_events",
        sa.Column("event_id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("received_at", huitouke.store.types.UTCDateTime(), nullable=False),
        sa.Column("event", sa.String(length=64), nullable=False),
        sa.Column("change_type", sa.String(length=64), nullable=False),
        sa.Column("external_userid", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.String(length=64), nullable=False),
        sa.Column("create_time", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=64), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("event_id", name=op.f("pk_wecom_events")),
        sa.UniqueConstraint(
            "change_type",
            "external_userid",
            "user_id",
            "create_time",
            name="uq_wecom_events_once",
        ),
    )


def downgrade() -> None:
    op.drop_table("wecom_events")
    op.drop_index("ix_wecom_contacts_customer_id", table_name="wecom_contacts")
    op.drop_table("wecom_contacts")
    op.drop_table("wecom_contact_ways")

"""profiles: customer tags, profile attributes and their history

Revision ID: profiles_0001
Revises:
Create Date: 2026-12-06 15:12:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import huitouke.store.types

revision: str = "profiles_0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = ("profiles",)
depends_on: str | Sequence[str] | None = "core_0003"


def upgrade() -> None:
    op.create_table(
        "customer_tags",
        sa.Column("customer_id", sa.String(length=128), nullable=False),
        sa.Column("tag", sa.String(length=64), nullable=False),
        sa.Column("added_at", huitouke.store.types.UTCDateTime(), nullable=False),
        sa.Column("added_by", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.customer_id"],
            name=op.f("fk_customer_tags_customer_id_customers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("customer_id", "tag", name=op.f("pk_customer_tags")),
    )
    with op.batch_alter_table("customer_tags", schema=None) as batch_op:
        batch_op.create_index("ix_customer_tags_tag", ["tag"], unique=False)
    op.create_table(
        "profile_attributes",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("type", sa.String(length=8), nullable=False),
        sa.Column("choices", sa.JSON(), nullable=False),
        sa.Column("created_at", huitouke.store.types.UTCDateTime(), nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.CheckConstraint(
            "type IN ('text', 'number', 'date', 'choice')",
            name=op.f("ck_profile_attributes_type_known"),
        ),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_profile_attributes")),
    )
    op.create_table(
        "customer_attributes",
        sa.Column("customer_id", sa.String(length=128), nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("set_at", huitouke.store.types.UTCDateTime(), nullable=False),
        sa.Column("set_by", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.customer_id"],
            name=op.f("fk_customer_attributes_customer_id_customers"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["key"],
            ["profile_attributes.key"],
            name=op.f("fk_customer_attributes_key_profile_attributes"),
        ),
        sa.PrimaryKeyConstraint("customer_id", "key", name=op.f("pk_customer_attributes")),
    )
    with op.batch_alter_table("customer_attributes", schema=None) as batch_op:
        batch_op.create_index("ix_customer_attributes_key", ["key"], unique=False)
    op.create_table(
        "customer_profile_events",
        sa.Column("event_id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("at", huitouke.store.types.UTCDateTime(), nullable=False),
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.Column("customer_id", sa.String(length=128), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("value", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("event_id", name=op.f("pk_customer_profile_events")),
    )
    with op.batch_alter_table("customer_profile_events", schema=None) as batch_op:
        batch_op.create_index(
            "ix_customer_profile_events_customer_id_at", ["customer_id", "at"], unique=False
        )


def downgrade() -> None:
    op.drop_table("customer_profile_events")
    op.drop_table("customer_attributes")
    op.drop_table("profile_attributes")
    op.drop_table("customer_tags")

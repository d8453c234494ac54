"""identity: hashed matching keys, account links to a person, merge/unmerge history

Revision ID: identity_0001
Revises:
Create Date: 2026-12-06 15:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import huitouke.store.types

revision: str = "identity_0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = ("identity",)
depends_on: str | Sequence[str] | None = "core_0003"


def upgrade() -> None:
    op.create_table(
        "identity_keys",
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("customer_id", sa.String(length=128), nullable=False),
        sa.Column("indexed_at", huitouke.store.types.UTCDateTime(), nullable=False),
        sa.CheckConstraint(
            "kind IN ('phone', 'email', 'union_id')",
            name=op.f("ck_identity_keys_kind_known"),
        ),
        sa.PrimaryKeyConstraint("kind", "key_hash", "customer_id", name=op.f("pk_identity_keys")),
    )
    op.create_index("ix_identity_keys_customer_id", "identity_keys", ["customer_id"])
    op.create_table(
        "identity_links",
        sa.Column("customer_id", sa.String(length=128), nullable=False),
        sa.Column("person_id", sa.String(length=128), nullable=False),
        sa.Column("rule", sa.String(length=16), nullable=False),
        sa.Column("linked_at", huitouke.store.types.UTCDateTime(), nullable=False),
        sa.Column("actor", sa.String(length=128), nullable=False),
        sa.CheckConstraint("customer_id <> person_id", name=op.f("ck_identity_links_not_self")),
        sa.PrimaryKeyConstraint("customer_id", name=op.f("pk_identity_links")),
    )
    op.create_index("ix_identity_links_person_id", "identity_links", ["person_id"])
    op.create_table(
        "identity_events",
        sa.Column("event_id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("at", huitouke.store.types.UTCDateTime(), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("person_id", sa.String(length=128), nullable=False),
        sa.Column("customer_ids", sa.JSON(), nullable=False),
        sa.Column("rule", sa.String(length=16), nullable=False),
        sa.Column("actor", sa.String(length=128), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.CheckConstraint(
            "action IN ('merge', 'unmerge')", name=op.f("ck_identity_events_action_known")
        ),
        sa.PrimaryKeyConstraint("event_id", name=op.f("pk_identity_events")),
    )
    op.create_index("ix_identity_events_person_id", "identity_events", ["person_id"])


def downgrade() -> None:
    op.drop_index("ix_identity_events_person_id", table_name="identity_events")
    op.drop_table("identity_events")
    op.drop_index("ix_identity_links_person_id", table_name="identity_links")
    op.drop_table("identity_links")
    op.drop_index("ix_identity_keys_customer_id", table_name="identity_keys")
    op.drop_table("identity_keys")

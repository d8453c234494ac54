"""journeys: definitions, holdout/treatment assignments, order events

Revision ID: journeys_0001
Revises:
Create Date: 2026-11-23 14:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import huitouke.store.types

revision: str = "journeys_0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = ("journeys",)
depends_on: str | Sequence[str] | None = "core_0001"


def upgrade() -> None:
    op.create_table(
        "journey_definitions",
        sa.Column("journey_id", sa.String(length=64), nullable=False),
        sa.Column("definition", sa.JSON(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("created_at", huitouke.store.types.UTCDateTime(), nullable=False),
        sa.Column("updated_at", huitouke.store.types.UTCDateTime(), nullable=False),
        sa.CheckConstraint(
            "source IN ('builtin', 'api', 'file')", name=op.f("ck_journey_definitions_source_known")
        ),
        sa.PrimaryKeyConstraint("journey_id", name=op.f("pk_journey_definitions")),
    )
    op.create_table(
        "journey_assignments",
        sa.Column("journey_id", sa.String(length=64), nullable=False),
        sa.Column("customer_id", sa.String(length=128), nullable=False),
        sa.Column("occurrence", sa.String(length=128), nullable=False),
        sa.Column("group", sa.String(length=16), nullable=False),
        sa.Column("anchor_date", sa.Date(), nullable=False),
        sa.Column("assigned_on", sa.Date(), nullable=False),
        sa.Column("assigned_at", huitouke.store.types.UTCDateTime(), nullable=False),
        sa.CheckConstraint(
            "\"group\" IN ('treatment', 'holdout')", name=op.f("ck_journey_assignments_group_known")
        ),
        sa.PrimaryKeyConstraint(
            "journey_id", "customer_id", "occurrence", name=op.f("pk_journey_assignments")
        ),
    )
    with op.batch_alter_table("journey_assignments", schema=None) as batch_op:
        batch_op.create_index(
            "ix_journey_assignments_journey_on", ["journey_id", "assigned_on"], unique=False
        )
        batch_op.create_index("ix_journey_assignments_customer", ["customer_id"], unique=False)
    op.create_table(
        "order_events",
        sa.Column("order_id", sa.String(length=128), nullable=False),
        sa.Column("event", sa.String(length=32), nullable=False),
        sa.Column("customer_id", sa.String(length=128), nullable=False),
        sa.Column("at", huitouke.store.types.UTCDateTime(), nullable=False),
        sa.Column("recorded_at", huitouke.store.types.UTCDateTime(), nullable=False),
        sa.CheckConstraint(
            "event IN ('order_paid', 'order_shipped', 'order_delivered', 'order_completed')",
            name=op.f("ck_order_events_event_known"),
        ),
        sa.PrimaryKeyConstraint("order_id", "event", name=op.f("pk_order_events")),
    )
    with op.batch_alter_table("order_events", schema=None) as batch_op:
        batch_op.create_index("ix_order_events_at", ["at"], unique=False)


def downgrade() -> None:
    op.drop_table("order_events")
    op.drop_table("journey_assignments")
    op.drop_table("journey_definitions")

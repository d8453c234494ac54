"""messaging: outbox, contact log, consent events, delivery receipts

Revision ID: messaging_0001
Revises:
Create Date: 2026-11-23 13:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import huitouke.store.types

revision: str = "messaging_0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = ("messaging",)
depends_on: str | Sequence[str] | None = "core_0001"

UTC = huitouke.store.types.UTCDateTime


def upgrade() -> None:
    op.create_table(
        "outbox",
        sa.Column("message_id", sa.String(length=36), nullable=False),
        sa.Column("dedupe_key", sa.String(length=64), nullable=False),
        sa.Column("journey_id", sa.String(length=128), nullable=False),
        sa.Column("step_id", sa.String(length=128), nullable=False),
        sa.Column("occurrence", sa.String(length=128), nullable=False),
        sa.Column("campaign_id", sa.String(length=128), nullable=True),
        sa.Column("customer_id", sa.String(length=128), nullable=False),
        sa.Column("channel", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("audience", sa.String(length=16), nullable=False),
        sa.Column("priority", sa.SmallInteger(), nullable=False),
        sa.Column("recipient", sa.String(length=320), nullable=True),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("rendered", sa.JSON(), nullable=False),
        sa.Column("segments", sa.Integer(), nullable=True),
        sa.Column("planned_at", UTC(), nullable=False),
        sa.Column("not_before", UTC(), nullable=False),
        sa.Column("expires_at", UTC(), nullable=True),
        sa.Column("suppress_if_ordered", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reason_code", sa.String(length=64), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("lease_owner", sa.String(length=64), nullable=True),
        sa.Column("lease_until", UTC(), nullable=True),
        sa.Column("created_at", UTC(), nullable=False),
        sa.Column("updated_at", UTC(), nullable=False),
        sa.Column("sent_at", UTC(), nullable=True),
        sa.Column("delivered_at", UTC(), nullable=True),
        sa.Column("provider_message_id", sa.String(length=128), nullable=True),
        sa.CheckConstraint(
            "status IN ('queued', 'sending', 'sent', 'failed', 'dead', 'suppressed')",
            name=op.f("ck_outbox_status_known"),
        ),
        sa.CheckConstraint(
            "kind IN ('transactional', 'marketing')", name=op.f("ck_outbox_kind_known")
        ),
        sa.CheckConstraint(
            "audience IN ('customer', 'staff')", name=op.f("ck_outbox_audience_known")
        ),
        sa.CheckConstraint("attempts >= 0", name=op.f("ck_outbox_attempts_nonnegative")),
        sa.PrimaryKeyConstraint("message_id", name=op.f("pk_outbox")),
        sa.UniqueConstraint("dedupe_key", name=op.f("uq_outbox_dedupe_key")),
    )
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.create_index("ix_outbox_due", ["status", "not_before"], unique=False)
        batch_op.create_index("ix_outbox_customer", ["customer_id"], unique=False)
        batch_op.create_index("ix_outbox_journey", ["journey_id"], unique=False)
        batch_op.create_index("ix_outbox_provider_id", ["provider_message_id"], unique=False)

    op.create_table(
        "contact_log",
        sa.Column("message_id", sa.String(length=36), nullable=False),
        sa.Column("customer_id", sa.String(length=128), nullable=False),
        sa.Column("channel", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("contacted_at", UTC(), nullable=False),
        sa.PrimaryKeyConstraint("message_id", name=op.f("pk_contact_log")),
    )
    with op.batch_alter_table("contact_log", schema=None) as batch_op:
        batch_op.create_index(
            "ix_contact_log_customer_at", ["customer_id", "contacted_at"], unique=False
        )

    op.create_table(
        "consent_events",
        sa.Column("event_id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("customer_id", sa.String(length=128), nullable=False),
        sa.Column("channel", sa.String(length=32), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.Column("occurred_at", UTC(), nullable=False),
        sa.CheckConstraint(
            "action IN ('granted', 'revoked', 'unsubscribed')",
            name=op.f("ck_consent_events_action_known"),
        ),
        sa.PrimaryKeyConstraint("event_id", name=op.f("pk_consent_events")),
    )
    with op.batch_alter_table("consent_events", schema=None) as batch_op:
        batch_op.create_index(
            "ix_consent_events_customer", ["customer_id", "occurred_at"], unique=False
        )

    op.create_table(
        "delivery_receipts",
        sa.Column("receipt_id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("message_id", sa.String(length=36), nullable=True),
        sa.Column("channel", sa.String(length=32), nullable=False),
        sa.Column("provider", sa.String(length=32), nullable=False),
        sa.Column("provider_message_id", sa.String(length=128), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.Column("received_at", UTC(), nullable=False),
        sa.CheckConstraint(
            "status IN ('accepted', 'delivered', 'failed', 'unknown')",
            name=op.f("ck_delivery_receipts_status_known"),
        ),
        sa.PrimaryKeyConstraint("receipt_id", name=op.f("pk_delivery_receipts")),
    )
    with op.batch_alter_table("delivery_receipts", schema=None) as batch_op:
        batch_op.create_index("ix_delivery_receipts_message", ["message_id"], unique=False)


def downgrade() -> None:
    op.drop_table("delivery_receipts")
    op.drop_table("consent_events")
    op.drop_table("contact_log")
    op.drop_table("outbox")

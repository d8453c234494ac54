"""Tables of the messaging context: the outbox, contacts, consent events and receipts.

- ``outbox``: one row per message, unique per (journey, customer, step, occurrence)
  through ``dedupe_key``; the dispatcher moves it queued → sending → sent (or failed →
  queued again, dead, suppressed). ``lease_owner``/``lease_until`` fence a claim so a
  crashed worker's rows are taken over, and a slow worker cannot mark another's claim.
- ``contact_log``: one row per message that left (the frequency caps count these).
- ``consent_events``: append-only consent history per customer and channel (``*`` = all):
  granted, revoked, unsubscribed, with source and time. Unsubscribes win over the
  ``customers.consent`` flags.
- ``delivery_receipts``: what a provider said about a message (accepted at send time,
  delivered/failed from status callbacks).
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Column,
    Index,
    Integer,
    SmallInteger,
    String,
    Table,
    Text,
)

from huitouke.store.tables import metadata
from huitouke.store.types import UTCDateTime

__all__ = ["consent_events", "contact_log", "delivery_receipts", "outbox"]

OUTBOX_STATUSES = ("queued", "sending", "sent", "failed", "dead", "suppressed")

outbox = Table(
    "outbox",
    metadata,
    Column("message_id", String(36), primary_key=True),
    Column("dedupe_key", String(64), nullable=False, unique=True),
    Column("journey_id", String(128), nullable=False),
    Column("step_id", String(128), nullable=False),
    Column("occurrence", String(128), nullable=False),
    Column("campaign_id", String(128)),
    Column("customer_id", String(128), nullable=False),
    Column("channel", String(32), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("audience", String(16), nullable=False),
    Column("priority", SmallInteger, nullable=False),
    Column("recipient", String(320)),
    Column("payload", JSON, nullable=False),
    Column("rendered", JSON, nullable=False),
    Column("segments", Integer),
    Column("planned_at", UTCDateTime, nullable=False),
    Column("not_before", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime),
    Column("suppress_if_ordered", Boolean, nullable=False),
    Column("status", String(16), nullable=False),
    Column("reason_code", String(64)),
    Column("attempts", Integer, nullable=False),
    Column("last_error", Text),
    Column("lease_owner", String(64)),
    Column("lease_until", UTCDateTime),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("sent_at", UTCDateTime),
    Column("delivered_at", UTCDateTime),
    Column("provider_message_id", String(128)),
    CheckConstraint(
        "status IN ('queued', 'sending', 'sent', 'failed', 'dead', 'suppressed')",
        name="status_known",
    ),
    CheckConstraint("kind IN ('transactional', 'marketing')", name="kind_known"),
    CheckConstraint("audience IN ('customer', 'staff')", name="audience_known"),
    CheckConstraint("attempts >= 0", name="attempts_nonnegative"),
    Index("ix_outbox_due", "status", "not_before"),
    Index("ix_outbox_customer", "customer_id"),
    Index("ix_outbox_journey_status", "journey_id", "status"),
    Index("ix_outbox_provider_id", "provider_message_id"),
)

contact_log = Table(
    "contact_log",
    metadata,
    Column("message_id", String(36), primary_key=True),
    Column("customer_id", String(128), nullable=False),
    Column("channel", String(32), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("contacted_at", UTCDateTime, nullable=False),
    Index("ix_contact_log_customer_at", "customer_id", "contacted_at"),
)

consent_events = Table(
    "consent_events",
    metadata,
    Column("event_id", Integer, primary_key=True, autoincrement=True),
    Column("customer_id", String(128), nullable=False),
    Column("channel", String(32), nullable=False),
    Column("action", String(16), nullable=False),
    Column("source", String(64), nullable=False),
    Column("detail", JSON, nullable=False),
    Column("occurred_at", UTCDateTime, nullable=False),
    CheckConstraint("action IN ('granted', 'revoked', 'unsubscribed')", name="action_known"),
    Index("ix_consent_events_customer", "customer_id", "occurred_at"),
)

delivery_receipts = Table(
    "delivery_receipts",
    metadata,
    Column("receipt_id", Integer, primary_key=True, autoincrement=True),
    Column("message_id", String(36)),
    Column("channel", String(32), nullable=False),
    Column("provider", String(32), nullable=False),
    Column("provider_message_id", String(128)),
    Column("status", String(16), nullable=False),
    Column("detail", JSON, nullable=False),
    Column("received_at", UTCDateTime, nullable=False),
    CheckConstraint(
        "status IN ('accepted', 'delivered', 'failed', 'unknown')", name="status_known"
    ),
    Index("ix_delivery_receipts_message", "message_id"),
)

"""Tables of the identity context (Alembic branch ``identity``).

- ``identity_keys``: one row per account and matching key, the key only as a keyed hash;
- ``identity_links``: an account that belongs to another account's person (the primary has
  no row: a customer without a row is its own person);
- ``identity_events``: the history — every merge and unmerge, who asked, why, by which rule.
"""

from __future__ import annotations

from sqlalchemy import JSON, CheckConstraint, Column, Index, Integer, String, Table, Text

from huitouke.store.tables import metadata
from huitouke.store.types import UTCDateTime

__all__ = ["identity_events", "identity_keys", "identity_links"]

identity_keys = Table(
    "identity_keys",
    metadata,
    Column("kind", String(16), primary_key=True),
    Column("key_hash", String(64), primary_key=True),
    Column("customer_id", String(128), primary_key=True),
    Column("indexed_at", UTCDateTime, nullable=False),
    CheckConstraint("kind IN ('phone', 'email', 'union_id')", name="kind_known"),
    Index("ix_identity_keys_customer_id", "customer_id"),
)

identity_links = Table(
    "identity_links",
    metadata,
    Column("customer_id", String(128), primary_key=True),
    Column("person_id", String(128), nullable=False),
    Column("rule", String(16), nullable=False),
    Column("linked_at", UTCDateTime, nullable=False),
    Column("actor", String(128), nullable=False),
    CheckConstraint("customer_id <> person_id", name="not_self"),
    Index("ix_identity_links_person_id", "person_id"),
)

identity_events = Table(
    "identity_events",
    metadata,
    Column("event_id", Integer, primary_key=True, autoincrement=True),
    Column("at", UTCDateTime, nullable=False),
    Column("action", String(16), nullable=False),
    Column("person_id", String(128), nullable=False),
    Column("customer_ids", JSON, nullable=False),
    Column("rule", String(16), nullable=False),
    Column("actor", String(128), nullable=False),
    Column("reason", Text, nullable=False),
    CheckConstraint("action IN ('merge', 'unmerge')", name="action_known"),
    Index("ix_identity_events_person_id", "person_id"),
)

"""Tables of the connectors context.

- ``connectors``: one row per connector — its kind, platform base URL, shop, whether it is
  paused, and its credentials sealed (``core.secretbox``, context
  ``connector:<name>:<field>``): never stored or shown in clear.
- ``connector_cursors``: the pull's high-water mark per connector — the platform update
  time of the last order recorded, committed in the same unit of work as the orders it
  covers (so a crash resumes where the last committed page ended) — and the last sync's
  times, counts and error.
- ``connector_inbox``: every verified webhook delivery, raw, before it is applied; unique on
  ``(connector, object_id, updated_at)`` so a delivery repeated by the platform is stored
  once.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Column,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from huitouke.store.tables import metadata
from huitouke.store.types import UTCDateTime

__all__ = ["connector_cursors", "connector_inbox", "connectors"]

connectors = Table(
    "connectors",
    metadata,
    Column("name", String(32), primary_key=True),
    Column("kind", String(32), nullable=False),
    Column("api_base_url", String(500), nullable=False),
    Column("shop", String(200)),
    # field → sealed text (access_token, webhook_secret, consumer_key, consumer_secret)
    Column("credentials", JSON, nullable=False, default=dict),
    Column("status", String(16), nullable=False, default="active"),
    Column("overlap_seconds", Integer, nullable=False, default=300),
    Column("page_size", Integer, nullable=False, default=100),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)

connector_cursors = Table(
    "connector_cursors",
    metadata,
    Column("connector", String(32), primary_key=True),
    Column("watermark", UTCDateTime),
    Column("pulled", Integer, nullable=False, default=0),
    Column("sync_started_at", UTCDateTime),
    Column("sync_finished_at", UTCDateTime),
    Column("last_error", Text),
)

connector_inbox = Table(
    "connector_inbox",
    metadata,
    Column("inbox_id", Integer, primary_key=True, autoincrement=True),
    Column("connector", String(32), nullable=False),
    Column("object_id", String(160), nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("topic", String(64), nullable=False),
    Column("body", Text, nullable=False),
    Column("received_at", UTCDateTime, nullable=False),
    Column("status", String(16), nullable=False),
    Column("reason", Text),
    Column("attempts", Integer, nullable=False, default=0),
    Column("applied_at", UTCDateTime),
    UniqueConstraint("connector", "object_id", "updated_at", name="uq_connector_inbox_delivery"),
    Index("ix_connector_inbox_status", "connector", "status"),
)

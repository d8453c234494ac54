"""Tables of the WeCom private-domain context (Alembic branch ``wecom``).

- ``wecom_contact_ways``: a channel live code (渠道活码) — our name, the ``state`` WeCom
  returns with every add through it, where it is printed (``source``), the tags it applies,
  the welcome text and the survey its welcome message links to;
- ``wecom_contacts``: each external contact added through WeCom, the staff member who added
  them, the customer they are linked to, how (union id, phone, new), the code they came by;
- ``wecom_events``: every callback event received, once (idempotent by change type, contact,
  staff member and WeCom's create time), with what applying it did or why it failed;
- ``wecom_group_joins``: an external contact joining a customer group (客户群) — by a
  group live code (群活码: ``state`` names our code) or otherwise (``join_scene``), once
  per group, contact and join time, with the customer it is linked to, if any.
"""

from __future__ import annotations

from sqlalchemy import JSON, Column, Index, Integer, String, Table, Text, UniqueConstraint

from huitouke.store.tables import metadata
from huitouke.store.types import UTCDateTime

__all__ = ["wecom_contact_ways", "wecom_contacts", "wecom_events", "wecom_group_joins"]

wecom_contact_ways = Table(
    "wecom_contact_ways",
    metadata,
    Column("code", String(30), primary_key=True),
    Column("config_id", String(64), nullable=False),
    Column("qr_code", Text, nullable=False),
    Column("users", JSON, nullable=False),
    Column("source", String(64), nullable=False),
    Column("tags", JSON, nullable=False),
    Column("welcome_zh", Text, nullable=False),
    Column("welcome_en", Text, nullable=False),
    Column("survey", JSON, nullable=False),
    # the after-sales group live code (群活码) the welcome message offers, if any
    Column("group_chats", JSON, nullable=False),
    Column("group_config_id", String(64)),
    Column("group_qr_code", Text),
    Column("created_at", UTCDateTime, nullable=False),
)

wecom_contacts = Table(
    "wecom_contacts",
    metadata,
    Column("external_userid", String(64), primary_key=True),
    Column("follow_user", String(64), nullable=False),
    Column("customer_id", String(128), nullable=False),
    Column("linked_by", String(16), nullable=False),
    Column("code", String(30)),
    Column("name", String(200)),
    Column("added_at", UTCDateTime, nullable=False),
    Column("removed_at", UTCDateTime),
    Column("welcome", String(16), nullable=False),
    Column("welcome_error", Text),
    Index("ix_wecom_contacts_customer_id", "customer_id"),
)

wecom_events = Table(
    "wecom_events",
    metadata,
    Column("event_id", Integer, primary_key=True, autoincrement=True),
    Column("received_at", UTCDateTime, nullable=False),
    Column("event", String(64), nullable=False),
    Column("change_type", String(64), nullable=False),
    Column("external_userid", String(64), nullable=False),
    Column("user_id", String(64), nullable=False),
    Column("create_time", Integer, nullable=False),
    Column("state", String(64)),
    Column("status", String(16), nullable=False),
    Column("reason", Text),
    UniqueConstraint(
        "change_type", "external_userid", "user_id", "create_time", name="uq_wecom_events_once"
    ),
)

wecom_group_joins = Table(
    "wecom_group_joins",
    metadata,
    Column("join_id", Integer, primary_key=True, autoincrement=True),
    Column("chat_id", String(64), nullable=False),
    Column("external_userid", String(64), nullable=False),
    # WeCom's join_time (seconds since 1970) and join_scene (1 invited, 2 by a link, 3 by the
    # group's QR code — a group live code)
    Column("join_time", Integer, nullable=False),
    Column("join_scene", Integer),
    Column("state", String(64)),
    Column("code", String(30)),
    Column("customer_id", String(128)),
    Column("event_id", Integer, nullable=False),
    Column("recorded_at", UTCDateTime, nullable=False),
    UniqueConstraint("chat_id", "external_userid", "join_time", name="uq_wecom_group_joins_once"),
    Index("ix_wecom_group_joins_customer_id", "customer_id"),
)

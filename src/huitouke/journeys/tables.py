"""Tables of the journeys context.

- ``journey_definitions``: journeys defined through the API or switched on from the
  built-ins (the definition as JSON, validated by :class:`~huitouke.journeys.model.Journey`).
- ``journey_assignments``: who entered which journey occurrence in which group (treatment
  or holdout), on which day — what measurement compares. Written once per (journey,
  customer, occurrence); a re-run of the same day changes nothing.
- ``order_events``: fulfilment events (shipped, delivered, completed) that trigger the
  post-purchase journeys; paid events come from the orders table.
- ``journey_run_days``: (journey, day) of every real run that was written: a journey is
  never run twice for one day.
"""

from __future__ import annotations

from sqlalchemy import JSON, Boolean, CheckConstraint, Column, Date, Index, String, Table

from huitouke.store.tables import metadata
from huitouke.store.types import UTCDateTime

__all__ = [
    "journey_assignments",
    "journey_definitions",
    "journey_run_days",
    "order_events",
]

journey_definitions = Table(
    "journey_definitions",
    metadata,
    Column("journey_id", String(64), primary_key=True),
    Column("definition", JSON, nullable=False),
    Column("enabled", Boolean, nullable=False),
    Column("source", String(16), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    CheckConstraint("source IN ('builtin', 'api', 'file')", name="source_known"),
)

journey_assignments = Table(
    "journey_assignments",
    metadata,
    Column("journey_id", String(64), primary_key=True),
    Column("customer_id", String(128), primary_key=True),
    Column("occurrence", String(128), primary_key=True),
    Column("group", String(16), nullable=False),
    Column("anchor_date", Date, nullable=False),
    Column("assigned_on", Date, nullable=False),
    Column("assigned_at", UTCDateTime, nullable=False),
    CheckConstraint("\"group\" IN ('treatment', 'holdout')", name="group_known"),
    Index("ix_journey_assignments_journey_on", "journey_id", "assigned_on"),
    Index("ix_journey_assignments_customer", "customer_id"),
)

order_events = Table(
    "order_events",
    metadata,
    Column("order_id", String(128), primary_key=True),
    Column("event", String(32), primary_key=True),
    Column("customer_id", String(128), nullable=False),
    Column("at", UTCDateTime, nullable=False),
    Column("recorded_at", UTCDateTime, nullable=False),
    CheckConstraint(
        "event IN ('order_paid', 'order_shipped', 'order_delivered', 'order_completed')",
        name="event_known",
    ),
    Index("ix_order_events_at", "at"),
)

#: The days each journey was run for (a real run that wrote its results): a journey is run
#: at most once per evaluation day, whichever door or scheduler asks (``journeys.days``).
journey_run_days = Table(
    "journey_run_days",
    metadata,
    Column("journey_id", String(64), primary_key=True),
    Column("run_day", Date, primary_key=True),
    Column("run_at", UTCDateTime, nullable=False),
    Column("by", String(200), nullable=False),
)

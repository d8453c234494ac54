"""The per-customer facts snapshot: one row per customer (``customer_facts``) and one row
describing the run that wrote them (``customer_facts_meta``).

Derived data, never a source of truth: :func:`huitouke.app.customer_facts.refresh_customer_facts`
replaces both tables in one unit of work from the per-customer frame (the analytics' table
with the one model policy's scores — the code behind ``huitouke customers``), so the
console's customer filters, segments and predictions pages read a few indexed rows instead
of every order on each request. 顾客事实快照(派生数据,可随时重算)。
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    CheckConstraint,
    Column,
    Date,
    Float,
    Index,
    Integer,
    SmallInteger,
    String,
    Table,
    Text,
)

from huitouke.store.tables import metadata
from huitouke.store.types import Money, UTCDateTime

__all__ = ["customer_facts", "customer_facts_meta", "like_prefix"]

customer_facts = Table(
    "customer_facts",
    metadata,
    Column("customer_id", String(128), primary_key=True),
    Column("orders", Integer, nullable=False),
    Column("revenue", Money(precision=18, scale=4), nullable=False),
    Column("first_order_at", UTCDateTime, nullable=False),
    Column("last_order_at", UTCDateTime, nullable=False),
    Column("days_since_last", Integer, nullable=False),
    Column("r_score", SmallInteger, nullable=False),
    Column("f_score", SmallInteger, nullable=False),
    Column("m_score", SmallInteger, nullable=False),
    Column("rfm_segment", String(32), nullable=False),
    Column("layer", String(32), nullable=False),
    Column("lifecycle", String(32), nullable=False),
    Column("p_alive", Float),
    Column("expected_orders", Float),
    Column("clv", Money(precision=18, scale=4)),
    Column("churn_risk", String(16)),
    # the model's median next-order date when it gives one, else the analytics' rule
    Column("next_order_date", Date),
    Column("next_order_low", Date),
    Column("next_order_high", Date),
    Column("next_order_source", String(16), nullable=False),
    Column("model", String(16)),
    Column("computed_at", UTCDateTime, nullable=False),
    CheckConstraint("orders >= 1", name="orders_positive"),
    CheckConstraint("p_alive IS NULL OR (p_alive >= 0 AND p_alive <= 1)", name="p_alive_share"),
    Index("ix_customer_facts_rfm_segment", "rfm_segment"),
    Index("ix_customer_facts_layer", "layer"),
    Index("ix_customer_facts_lifecycle", "lifecycle"),
    Index("ix_customer_facts_p_alive", "p_alive"),
    Index("ix_customer_facts_next_order_date", "next_order_date"),
)

customer_facts_meta = Table(
    "customer_facts_meta",
    metadata,
    Column("snapshot", String(16), primary_key=True),
    Column("as_of", Date, nullable=False),
    Column("computed_at", UTCDateTime, nullable=False),
    Column("timezone", String(64), nullable=False),
    Column("currency", String(8)),
    Column("customers", Integer, nullable=False),
    Column("model", String(16)),
    Column("prediction_code", String(64)),
    Column("prediction_note", Text),
    Column("prediction_note_zh", Text),
    Column("details", JSON, nullable=False),
    CheckConstraint("snapshot = 'current'", name="one_snapshot"),
)


def like_prefix(text: str) -> str:
    """A LIKE pattern (escape ``\\``) for "starts with ``text``": its own ``%``, ``_`` and
    ``\\`` are literal."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped + "%"

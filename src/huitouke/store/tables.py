"""Core tables of the store: customers, products, orders, order lines, import batches.

Declared with SQLAlchemy Core so bulk import and analytics read them without ORM cost.
Constraints the code must never break are also enforced by the database (money ≥ 0,
refunded ≤ amount, known statuses) as a backstop.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    CheckConstraint,
    Column,
    Date,
    ForeignKeyConstraint,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    func,
)

from huitouke.core.orders import DEFAULT_SOURCE
from huitouke.store.types import Money, UTCDateTime

__all__ = [
    "CONTEXT_TABLE_MODULES",
    "customers",
    "import_batches",
    "load_all_tables",
    "metadata",
    "order_lines",
    "orders",
    "products",
    "shop_profile",
]

#: Modules of the other contexts that declare their tables on :data:`metadata`.
CONTEXT_TABLE_MODULES = (
    "huitouke.identity.tables",
    "huitouke.store.customer_facts",
    "huitouke.connectors.tables",
    "huitouke.journeys.tables",
    "huitouke.loyalty.tables",
    "huitouke.measurement.tables",
    "huitouke.messaging.tables",
    "huitouke.service.tables",
    "huitouke.wecom.tables",
    "huitouke.store.snapshot_tables",
    "huitouke.app.scheduler.tables",
    "huitouke.store.audit",
    "huitouke.store.stored_settings",
    "huitouke.store.profiles",
    "huitouke.store.task_tables",
)

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

customers = Table(
    "customers",
    metadata,
    Column("customer_id", String(128), primary_key=True),
    Column("name", String(200)),
    Column("phone", String(40)),
    Column("email", String(320)),
    Column("birthday", Date),
    Column("tags", JSON, nullable=False, default=list),
    Column("attributes", JSON, nullable=False, default=dict),
    # consent per channel: {"sms": true, "email": false, "wechat": true, "webhook": true}
    Column("consent", JSON, nullable=False, default=dict),
    Column("timezone", String(64)),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)
# the customer search by prefix (huitouke.service.customers.search_customers; migration
# search_0001): pattern operator classes on PostgreSQL, so LIKE 'abc%' uses them under any
# collation; plain B-trees on SQLite, where the search asks for a range
Index("ix_customers_id_prefix", customers.c.customer_id,
      postgresql_ops={"customer_id": "varchar_pattern_ops"})  # fmt: skip
Index("ix_customers_phone_prefix", customers.c.phone,
      postgresql_ops={"phone": "varchar_pattern_ops"},
      postgresql_include=["customer_id"])  # fmt: skip
Index("ix_customers_email_prefix", func.lower(customers.c.email),
      postgresql_ops={"lower_1": "text_pattern_ops"},
      postgresql_include=["customer_id", "email"])  # fmt: skip
Index("ix_customers_name_prefix", func.lower(customers.c.name),
      postgresql_ops={"lower_1": "text_pattern_ops"},
      postgresql_include=["customer_id", "name"])  # fmt: skip

products = Table(
    "products",
    metadata,
    Column("sku", String(128), primary_key=True),
    Column("name", String(500)),
    Column("category", String(200)),
    Column("unit_price", Money),
    Column("currency", String(3)),
)

# An order is identified by (source, order_id): its id lives in the namespace of the shop,
# platform or channel it came from (huitouke.core.orders.DEFAULT_SOURCE unless told).
orders = Table(
    "orders",
    metadata,
    Column("order_id", String(128), nullable=False),
    Column("customer_id", String(128), nullable=False),
    Column("ordered_at", UTCDateTime, nullable=False),
    Column("amount", Money, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("status", String(32), nullable=False),
    Column("refunded_amount", Money, nullable=False),
    Column("channel", String(100)),
    Column("batch_id", Integer),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("source", String(32), nullable=False, default=DEFAULT_SOURCE),
    CheckConstraint("amount >= 0", name="amount_nonnegative"),
    CheckConstraint(
        "refunded_amount >= 0 AND refunded_amount <= amount", name="refund_within_amount"
    ),
    CheckConstraint(
        "status IN ('paid', 'partially_refunded', 'refunded', 'cancelled')", name="status_known"
    ),
    # the id first: a door naming an order by its id alone finds every source's in the key
    PrimaryKeyConstraint("order_id", "source"),
    Index("ix_orders_customer_ordered", "customer_id", "ordered_at"),
    Index("ix_orders_ordered_at", "ordered_at"),
    # the newest change, read by every snapshot's staleness check (huitouke.app.snapshots)
    Index("ix_orders_updated_at", "updated_at"),
)

order_lines = Table(
    "order_lines",
    metadata,
    Column("order_id", String(128), nullable=False),
    Column("line_no", Integer, nullable=False),
    Column("sku", String(128)),
    Column("product_name", String(500)),
    Column("category", String(200)),
    Column("quantity", Integer, nullable=False),
    Column("unit_price", Money),
    Column("source", String(32), nullable=False, default=DEFAULT_SOURCE),
    CheckConstraint("quantity >= 0", name="quantity_nonnegative"),
    PrimaryKeyConstraint("order_id", "source", "line_no"),
    ForeignKeyConstraint(
        ["order_id", "source"], ["orders.order_id", "orders.source"], ondelete="CASCADE"
    ),
)

import_batches = Table(
    "import_batches",
    metadata,
    Column("batch_id", Integer, primary_key=True, autoincrement=True),
    Column("source", Text, nullable=False),
    Column("preset", String(40), nullable=False),
    Column("started_at", UTCDateTime, nullable=False),
    Column("finished_at", UTCDateTime),
    Column("rows_read", Integer, nullable=False, default=0),
    Column("orders_inserted", Integer, nullable=False, default=0),
    Column("orders_updated", Integer, nullable=False, default=0),
    Column("rows_rejected", Integer, nullable=False, default=0),
    Column("status", String(20), nullable=False),
)

# What the store knows about the shop itself, one value per key — e.g. ``timezone``: the
# merchant zone in force when the first orders were imported (see store/shop_profile.py).
shop_profile = Table(
    "shop_profile",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
    Column("set_at", UTCDateTime, nullable=False),
    Column("batch_id", Integer),
)


def load_all_tables() -> MetaData:
    """The metadata with every context's tables declared (migrations and schema checks)."""
    import importlib

    for name in CONTEXT_TABLE_MODULES:
        importlib.import_module(name)
    return metadata

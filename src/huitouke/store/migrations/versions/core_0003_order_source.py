"""core: orders and order lines keyed by (source, order_id)

An order id lives in the namespace of the shop, platform or channel it came from: two
sources may use the same ids without one reassigning the other's order. Orders recorded
before keep their rows under the source ``default`` (``huitouke.core.orders.DEFAULT_SOURCE``).

The tables are rebuilt (copied aside, created anew, copied back) rather than altered: SQLite
cannot change a primary key in place, and dropping ``orders`` while ``order_lines`` still
referenced it would delete the lines through ``ON DELETE CASCADE``. The same steps run on
PostgreSQL, so both databases end with the declared constraint names.

Revision ID: core_0003
Revises: core_0002
Create Date: 2026-12-06 11:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import huitouke.store.types

revision: str = "core_0003"
down_revision: str | Sequence[str] | None = "core_0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

DEFAULT_SOURCE = "default"  # huitouke.core.orders.DEFAULT_SOURCE when this was written

_ORDER_COLS = (
    "order_id, customer_id, ordered_at, amount, currency, status, refunded_amount, channel, "
    "batch_id, updated_at"
)
_LINE_COLS = "order_id, line_no, sku, product_name, category, quantity, unit_price"


def _orders_table(with_source: bool) -> None:
    key = [sa.Column("source", sa.String(length=32), nullable=False)] if with_source else []
    op.create_table(
        "orders",
        sa.Column("order_id", sa.String(length=128), nullable=False),
        sa.Column("customer_id", sa.String(length=128), nullable=False),
        sa.Column("ordered_at", huitouke.store.types.UTCDateTime(), nullable=False),
        sa.Column("amount", huitouke.store.types.Money(precision=18, scale=4), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column(
            "refunded_amount", huitouke.store.types.Money(precision=18, scale=4), nullable=False
        ),
        sa.Column("channel", sa.String(length=100), nullable=True),
        sa.Column("batch_id", sa.Integer(), nullable=True),
        sa.Column("updated_at", huitouke.store.types.UTCDateTime(), nullable=False),
        *key,
        sa.CheckConstraint(
            "status IN ('paid', 'partially_refunded', 'refunded', 'cancelled')",
            name=op.f("ck_orders_status_known"),
        ),
        sa.CheckConstraint("amount >= 0", name=op.f("ck_orders_amount_nonnegative")),
        sa.CheckConstraint(
            "refunded_amount >= 0 AND refunded_amount <= amount",
            name=op.f("ck_orders_refund_within_amount"),
        ),
        # the id first: an order named by its id alone is found through the key
        sa.PrimaryKeyConstraint(
            "order_id", *(["source"] if with_source else []), name=op.f("pk_orders")
        ),
    )
    op.create_index("ix_orders_customer_ordered", "orders", ["customer_id", "ordered_at"])
    op.create_index("ix_orders_ordered_at", "orders", ["ordered_at"])


def _lines_table(with_source: bool) -> None:
    key = ["order_id", "source"] if with_source else ["order_id"]
    op.create_table(
        "order_lines",
        sa.Column("order_id", sa.String(length=128), nullable=False),
        sa.Column("line_no", sa.Integer(), nullable=False),
        sa.Column("sku", sa.String(length=128), nullable=True),
        sa.Column("product_name", sa.String(length=500), nullable=True),
        sa.Column("category", sa.String(length=200), nullable=True),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("unit_price", huitouke.store.types.Money(precision=18, scale=4), nullable=True),
        *([sa.Column("source", sa.String(length=32), nullable=False)] if with_source else []),
        sa.CheckConstraint("quantity >= 0", name=op.f("ck_order_lines_quantity_nonnegative")),
        sa.ForeignKeyConstraint(
            key,
            [f"orders.{c}" for c in key],
            name=op.f(f"fk_order_lines_{key[0]}_orders"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(*key, "line_no", name=op.f("pk_order_lines")),
    )


def _set_aside() -> None:
    """Copy both tables aside and drop them (lines first: nothing cascades)."""
    op.execute("CREATE TABLE _orders_before AS SELECT * FROM orders")
    op.execute("CREATE TABLE _order_lines_before AS SELECT * FROM order_lines")
    op.drop_table("order_lines")
    op.drop_index("ix_orders_ordered_at", table_name="orders")
    op.drop_index("ix_orders_customer_ordered", table_name="orders")
    op.drop_table("orders")


def upgrade() -> None:
    _set_aside()
    _orders_table(with_source=True)
    _lines_table(with_source=True)
    op.execute(
        f"INSERT INTO orders (source, {_ORDER_COLS}) "
        f"SELECT '{DEFAULT_SOURCE}', {_ORDER_COLS} FROM _orders_before"
    )
    op.execute(
        f"INSERT INTO order_lines (source, {_LINE_COLS}) "
        f"SELECT '{DEFAULT_SOURCE}', {_LINE_COLS} FROM _order_lines_before"
    )
    op.drop_table("_order_lines_before")
    op.drop_table("_orders_before")


def downgrade() -> None:
    bind = op.get_bind()
    others = bind.execute(
        sa.text("SELECT count(*) FROM orders WHERE source <> :d"), {"d": DEFAULT_SOURCE}
    ).scalar_one()
    if others:
        raise RuntimeError(
            f"{others} orders belong to sources other than {DEFAULT_SOURCE!r}: without a "
            "source their ids could collide, so this store cannot go back before core_0003"
        )
    _set_aside()
    _orders_table(with_source=False)
    _lines_table(with_source=False)
    op.execute(f"INSERT INTO orders ({_ORDER_COLS}) SELECT {_ORDER_COLS} FROM _orders_before")
    op.execute(
        f"INSERT INTO order_lines ({_LINE_COLS}) SELECT {_LINE_COLS} FROM _order_lines_before"
    )
    op.drop_table("_order_lines_before")
    op.drop_table("_orders_before")

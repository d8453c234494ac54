"""loyalty: the ledger's orders keyed by (source, order_id), as the store's orders are

Orders the ledger saw before keep their rows under the source ``default``. The table is
rebuilt (copied aside, created anew, copied back): SQLite cannot change a primary key in
place; PostgreSQL runs the same steps.

Revision ID: loyalty_0003
Revises: loyalty_0002
Create Date: 2026-12-06 11:35:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import huitouke.store.types

revision: str = "loyalty_0003"
down_revision: str | Sequence[str] | None = "loyalty_0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

DEFAULT_SOURCE = "default"  # huitouke.core.orders.DEFAULT_SOURCE when this was written

_COLS = (
    "order_id, customer_id, ordered_at, amount, currency, status, refunded_amount, earned, "
    "first_paid, points_earned, points_reversed, points_lot_id, stamps, updated_at"
)


def _table(with_source: bool) -> None:
    money = huitouke.store.types.Money(precision=18, scale=4)
    op.create_table(
        "loyalty_orders",
        sa.Column("order_id", sa.String(length=128), nullable=False),
        sa.Column("customer_id", sa.String(length=128), nullable=False),
        sa.Column("ordered_at", huitouke.store.types.UTCDateTime(), nullable=False),
        sa.Column("amount", money, nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("refunded_amount", money, nullable=False),
        sa.Column("earned", sa.Boolean(), nullable=False),
        sa.Column("first_paid", sa.Boolean(), nullable=False),
        sa.Column("points_earned", money, nullable=False),
        sa.Column("points_reversed", money, nullable=False),
        sa.Column(
            "points_lot_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.Column("stamps", sa.JSON(), nullable=False),
        sa.Column("updated_at", huitouke.store.types.UTCDateTime(), nullable=False),
        *([sa.Column("source", sa.String(length=32), nullable=False)] if with_source else []),
        sa.CheckConstraint(
            "points_reversed <= points_earned",
            name=op.f("ck_loyalty_orders_reversal_within_earned"),
        ),
        sa.PrimaryKeyConstraint(
            "order_id", *(["source"] if with_source else []), name=op.f("pk_loyalty_orders")
        ),
    )
    op.create_index("ix_loyalty_orders_customer", "loyalty_orders", ["customer_id", "ordered_at"])


def _set_aside() -> None:
    op.execute("CREATE TABLE _loyalty_orders_before AS SELECT * FROM loyalty_orders")
    op.drop_index("ix_loyalty_orders_customer", table_name="loyalty_orders")
    op.drop_table("loyalty_orders")


def upgrade() -> None:
    _set_aside()
    _table(with_source=True)
    op.execute(
        f"INSERT INTO loyalty_orders (source, {_COLS}) "
        f"SELECT '{DEFAULT_SOURCE}', {_COLS} FROM _loyalty_orders_before"
    )
    op.drop_table("_loyalty_orders_before")


def downgrade() -> None:
    others = (
        op.get_bind()
        .execute(
            sa.text("SELECT count(*) FROM loyalty_orders WHERE source <> :d"),
            {"d": DEFAULT_SOURCE},
        )
        .scalar_one()
    )
    if others:
        raise RuntimeError(
            f"the ledger holds {others} orders of sources other than {DEFAULT_SOURCE!r}: "
            "this store cannot go back before loyalty_0003"
        )
    _set_aside()
    _table(with_source=False)
    op.execute(f"INSERT INTO loyalty_orders ({_COLS}) SELECT {_COLS} FROM _loyalty_orders_before")
    op.drop_table("_loyalty_orders_before")

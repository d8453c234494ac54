"""Migrating a store made before order sources (core_0003, loyalty_0003): every order, line
and ledger order is kept under the source ``default``, and the keys become
(source, order_id) — on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import sqlalchemy as sa
from alembic import command

from huitouke.app.orders import order_event, record_order_events
from huitouke.store import tables as t
from huitouke.store.db import Store
from huitouke.store.types import Money, UTCDateTime

AT = datetime(2026, 10, 1, 2, tzinfo=UTC)

# the tables as they were at core_0002 / loyalty_0002 (no source column)
_old_orders = sa.table(
    "orders",
    *(sa.column(c) for c in ("order_id", "customer_id", "currency", "status", "channel")),
    sa.column("ordered_at", UTCDateTime()),
    sa.column("updated_at", UTCDateTime()),
    sa.column("amount", Money()),
    sa.column("refunded_amount", Money()),
)
_old_lines = sa.table(
    "order_lines",
    *(sa.column(c) for c in ("order_id", "line_no", "sku", "quantity")),
    sa.column("unit_price", Money()),
)
_old_ledger = sa.table(
    "loyalty_orders",
    *(sa.column(c) for c in ("order_id", "customer_id", "currency", "status", "earned")),
    sa.column("first_paid"),
    sa.column("stamps", sa.JSON()),
    sa.column("ordered_at", UTCDateTime()),
    sa.column("updated_at", UTCDateTime()),
    *(
        sa.column(c, Money())
        for c in ("amount", "refunded_amount", "points_earned", "points_reversed")
    ),
)


def test_existing_orders_move_to_the_default_source(store_url: str) -> None:
    store = Store(store_url)
    try:
        cfg = store.alembic_config()
        command.upgrade(cfg, "core_0002")
        command.upgrade(cfg, "loyalty_0002")
        with store.begin() as conn:
            for i, (oid, cid) in enumerate((("o1", "c1"), ("o2", "c2"))):
                conn.execute(
                    sa.insert(_old_orders).values(
                        order_id=oid, customer_id=cid, ordered_at=AT, updated_at=AT,
                        amount=Decimal("12.3400"), refunded_amount=Decimal(i), currency="CNY",
                        status="paid" if i == 0 else "partially_refunded", channel="tmall",
                    )
                )  # fmt: skip
                conn.execute(
                    sa.insert(_old_lines).values(
                        order_id=oid, line_no=1, sku="s1", quantity=2, unit_price=Decimal("6.17")
                    )
                )
            conn.execute(
                sa.insert(_old_ledger).values(
                    order_id="o1", customer_id="c1", currency="CNY", status="paid",
                    earned=True, first_paid=True, stamps={}, ordered_at=AT, updated_at=AT,
                    amount=Decimal("12.34"), refunded_amount=Decimal(0),
                    points_earned=Decimal(12), points_reversed=Decimal(0),
                )
            )  # fmt: skip

        store.migrate()  # every head: core_0003, loyalty_0003

        insp = sa.inspect(store.engine)
        assert insp.get_pk_constraint("orders")["constrained_columns"] == ["order_id", "source"]
        assert insp.get_pk_constraint("order_lines")["constrained_columns"] == [
            "order_id",
            "source",
            "line_no",
        ]
        assert insp.get_pk_constraint("loyalty_orders")["constrained_columns"] == [
            "order_id",
            "source",
        ]
        (fk,) = insp.get_foreign_keys("order_lines")
        assert fk["constrained_columns"] == ["order_id", "source"]
        assert fk["referred_columns"] == ["order_id", "source"]
        with store.connect() as conn:
            orders = conn.execute(sa.select(t.orders).order_by(t.orders.c.order_id)).all()
            lines = conn.execute(sa.select(t.order_lines).order_by(t.order_lines.c.order_id)).all()
            ledger = conn.execute(sa.text("SELECT source, order_id FROM loyalty_orders")).all()
        assert [(o.source, o.order_id, o.customer_id) for o in orders] == [
            ("default", "o1", "c1"),
            ("default", "o2", "c2"),
        ]
        assert orders[0].amount == Decimal("12.34") and orders[1].refunded_amount == Decimal(1)
        assert orders[1].status == "partially_refunded" and orders[0].channel == "tmall"
        assert orders[0].ordered_at == AT
        # the lines survived the rebuild of the orders table (nothing cascaded)
        assert [(ln.source, ln.order_id, ln.unit_price) for ln in lines] == [
            ("default", "o1", Decimal("6.17")),
            ("default", "o2", Decimal("6.17")),
        ]
        assert [tuple(r) for r in ledger] == [("default", "o1")]

        # the old orders are the default source's: an event without a source is a replay,
        # and another source may use the same id
        with store.begin() as conn:
            same = order_event(
                {"order_id": "o1", "customer_id": "c1", "ordered_at": AT, "amount": "12.34",
                 "channel": "tmall"},
                currency="CNY",
            )  # fmt: skip
            other = order_event(
                {"source": "shopify", "order_id": "o1", "customer_id": "c9",
                 "ordered_at": AT, "amount": "99"},
                currency="CNY",
            )  # fmt: skip
            rec = record_order_events(conn, [same, other], loyalty=None)
        assert [r["replayed"] for r in rec.results] == [True, False]
        assert rec.counts.inserted == 1
        # deleting an order still deletes its lines (the new foreign key cascades)
        with store.begin() as conn:
            conn.execute(
                sa.delete(t.orders).where(
                    t.orders.c.source == "default", t.orders.c.order_id == "o2"
                )
            )
            left = conn.execute(sa.select(t.order_lines.c.order_id)).scalars().all()
        assert left == ["o1"]
    finally:
        store.dispose()


def test_downgrade_refuses_when_sources_would_collide(store: Store) -> None:
    """Going back before core_0003 would lose the source of a non-default order: refused."""
    import pytest

    with store.begin() as conn:
        conn.execute(
            sa.insert(t.orders).values(
                source="taobao", order_id="o1", customer_id="c1", ordered_at=AT, updated_at=AT,
                amount=Decimal(1), refunded_amount=Decimal(0), currency="CNY", status="paid",
            )
        )  # fmt: skip
    with pytest.raises(RuntimeError, match="other than"):
        command.downgrade(store.alembic_config(), "core_0002")
    with store.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(t.orders)).scalar_one() == 1

"""PostgreSQL reads the orders for analytics through COPY into Arrow's CSV reader; the table
must equal the generic row-by-row read, value for value, whatever the text holds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from huitouke.core.orders import ORDERS_SCHEMA
from huitouke.store import tables as t
from huitouke.store.db import Store


@pytest.mark.postgres
def test_copy_read_equals_the_generic_read(postgres_url: str) -> None:
    store = Store(postgres_url)
    store.migrate()
    try:
        assert store.load_orders().equals(ORDERS_SCHEMA.empty_table())
        now = datetime.now(UTC)
        odd = ["a,b", 'quote"d', "  spaced ", "王小明", "", "NULL", "\\N", "x" * 128]
        rows = [
            {
                "order_id": f"o{i}-{name}"[:128],
                "customer_id": name or "c",
                "ordered_at": datetime(2024, 1, 31, 23, 59, 59, i * 1001 % 1_000_000,
                                       tzinfo=timezone(timedelta(hours=8))),
                "amount": Decimal(f"{i * 37 + 1}.{i:04d}"),
                "currency": "CNY",
                "status": "paid" if i % 3 else "partially_refunded",
                "refunded_amount": Decimal("0") if i % 3 else Decimal("0.0001"),
                "channel": [None, "", "tmall", "有赞"][i % 4],
                "updated_at": now,
                "source": "default" if i % 2 else "jd",
            }
            for i, name in enumerate(odd * 3)
        ]  # fmt: skip
        rows[0]["ordered_at"] = datetime(2024, 1, 1, tzinfo=UTC)  # no fraction of a second
        with store.begin() as conn:
            conn.execute(t.orders.insert(), rows)
        fast = store.load_orders()
        slow = store._load_orders_generic()
        assert fast.schema == slow.schema == ORDERS_SCHEMA
        key = [("source", "ascending"), ("order_id", "ascending")]
        assert fast.sort_by(key).equals(slow.sort_by(key))
        assert fast.num_rows == len(rows)
        channels = fast.sort_by(key).column("channel").to_pylist()
        assert None in channels and "" in channels
    finally:
        store.dispose()

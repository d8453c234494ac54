"""The journeys' customers frame reads its loyalty columns set-based: the number of SQL
statements does not grow with the number of customers, and the columns equal what the
loyalty service answers member by member (SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd
import pytest
from sqlalchemy import event, select

from huitouke.journeys.integration import customers_frame
from huitouke.loyalty import LoyaltyService, load_program
from huitouke.loyalty import tables as lt
from huitouke.loyalty.tiers import tier_metric
from huitouke.settings import Settings
from huitouke.store.db import Store
from huitouke.store.tables import customers, orders

from .conftest import d

EXAMPLES = Path(__file__).resolve().parents[2] / "src" / "huitouke" / "loyalty" / "examples"
AS_OF = d("2026-03-20")
ZONE = "Asia/Shanghai"


def _seed(store: Store, svc: LoyaltyService, start: int, stop: int) -> None:
    """Customers ``c{start}`` … ``c{stop-1}`` with 1–4 orders of different sizes (stamps on
    orders from 100 CNY, tiers by spend)."""
    now = datetime(2026, 3, 1, tzinfo=UTC)
    events: list[dict[str, Any]] = []
    for i in range(start, stop):
        for k in range(1 + i % 4):
            events.append(
                {
                    "order_id": f"o{i}-{k}",
                    "customer_id": f"c{i}",
                    "ordered_at": now + timedelta(days=k, hours=i % 7),
                    "amount": Decimal(80 + 173 * ((i * 7 + k) % 9)),
                    "currency": "CNY",
                    "status": "paid",
                    "refunded_amount": Decimal(0),
                }
            )
    with store.begin() as conn:
        conn.execute(
            customers.insert(),
            [
                {
                    "customer_id": f"c{i}",
                    "tags": [],
                    "attributes": {},
                    "consent": {},
                    "created_at": now,
                    "updated_at": now,
                }
                for i in range(start, stop)
            ],
        )
        conn.execute(orders.insert(), [{**e, "updated_at": now} for e in events])
        svc.apply_orders(conn, events)


@contextmanager
def _statements(store: Store) -> Iterator[list[str]]:
    seen: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    event.listen(store.engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(store.engine, "before_cursor_execute", count)


def _frame(store: Store, svc: LoyaltyService) -> tuple[pd.DataFrame, int]:
    with _statements(store) as seen:
        df = customers_frame(
            store, AS_OF, settings=Settings(timezone=ZONE), loyalty=svc, with_p_alive=False
        )
    return df, len(seen)


def _one_by_one(conn: Any, svc: LoyaltyService) -> tuple[dict[str, float], dict[str, int]]:
    """The columns as the frame used to compute them: one customer view per member."""
    zone = ZoneInfo(ZONE)
    at = datetime.combine(AS_OF, time(23, 59, 59), tzinfo=zone).astimezone(UTC)
    tiers = svc.program.tiers
    assert tiers is not None
    levels = list(tiers.levels)
    gap: dict[str, float] = {}
    stamps: dict[str, int] = {}
    for (cid,) in conn.execute(select(lt.members.c.customer_id)):
        view = svc.customer_loyalty(conn, cid, as_of=at, expiring_within_days=0)
        missing = [
            int(c["next_reward"]["stamps"]) - int(c["stamps"])
            for c in view["stamp_cards"]
            if c.get("next_reward")
        ]
        if missing:
            stamps[cid] = min(m for m in missing if m > 0) if any(m > 0 for m in missing) else 0
        if view.get("tier"):
            idx = next(i for i, lv in enumerate(levels) if lv.id == view["tier"]["id"])
            if idx + 1 < len(levels):
                nxt = levels[idx + 1]
                metric = Decimal(tier_metric(svc, conn, cid, at))
                gap[cid] = float(max(nxt.threshold - metric, Decimal(0)) / nxt.threshold)
    return gap, stamps


def test_loyalty_columns_take_the_same_statements_for_any_number_of_customers(
    store: Store,
) -> None:
    program = load_program(EXAMPLES / "hotpot.yaml").in_store_zone(ZONE)
    assert program.tiers is not None and program.stamp_cards
    svc = LoyaltyService(program)
    counts: dict[int, int] = {}
    for start, stop in ((0, 4), (4, 60)):
        _seed(store, svc, start, stop)
        df, counts[stop] = _frame(store, svc)
        assert len(df) == stop
        # equal to the loyalty service's own view, member by member
        with store.connect() as conn:
            gap, stamps = _one_by_one(conn, svc)
        assert len(gap) >= 2 and len(stamps) == stop  # the data exercise both columns
        assert len(set(stamps.values())) > 1 and len(set(gap.values())) > 1
        got_gap = df.set_index("customer_id")["next_tier_gap_ratio"].dropna().to_dict()
        got_stamps = df.set_index("customer_id")["stamps_to_reward"].dropna().to_dict()
        assert got_gap == pytest.approx(gap)
        assert {k: int(v) for k, v in got_stamps.items()} == stamps
    # 15 times the customers, not one statement more
    assert counts[60] == counts[4], counts

"""Rows an order batch creates (stamp cards, accounts) that another PostgreSQL transaction
creates meanwhile: the batch waits for it, then works on the row the other one stored.

Each test holds the other transaction open with its row inserted, runs the batch in a
thread until it waits on that row's unique key, then commits the other transaction.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa

from huitouke.errors import ConflictError
from huitouke.loyalty import LoyaltyService, verify_ledger
from huitouke.loyalty import tables as lt
from huitouke.store.db import Store

from .conftest import T0, order

pytestmark = pytest.mark.postgres

PROGRAM: dict[str, Any] = {
    "id": "races",
    "currency": "CNY",
    "earn": {"points_per_unit": 1},
    "coupon_templates": [{"id": "t1", "kind": "fixed", "value": 5, "valid_days": 30}],
    "stamp_cards": [
        {
            "id": "s",
            "per": "order",
            "size": 3,
            "rewards": [{"stamps": 1, "template": "t1"}, {"stamps": 3, "template": "t1"}],
        }
    ],
}


@pytest.fixture
def pg_store(postgres_url: str) -> Iterator[Store]:
    s = Store(postgres_url)
    s.migrate()
    try:
        yield s
    finally:
        s.dispose()


def _race(store: Store, svc: LoyaltyService, table: Any, row: dict[str, Any]) -> Any:
    """Apply one order of c1 while another transaction holds ``row`` inserted, uncommitted;
    commit it once the batch waits on it. Returns the batch's result or its exception."""
    out: dict[str, Any] = {}
    with store.engine.connect() as other, store.engine.connect() as watch:
        tx = other.begin()
        other.execute(sa.insert(table).values(row))

        def run() -> None:
            try:
                with store.begin() as conn:
                    out["result"] = svc.apply_orders(conn, [order("o1", "c1", "100")])[0]
            except BaseException as exc:
                out["error"] = exc

        th = threading.Thread(target=run)
        th.start()
        deadline = time.monotonic() + 30
        while not watch.execute(
            sa.text("SELECT count(*) FROM pg_locks WHERE NOT granted")
        ).scalar():
            assert time.monotonic() < deadline, "the batch never waited on the other transaction"
            assert th.is_alive(), out
            time.sleep(0.02)
        tx.commit()
        th.join(30)
    assert not th.is_alive()
    return out.get("error", out.get("result"))


def test_a_stamp_card_created_meanwhile_is_the_one_stamped(
    pg_store: Store, make_svc: Callable[[Any], LoyaltyService]
) -> None:
    svc = make_svc(PROGRAM)
    # the other transaction's card already paid the first step's reward
    card = {
        "customer_id": "c1",
        "card_id": "s",
        "cycle": 1,
        "rewarded_upto": 1,
        "completed": 0,
        "updated_at": T0,
    }
    res = _race(pg_store, svc, lt.stamp_cards, card)
    assert isinstance(res, dict), res
    assert res["stamps"][0]["added"] == 1
    assert res["stamps"][0]["rewards"] == []  # a card of its own would pay step 1 now
    assert res["coupons_issued"] == []
    with pg_store.connect() as conn:
        row = conn.execute(sa.select(lt.stamp_cards)).one()
        assert (row.rewarded_upto, row.cycle, row.last_stamp_day) == (1, 1, "2026-03-01")
        assert verify_ledger(conn) == []


def test_an_empty_account_created_meanwhile_takes_the_entries(
    pg_store: Store, make_svc: Callable[[Any], LoyaltyService]
) -> None:
    svc = make_svc(PROGRAM)
    acct = {"customer_id": "c1", "asset": "points", "balance": Decimal(0), "updated_at": T0}
    res = _race(pg_store, svc, lt.accounts, acct)
    assert isinstance(res, dict), res
    assert res["points_earned"] == "100"
    a, e = lt.accounts.c, lt.entries.c
    with pg_store.connect() as conn:
        rows = conn.execute(sa.select(a.account_id, a.balance).where(a.asset == "points")).all()
        assert len(rows) == 1
        assert rows[0].balance == Decimal(100)
        n = conn.execute(
            sa.select(sa.func.count()).where(e.account_id == rows[0].account_id)
        ).scalar_one()
        assert n == 1
        assert verify_ledger(conn) == []


def test_an_account_created_meanwhile_with_a_balance_refuses_the_batch(
    pg_store: Store, make_svc: Callable[[Any], LoyaltyService]
) -> None:
    svc = make_svc(PROGRAM)
    acct = {"customer_id": "c1", "asset": "points", "balance": Decimal(5), "updated_at": T0}
    res = _race(pg_store, svc, lt.accounts, acct)
    assert isinstance(res, ConflictError), res
    assert res.code == "loyalty.concurrent_update"
    assert res.details == {"customer_id": "c1", "asset": "points"}
    with pg_store.connect() as conn:  # nothing of the batch was written
        assert conn.execute(sa.select(sa.func.count()).select_from(lt.orders)).scalar_one() == 0

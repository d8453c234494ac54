"""The ledger on SQLite and PostgreSQL: points, refunds, coupons, expiry, verification."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa

from huitouke.errors import ConflictError, ForbiddenError, InputError, NotFoundError
from huitouke.loyalty import LoyaltyService, verify_ledger
from huitouke.loyalty import tables as lt
from huitouke.store.db import Store

from .conftest import T0, Clock, assert_ledger_ok, order

Make = Callable[[Any], LoyaltyService]

POINTS_PROGRAM: dict[str, Any] = {
    "id": "p",
    "earn": {"points_per_unit": 1, "unit": 1},
    "points_expiry": {"mode": "rolling_days", "days": 30},
    "redemption": {
        "points_per_currency_unit": 100,
        "rewards": [{"id": "r20", "points": 50, "template": "fixed20"}],
    },
    "coupon_templates": [
        {"id": "fixed20", "kind": "fixed", "value": 20, "valid_days": 10, "max_per_customer": 2},
        {
            "id": "man200",
            "kind": "threshold",
            "value": 30,
            "min_order_amount": 200,
            "valid_days": 10,
        },
        {"id": "solo", "kind": "fixed", "value": 5, "transferable": False},
    ],
}


def test_paid_order_earns_and_replay_changes_nothing(store: Store, make_svc: Make) -> None:
    svc = make_svc(POINTS_PROGRAM).bound(store)
    first = svc.apply_order(order("o1", amount="123.45"))
    assert first["points_earned"] == "123" and first["replayed"] is False
    again = svc.apply_order(order("o1", amount="123.45"))
    assert again["replayed"] is True
    assert {k: v for k, v in again.items() if k != "replayed"} == {
        k: v for k, v in first.items() if k != "replayed"
    }
    with store.connect() as conn:
        view = svc.service.customer_loyalty(conn, "c1")
        n_entries = conn.execute(sa.select(sa.func.count()).select_from(lt.entries)).scalar_one()
    assert set(view) == {
        "points_balance",
        "tier",
        "stamp_cards",
        "stored_value",
        "coupons",
        "membership",
        "expiring_soon",
    }
    assert view["points_balance"] == "123"
    assert view["stored_value"] == {"paid": "0", "bonus": "0", "pending_bonus": "0"}
    assert n_entries == 1
    assert_ledger_ok(store)


def test_partial_then_full_refund_reverses_proportionally(store: Store, make_svc: Make) -> None:
    svc = make_svc(POINTS_PROGRAM).bound(store)
    svc.apply_order(order("o1", amount="200"))
    r1 = svc.apply_order(order("o1", amount="200", status="partially_refunded", refunded="50"))
    assert r1["points_reversed"] == "50"
    stale = svc.apply_order(order("o1", amount="200", status="paid"))
    assert stale["ignored"] == "no_change" or stale["replayed"]
    r2 = svc.apply_order(order("o1", amount="200", status="refunded", refunded="200"))
    assert r2["points_reversed"] == "150"
    with store.connect() as conn:
        assert svc.service.customer_loyalty(conn, "c1")["points_balance"] == "0"
    # an old partial-refund event arriving late changes nothing
    late = svc.apply_order(order("o1", amount="200", status="partially_refunded", refunded="20"))
    assert late["ignored"] == "stale" and late["points_reversed"] == "0"
    assert_ledger_ok(store)


def test_refund_after_points_were_spent_records_a_debt_paid_by_future_earnings(
    store: Store, make_svc: Make
) -> None:
    svc = make_svc(POINTS_PROGRAM).bound(store)
    svc.apply_order(order("o1", amount="100"))
    spent = svc.redeem_points("c1", 80, idempotency_key="k1")
    assert spent["discount"] == "0.8" and spent["points_balance"] == "20"
    r = svc.apply_order(order("o1", amount="100", status="refunded", refunded="100"))
    assert r["points_reversed"] == "20" and r["points_debt_added"] == "80"
    with store.connect() as conn:
        assert svc.service.balances(conn, "c1") == {"points": "0", "points_debt": "80"}
    e = svc.apply_order(order("o2", amount="50"))
    assert e["points_earned"] == "0" and e["points_debt_settled"] == "50"
    e = svc.apply_order(order("o3", amount="50"))
    assert e["points_earned"] == "20" and e["points_debt_settled"] == "30"
    with store.connect() as conn:
        assert svc.service.balances(conn, "c1") == {"points": "20", "points_debt": "0"}
    assert_ledger_ok(store)


def test_fifo_spending_and_expiry(store: Store, make_svc: Make, clock: Clock) -> None:
    svc = make_svc(POINTS_PROGRAM).bound(store)
    svc.apply_order(order("o1", amount="100", at=T0))
    svc.apply_order(order("o2", amount="100", at=T0 + timedelta(days=10)))
    svc.redeem_points("c1", 150, idempotency_key="spend")  # 100 from o1's lot, 50 from o2's
    with store.connect() as conn:
        soon = svc.service.expiring_soon(conn, "c1", 45, T0)
    assert [(x["kind"], x["amount"]) for x in soon] == [("points", "50")]
    out = svc.expire(T0 + timedelta(days=31))
    assert out["points"] == "0"  # o1's lot was spent first, nothing left to expire
    out = svc.expire(T0 + timedelta(days=41))
    assert out["points"] == "50" and out["lots"] == 1
    assert svc.expire(T0 + timedelta(days=41))["lots"] == 0  # re-running changes nothing
    with store.connect() as conn:
        assert svc.service.customer_loyalty(conn, "c1")["points_balance"] == "0"
    assert_ledger_ok(store)


def test_points_cannot_go_negative_and_database_refuses_it(store: Store, make_svc: Make) -> None:
    svc = make_svc(POINTS_PROGRAM).bound(store)
    svc.apply_order(order("o1", amount="10"))
    with pytest.raises(ConflictError) as e:
        svc.redeem_points("c1", 11, idempotency_key="too-much")
    assert e.value.code == "points.insufficient"
    with pytest.raises(sa.exc.IntegrityError), store.begin() as conn:
        conn.execute(sa.update(lt.accounts).values(balance=Decimal(-1)))
    assert_ledger_ok(store)


def test_verify_ledger_finds_tampering(store: Store, make_svc: Make) -> None:
    svc = make_svc(POINTS_PROGRAM).bound(store)
    svc.apply_order(order("o1", amount="10"))
    with store.begin() as conn:
        conn.execute(sa.update(lt.accounts).values(balance=Decimal(11)))
    with store.connect() as conn:
        problems = {d.problem for d in verify_ledger(conn)}
    assert problems == {"balance_mismatch", "lots_mismatch"}


def test_points_for_reward_coupon_and_adjustments(store: Store, make_svc: Make) -> None:
    svc = make_svc(POINTS_PROGRAM).bound(store)
    svc.adjust_points("c1", 120, reason="goodwill", idempotency_key="a1")
    r = svc.redeem_points("c1", reward="r20", idempotency_key="rw1")
    assert r["coupon"]["template"] == "fixed20" and r["points_balance"] == "70"
    assert svc.redeem_points("c1", reward="r20", idempotency_key="rw1")["replayed"] is True
    svc.adjust_points("c1", -70, reason="fraud", idempotency_key="a2")
    with pytest.raises(ConflictError):
        svc.adjust_points("c1", -1, reason="x", idempotency_key="a3")
    with pytest.raises(InputError):
        svc.adjust_points("c1", 0, reason="x", idempotency_key="a4")
    assert_ledger_ok(store)


# -- coupons ------------------------------------------------------------------------------
def test_coupon_lifecycle_issue_gift_redeem(store: Store, make_svc: Make, clock: Clock) -> None:
    svc = make_svc(POINTS_PROGRAM).bound(store)
    c = svc.issue_coupon("man200", "alice", idempotency_key="i1")
    code = c["code"]
    assert svc.issue_coupon("man200", "alice", idempotency_key="i1")["code"] == code
    g = svc.gift_coupon(code, "alice", "bob")
    assert g["holder"] == "bob"
    with pytest.raises(ConflictError) as e:
        svc.gift_coupon(code, "bob", "carol")
    assert e.value.code == "coupon.transfer_limit"
    with pytest.raises(ForbiddenError) as e2:
        svc.redeem_coupon(code, order_id="x1", customer_id="alice", order_amount="300")
    assert e2.value.code == "coupon.not_holder"
    with pytest.raises(ConflictError) as e:
        svc.redeem_coupon(code, order_id="x1", customer_id="bob", order_amount="199")
    assert e.value.code == "coupon.threshold_not_met"
    red = svc.redeem_coupon(
        code.lower(), order_id="x1", customer_id="bob", order_amount="300", redemption_id="r1"
    )
    assert red["discount"] == "30"
    assert (
        svc.redeem_coupon(
            code, order_id="x1", customer_id="bob", order_amount="300", redemption_id="r1"
        )["replayed"]
        is True
    )
    with pytest.raises(ConflictError) as e:
        svc.redeem_coupon(
            code, order_id="x2", customer_id="bob", order_amount="300", redemption_id="r2"
        )
    assert e.value.code == "coupon.already_redeemed"
    with pytest.raises(ConflictError) as e:
        svc.redeem_coupon(code, order_id="x9", customer_id="bob", redemption_id="r1")
    assert e.value.code == "coupon.redemption_id_reused"
    with pytest.raises(ConflictError):
        svc.void_coupon(code)
    with store.connect() as conn:
        hist = svc.service.coupon(conn, code)
    assert [ev["kind"] for ev in hist["events"]] == ["issued", "gifted", "redeemed"]


def test_coupon_errors_expiry_void_limits(store: Store, make_svc: Make, clock: Clock) -> None:
    svc = make_svc(POINTS_PROGRAM).bound(store)
    with pytest.raises(NotFoundError) as e:
        svc.redeem_coupon("0000-0000-0000", order_id="o", customer_id="c1")
    assert e.value.code == "coupon.not_found"
    c = svc.issue_coupon("fixed20", "c1", idempotency_key="i1")["code"]
    typo = ("1" if c[0] != "1" else "2") + c[1:]
    with pytest.raises(NotFoundError) as e:
        svc.redeem_coupon(typo, order_id="o", customer_id="c1")
    assert e.value.details["reason"].startswith("check symbol")
    svc.issue_coupon("fixed20", "c1", idempotency_key="i2")
    with pytest.raises(ConflictError) as e:
        svc.issue_coupon("fixed20", "c1", idempotency_key="i3")
    assert e.value.code == "coupon.limit_reached"
    solo = svc.issue_coupon("solo", "c1", idempotency_key="i4")["code"]
    with pytest.raises(ConflictError) as e:
        svc.gift_coupon(solo, "c1", "c2")
    assert e.value.code == "coupon.transfer_limit"
    assert svc.void_coupon(solo, reason="mistake")["status"] == "voided"
    assert svc.void_coupon(solo)["replayed"] is True
    with pytest.raises(ConflictError) as e:
        svc.redeem_coupon(solo, order_id="o", customer_id="c1")
    assert e.value.code == "coupon.voided"
    clock.advance(days=11)
    with pytest.raises(ConflictError) as e:
        svc.redeem_coupon(c, order_id="o", customer_id="c1")
    assert e.value.code == "coupon.expired"
    out = svc.expire(clock())
    assert out["coupons"] == 2
    with store.connect() as conn:
        statuses = sorted(x["status"] for x in svc.service.customer_loyalty(conn, "c1")["coupons"])
    assert statuses == ["expired", "expired", "voided"]

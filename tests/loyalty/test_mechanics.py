"""Each mechanic through the service, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa

from huitouke.errors import ConflictError
from huitouke.loyalty import LoyaltyService
from huitouke.store import tables as st
from huitouke.store.db import Store

from .conftest import T0, Clock, assert_ledger_ok, order

Make = Callable[[Any], LoyaltyService]


def _customer(store: Store, cid: str, phone: str | None) -> None:
    now = datetime.now(UTC)
    with store.begin() as conn:
        conn.execute(
            st.customers.insert(),
            {
                "customer_id": cid,
                "phone": phone,
                "tags": [],
                "attributes": {},
                "consent": {},
                "created_at": now,
                "updated_at": now,
            },
        )


def test_hotpot_stamp_ladder_paid_as_coupons_and_card_restarts(
    store: Store, make_svc: Make, clock: Clock
) -> None:
    svc = make_svc("hotpot").bound(store)
    templates = []
    for i in range(12):
        at = clock.advance(days=1)
        r = svc.apply_order(order(f"o{i}", amount="120", at=at))
        templates += [c["template"] for c in r["coupons_issued"]]
    same_day = svc.apply_order(order("o-same-day", amount="120", at=clock()))
    assert same_day["stamps"] == []  # one stamp per visit (local day)
    small = svc.apply_order(order("o-small", amount="99", at=clock.advance(days=1)))
    assert small["stamps"] == []  # below the card's minimum
    assert templates == ["bingfen", "mianmianbing", "feiniu", "xueshanbing", "maodu", "bingfen"]
    with store.connect() as conn:
        card = svc.service.customer_loyalty(conn, "c1")["stamp_cards"][0]
    assert (
        card["stamps"] == 2
        and card["completed"] == 1
        and card["next_reward"]["template"] == "mianmianbing"
    )
    # a gifted stamp coupon: the friend becomes the holder and redeems it
    with store.connect() as conn:
        code = next(
            c["code"]
            for c in svc.service.customer_loyalty(conn, "c1")["coupons"]
            if c["template"] == "maodu"
        )
    clock.advance(days=1)
    svc.gift_coupon(code, "c1", "friend")
    red = svc.redeem_coupon(
        code,
        order_id="f1",
        customer_id="friend",
        order_amount="200",
        lines=[{"sku": "maodu", "quantity": 1, "unit_price": "45"}],
    )
    assert red["discount"] == "45"
    assert_ledger_ok(store)


def test_full_refund_reverses_stamps_and_voids_order_coupons(
    store: Store, make_svc: Make, clock: Clock
) -> None:
    svc = make_svc("shop").bound(store)
    r = svc.apply_order(order("o1", amount="300"))
    kinds = sorted(c["template"] for c in r["coupons_issued"])
    assert kinds == ["next15", "spendback10"]
    spend_back = next(c for c in r["coupons_issued"] if c["template"] == "spendback10")
    assert spend_back["value"] == "30"
    part = svc.apply_order(order("o1", amount="300", status="partially_refunded", refunded="100"))
    assert part["coupons_adjusted"] == [{"code": spend_back["code"], "value": "20"}]
    full = svc.apply_order(order("o1", amount="300", status="refunded", refunded="300"))
    assert sorted(full["coupons_voided"]) == sorted(c["code"] for c in r["coupons_issued"])
    with store.connect() as conn:
        view = svc.service.customer_loyalty(conn, "c1")
    assert view["points_balance"] == "0"
    assert {c["status"] for c in view["coupons"]} == {"voided"}
    assert_ledger_ok(store)


def test_cafe_stamp_refund_after_card_completed_becomes_stamp_debt(
    store: Store, make_svc: Make, clock: Clock
) -> None:
    program = {
        "id": "x",
        "coupon_templates": [{"id": "free", "kind": "fixed", "value": 10}],
        "stamp_cards": [
            {"id": "c", "per": "order", "size": 2, "rewards": [{"stamps": 2, "template": "free"}]}
        ],
    }
    svc = make_svc(program).bound(store)
    svc.apply_order(order("o1", amount="10"))
    done = svc.apply_order(order("o2", amount="10"))
    assert done["stamps"][0]["completed_cards"] == 1 and len(done["coupons_issued"]) == 1
    r = svc.apply_order(order("o2", amount="10", status="refunded", refunded="10"))
    assert r["stamps"] == [{"card": "c", "reversed": 0, "debt_added": 1}]
    nxt = svc.apply_order(order("o3", amount="10"))
    assert nxt["stamps"][0]["debt_settled"] == 1 and nxt["stamps"][0]["balance"] == 0
    assert_ledger_ok(store)


def test_tiers_upgrade_at_once_and_downgrade_after_period_and_grace(
    store: Store, make_svc: Make, clock: Clock
) -> None:
    svc = make_svc("hotpot").bound(store)
    r = svc.apply_order(order("o1", amount="500"))
    assert r["tier"] == {"from": None, "to": "member", "metric": "500"}
    r = svc.apply_order(order("o2", amount="600", at=clock.advance(days=1)))
    assert r["tier"]["to"] == "silver"
    # silver multiplier 1.2: 1 point per 10 CNY → 100 × 1.2 = 120
    assert (
        svc.apply_order(order("o3", amount="1000", at=clock.advance(days=1)))["points_earned"]
        == "120"
    )
    svc.set_preferences("c1", {"spice": "微辣"})
    # a year later the window is empty: review starts the grace, then downgrades
    later = T0 + timedelta(days=368)
    clock.t = later
    out = svc.expire(later)
    assert out["tiers"]["grace_started"] == 1
    with store.connect() as conn:
        assert svc.service.customer_loyalty(conn, "c1")["tier"]["id"] == "silver"
    clock.t = later + timedelta(days=31)
    out = svc.expire(clock())
    assert out["tiers"]["downgraded"] == 1
    with store.connect() as conn:
        tier = svc.service.customer_loyalty(conn, "c1")["tier"]
    assert tier["id"] == "member" and tier["preferences"] == {"spice": "微辣"}
    assert_ledger_ok(store)


def test_stored_value_200_get_200(store: Store, make_svc: Make, clock: Clock) -> None:
    svc = make_svc("shop").bound(store)
    t = svc.topup("c1", "200", idempotency_key="t1")
    assert t["bonus"] == "200" and t["bonus_released"] == "20" and len(t["schedule"]) == 10
    assert t["balances"] == {"paid": "200", "bonus": "20", "pending_bonus": "180"}
    assert svc.topup("c1", "200", idempotency_key="t1")["replayed"] is True
    s = svc.spend_stored_value("c1", "210", order_id="o1")
    assert (s["from_paid"], s["from_bonus"]) == ("200", "10")
    with pytest.raises(ConflictError) as e:
        svc.spend_stored_value("c1", "11", order_id="o2")
    assert e.value.code == "stored_value.insufficient"
    clock.t = T0 + timedelta(days=95)  # three more monthly releases are due
    assert svc.release_bonus(clock())["released"] == 3
    assert svc.release_bonus(clock())["released"] == 0
    with store.connect() as conn:
        assert svc.service.customer_loyalty(conn, "c1")["stored_value"] == {
            "paid": "0",
            "bonus": "70",
            "pending_bonus": "120",
        }
    svc.topup("c1", "100", idempotency_key="t2")
    ref = svc.refund_stored_value("c1", idempotency_key="r1")
    assert ref["refunded"] == "100" and ref["bonus_forfeited"] == "190"
    with store.connect() as conn:
        assert svc.service.customer_loyalty(conn, "c1")["stored_value"] == {
            "paid": "0",
            "bonus": "0",
            "pending_bonus": "0",
        }
    clock.t = T0 + timedelta(days=400)
    assert svc.release_bonus(clock())["released"] == 0  # forfeited installments never come
    assert_ledger_ok(store)


def test_paid_membership_buy_renew_expire_and_checkout(
    store: Store, make_svc: Make, clock: Clock
) -> None:
    svc = make_svc("shop").bound(store)
    svc.topup("c1", "100", idempotency_key="t")
    b = svc.buy_membership("c1", "plus_month", idempotency_key="m1", paid_with="stored_value")
    assert b["fee"] == "100"
    with pytest.raises(ConflictError) as e:
        svc.buy_membership("c1", "plus_month", idempotency_key="m2")
    assert e.value.code == "membership.active"
    fixed = svc.issue_coupon("fixed20", "c1", idempotency_key="i1")["code"]
    m200 = svc.issue_coupon("man200jian30", "c1", idempotency_key="i2")["code"]
    q = svc.checkout_quote("c1", "300", None, [fixed, m200])
    assert q["member_discount"] == {"source": "membership", "percent": "50", "amount": "150"}
    # 150 after the member discount: fixed20 applies; 满200减30 misses its threshold
    assert q["coupons"][0] == {"code": fixed, "applied": True, "discount": "20"}
    assert q["coupons"][1]["error"] == "coupon.threshold_not_met"
    assert q["total"] == "130"
    r = svc.renew_membership("c1", idempotency_key="m3")
    assert r["starts_at"] == b["ends_at"]
    # points multiplier 2 during the membership: 100 × 2 + 10 per order
    assert svc.apply_order(order("o1", amount="100", at=clock()))["points_earned"] == "210"
    clock.t = datetime.fromisoformat(r["ends_at"])
    assert svc.expire(clock())["memberships"] == 2
    with store.connect() as conn:
        assert svc.service.customer_loyalty(conn, "c1")["membership"] is None
    assert_ledger_ok(store)


def test_referral_rewards_after_refund_window_with_fraud_checks(
    store: Store, make_svc: Make, clock: Clock
) -> None:
    svc = make_svc("shop").bound(store)
    _customer(store, "alice", "+86 138 0000 0001")
    _customer(store, "bob", "13800000002")
    _customer(store, "mallory", "13800000001")
    code = svc.referral_code("alice")["code"]
    assert svc.referral_code("alice")["code"] == code
    with pytest.raises(ConflictError) as e:
        svc.register_referral("alice", code)
    assert e.value.code == "referral.self"
    svc.register_referral("bob", code)
    svc.register_referral("mallory", code)
    rb = svc.apply_order(order("b1", "bob", "80"))
    assert rb["referral"]["status"] == "attributed"
    rm = svc.apply_order(order("m1", "mallory", "80"))
    assert rm["referral"] == {"status": "rejected", "reason": "same_phone", "referrer": "alice"}
    assert svc.release_referral_rewards(clock() + timedelta(days=6))["rewarded"] == 0
    out = svc.release_referral_rewards(clock() + timedelta(days=8))
    assert out["rewarded"] == 1
    with store.connect() as conn:
        alice = svc.service.customer_loyalty(conn, "alice")
        bob = svc.service.customer_loyalty(conn, "bob")
    assert alice["points_balance"] == "200" and [c["template"] for c in alice["coupons"]] == [
        "fixed20"
    ]
    assert "fixed20" in [c["template"] for c in bob["coupons"]]
    assert svc.release_referral_rewards(clock() + timedelta(days=9))["rewarded"] == 0
    assert_ledger_ok(store)


def test_referral_first_order_refunded_is_not_rewarded(
    store: Store, make_svc: Make, clock: Clock
) -> None:
    svc = make_svc("shop").bound(store)
    code = svc.referral_code("alice")["code"]
    svc.register_referral("carol", code)
    svc.apply_order(order("c1", "carol", "80"))
    r = svc.apply_order(order("c1", "carol", "80", status="refunded", refunded="80"))
    assert r["referral"] == {"status": "rejected", "reason": "first_order_refunded"}
    assert svc.release_referral_rewards(clock() + timedelta(days=30))["rewarded"] == 0


def test_group_buy_forms_or_releases_every_reservation(
    store: Store, make_svc: Make, clock: Clock
) -> None:
    svc = make_svc("shop").bound(store)
    for c in ("a", "b", "c", "d"):
        svc.topup(c, "100", idempotency_key=f"t-{c}")
    g = svc.groupbuy_open("tea3", "a", idempotency_key="g1", paid_with="stored_value")
    gid = g["group_id"]
    svc.groupbuy_join(gid, "b", paid_with="stored_value")
    assert svc.groupbuy_join(gid, "b", paid_with="stored_value")["replayed"] is True
    with pytest.raises(ConflictError) as e:
        svc.groupbuy_join(gid, "b", idempotency_key="another-click")
    assert e.value.code == "groupbuy.already_joined"
    done = svc.groupbuy_join(gid, "c", paid_with="stored_value")
    assert done["status"] == "formed"
    with pytest.raises(ConflictError):
        svc.groupbuy_join(gid, "d")
    # a second group that misses its deadline releases the reservations
    g2 = svc.groupbuy_open("tea3", "d", idempotency_key="g2", paid_with="stored_value")
    with store.connect() as conn:
        assert svc.service.customer_loyalty(conn, "d")["stored_value"]["paid"] == "41"
    assert svc.groupbuy_settle(clock() + timedelta(hours=23))["failed"] == 0
    out = svc.groupbuy_settle(clock() + timedelta(hours=24))
    assert out == {"failed": 1, "released": 1, "groups": [g2["group_id"]]}
    with store.connect() as conn:
        assert svc.service.customer_loyalty(conn, "d")["stored_value"]["paid"] == "100"
        assert svc.service.customer_loyalty(conn, "a")["stored_value"]["paid"] == "41"
        assert svc.service.balances(conn, "a")["stored_held"] == "0"
        assert svc.service.groupbuy(conn, gid)["status"] == "formed"
    assert_ledger_ok(store)


def test_program_stored_in_database(store: Store, make_svc: Make, clock: Clock) -> None:
    from huitouke.loyalty import get_program, save_program

    svc = make_svc("cafe")
    with store.begin() as conn:
        assert save_program(conn, svc.program, now=clock()) == 1
        assert save_program(conn, svc.program, now=clock()) == 2
    with store.connect() as conn:
        assert get_program(conn, "cafe") == svc.program
        assert get_program(conn, "nope") is None
        assert conn.execute(sa.text("select count(*) from loyalty_programs")).scalar_one() == 1


def test_points_earn_with_lines_categories_and_campaign(
    store: Store, make_svc: Make, clock: Clock
) -> None:
    svc = make_svc("shop").bound(store)
    lines = [
        {"sku": "a", "category": "new-arrivals", "quantity": 1, "unit_price": "100"},
        {"sku": "gift-card", "category": "cards", "quantity": 1, "unit_price": "100"},
    ]
    r = svc.apply_order(order("o1", amount="200", lines=lines))
    assert r["points_earned"] == str(200 + 10)  # 100×2 + 100×0 + 10 per order
    d11 = datetime(2026, 11, 11, 2, tzinfo=UTC)
    r = svc.apply_order(order("o2", amount="100", at=d11))
    assert r["campaigns"] == ["double11"] and Decimal(r["points_earned"]) == 300 + 10 + 100

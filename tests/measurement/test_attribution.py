"""Journey results on the real store: conversions by group, uplift, revenue, cost, clicks."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import update

from huitouke.errors import ConflictError
from huitouke.journeys.results import journey_results
from huitouke.journeys.tables import journey_assignments
from huitouke.loyalty.program import load_program
from huitouke.loyalty.service import LoyaltyService
from huitouke.measurement.attribution import campaign_results
from huitouke.measurement.codes import claim_code, create_codes
from huitouke.measurement.links import make_link_token, record_click, verify_link_token
from huitouke.measurement.stats import diff_proportions
from huitouke.messaging.outbox import OutboxMessage, enqueue
from huitouke.messaging.tables import outbox
from huitouke.store.db import Store
from huitouke.store.tables import orders

#: the merchant's zone the fixtures' days are cut in
TZ = "Asia/Shanghai"

T0 = datetime(2026, 3, 10, 2, 0, tzinfo=UTC)


def order(oid: str, cid: str, at: datetime, amount: str = "100") -> dict[str, object]:
    return {
        "order_id": oid,
        "customer_id": cid,
        "ordered_at": at,
        "amount": Decimal(amount),
        "currency": "CNY",
        "status": "paid",
        "refunded_amount": Decimal(0),
        "updated_at": at,
    }


def test_results_by_hand(store: Store) -> None:
    with store.begin() as conn:
        conn.execute(
            journey_assignments.insert(),
            [
                {
                    "journey_id": "j",
                    "customer_id": f"{g}{i}",
                    "occurrence": "o",
                    "group": "treatment" if g == "t" else "holdout",
                    "anchor_date": date(2026, 3, 10),
                    "assigned_on": date(2026, 3, 10),
                    "assigned_at": T0,
                }
                for g in "th"
                for i in range(10)
            ],
        )
        rows = [order(f"ot{i}", f"t{i}", T0 + timedelta(days=2)) for i in range(6)]
        rows.append(order("ot6", "t6", T0 + timedelta(days=8)))  # outside the 7-day window
        rows.append(order("ot7-before", "t7", T0 - timedelta(days=1)))  # before: not a conversion
        rows += [order(f"oh{i}", f"h{i}", T0 + timedelta(days=3), "50") for i in range(2)]
        conn.execute(orders.insert(), rows)
        enqueue(
            conn,
            [
                OutboxMessage(
                    journey_id="j",
                    customer_id=f"t{i}",
                    step_id="s",
                    occurrence="o",
                    channel="sms",
                    rendered={"text": "短信", "sms_segments": 1},
                )
                for i in range(8)
            ],
            now=T0,
        )
        conn.execute(update(outbox).values(status="sent", sent_at=T0 + timedelta(minutes=1)))
        conn.execute(
            update(outbox)
            .where(outbox.c.customer_id.in_(["t0", "t1"]))
            .values(delivered_at=T0 + timedelta(minutes=2))
        )
        tok = make_link_token(
            "k",
            journey_id="j",
            customer_id="t0",
            step_id="s",
            occurrence="o",
            url="https://x.example",
        )
        record_click(conn, verify_link_token(tok, "k"), T0 + timedelta(hours=1))
        record_click(conn, verify_link_token(tok, "k"), T0 + timedelta(hours=2))
    with store.connect() as conn:
        [r] = journey_results(
            conn, date(2026, 3, 31), timezone=TZ, price_per_segment=Decimal("0.045")
        )
        early = journey_results(conn, date(2026, 3, 12), timezone=TZ)
    assert (r["audience"], r["treatment"], r["holdout"], r["in_window"]) == (20, 10, 10, 0)
    assert (r["treatment_measured"], r["holdout_measured"]) == (10, 10)
    assert (r["sent"], r["delivered"], r["clicked"]) == (8, 2, 1)
    assert (r["converted_treatment"], r["converted_holdout"]) == (6, 2)
    assert r["conversion_treatment"] == 0.6 and r["conversion_holdout"] == 0.2
    ci = diff_proportions(6, 10, 2, 10)
    assert r["incremental_repurchase"] == pytest.approx(0.4)
    assert r["incremental_ci95"] == [ci.low, ci.high]
    assert r["revenue_treatment"] == "600.00" and r["revenue_holdout"] == "100.00"
    # (600/10 − 100/10) × 10 = 500
    assert r["incremental_revenue"] == "500.00"
    assert r["sms_cost"] == r["cost"] == "0.36"  # 8 segments × 0.045; no coupons
    assert (r["coupons_redeemed"], r["coupon_cost"]) == (0, "0.00")
    assert r["roi"] == pytest.approx((500 - 0.36) / 0.36)
    assert r["cost_per_incremental_customer"] == "0.09"  # 0.36 / 4
    # last touch: the 6 in-window orders of sent customers (t6's order is too late)
    assert r["attributed_orders"] == 6 and r["attributed_revenue"] == "600.00"
    # on 12 March the windows are still open: nothing is concluded yet
    assert early[0]["in_window"] == 20 and early[0]["conversion_treatment"] is None
    assert (early[0]["treatment_measured"], early[0]["holdout_measured"]) == (0, 0)


def test_insert_campaign_codes_claims_and_conversions(store: Store) -> None:
    with store.begin() as conn:
        codes = create_codes(conn, "spring-cards", 5, T0)
        assert len(set(codes)) == 5 and all(len(c) == 10 for c in codes)
        claim_code(conn, codes[0].lower(), "a", T0)
        claim_code(conn, codes[0], "a", T0)  # same customer again: no-op
        with pytest.raises(ConflictError):
            claim_code(conn, codes[0], "b", T0)
        claim_code(conn, codes[1], "b", T0)
        conn.execute(orders.insert(), [order("oa", "a", T0 + timedelta(days=1), "88")])
    with store.connect() as conn:
        [r] = campaign_results(conn, date(2026, 3, 31), timezone=TZ)
    assert r == {
        "campaign_id": "spring-cards",
        "currency": "CNY",
        "printed": 5,
        "claimed": 2,
        "converted": 1,
        "revenue": "88.00",
        "coupons_redeemed": 0,
        "coupon_cost": "0.00",
    }


def _loyalty(clock: list[datetime]) -> LoyaltyService:
    program = load_program(
        {
            "coupon_templates": [
                {"id": "fixed10", "kind": "fixed", "value": 10, "valid_days": 30},
                {"id": "pct20", "kind": "percent", "percent": 20, "max_discount": 15},
            ]
        }
    ).in_store_zone(TZ)
    return LoyaltyService(program, clock=lambda: clock[0])


def test_coupon_cost_by_hand(store: Store) -> None:
    """SMS cost plus the discounts of coupons redeemed on the journey's attributed orders."""
    test_results_by_hand(store)  # the journey "j" above: ROI on SMS cost alone was checked
    clock = [T0]
    loyalty = _loyalty(clock)
    with store.begin() as conn:
        issued = {
            cid: loyalty.issue_coupon(conn, tpl, cid, idempotency_key=f"k-{cid}")["code"]
            for cid, tpl in (
                ("t0", "fixed10"),
                ("t1", "pct20"),
                ("t3", "fixed10"),  # never redeemed
                ("t6", "fixed10"),
                ("h0", "fixed10"),
            )
        }
        [card] = create_codes(conn, "cards", 1, T0)
        card_coupon = claim_code(conn, card, "t2", T0, loyalty=loyalty, coupon_template="fixed10")[
            "coupon_code"
        ]
        clock[0] = T0 + timedelta(days=2)
        for cid, code, oid in (
            ("t0", issued["t0"], "ot0"),  # attributed to j: 10.00
            ("t1", issued["t1"], "ot1"),  # attributed: 20% of 100 = 20, capped at 15.00
            ("t2", card_coupon, "ot2"),  # attributed order, but the card campaign's coupon
            ("h0", issued["h0"], "oh0"),  # holdout: no message, no attribution
        ):
            loyalty.redeem_coupon(
                conn, code, order_id=oid, customer_id=cid, order_amount=Decimal("100")
            )
        clock[0] = T0 + timedelta(days=8)
        # t6's order on day 8 is outside the window: not attributed, its coupon not counted
        loyalty.redeem_coupon(
            conn, issued["t6"], order_id="ot6", customer_id="t6", order_amount=Decimal("100")
        )
    with store.connect() as conn:
        [r] = journey_results(
            conn, date(2026, 3, 31), timezone=TZ, price_per_segment=Decimal("0.045")
        )
        [camp] = campaign_results(conn, date(2026, 3, 31), timezone=TZ)
        before = journey_results(conn, date(2026, 3, 11), timezone=TZ)  # redemptions not yet made
    assert r["coupons_redeemed"] == 2
    assert (r["sms_cost"], r["coupon_cost"], r["cost"]) == ("0.36", "25.00", "25.36")
    assert r["incremental_revenue"] == "500.00"
    assert r["roi"] == pytest.approx((500 - 25.36) / 25.36)
    assert r["cost_per_incremental_customer"] == "6.34"  # 25.36 / (0.4 × 10)
    assert (camp["campaign_id"], camp["claimed"], camp["converted"]) == ("cards", 1, 1)
    assert (camp["coupons_redeemed"], camp["coupon_cost"]) == (1, "10.00")
    assert before[0]["coupon_cost"] == "0.00" and before[0]["cost"] == before[0]["sms_cost"]

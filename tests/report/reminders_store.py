"""A small store where reminder journeys really ran: evaluation, coupons, the dispatcher to a
file channel, delivery receipts, clicks on tracked links, later orders that redeem the
coupons, and a package-insert campaign — the data behind the report's reminders section.

Two journeys on disjoint audiences, both due on 13 March 2026:

- ``coupon_push``: 30 new customers (one order on 6 March) get a 10.00 coupon by SMS on day 7;
- ``care_note``: 30 returning customers (orders on 1 February and 3 March) get a care SMS
  10 days after their last order.

Half of each audience is held out (stable hash). Afterwards some treatment and holdout
customers order again; the treatment customers of ``coupon_push`` redeem their coupon.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import select

RUN_DAY = date(2026, 3, 13)
#: 12:00 in Shanghai on the run day: after the journeys' 11:00 send time, outside quiet hours
SEND_AT = datetime(2026, 3, 13, 4, 0, tzinfo=UTC)
REPORT_AS_OF = date(2026, 4, 30)
SALT = "report-reminders"

COUPON_PUSH = """
id: coupon_push
name: {zh: 新客第二单券, en: New-customer coupon}
trigger: {type: date, field: first_order_date, offset_days: 7, at: "11:00"}
audience: {orders_max: 1}
steps:
  - {type: coupon, id: coupon, coupon_template: welcome10}
  - {type: send, id: push, channel: sms, template: push, coupon_template: welcome10}
templates:
  push:
    zh: {body: "{{ customer.name }},送您一张{{ coupon.value|money }}第二单券。{{ link }}"}
    en: {body: "{{ customer.name }}, {{ coupon.value|money }} off your second order. {{ link }}"}
holdout: 0.5
"""

CARE_NOTE = """
id: care_note
name: {zh: 老客关怀, en: Returning-customer care}
trigger: {type: date, field: last_order_date, offset_days: 10, at: "11:00"}
audience: {orders_min: 2}
steps:
  - {type: send, id: care, channel: sms, template: care}
templates:
  care:
    zh: {body: "{{ customer.name }}您好,上次买的用得还好吗?"}
    en: {body: "Hi {{ customer.name }}, how are you getting on with your last order?"}
holdout: 0.5
"""


def _order(oid: str, cid: str, at: datetime, amount: str) -> dict[str, Any]:
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


def build_reminders_store(url: str, work: Path) -> dict[str, Any]:
    """Run the two journeys on a fresh store at ``url``; returns what happened, for asserts."""
    from huitouke.journeys.loader import load_journey_text
    from huitouke.journeys.repo import save_journey
    from huitouke.journeys.service import run_journeys
    from huitouke.journeys.tables import journey_assignments
    from huitouke.loyalty.program import load_program
    from huitouke.loyalty.programs_repo import save_program
    from huitouke.loyalty.service import LoyaltyService
    from huitouke.measurement.codes import claim_code, create_codes
    from huitouke.measurement.links import record_click, verify_link_token
    from huitouke.messaging.channels.file import FileChannel
    from huitouke.messaging.dispatcher import Dispatcher
    from huitouke.messaging.inbound import parse_receipts, record_receipts
    from huitouke.messaging.rules import ContactPolicy
    from huitouke.messaging.tables import outbox
    from huitouke.settings import Settings
    from huitouke.store.db import open_store
    from huitouke.store.tables import customers, orders

    settings = Settings(
        database_url=url, holdout_salt=SALT, sms_sign_name="回头客小店", secret_key="report-test"
    )
    store = open_store(url)
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    new = [f"n{i:02d}" for i in range(30)]
    old = [f"r{i:02d}" for i in range(30)]
    with store.begin() as conn:
        conn.execute(
            customers.insert(),
            [
                {
                    "customer_id": cid,
                    "name": f"顾客{cid}",
                    "phone": f"1390000{i:04d}",
                    "tags": [],
                    "attributes": {},
                    "consent": {"sms": True},
                    "created_at": t0,
                    "updated_at": t0,
                }
                for i, cid in enumerate(new + old)
            ],
        )
        rows = [_order(f"o-{c}-1", c, datetime(2026, 3, 6, 4, tzinfo=UTC), "88") for c in new]
        for c in old:
            rows.append(_order(f"o-{c}-1", c, datetime(2026, 2, 1, 4, tzinfo=UTC), "120"))
            rows.append(_order(f"o-{c}-2", c, datetime(2026, 3, 3, 4, tzinfo=UTC), "120"))
        conn.execute(orders.insert(), rows)
        program = load_program(
            {
                "coupon_templates": [
                    {"id": "welcome10", "kind": "fixed", "value": 10, "valid_days": 30}
                ]
            }
        ).in_store_zone(settings.timezone)
        save_program(conn, program, now=t0)
    clock = [SEND_AT]
    loyalty = LoyaltyService(program, clock=lambda: clock[0])
    journeys = [load_journey_text(COUPON_PUSH), load_journey_text(CARE_NOTE)]
    with store.begin() as conn:  # as `huitouke journeys enable` leaves them
        for j in journeys:
            save_journey(conn, j, source="file", enabled=True)
    result = run_journeys(
        store, journeys, RUN_DAY, settings=settings, dry_run=False, loyalty=loyalty
    )
    assert result.enqueued > 0 and result.coupons_issued > 0, result.to_json()

    sink = work / "sms.jsonl"
    dispatcher = Dispatcher(
        store,
        {"sms": FileChannel(sink)},
        lambda: SEND_AT,
        policy=ContactPolicy.from_settings(settings),
    )
    try:
        stats = dispatcher.drain()
    finally:
        dispatcher.close()

    with store.begin() as conn:
        sent = conn.execute(
            select(outbox.c.message_id, outbox.c.customer_id, outbox.c.journey_id, outbox.c.payload)
            .where(outbox.c.status == "sent")
            .order_by(outbox.c.customer_id)
        ).all()
        groups = {
            (j, c): g
            for j, c, g in conn.execute(
                select(
                    journey_assignments.c.journey_id,
                    journey_assignments.c.customer_id,
                    journey_assignments.c.group,
                )
            )
        }
        # receipts for every other message, clicks on three tracked links
        record_receipts(
            conn,
            "sms",
            "generic",
            parse_receipts(
                "generic", [{"message_id": m[0], "status": "delivered"} for m in sent[::2]]
            ),
            now=SEND_AT + timedelta(minutes=1),
        )
        for m in sent[:3]:
            token = m[3]["link"].rsplit("/r/", 1)[1]
            record_click(
                conn,
                verify_link_token(token, settings.secret_key.get_secret_value()),
                SEND_AT + timedelta(hours=1),
            )
        # later orders: most treatment customers of the coupon push redeem their coupon
        later = SEND_AT + timedelta(days=3)
        clock[0] = later
        coupon_of = {m[1]: m[3]["coupon"] for m in sent if m[2] == "coupon_push"}
        treated_new = [c for c in new if groups.get(("coupon_push", c)) == "treatment"]
        held_new = [c for c in new if groups.get(("coupon_push", c)) == "holdout"]
        treated_old = [c for c in old if groups.get(("care_note", c)) == "treatment"]
        held_old = [c for c in old if groups.get(("care_note", c)) == "holdout"]
        buyers = treated_new[: len(treated_new) * 2 // 3] + held_new[: len(held_new) // 4]
        buyers += treated_old[: len(treated_old) // 2] + held_old[: len(held_old) // 3]
        conn.execute(orders.insert(), [_order(f"o-{c}-later", c, later, "100") for c in buyers])
        redeemed = 0
        for c in treated_new[: len(treated_new) * 2 // 3]:
            if coupon_of.get(c):
                loyalty.redeem_coupon(
                    conn,
                    coupon_of[c],
                    order_id=f"o-{c}-later",
                    customer_id=c,
                    order_amount=Decimal("100"),
                )
                redeemed += 1
        # a package-insert campaign: 4 cards, 2 claimed (with a coupon), 1 coupon used
        cards = create_codes(conn, "spring-cards", 4, SEND_AT)
        clock[0] = SEND_AT
        claim_code(conn, cards[0], "r00", SEND_AT, loyalty=loyalty, coupon_template="welcome10")
        card = claim_code(
            conn, cards[1], "n29", SEND_AT, loyalty=loyalty, coupon_template="welcome10"
        )
        clock[0] = later + timedelta(days=1)
        conn.execute(
            orders.insert(), [_order("o-n29-card", "n29", later + timedelta(days=1), "60")]
        )
        loyalty.redeem_coupon(
            conn,
            card["coupon_code"],
            order_id="o-n29-card",
            customer_id="n29",
            order_amount=Decimal("60"),
        )
    store.dispose()
    return {
        "sent": len(sent),
        "dispatch": stats.to_dict(),
        "coupons_redeemed": redeemed,
        "sink": sink,
    }

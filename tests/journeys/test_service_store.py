"""Running journeys against the real store (SQLite and PostgreSQL): assignments, coupons,
the outbox, idempotent re-runs, and the contact rules on real consent data."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from sqlalchemy import delete, func, select

from huitouke.journeys.holdout import is_holdout
from huitouke.journeys.loader import builtin_journeys
from huitouke.journeys.service import record_event, run_journeys
from huitouke.journeys.tables import journey_assignments, journey_run_days
from huitouke.messaging.consent import unsubscribe
from huitouke.messaging.tables import outbox
from huitouke.settings import Settings
from huitouke.store.db import Store
from huitouke.store.tables import customers, orders

from .conftest import at, d

BUILTIN = {j.id: j for j in builtin_journeys()}
AS_OF = d("2026-03-20")


def seed(store: Store, n: int = 30) -> None:
    now = datetime(2026, 3, 1, tzinfo=UTC)
    with store.begin() as conn:
        conn.execute(
            customers.insert(),
            [
                {
                    "customer_id": f"c{i}",
                    "name": f"顾客{i}",
                    "phone": f"1380000{i:04d}",
                    "tags": [],
                    "attributes": {"lang": "en"} if i == 2 else {},
                    "consent": {} if i == 0 else {"sms": True},
                    "created_at": now,
                    "updated_at": now,
                }
                for i in range(n)
            ],
        )
        conn.execute(
            orders.insert(),
            [
                {
                    "order_id": f"o{i}",
                    "customer_id": f"c{i}",
                    "ordered_at": at("2026-03-13"),
                    "amount": Decimal("88.00"),
                    "currency": "CNY",
                    "status": "paid",
                    "refunded_amount": Decimal(0),
                    "updated_at": now,
                }
                for i in range(n)
            ],
        )
        unsubscribe(conn, "c1", "sms", source="test", at=now)


def settings() -> Settings:
    return Settings(holdout_salt="store-test", sms_sign_name="回头客小店")


def test_run_writes_outbox_assignments_once_and_respects_holdout(store: Store) -> None:
    seed(store)
    j = BUILTIN["second_order"].model_copy(update={"holdout": 0.3})
    s = settings()
    dry = run_journeys(store, [j], AS_OF, settings=s, dry_run=True)
    reasons = {r.customer_id: r.reason_code for r in dry.plan.rows.itertuples()}
    held = {f"c{i}" for i in range(30) if is_holdout(j.id, f"c{i}", 0.3, "store-test")}
    assert held and len(held) < 30
    for cid, reason in reasons.items():
        if cid in held:
            assert reason == "holdout"
        elif cid == "c0":
            assert reason == "consent.missing"
        elif cid == "c1":
            assert reason == "unsubscribed"
        else:
            assert reason == "planned"
    with store.connect() as conn:
        assert conn.execute(select(func.count()).select_from(outbox)).scalar_one() == 0

    res = run_journeys(store, [j], AS_OF, settings=s, dry_run=False)
    expected = {c for c, r in reasons.items() if r == "planned"}
    assert res.enqueued == len(expected) and res.assignments_inserted == 30
    with store.connect() as conn:
        rows = conn.execute(select(outbox)).mappings().all()
        assert {r["customer_id"] for r in rows} == expected
        assert not {r["customer_id"] for r in rows} & held
        en = next(r for r in rows if r["customer_id"] == "c2") if "c2" in expected else None
        zh = next(r for r in rows if r["customer_id"] != "c2")
        assert "感谢第一次光临" in zh["rendered"]["text"] and "回T退订" in zh["rendered"]["text"]
        assert zh["recipient"].startswith("138") and zh["journey_id"] == "second_order"
        if en is not None:
            assert "thanks for your first order" in en["rendered"]["text"]
        groups = dict(
            conn.execute(
                select(journey_assignments.c.group, func.count()).group_by(
                    journey_assignments.c.group
                )
            ).all()
        )
        assert groups == {"holdout": len(held), "treatment": 30 - len(held)}

    again = run_journeys(store, [j], AS_OF, settings=s, dry_run=False)
    # the journey was run for this day: a second run leaves it alone
    assert again.already_run == ["second_order"] and again.plan.rows.empty
    assert again.enqueued == 0 and again.assignments_inserted == 0
    # the outbox's dedupe keys are the second guard: without the day's record, a rerun
    # still enqueues nothing twice
    with store.begin() as conn:
        conn.execute(delete(journey_run_days))
    again = run_journeys(store, [j], AS_OF, settings=s, dry_run=False)
    assert again.already_run == [] and again.enqueued == 0 and again.assignments_inserted == 0
    assert {r.reason_code for r in again.plan.rows.itertuples() if r.customer_id in expected} == {
        "already_queued"
    }
    with store.connect() as conn:
        assert conn.execute(select(func.count()).select_from(outbox)).scalar_one() == len(expected)


def test_fulfilment_events_trigger_transactional_notice(store: Store) -> None:
    seed(store, n=3)
    with store.begin() as conn:
        assert record_event(conn, "o2", "order_shipped", "c2", at("2026-03-20", 1))
        assert not record_event(conn, "o2", "order_shipped", "c2", at("2026-03-20", 1))
    res = run_journeys(
        store, [BUILTIN["post_purchase_shipped"]], AS_OF, settings=settings(), dry_run=False
    )
    assert res.enqueued == 1
    with store.connect() as conn:
        row = conn.execute(select(outbox)).mappings().one()
    assert row["kind"] == "transactional" and "o2" in row["rendered"]["text"]
    assert "退订" not in row["rendered"]["text"]  # service notices carry no marketing footer


def test_coupon_steps_are_skipped_and_counted_without_a_loyalty_program(store: Store) -> None:
    seed(store, n=4)
    # day 14 of second_order has a coupon step and a coupon message
    with store.begin() as conn:
        conn.execute(orders.update().values(ordered_at=at("2026-03-06")))
    res = run_journeys(
        store,
        [BUILTIN["second_order"].model_copy(update={"holdout": 0.0})],
        AS_OF,
        settings=settings(),
        dry_run=False,
    )
    assert res.enqueued == 0
    # 2 coupon steps + the 2 coupon messages that passed the contact rules; c0 (no consent)
    # and c1 (unsubscribed) get no coupon: the journey's message may not reach them
    assert res.skipped_at_render == {"coupon.unknown_template": 4}
    coupons = res.plan.rows[res.plan.rows["action"] == "coupon"].set_index("customer_id")
    assert coupons["reason_code"].to_dict() == {
        "c0": "coupon_unreachable",
        "c1": "coupon_unreachable",
        "c2": "planned",
        "c3": "planned",
    }


def test_a_journey_may_issue_coupons_to_customers_its_messages_cannot_reach(
    store: Store,
) -> None:
    seed(store, n=4)
    with store.begin() as conn:
        conn.execute(orders.update().values(ordered_at=at("2026-03-06")))
    journey = BUILTIN["second_order"].model_copy(
        update={"holdout": 0.0, "coupons_for_unreachable": True}
    )
    res = run_journeys(store, [journey], AS_OF, settings=settings(), dry_run=False)
    assert res.skipped_at_render == {"coupon.unknown_template": 6}  # 4 coupon steps + 2 sends
    assert "coupon_unreachable" not in set(res.plan.rows["reason_code"])


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_dry_run_json_is_serialisable(store: Store, lang: str) -> None:
    import json

    seed(store, n=5)
    res = run_journeys(store, list(BUILTIN.values()), AS_OF, settings=settings(), dry_run=True)
    text = json.dumps(res.to_json(lang), default=str, ensure_ascii=False)
    assert "second_order" in text and res.to_json()["dry_run"] is True


def test_shipping_notice_carries_related_products_from_order_lines(store: Store) -> None:
    from huitouke.store.tables import order_lines, products

    seed(store, n=4)
    now = datetime(2026, 3, 1, tzinfo=UTC)
    with store.begin() as conn:
        conn.execute(
            products.insert(), [{"sku": "tea", "name": "龙井茶"}, {"sku": "cup", "name": "茶杯"}]
        )
        # earlier orders of c0..c2: tea then cup; c3 just bought tea and it ships today
        extra = []
        lines = []
        for i in range(3):
            extra.append(
                {
                    "order_id": f"x{i}",
                    "customer_id": f"c{i}",
                    "ordered_at": at("2026-03-16"),
                    "amount": Decimal(10),
                    "currency": "CNY",
                    "status": "paid",
                    "refunded_amount": Decimal(0),
                    "updated_at": now,
                }
            )
            lines += [
                {"order_id": f"o{i}", "line_no": 0, "sku": "tea", "quantity": 1},
                {"order_id": f"x{i}", "line_no": 0, "sku": "cup", "quantity": 1},
            ]
        lines.append({"order_id": "o3", "line_no": 0, "sku": "tea", "quantity": 1})
        conn.execute(orders.insert(), extra)
        conn.execute(order_lines.insert(), lines)
        record_event(conn, "o3", "order_shipped", "c3", at("2026-03-20", 1))
    res = run_journeys(
        store, [BUILTIN["post_purchase_shipped"]], AS_OF, settings=settings(), dry_run=False
    )
    assert res.enqueued == 1
    with store.connect() as conn:
        row = conn.execute(select(outbox)).mappings().one()
    assert "茶杯" in row["rendered"]["text"]


def test_two_runs_that_evaluated_together_write_a_journey_once(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    import huitouke.journeys.service as service
    from huitouke.journeys.days import claim_day

    seed(store, n=6)
    j = BUILTIN["second_order"].model_copy(update={"holdout": 0.0})
    # another process ran the journey for the day and committed after this run evaluated:
    # this run did not see the record (days_run), it meets it when it writes
    with store.begin() as conn:
        assert claim_day(conn, "second_order", AS_OF, datetime.now(UTC), "the other run")
    monkeypatch.setattr(service, "days_run", lambda conn, day: set())
    res = run_journeys(store, [j], AS_OF, settings=settings(), dry_run=False)
    assert res.already_run == ["second_order"]
    assert res.enqueued == 0 and res.assignments_inserted == 0
    rows = res.plan.rows
    assert "already_run" in set(rows["reason_code"]) and "planned" not in set(rows["status"])
    summary = {x["journey_id"]: x for x in res.plan.summary}["second_order"]
    assert summary["planned"] == 0 and summary["by_reason"]["already_run"] > 0
    with store.connect() as conn:
        assert conn.execute(select(func.count()).select_from(outbox)).scalar_one() == 0
        assert conn.execute(select(func.count()).select_from(journey_run_days)).scalar_one() == 1

"""GET /v1/metrics: the store's orders through the analytics engine, exactly the CLI's JSON."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

from huitouke.store.db import Store
from huitouke.store.tables import orders

from .conftest import Keys

CST = timezone(timedelta(hours=8))


def _seed(store: Store) -> None:
    now = datetime.now(UTC)
    rows = [
        # c1: two orders in January (one is 00:30 on Feb 1 local = still Jan 31 UTC → counts in Feb)
        ("o1", "c1", datetime(2024, 1, 5, 10, 0, tzinfo=CST), "100", "paid", "0"),
        ("o2", "c1", datetime(2024, 1, 20, 10, 0, tzinfo=CST), "50", "paid", "0"),
        ("o3", "c1", datetime(2024, 2, 1, 0, 30, tzinfo=CST), "80", "paid", "0"),
        ("o4", "c2", datetime(2024, 1, 9, 12, 0, tzinfo=CST), "30", "paid", "0"),
        ("o5", "c3", datetime(2024, 1, 10, 12, 0, tzinfo=CST), "60", "refunded", "60"),
        ("o6", "c2", datetime(2024, 2, 3, 12, 0, tzinfo=CST), "40", "partially_refunded", "10"),
    ]
    with store.begin() as conn:
        conn.execute(
            orders.insert(),
            [
                dict(
                    order_id=o,
                    customer_id=c,
                    ordered_at=at,
                    amount=Decimal(a),
                    currency="CNY",
                    status=s,
                    refunded_amount=Decimal(r),
                    channel=None,
                    updated_at=now,
                )
                for o, c, at, a, s, r in rows
            ],
        )


def test_metrics_match_the_engine_and_the_definitions(client, keys: Keys, store: Store) -> None:
    _seed(store)
    r = client.get("/v1/metrics?period=month", headers=keys.h("read"))
    assert r.status_code == 200, r.text
    body = r.json()
    from huitouke.analytics.engine import Analytics

    with Analytics(store.load_orders(), timezone="Asia/Shanghai") as a:
        assert body == a.metrics_json("month")
    jan, feb = body["periods"]
    # January (local): buyers c1 (2 orders), c2 (1); o5 is refunded and does not count.
    assert (jan["period"], jan["buyers"], jan["orders"], jan["revenue"]) == ("2024-01", 2, 3, 180.0)
    assert jan["in_period_repurchase_rate"] == 0.5
    # February: o3 (c1, 00:30 local on Feb 1) and o6 (c2, 40 − 10 refunded); both returning.
    assert (feb["buyers"], feb["orders"], feb["revenue"], feb["returning_buyers"]) == (
        2,
        2,
        110.0,
        2,
    )


def test_metrics_validate_their_query(client, keys: Keys) -> None:
    r = client.get("/v1/metrics?period=fortnight", headers=keys.h("read"))
    assert r.status_code == 422
    assert r.json()["error"]["details"]["fields"][0]["field"] == "period"
    r = client.get("/v1/metrics?period=day&start=2024-02-01&end=2024-01-01", headers=keys.h("read"))
    assert r.status_code == 422 and r.json()["error"]["details"]["fields"][0]["field"] == "end"
    empty = client.get("/v1/metrics", headers=keys.h("read"))
    assert empty.status_code == 200 and empty.json()["periods"] == []

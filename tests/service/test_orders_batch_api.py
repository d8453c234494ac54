"""POST /v1/orders/batch: many order events in one unit of work through the loyalty batch
path — per event exactly what POST /v1/orders answers one by one; bad events named by their
index with nothing stored; idempotent. On SQLite and PostgreSQL."""

from __future__ import annotations

import random
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa

from huitouke.loyalty import tables as lt
from huitouke.loyalty.ledger import verify_ledger
from huitouke.service import create_app
from huitouke.settings import Settings
from huitouke.store import tables as st
from huitouke.store.db import Store

from .conftest import Keys
from .test_orders_api import install_shop_program, order

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

T0 = datetime(2026, 3, 1, 4, 0, tzinfo=UTC)
URL = "/v1/orders/batch"


@pytest.fixture
def shop(store: Store) -> Store:
    install_shop_program(store)
    return store


@pytest.fixture
def fixed(settings: Settings, shop: Store) -> Iterator[TestClient]:
    """A client whose service clock stands still (the lanes compare timestamps)."""
    app = create_app(settings, shop, clock=lambda: T0)
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


def _count(store: Store, table: sa.Table) -> int:
    with store.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())


def test_batch_answers_per_event_and_replays(client, keys: Keys, shop: Store) -> None:
    op = keys.h("operator")
    lines = [{"sku": "tea-1", "category": "tea", "quantity": 2, "unit_price": "149.95"}]
    events = [
        order(order_id="o1", lines=lines),
        order(order_id="o2", customer_id="c2", amount="80"),
        order(order_id="o1", status="partially_refunded", refunded_amount="99.90"),
        order(order_id="o1", lines=lines),  # a late "paid": stale
    ]
    r = client.post(URL, json={"events": events}, headers=op)
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["events"], body["replayed"]) == (4, 1) and "Idempotent-Replayed" not in r.headers
    res = body["results"]
    assert [x["order"]["order_id"] for x in res] == ["o1", "o2", "o1", "o1"]
    assert (
        res[0]["loyalty"]["points_earned"] == "309"
        and res[0]["order"]["lines"][0]["sku"] == "tea-1"
    )
    assert res[2]["order"]["status"] == "partially_refunded"
    assert res[2]["loyalty"]["points_reversed"] == "103"
    # a late "paid" leaves the stored refund alone and says it is stale (as POST /v1/orders)
    assert res[3]["order"] == res[2]["order"] and res[3]["replayed"] is True
    assert res[3]["loyalty"]["ignored"] == "stale" and res[3]["loyalty"]["points_earned"] == "0"
    again = client.post(URL, json={"events": events}, headers=op)
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["replayed"] == 4
    # the first event is stale now (the order was refunded since), the others replays
    assert again.json()["results"] == [
        res[3],
        {**res[1], "replayed": True},
        {**res[2], "replayed": True},
        res[3],
    ]
    # the single endpoint agrees that nothing is new
    single = client.post("/v1/orders", json=events[1], headers=op)
    assert single.headers["Idempotent-Replayed"] == "true"
    assert single.json() == {k: v for k, v in res[1].items() if k != "replayed"}
    assert client.get("/v1/loyalty/verify", headers=keys.h("admin")).json()["ok"] is True


def test_bad_event_is_named_and_nothing_is_stored(client, keys: Keys, shop: Store) -> None:
    op = keys.h("operator")
    events = [order(order_id=f"o{i}", amount=str(10 + i)) for i in range(15)]
    events[12]["amount"] = "-1"
    events[7]["lines"] = [{"sku": "a", "quantity": -1}]
    r = client.post(URL, json={"events": events}, headers=op)
    assert r.status_code == 422
    err = r.json()["error"]
    assert err["code"] == "input.invalid"
    fields = {f["field"] for f in err["details"]["fields"]}
    assert fields == {"events[12].amount", "events[7].lines[0].quantity"}
    assert "events[12].amount" in err["message"]
    bad_refund = [order(), order(order_id="o2", status="partially_refunded")]
    r = client.post(URL, json={"events": bad_refund}, headers=op)
    assert (
        r.status_code == 422 and r.json()["error"]["details"]["fields"][0]["field"] == "events[1]"
    )
    for payload in ({"events": []}, {}, {"events": [order()], "extra": 1}, [order()]):
        assert client.post(URL, json=payload, headers=op).status_code == 422, payload
    assert client.post(URL, json={"events": [order()]}, headers=keys.h("read")).status_code == 403
    for table in (st.orders, st.customers, lt.operations, lt.entries):
        assert _count(shop, table) == 0


def test_a_conflict_names_the_event_and_rolls_back(client, keys: Keys, shop: Store) -> None:
    op = keys.h("operator")
    assert client.post("/v1/orders", json=order(), headers=op).status_code == 200
    entries = _count(shop, lt.entries)
    events = [
        order(order_id="o2"),
        order(order_id="o3"),
        order(order_id="o1", customer_id="someone-else", status="refunded"),
    ]
    r = client.post(URL, json={"events": events}, headers=op)
    assert r.status_code == 409, r.text
    assert r.json()["error"]["code"] == "order.conflict"
    assert r.json()["error"]["details"]["index"] == 2
    assert r.json()["error"]["details"]["field"] == "customer_id"
    assert _count(shop, st.orders) == 1 and _count(shop, lt.entries) == entries
    # two events of one order in one batch that disagree on its amount: the second is named
    events = [order(order_id="o2"), order(order_id="o3"), order(order_id="o2", amount="2999")]
    r = client.post(URL, json={"events": events}, headers=op)
    assert r.status_code == 409, r.text
    assert {"index": 2, "field": "amount"}.items() <= r.json()["error"]["details"].items()
    assert _count(shop, st.orders) == 1 and _count(shop, lt.entries) == entries


def test_the_batch_size_is_a_setting(store: Store, keys: Keys, store_url: str) -> None:
    install_shop_program(store)
    app = create_app(Settings(database_url=store_url, lang="zh", orders_batch_max=3), store)
    with TestClient(app, raise_server_exceptions=False) as c:
        events = [order(order_id=f"o{i}") for i in range(4)]
        r = c.post(URL, json={"events": events}, headers=keys.h("operator"))
        assert r.status_code == 422
        assert r.json()["error"]["details"]["fields"][0]["field"] == "events"
        assert "3" in r.json()["error"]["message"]
        ok = c.post(URL, json={"events": events[:3]}, headers=keys.h("operator"))
        assert ok.status_code == 200 and ok.json()["events"] == 3


def test_lines_are_kept_when_an_event_carries_none(client, keys: Keys, shop: Store) -> None:
    op = keys.h("operator")
    lines = [{"sku": "a", "quantity": 1, "unit_price": "299.90"}]
    events = [
        order(order_id="o1", lines=lines),
        order(order_id="o2", lines=lines),
        # a correction with other lines: they replace the stored ones
        order(
            order_id="o2", channel="fix", lines=[{**lines[0], "sku": "b"}, {**lines[0], "sku": "c"}]
        ),
        order(order_id="o1", status="partially_refunded", refunded_amount="10"),  # no lines
    ]
    res = client.post(URL, json={"events": events}, headers=op).json()["results"]
    assert [[ln["sku"] for ln in x["order"]["lines"]] for x in res] == [
        ["a"],
        ["a"],
        ["b", "c"],
        ["a"],
    ]
    o1 = client.get("/v1/orders/o1", headers=keys.h("read")).json()
    assert o1["lines"][0]["sku"] == "a" and o1["refunded_amount"] == "10.0000"


# -- batch == one by one ------------------------------------------------------------------------
def make_items(rng: random.Random) -> list[tuple[Any, ...]]:
    """Order events (paid with and without lines, partial and full refunds, cancellations,
    orders first seen refunded, stale states, replays, corrections, another currency) with
    stored-value payments of some orders in between."""
    customers = [f"c{i}" for i in range(3)]
    items: list[tuple[Any, ...]] = []
    sent: list[dict[str, Any]] = []
    paid: list[dict[str, Any]] = []
    for i in range(rng.randint(25, 45)):
        r = rng.random()
        at = T0 - timedelta(days=60) + timedelta(hours=30 * i + rng.randint(0, 20))
        if r < 0.4 or not paid:
            amount = rng.choice(["39.9", "120", "299.9", "488", "1200"])
            ev = order(
                order_id=f"o{i}",
                customer_id=rng.choice(customers),
                amount=amount,
                ordered_at=at.isoformat(),
            )
            x = rng.random()
            if x < 0.08:
                ev["status"] = "cancelled"
            elif x < 0.15:
                ev["currency"] = "USD"
            if rng.random() < 0.4:
                ev["lines"] = [
                    {"sku": "tea-1", "category": "tea", "quantity": 1, "unit_price": amount}
                ]
            paid.append(ev)
        elif r < 0.6:
            base = rng.choice(paid)
            part = Decimal(base["amount"]) * Decimal(rng.choice([10, 25, 50, 90])) / 100
            ev = dict(
                base,
                status="partially_refunded",
                refunded_amount=str(part.quantize(Decimal("0.01"))),
            )
            ev.pop("lines", None)
        elif r < 0.72:
            ev = dict(rng.choice(paid), status=rng.choice(["refunded", "cancelled"]))
            ev.pop("refunded_amount", None)
        elif r < 0.8 and sent:
            ev = dict(rng.choice(sent))  # a replay, or a stale state after a refund
        elif r < 0.85:
            base = rng.choice(paid)  # a correction of the channel in the same state
            ev = dict(base, channel="fix")
        else:
            base = rng.choice([o for o in paid if o.get("currency") == "CNY"] or paid)
            pay = rng.choice(["20", "33.33", "150"])
            items.append(("sv", base["customer_id"], base["order_id"], pay, f"v{i}"))
            if rng.random() < 0.5:  # refunded right after: its stored value comes back
                ev = dict(base, status="partially_refunded", refunded_amount="10")
                ev.pop("lines", None)
                sent.append(ev)
                items.append(("order", ev))
            continue
        sent.append(ev)
        items.append(("order", ev))
    return items


def _p(ev: dict[str, Any], p: str) -> dict[str, Any]:
    return dict(ev, order_id=p + ev["order_id"], customer_id=p + ev["customer_id"])


def run_lane(
    client: TestClient, keys: Keys, items: list[tuple[Any, ...]], p: str, lane: str, seed: int
) -> list[Any]:
    rng = random.Random(seed)
    op = keys.h("operator")
    out: list[Any] = []
    pending: list[dict[str, Any]] = []

    def flush() -> None:
        while pending:
            n = rng.choice([1, 2, 3, 5, 8, len(pending)])
            chunk, pending[:] = pending[:n], pending[n:]
            r = client.post(URL, json={"events": chunk}, headers=op)
            assert r.status_code == 200, r.text
            out.extend(r.json()["results"])

    for item in items:
        if item[0] == "order":
            ev = _p(item[1], p)
            if lane == "batch":
                pending.append(ev)
                continue
            r = client.post("/v1/orders", json=ev, headers=op)
            assert r.status_code == 200, r.text
            out.append({**r.json(), "replayed": r.headers.get("Idempotent-Replayed") == "true"})
            continue
        flush()
        _, customer, order_id, pay, key = item
        client.post(
            f"/v1/customers/{p}{customer}/topups",
            json={"amount": "200", "idempotency_key": p + key},
            headers=op,
        )
        r = client.post(
            f"/v1/customers/{p}{customer}/stored-value/spend",
            json={"amount": pay, "order_id": p + order_id, "idempotency_key": p + key},
            headers=op,
        )
        out.append({"sv": r.status_code, "body": r.json()})
    flush()
    return out


def core_snapshot(store: Store, p: str) -> dict[str, Any]:
    """The lane's orders, lines and customers as stored (write times left out)."""
    with store.connect() as conn:
        o, ln, cu = st.orders.c, st.order_lines.c, st.customers.c
        orders = {
            r.order_id: {k: v for k, v in r._mapping.items() if k != "updated_at"}
            for r in conn.execute(sa.select(st.orders).where(o.customer_id.like(f"{p}%")))
        }
        lines = [
            dict(r._mapping)
            for r in conn.execute(
                sa.select(st.order_lines)
                .where(ln.order_id.in_(list(orders)))
                .order_by(ln.order_id, ln.line_no)
            )
        ]
        customers = [
            {k: v for k, v in r._mapping.items() if k not in ("created_at", "updated_at")}
            for r in conn.execute(
                sa.select(st.customers).where(cu.customer_id.like(f"{p}%")).order_by(cu.customer_id)
            )
        ]
    return {"orders": orders, "lines": lines, "customers": customers}


@pytest.mark.parametrize("seed", [1, 3])
def test_batch_endpoint_equals_posting_one_by_one(
    fixed: TestClient, keys: Keys, shop: Store, seed: int
) -> None:
    """The same stream posted one event per request and through the batch endpoint in random
    chunk sizes: identical answers per event (order, loyalty effects, replayed), identical
    orders, lines and customers, and identical loyalty ledgers (balances, entries, lots,
    orders, members, stamp cards, coupons and their events, stored results)."""
    from loyalty.test_batch import coupon_codes, normalise, snapshot

    items = make_items(random.Random(seed))
    assert sum(1 for it in items if it[0] == "order") >= 15
    outs, snaps, cores = {}, {}, {}
    for lane in ("single", "batch"):
        p = f"L{lane[0]}~"
        raw = run_lane(fixed, keys, items, p, lane, seed)
        outs[lane] = normalise(raw, p, coupon_codes(shop, p))
        snaps[lane] = snapshot(shop, p)
        cores[lane] = normalise(core_snapshot(shop, p), p, {})
    assert outs["batch"] == outs["single"]
    assert snaps["batch"] == snaps["single"]
    assert cores["batch"] == cores["single"]
    # the stream exercised what it should
    loyalty = [x["loyalty"] for x in outs["single"] if "loyalty" in x]
    assert any(x["replayed"] for x in outs["single"] if "loyalty" in x)
    assert any(x["points_reversed"] != "0" for x in loyalty)
    assert any("stored_value_returned" in x for x in loyalty)
    with shop.connect() as conn:
        assert verify_ledger(conn) == []

"""Order ids live in a source namespace: (source, order_id) is an order's key at every door.

A merchant selling on two platforms has two orders "1001": recorded through the REST API
(``source`` field), ``huitouke loyalty order apply --source`` or ``huitouke import
--source``, both are kept, the analytics count both, the loyalty program earns for both, and
re-importing one source's file never touches the other's orders. On SQLite and PostgreSQL.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from huitouke.analytics import Analytics
from huitouke.app.orders import load_orders
from huitouke.cli.main import main
from huitouke.loyalty import tables as lt
from huitouke.loyalty.ledger import verify_ledger
from huitouke.store import tables as t
from huitouke.store.db import Store

from .conftest import Keys
from .test_orders_api import install_shop_program

ZONE = "Asia/Shanghai"


def _cli(*args: str, expect: int = 0) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main(list(args))
            rc = 0
        except SystemExit as exc:
            rc = int(exc.code or 0)
    assert rc == expect, (rc, out.getvalue(), err.getvalue())
    return out.getvalue(), err.getvalue()


def _orders(store: Store) -> dict[tuple[str, str], dict[str, Any]]:
    with store.connect() as conn:
        rows = conn.execute(select(t.orders)).all()
    return {(r.source, r.order_id): dict(r._mapping) for r in rows}


def _ev(oid: str, cid: str, day: int, amount: str, **kw: Any) -> dict[str, Any]:
    return {
        "order_id": oid,
        "customer_id": cid,
        "ordered_at": f"2026-10-{day:02d}T10:00:00+08:00",
        "amount": amount,
        "currency": "CNY",
        "status": "paid",
        **kw,
    }


def _points(store: Store) -> dict[str, Decimal]:
    with store.connect() as conn:
        rows = conn.execute(
            select(lt.accounts.c.customer_id, lt.accounts.c.balance).where(
                lt.accounts.c.asset == "points"
            )
        ).all()
    return {r.customer_id: Decimal(r.balance) for r in rows}


# -- REST ----------------------------------------------------------------------------------
def test_rest_keeps_one_order_per_source_and_earns_for_each(
    client: Any, keys: Keys, store: Store
) -> None:
    install_shop_program(store)
    op = keys.h("operator")
    a = client.post("/v1/orders", json=_ev("1001", "c1", 1, "299.90", source="taobao"), headers=op)
    b = client.post("/v1/orders", json=_ev("1001", "c2", 2, "100", source="shopify"), headers=op)
    assert a.status_code == 200, a.text
    assert b.status_code == 200, b.text  # not an order.conflict: another source's order
    assert a.json()["order"]["source"] == "taobao" and b.json()["order"]["source"] == "shopify"
    # shop.yaml: 1 point per yuan (floor) + 10 per order, for each order
    assert a.json()["loyalty"]["points_earned"] == "309"
    assert b.json()["loyalty"]["points_earned"] == "110"
    # a replay of each is a replay, under its own source
    again = client.post(
        "/v1/orders", json=_ev("1001", "c2", 2, "100", source="shopify"), headers=op
    )
    assert again.headers.get("Idempotent-Replayed") == "true"
    # the same id under the default source is a third order
    c = client.post("/v1/orders", json=_ev("1001", "c3", 3, "50"), headers=op)
    assert c.status_code == 200 and c.json()["order"]["source"] == "default"
    stored = _orders(store)
    assert sorted(stored) == [("default", "1001"), ("shopify", "1001"), ("taobao", "1001")]
    assert [stored[k]["customer_id"] for k in sorted(stored)] == ["c3", "c2", "c1"]

    # a refund of the shopify order reverses that order's points only
    r = client.post(
        "/v1/orders",
        json=_ev("1001", "c2", 2, "100", source="shopify", status="refunded"),
        headers=op,
    )
    assert r.status_code == 200, r.text
    assert r.json()["loyalty"]["points_reversed"] == "110"
    assert _orders(store)[("taobao", "1001")]["status"] == "paid"
    assert _points(store) == {"c1": Decimal(309), "c2": Decimal(0), "c3": Decimal(60)}
    with store.connect() as conn:
        ledger = conn.execute(select(lt.orders.c.source, lt.orders.c.order_id)).all()
        assert sorted(tuple(x) for x in ledger) == sorted(stored)
        assert verify_ledger(conn) == []

    # reads: an id several sources use needs the source
    rd = keys.h("read")
    hist = client.get("/v1/customers/c2/loyalty/history", headers=rd)
    assert hist.status_code == 200, hist.text
    refs = [e["reference"] for e in hist.json() if e["reference"]]
    assert refs and all("\x1f" not in x for x in refs)  # shown as a person reads it
    assert any("shopify:1001" in x for x in refs), refs
    amb = client.get("/v1/orders/1001", headers=rd)
    assert amb.status_code == 409, amb.text
    err = amb.json()["error"]
    assert err["code"] == "order.ambiguous"
    assert err["details"]["sources"] == ["default", "shopify", "taobao"]
    assert "shopify" in err["message"] and "taobao" in err["message"]
    one = client.get("/v1/orders/1001", params={"source": "taobao"}, headers=rd)
    assert one.status_code == 200 and one.json()["customer_id"] == "c1"
    miss = client.get("/v1/orders/1001", params={"source": "jd"}, headers=rd)
    assert miss.status_code == 404 and miss.json()["error"]["code"] == "order.not_found"


def test_rest_batch_and_bad_source(client: Any, keys: Keys, store: Store) -> None:
    op = keys.h("operator")
    events = [
        _ev("7", "c1", 1, "10", source="taobao"),
        _ev("7", "c2", 2, "20", source="shopify"),
        _ev("8", "c1", 5, "30", source="taobao"),
    ]
    r = client.post("/v1/orders/batch", json={"events": events}, headers=op)
    assert r.status_code == 200, r.text
    assert [x["order"]["source"] for x in r.json()["results"]] == ["taobao", "shopify", "taobao"]
    assert len(_orders(store)) == 3
    # the same id under one source stays one order: another customer is still a conflict
    clash = client.post("/v1/orders", json=_ev("7", "c9", 1, "10", source="taobao"), headers=op)
    assert clash.status_code == 409 and clash.json()["error"]["code"] == "order.conflict"
    assert clash.json()["error"]["details"]["source"] == "taobao"

    bad = client.post("/v1/orders", json=_ev("9", "c1", 1, "10", source="Tao Bao"), headers=op)
    assert bad.status_code == 422, bad.text
    e = bad.json()["error"]
    assert e["code"] == "order.bad_source" and e["details"]["field"] == "source"
    assert "Tao Bao" in e["message"]
    bad = client.post(
        "/v1/orders/batch",
        json={"events": [events[0], _ev("9", "c1", 1, "10", source="x" * 33)]},
        headers=op,
    )
    assert bad.status_code == 422, bad.text
    e = bad.json()["error"]
    assert e["code"] == "order.bad_source" and e["details"]["field"] == "events[1].source"
    assert len(_orders(store)) == 3  # nothing of the refused requests was stored


# -- CLI: import and the loyalty command --------------------------------------------------
def _write(path: Path, rows: list[dict[str, Any]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return path


def test_import_two_sources_with_the_same_ids(store_url: str, store: Store, tmp_path: Path) -> None:
    install_shop_program(store)
    taobao = _write(
        tmp_path / "taobao.csv",
        [
            {"order_id": "1001", "customer_id": "c1", "ordered_at": "2026-10-01 10:00",
             "amount": "100.00", "status": "paid"},
            {"order_id": "1002", "customer_id": "c2", "ordered_at": "2026-10-02 10:00",
             "amount": "200.00", "status": "paid"},
        ],
    )  # fmt: skip
    shopify = _write(
        tmp_path / "shopify.csv",
        [
            # the same ids: other customers, other amounts — and c1 buying again
            {"order_id": "1001", "customer_id": "c3", "ordered_at": "2026-10-05 10:00",
             "amount": "50.00", "status": "paid"},
            {"order_id": "1002", "customer_id": "c1", "ordered_at": "2026-10-20 10:00",
             "amount": "80.00", "status": "paid"},
        ],
    )  # fmt: skip
    out, _ = _cli("import", str(taobao), "--source", "taobao", "--database-url", store_url,
                  "--json")  # fmt: skip
    assert json.loads(out)["source"] == "taobao" and json.loads(out)["orders_inserted"] == 2
    out, _ = _cli("import", str(shopify), "--source", "shopify", "--database-url", store_url,
                  "--json")  # fmt: skip
    assert json.loads(out)["orders_inserted"] == 2  # not refused as order.conflict
    before = _orders(store)
    assert sorted(before) == [
        ("shopify", "1001"), ("shopify", "1002"), ("taobao", "1001"), ("taobao", "1002"),
    ]  # fmt: skip
    assert before[("taobao", "1001")]["customer_id"] == "c1"
    assert before[("shopify", "1001")]["customer_id"] == "c3"

    # importing a file twice stays idempotent, and re-importing one source (even with a
    # later state of its orders) never touches the other's
    out, _ = _cli("import", str(taobao), "--source", "taobao", "--database-url", store_url,
                  "--json")  # fmt: skip
    assert json.loads(out)["orders_unchanged"] == 2
    taobao2 = _write(
        tmp_path / "taobao2.csv",
        [
            {"order_id": "1001", "customer_id": "c1", "ordered_at": "2026-10-01 10:00",
             "amount": "100.00", "status": "refunded"},
        ],
    )  # fmt: skip
    out, _ = _cli("import", str(taobao2), "--source", "taobao", "--database-url", store_url,
                  "--json")  # fmt: skip
    assert json.loads(out)["orders_updated"] == 1
    after = _orders(store)
    assert after[("taobao", "1001")]["status"] == "refunded"
    for key in (("shopify", "1001"), ("shopify", "1002"), ("taobao", "1002")):
        assert after[key] == before[key]

    # the loyalty program earned for all four orders and reversed the refunded one only
    with store.connect() as conn:
        ledger = {
            (r.source, r.order_id): r
            for r in conn.execute(select(lt.orders)).all()
        }  # fmt: skip
        assert sorted(ledger) == sorted(after)
        assert Decimal(ledger[("taobao", "1001")].points_reversed) > 0
        assert Decimal(ledger[("shopify", "1001")].points_reversed) == 0
        assert verify_ledger(conn) == []
    # shop.yaml: floor(yuan) + 10 per order; c1: taobao 1001 (110, reversed) + shopify 1002
    assert _points(store) == {"c1": Decimal(90), "c2": Decimal(210), "c3": Decimal(60)}

    # the analytics count every (source, order_id): c1's two orders (one per source) make
    # a repurchase; the refunded one does not count
    with Analytics(load_orders(store), timezone=ZONE) as an:
        m = an.range_metrics(date(2026, 10, 1), date(2026, 10, 31))
        assert int(m["orders"].iloc[0]) == 3
        cust = an.customers(date(2026, 10, 31)).set_index("customer_id")
        assert int(cust.loc["c1", "orders"]) == 1  # taobao 1001 refunded: shopify 1002 only
    _cli("import", str(taobao), "--source", "taobao", "--database-url", store_url)  # stale
    with Analytics(load_orders(store), timezone=ZONE) as an:
        assert int(an.range_metrics(date(2026, 10, 1), date(2026, 10, 31))["orders"].iloc[0]) == 3

    # an import under a bad source name stores nothing and names the option
    _, err = _cli("import", str(shopify), "--source", "Shop/ify", "--database-url", store_url,
                  expect=2)  # fmt: skip
    assert "order.bad_source" in err and "--source" in err
    assert _orders(store) == after


def test_analytics_count_both_sources_of_one_customer(store_url: str, store: Store) -> None:
    """A customer's orders under two sources with the same id are two orders: a repeat."""
    install_shop_program(store)
    for source, day in (("taobao", 1), ("shopify", 12)):
        out, _ = _cli(
            "loyalty", "order", "apply", "--database-url", store_url, "--source", source,
            "--order-id", "A1", "--customer", "c1", "--amount", "10",
            "--at", f"2026-10-{day:02d}T10:00:00+08:00", "--currency", "CNY",
        )  # fmt: skip
        assert json.loads(out)["order"]["source"] == source
    with Analytics(load_orders(store), timezone=ZONE) as an:
        cust = an.customers(date(2026, 10, 31)).set_index("customer_id")
        assert int(cust.loc["c1", "orders"]) == 2
        m = an.range_metrics(date(2026, 10, 1), date(2026, 10, 31))
        assert int(m["orders"].iloc[0]) == 2 and int(m["buyers"].iloc[0]) == 1
    _, err = _cli(
        "loyalty", "order", "apply", "--database-url", store_url, "--source", "TAOBAO",
        "--order-id", "A1", "--customer", "c1", "--amount", "10", "--currency", "CNY",
        expect=2,
    )  # fmt: skip
    assert "order.bad_source" in err


@pytest.mark.parametrize("oid", ["a\x1fb", "tab\there"])
def test_order_ids_with_control_characters_are_refused(store: Store, oid: str) -> None:
    """References join a source and an id with a control character: no id may hold one."""
    from huitouke.errors import InputError
    from huitouke.store.orders_repo import upsert_orders

    row = {**_ev(oid, "c1", 1, "10"), "ordered_at": None}
    from datetime import UTC, datetime

    row["ordered_at"] = datetime(2026, 10, 1, tzinfo=UTC)
    row["amount"] = Decimal("10")
    with pytest.raises(InputError) as exc, store.begin() as conn:
        upsert_orders(conn, [row])
    assert exc.value.code == "orders.invalid" and "control character" in str(exc.value)


def test_stored_value_paid_on_one_source_comes_back_with_that_order_only(
    client: Any, keys: Keys, store: Store
) -> None:
    install_shop_program(store)
    op = keys.h("operator")
    top = client.post(
        "/v1/customers/c1/topups", json={"amount": "100", "idempotency_key": "t1"}, headers=op
    )
    assert top.status_code == 200, top.text
    for source, amount in (("taobao", "100"), ("shopify", "80")):
        r = client.post("/v1/orders", json=_ev("1001", "c1", 1, amount, source=source), headers=op)
        assert r.status_code == 200, r.text
    spend = client.post(
        "/v1/customers/c1/stored-value/spend",
        json={"amount": "60", "order_id": "1001", "source": "taobao"},
        headers=op,
    )
    assert spend.status_code == 200, spend.text
    assert (spend.json()["order_id"], spend.json()["source"]) == ("1001", "taobao")
    # refunding Shopify's 1001 gives back nothing: the payment was on Taobao's 1001
    r = client.post(
        "/v1/orders",
        json=_ev("1001", "c1", 1, "80", source="shopify", status="refunded"),
        headers=op,
    )
    assert r.status_code == 200, r.text
    assert "stored_value_returned" not in r.json()["loyalty"]
    assert r.json()["loyalty"]["coupons_voided"] == []
    r = client.post(
        "/v1/orders",
        json=_ev("1001", "c1", 1, "100", source="taobao", status="refunded"),
        headers=op,
    )
    assert r.status_code == 200, r.text
    assert r.json()["loyalty"]["stored_value_returned"]["amount"] == "60"
    assert len(r.json()["loyalty"]["coupons_voided"]) == 2  # spendback10 and next15
    code = r.json()["loyalty"]["coupons_voided"][0]
    coupon = client.get(f"/v1/coupons/{code}", headers=keys.h("read")).json()
    voided = [e for e in coupon["events"] if e["kind"] == "voided"]
    assert [(e["order_id"], e["order_source"]) for e in voided] == [("1001", "taobao")]
    bad = client.post(
        "/v1/customers/c1/stored-value/spend",
        json={"amount": "1", "order_id": "1001", "source": "TB!"},
        headers=op,
    )
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "order.bad_source"
    with store.connect() as conn:
        assert verify_ledger(conn) == []


def test_fulfilment_events_of_two_sources_are_two_orders_events(
    client: Any, keys: Keys, store: Store
) -> None:
    op = keys.h("operator")
    ev = {"order_id": "1001", "customer_id": "c1", "event": "order_shipped",
          "at": "2026-10-02T10:00:00+08:00"}  # fmt: skip
    first = client.post("/v1/journeys/events", json={**ev, "source": "taobao"}, headers=op)
    again = client.post("/v1/journeys/events", json={**ev, "source": "taobao"}, headers=op)
    other = client.post("/v1/journeys/events", json={**ev, "source": "shopify"}, headers=op)
    assert [r.json()["recorded"] for r in (first, again, other)] == [True, False, True]
    bad = client.post("/v1/journeys/events", json={**ev, "source": "Tao"}, headers=op)
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "order.bad_source"

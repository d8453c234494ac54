"""Idempotency keys and points precision over HTTP (create_app), on SQLite and PostgreSQL.

A key sent again with the same request replays the first answer; with another request it is
422 ``idempotency.key_reused`` — never the first answer, which would report an operation the
caller did not make as done. A stored-value payment without a key is a payment of its own.
Points are whole units unless the program declares ``points.decimals``."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
import yaml

from huitouke.loyalty.ledger import verify_ledger
from huitouke.store.db import Store

from .conftest import Keys
from .test_orders_api import SHOP, install_shop_program, order


@pytest.fixture
def shop(store: Store) -> Store:
    install_shop_program(store)
    return store


def _prepare(client: Any, op: dict[str, str]) -> None:
    """c1 with points (an order of 3,000), stored value, and an open group buy."""
    assert client.post("/v1/orders", json=order(amount="3000"), headers=op).status_code == 200
    r = client.post(
        "/v1/customers/c1/topups", json={"amount": "500", "idempotency_key": "seed"}, headers=op
    )
    assert r.status_code == 200, r.text
    r = client.post(
        "/v1/customers/c1/stored-value/spend",
        json={"amount": "50", "order_id": "o1", "idempotency_key": "seed-pay"},
        headers=op,
    )
    assert r.status_code == 200, r.text


# (url, first body, the same key with another body)
CASES = [
    (
        "/v1/customers/c1/points/adjust",
        {"delta": "10", "reason": "goodwill"},
        {"delta": "100", "reason": "goodwill"},
    ),
    ("/v1/customers/c1/points/redeem", {"points": "200"}, {"points": "300"}),
    ("/v1/customers/c1/topups", {"amount": "100"}, {"amount": "1000"}),
    ("/v1/coupons", {"template": "fixed20", "customer_id": "c1"}, {"template": "fixed20",
                                                                    "customer_id": "c2"}),
    (
        "/v1/customers/c1/stored-value/spend",
        {"amount": "10", "order_id": "o1"},
        {"amount": "20", "order_id": "o1"},
    ),
    ("/v1/customers/c1/stored-value/reverse", {"order_id": "o1", "amount": "5"},
     {"order_id": "o1", "amount": "6"}),
    ("/v1/customers/c1/stored-value/refund", {"amount": "10"}, {"amount": "11"}),
    ("/v1/customers/c1/memberships", {"plan_id": "plus_month"}, {"plan_id": "plus_year"}),
    ("/v1/group-buys", {"deal_id": "tea3", "leader_id": "c1"}, {"deal_id": "tea3",
                                                                "leader_id": "c2"}),
]  # fmt: skip


@pytest.mark.parametrize(("url", "first", "other"), CASES, ids=[c[0] for c in CASES])
def test_a_key_reused_with_another_request_is_422(
    client: Any, keys: Keys, shop: Store, url: str, first: dict[str, Any], other: dict[str, Any]
) -> None:
    op = keys.h("operator")
    _prepare(client, op)
    r1 = client.post(url, json={**first, "idempotency_key": "k1"}, headers=op)
    assert r1.status_code == 200, r1.text
    # the same request: the first answer, marked as a replay (body key or header alike)
    again = client.post(url, json=first, headers=keys.h("operator", **{"Idempotency-Key": "k1"}))
    assert again.status_code == 200 and again.json() == r1.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    # numbers written differently are the same request
    if "amount" in first:
        same = {**first, "amount": first["amount"] + ".00", "idempotency_key": "k1"}
        assert client.post(url, json=same, headers=op).json() == r1.json()
    # another request under the same key: refused, and nothing happens
    before = client.get("/v1/customers/c1/loyalty", headers=keys.h("read")).json()
    r2 = client.post(url, json={**other, "idempotency_key": "k1"}, headers=op)
    assert r2.status_code == 422, r2.text
    err = r2.json()["error"]
    assert err["code"] == "idempotency.key_reused" and err["details"]["idempotency_key"] == "k1"
    assert "k1" in err["message"]
    assert client.get("/v1/customers/c1/loyalty", headers=keys.h("read")).json() == before
    with shop.connect() as conn:
        assert verify_ledger(conn) == []


def test_coupon_void_gift_and_redemption_keys(client: Any, keys: Keys, shop: Store) -> None:
    op = keys.h("operator")
    _prepare(client, op)
    codes = [
        client.post(
            "/v1/coupons",
            json={"template": "fixed20", "customer_id": "c1", "idempotency_key": f"i{i}"},
            headers=op,
        ).json()["code"]
        for i in range(3)
    ]
    redeem = {"order_id": "o9", "customer_id": "c1", "order_amount": "100", "redemption_id": "r1"}
    assert client.post(f"/v1/coupons/{codes[0]}/redeem", json=redeem, headers=op).status_code == 200
    # the same coupon and order with another amount: the key was used for another request
    other = {**redeem, "order_amount": "250"}
    r = client.post(f"/v1/coupons/{codes[0]}/redeem", json=other, headers=op)
    assert r.status_code == 422 and r.json()["error"]["code"] == "idempotency.key_reused"
    # another coupon: the more specific code redemptions always had
    r = client.post(f"/v1/coupons/{codes[1]}/redeem", json=redeem, headers=op)
    assert r.status_code == 409 and r.json()["error"]["code"] == "coupon.redemption_id_reused"
    gift = {"from_customer": "c1", "to_customer": "c2", "idempotency_key": "g1"}
    assert client.post(f"/v1/coupons/{codes[1]}/gift", json=gift, headers=op).status_code == 200
    r = client.post(f"/v1/coupons/{codes[2]}/gift", json=gift, headers=op)
    assert r.status_code == 422 and r.json()["error"]["code"] == "idempotency.key_reused"
    void = {"reason": "lost", "idempotency_key": "v1"}
    assert client.post(f"/v1/coupons/{codes[2]}/void", json=void, headers=op).status_code == 200
    r = client.post(f"/v1/coupons/{codes[2]}/void", json={**void, "reason": "x"}, headers=op)
    assert r.status_code == 422 and r.json()["error"]["code"] == "idempotency.key_reused"


def test_two_stored_value_payments_without_a_key_are_two(
    client: Any, keys: Keys, shop: Store
) -> None:
    op = keys.h("operator")
    _prepare(client, op)
    url = "/v1/customers/c1/stored-value/spend"
    before = client.get("/v1/customers/c1/loyalty", headers=keys.h("read")).json()
    paid_before = before["stored_value"]["paid"]
    a = client.post(url, json={"amount": "30", "order_id": "o1"}, headers=op)
    b = client.post(url, json={"amount": "30", "order_id": "o1"}, headers=op)
    assert a.status_code == b.status_code == 200
    assert "Idempotent-Replayed" not in b.headers
    after = client.get("/v1/customers/c1/loyalty", headers=keys.h("read")).json()
    assert Decimal(paid_before) - Decimal(after["stored_value"]["paid"]) == 60
    with shop.connect() as conn:
        assert verify_ledger(conn) == []


@pytest.mark.parametrize(
    ("url", "body", "field"),
    [
        ("/v1/customers/c1/points/adjust", {"delta": "0.5", "reason": "x"}, "delta"),
        ("/v1/customers/c1/points/adjust", {"delta": "-1.25", "reason": "x"}, "delta"),
        ("/v1/customers/c1/points/redeem", {"points": "150.5"}, "points"),
    ],
)
def test_fractional_points_are_refused(
    client: Any, keys: Keys, shop: Store, url: str, body: dict[str, Any], field: str
) -> None:
    op = keys.h("operator")
    _prepare(client, op)
    before = client.get("/v1/customers/c1/loyalty", headers=keys.h("read")).json()
    r = client.post(url, json={**body, "idempotency_key": "f1"}, headers=op)
    assert r.status_code == 422, r.text
    err = r.json()["error"]
    assert err["code"] == "points.fractional" and err["details"]["field"] == field
    assert "points.decimals" in err["message"]
    assert client.get("/v1/customers/c1/loyalty", headers=keys.h("read")).json() == before
    # whole points with trailing zeros are whole
    ok = client.post(url, json={**body, field: "100.00", "idempotency_key": "f2"}, headers=op)
    assert ok.status_code == 200, ok.text


def test_a_program_may_declare_decimal_points(client: Any, keys: Keys, shop: Store) -> None:
    doc = json.loads(json.dumps(yaml.safe_load(SHOP.read_text(encoding="utf-8")), default=str))
    bad = client.put("/v1/program", json={**doc, "earn": {**doc["earn"], "per_order": "0.5"}},
                     headers=keys.h("admin"))  # fmt: skip
    assert bad.status_code == 422 and "earn.per_order" in bad.text
    r = client.put("/v1/program", json={**doc, "points": {"decimals": 2}}, headers=keys.h("admin"))
    assert r.status_code == 200, r.text
    op = keys.h("operator")
    _prepare(client, op)
    adj = {"delta": "0.25", "reason": "x", "idempotency_key": "d1"}
    assert client.post("/v1/customers/c1/points/adjust", json=adj, headers=op).status_code == 200
    three = {**adj, "delta": "0.125", "idempotency_key": "d2"}
    r = client.post("/v1/customers/c1/points/adjust", json=three, headers=op)
    assert r.status_code == 422 and r.json()["error"]["details"]["decimals"] == 2

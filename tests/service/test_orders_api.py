"""POST /v1/orders: upsert + loyalty in one unit of work, idempotent by order id and state;
GET /v1/metrics over the posted orders is exactly `huitouke metrics --format json`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from huitouke.loyalty.ledger import verify_ledger
from huitouke.loyalty.program import load_program
from huitouke.loyalty.programs_repo import save_program
from huitouke.store.db import Store

from .conftest import Keys

SHOP = (
    Path(__file__).resolve().parents[2] / "src" / "huitouke" / "loyalty" / "examples" / "shop.yaml"
)


def install_shop_program(store: Store) -> None:
    doc = yaml.safe_load(SHOP.read_text(encoding="utf-8"))
    with store.begin() as conn:
        save_program(conn, load_program({**doc, "id": "default"}), now=datetime.now(UTC))


def order(**kw: Any) -> dict[str, Any]:
    o: dict[str, Any] = {
        "order_id": "o1",
        "customer_id": "c1",
        "ordered_at": "2026-11-01T10:00:00+08:00",
        "amount": "299.90",
        "currency": "CNY",
        "status": "paid",
    }
    o.update(kw)
    return o


@pytest.fixture
def shop(store: Store) -> Store:
    install_shop_program(store)
    return store


def test_order_earns_and_replay_changes_nothing(client, keys: Keys, shop: Store) -> None:
    first = client.post("/v1/orders", json=order(), headers=keys.h("operator"))
    assert first.status_code == 200, first.text
    body = first.json()
    assert (
        body["order"]["amount"] == "299.9000"
        and body["order"]["ordered_at"] == "2026-11-01T02:00:00+00:00"
    )
    # shop.yaml: 1 point per yuan (floor) + 10 per order; a 10 % spend-back coupon and next15.
    assert body["loyalty"]["points_earned"] == "309"
    assert sorted(c["template"] for c in body["loyalty"]["coupons_issued"]) == [
        "next15",
        "spendback10",
    ]
    assert "Idempotent-Replayed" not in first.headers

    again = client.post("/v1/orders", json=order(), headers=keys.h("operator"))
    assert again.status_code == 200 and again.json() == body
    assert again.headers["Idempotent-Replayed"] == "true"
    view = client.get("/v1/customers/c1/loyalty", headers=keys.h("read")).json()
    assert view["points_balance"] == "309" and len(view["coupons"]) == 2


def test_refund_applies_and_a_late_paid_never_undoes_it(client, keys: Keys, shop: Store) -> None:
    client.post("/v1/orders", json=order(), headers=keys.h("operator"))
    part = client.post(
        "/v1/orders",
        json=order(status="partially_refunded", refunded_amount="100"),
        headers=keys.h("operator"),
    )
    assert part.status_code == 200, part.text
    assert part.json()["order"]["status"] == "partially_refunded"
    full = client.post("/v1/orders", json=order(status="refunded"), headers=keys.h("operator"))
    assert full.json()["order"]["refunded_amount"] == "299.9000"
    late = client.post("/v1/orders", json=order(), headers=keys.h("operator"))
    # the stale event changes nothing and says so (docs/api.md)
    assert late.json()["order"] == full.json()["order"]
    assert late.json()["loyalty"]["ignored"] == "stale"
    assert late.json()["loyalty"]["points_earned"] == "0"
    assert late.headers["Idempotent-Replayed"] == "true"
    again = client.post("/v1/orders", json=order(status="refunded"), headers=keys.h("operator"))
    assert again.json() == full.json()  # the recorded state itself is a plain replay
    view = client.get("/v1/customers/c1/loyalty", headers=keys.h("read")).json()
    assert view["points_balance"] == "0"
    with shop.connect() as conn:
        assert verify_ledger(conn) == []


def test_amount_as_number_is_exact(client, keys: Keys, shop: Store) -> None:
    r = client.post(
        "/v1/orders", json=order(amount=19.99, currency=None), headers=keys.h("operator")
    )
    assert r.status_code == 200, r.text
    assert r.json()["order"]["amount"] == "19.9900" and r.json()["order"]["currency"] == "CNY"


def test_lines_are_stored(client, keys: Keys, shop: Store) -> None:
    lines = [
        {
            "sku": "tea-1",
            "product_name": "龙井",
            "category": "tea",
            "quantity": 2,
            "unit_price": "100",
        },
        {"sku": "cup", "quantity": 1, "unit_price": 99.9},
    ]
    r = client.post("/v1/orders", json=order(lines=lines), headers=keys.h("operator"))
    assert r.status_code == 200, r.text
    got = client.get("/v1/orders/o1", headers=keys.h("read")).json()
    assert [(ln["sku"], ln["quantity"], ln["unit_price"]) for ln in got["lines"]] == [
        ("tea-1", 2, "100.0000"),
        ("cup", 1, "99.9000"),
    ]
    assert (
        client.get("/v1/orders/nope", headers=keys.h("read")).json()["error"]["code"]
        == "order.not_found"
    )


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)  # validation precedes the store
@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"ordered_at": "2026-11-01T10:00:00"}, "ordered_at"),
        ({"amount": "12.3.4"}, "amount"),
        ({"amount": "-1"}, "amount"),
        ({"amount": "1.00001"}, "amount"),
        ({"status": "shipped"}, "status"),
        ({"currency": "rmb"}, "currency"),
        ({"customer_id": ""}, "customer_id"),
        ({"lines": [{"sku": "a", "quantity": -1}]}, "lines.0.quantity"),
        ({"refunded_amount": "500"}, "body"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_bad_orders_are_422_naming_the_field(
    client, keys: Keys, change: dict[str, Any], field: str
) -> None:
    r = client.post("/v1/orders", json=order(**change), headers=keys.h("operator"))
    assert r.status_code == 422, r.text
    err = r.json()["error"]
    assert err["code"] == "input.invalid"
    assert field in [f["field"] for f in err["details"]["fields"]], err


def test_order_of_another_customer_is_409(client, keys: Keys, shop: Store) -> None:
    client.post("/v1/orders", json=order(), headers=keys.h("operator"))
    r = client.post(
        "/v1/orders", json=order(customer_id="c2", status="refunded"), headers=keys.h("operator")
    )
    assert r.status_code == 409 and r.json()["error"]["code"] == "order.conflict"
    assert r.json()["error"]["details"]["field"] == "customer_id"
    # the whole unit of work rolled back: the order still belongs to c1 and is paid
    assert client.get("/v1/orders/o1", headers=keys.h("read")).json()["customer_id"] == "c1"


@pytest.mark.parametrize(
    ("change", "field", "stored"),
    [
        ({"customer_id": "c2"}, "customer_id", "c1"),
        ({"amount": "2999.00"}, "amount", "299.9"),
        ({"ordered_at": "2026-11-02T10:00:00+08:00"}, "ordered_at", "2026-11-01T02:00:00+00:00"),
        ({"currency": "USD"}, "currency", "CNY"),
    ],
)
def test_reposting_an_order_with_another_identity_is_409_naming_the_field(
    client, keys: Keys, shop: Store, change: dict[str, Any], field: str, stored: str
) -> None:
    first = client.post("/v1/orders", json=order(), headers=keys.h("operator")).json()
    r = client.post("/v1/orders", json=order(**change), headers=keys.h("operator"))
    assert r.status_code == 409, r.text
    err = r.json()["error"]
    assert err["code"] == "order.conflict"
    assert err["details"]["field"] == field and err["details"]["stored"] == stored
    assert field in err["message"]
    # nothing was rewritten: the order, its revenue and its points stay the first event's
    assert client.get("/v1/orders/o1", headers=keys.h("read")).json() == first["order"]
    view = client.get("/v1/customers/c1/loyalty", headers=keys.h("read")).json()
    assert view["points_balance"] == first["loyalty"]["points_earned"]
    with shop.connect() as conn:
        assert verify_ledger(conn) == []
    # the same event with only a new channel is recorded (not part of the order's identity)
    ok = client.post("/v1/orders", json=order(channel="tmall"), headers=keys.h("operator"))
    assert ok.status_code == 200 and ok.json()["order"]["channel"] == "tmall"


def test_cancelled_after_partially_refunded_cancels(client, keys: Keys, shop: Store) -> None:
    paid = client.post("/v1/orders", json=order(), headers=keys.h("operator")).json()
    assert paid["loyalty"]["points_earned"] != "0"
    part = order(status="partially_refunded", refunded_amount="100")
    assert client.post("/v1/orders", json=part, headers=keys.h("operator")).status_code == 200
    r = client.post("/v1/orders", json=order(status="cancelled"), headers=keys.h("operator"))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["order"]["status"] == "cancelled"
    assert body["order"]["refunded_amount"] == "100.0000"  # what was refunded stays recorded
    assert body["loyalty"]["ignored"] is None and body["loyalty"]["points_reversed"] != "0"
    assert "Idempotent-Replayed" not in r.headers
    view = client.get("/v1/customers/c1/loyalty", headers=keys.h("read")).json()
    assert view["points_balance"] == "0"
    # the partial refund arriving again is stale now
    late = client.post("/v1/orders", json=part, headers=keys.h("operator"))
    assert late.json()["loyalty"]["ignored"] == "stale"
    assert late.json()["order"]["status"] == "cancelled"
    with shop.connect() as conn:
        assert verify_ledger(conn) == []


def test_metrics_are_the_cli_json(client, keys: Keys, shop: Store, store_url: str) -> None:
    stream = [
        order(
            order_id="a1", customer_id="c1", ordered_at="2026-01-03T09:00:00+08:00", amount="120"
        ),
        order(order_id="a2", customer_id="c1", ordered_at="2026-01-20T09:00:00+08:00", amount="80"),
        order(order_id="a3", customer_id="c2", ordered_at="2026-01-31T23:30:00+08:00", amount="50"),
        order(order_id="a4", customer_id="c2", ordered_at="2026-02-01T00:10:00+08:00", amount="60"),
        order(order_id="a5", customer_id="c3", ordered_at="2026-02-14T12:00:00+08:00", amount="70"),
        order(
            order_id="a5",
            customer_id="c3",
            ordered_at="2026-02-14T12:00:00+08:00",
            amount="70",
            status="refunded",
        ),
    ]
    for o in stream:
        assert client.post("/v1/orders", json=o, headers=keys.h("operator")).status_code == 200
    api = client.get("/v1/metrics?period=month", headers=keys.h("read")).json()
    env = {**os.environ, "HUITOUKE_DATABASE_URL": store_url, "HUITOUKE_TIMEZONE": "Asia/Shanghai"}
    cli = subprocess.run(
        [sys.executable, "-m", "huitouke", "metrics", "--period", "month", "--format", "json"],
        env=env, capture_output=True, text=True, check=True, timeout=120,
    )  # fmt: skip
    assert api == json.loads(cli.stdout)
    assert [(p["period"], p["buyers"], p["orders"]) for p in api["periods"]] == [
        ("2026-01", 2, 3),
        ("2026-02", 1, 1),
    ]
    past = client.get("/v1/metrics?period=month&as_of=2026-01-31", headers=keys.h("read")).json()
    assert [p["period"] for p in past["periods"]] == ["2026-01"]

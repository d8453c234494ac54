"""Webhooks and the REST doors through the production app (``create_app``): signatures,
the inbox, duplicates, out-of-order deliveries, unmappable and retried deliveries."""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from huitouke.connectors.signatures import hmac_sha256_b64, verify
from huitouke.connectors.tables import connector_inbox, connectors
from huitouke.settings import Settings
from huitouke.store.db import Store

from .conftest import Keys, delivered, make_keys, snapshot
from .fakes import T0, FakeShopify, shopify_order

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

pytestmark = pytest.mark.timeout(120)
SECRET = "whsec_test"


def test_signature_examples() -> None:
    # A vector published in a third party's Shopify-webhook test (SQLPage's), computed
    # independently of this code: base64(HMAC-SHA256(secret, raw body)).
    body = b'{"id":1234567890,"email":"customer@example.com","total_price":"123.45"}'
    assert (
        hmac_sha256_b64("test-webhook-secret", body)
        == "QNyObTlKbMx2qDlPF/ZOZcBqg5OgPg+2oky3zldc0Gw="
    )
    headers = {"x-shopify-hmac-sha256": "QNyObTlKbMx2qDlPF/ZOZcBqg5OgPg+2oky3zldc0Gw=\n"}
    assert verify("shopify", "test-webhook-secret", body, headers)  # Ruby's encode64 newline
    assert not verify("shopify", "test-webhook-secret", body + b" ", headers)
    assert not verify("shopify", "other", body, headers)
    assert not verify("woocommerce", "test-webhook-secret", body, headers)  # wrong header
    woo = {"x-wc-webhook-signature": "QNyObTlKbMx2qDlPF/ZOZcBqg5OgPg+2oky3zldc0Gw="}
    assert verify("woocommerce", "test-webhook-secret", body, woo)
    assert not verify("shopify", "", body, headers)


@pytest.fixture
def keys(store: Store) -> Keys:
    return make_keys(store)


@pytest.fixture
def client(settings: Settings, store: Store) -> Iterator[TestClient]:
    from huitouke.service import create_app

    with TestClient(create_app(settings, store), raise_server_exceptions=False) as c:
        yield c


def rest_order(
    i: int,
    updated: datetime,
    *,
    refunds: tuple[str, ...] = (),
    cancelled: bool = False,
    customer: bool = True,
    email: str | None = "b@example.com",
    financial: str = "paid",
) -> dict[str, Any]:
    """A Shopify ``orders/*`` webhook body (the REST order shape)."""
    created = T0 + timedelta(minutes=i)
    return {
        "id": 1000 + i,
        "admin_graphql_api_id": f"gid://shopify/Order/{1000 + i}",
        "created_at": created.isoformat(),
        "processed_at": created.astimezone(UTC).isoformat(),
        "updated_at": updated.isoformat(),
        "cancelled_at": updated.isoformat() if cancelled else None,
        "currency": "USD",
        "financial_status": financial,
        "total_price": "100.00",
        "total_price_set": {
            "shop_money": {"amount": "100.00", "currency_code": "USD"},
            "presentment_money": {"amount": "92.00", "currency_code": "EUR"},
        },
        "email": email,
        "phone": None,
        "customer": {
            "id": 7000 + i,
            "email": email,
            "phone": None,
            "first_name": "伟",
            "last_name": "王",
        }
        if customer
        else None,
        "line_items": [
            {
                "id": 1,
                "variant_id": 9,
                "sku": "TEA",
                "title": "Tea",
                "quantity": 2,
                "price": "50.00",
                "price_set": {"shop_money": {"amount": "50.00", "currency_code": "USD"}},
            }
        ],
        "refunds": [
            {
                "id": 90 + k,
                "created_at": updated.isoformat(),
                "transactions": [{"kind": "refund", "status": "success", "amount": r}],
            }
            for k, r in enumerate(refunds)
        ],
    }


def post(
    client: TestClient,
    name: str,
    topic: str,
    payload: Any,
    *,
    secret: str = SECRET,
    sign: bool = True,
    raw: bytes | None = None,
) -> Any:
    body = raw if raw is not None else json.dumps(payload).encode()
    headers = {
        "X-Shopify-Topic": topic,
        "Content-Type": "application/json",
        "X-Shopify-Webhook-Id": "w1",
    }
    if sign:
        headers["X-Shopify-Hmac-Sha256"] = hmac_sha256_b64(secret, body)
    return delivered(
        client, client.post(f"/v1/connectors/{name}/webhook", content=body, headers=headers)
    )


def add(
    client: TestClient, keys: Keys, url: str = "http://127.0.0.1:9", name: str = "shop1"
) -> Any:
    return client.post(
        "/v1/connectors",
        json={
            "kind": "shopify",
            "name": name,
            "api_base_url": url,
            "webhook_secret": SECRET,
            "access_token": "shpat_test",
        },
        headers=keys.h("admin"),
    )


def inbox_count(store: Store) -> int:
    with store.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(connector_inbox)).scalar_one())


def test_registry_scopes_and_sealed_credentials(
    client: TestClient, keys: Keys, store: Store
) -> None:
    body = {
        "kind": "shopify",
        "name": "shop1",
        "api_base_url": "http://127.0.0.1:9",
        "webhook_secret": SECRET,
        "access_token": "shpat_secret_value",
    }
    assert client.post("/v1/connectors", json=body).status_code == 401
    assert client.post("/v1/connectors", json=body, headers=keys.h("operator")).status_code == 403
    r = client.post("/v1/connectors", json=body, headers=keys.h("admin"))
    assert r.status_code == 201, r.text
    assert r.json()["credentials"] == {"access_token": "set", "webhook_secret": "set"}
    assert "shpat_secret_value" not in r.text and SECRET not in r.text
    assert (
        client.post("/v1/connectors", json=body, headers=keys.h("admin")).json()["error"]["code"]
        == "connector.exists"
    )
    with store.connect() as conn:
        stored = json.dumps(conn.execute(select(connectors.c.credentials)).scalar_one())
    assert "shpat_secret_value" not in stored and SECRET not in stored
    listed = client.get("/v1/connectors", headers=keys.h("read"))
    assert [c["name"] for c in listed.json()] == ["shop1"] and "shpat" not in listed.text
    bad = {**body, "name": "Bad Name"}
    assert client.post("/v1/connectors", json=bad, headers=keys.h("admin")).status_code == 422
    bad = {**body, "name": "x2", "kind": "ebay"}
    assert (
        client.post("/v1/connectors", json=bad, headers=keys.h("admin")).json()["error"]["code"]
        == "connector.invalid"
    )
    assert client.post("/v1/connectors/shop1/sync", headers=keys.h("read")).status_code == 403
    assert client.post("/v1/connectors/shop1/sync").status_code == 401
    assert client.post("/v1/connectors/shop1/retry", headers=keys.h("read")).status_code == 403
    assert client.post("/v1/connectors/shop1/pause", headers=keys.h("read")).status_code == 403
    for path in ("/v1/connectors", "/v1/connectors/shop1", "/v1/connectors/shop1/inbox"):
        assert client.get(path).status_code == 401, path
    assert (
        client.post("/v1/connectors/shop1/pause", headers=keys.h("operator")).json()["status"]
        == "paused"
    )
    r = client.post("/v1/connectors/shop1/sync", headers=keys.h("operator"))
    assert r.status_code == 409 and r.json()["error"]["code"] == "connector.paused"
    assert (
        client.post("/v1/connectors/shop1/resume", headers=keys.h("operator")).json()["status"]
        == "active"
    )
    assert client.delete("/v1/connectors/shop1", headers=keys.h("operator")).status_code == 403
    assert client.delete("/v1/connectors/shop1", headers=keys.h("admin")).status_code == 204
    assert (
        client.get("/v1/connectors/shop1", headers=keys.h("read")).json()["error"]["code"]
        == "connector.not_found"
    )


def test_bad_signature_is_401_and_stores_nothing(
    client: TestClient, keys: Keys, store: Store
) -> None:
    assert add(client, keys).status_code == 201
    order = rest_order(1, T0 + timedelta(hours=1))
    r = post(client, "shop1", "orders/create", order, secret="wrong")
    assert r.status_code == 401 and r.json()["error"]["code"] == "connector.bad_signature"
    assert post(client, "shop1", "orders/create", order, sign=False).status_code == 401
    # a signature over other bytes than those sent (re-serialised JSON) is refused too
    body = json.dumps(order).encode()
    r = client.post(
        "/v1/connectors/shop1/webhook",
        content=json.dumps(order, indent=1).encode(),
        headers={
            "X-Shopify-Topic": "orders/create",
            "X-Shopify-Hmac-Sha256": hmac_sha256_b64(SECRET, body),
        },
    )
    assert r.status_code == 401
    assert inbox_count(store) == 0 and snapshot(store, "shop1")["orders"] == {}
    assert post(client, "nope", "orders/create", order).status_code == 404


def test_duplicates_and_out_of_order_change_nothing_twice(
    client: TestClient, keys: Keys, store: Store
) -> None:
    assert add(client, keys).status_code == 201
    t1, t2 = T0 + timedelta(hours=1), T0 + timedelta(hours=2)
    created = rest_order(1, t1)
    refunded = rest_order(1, t2, refunds=("40.00",))
    r = post(client, "shop1", "orders/create", created)
    assert r.status_code == 200 and r.json() == {
        "inbox_id": r.json()["inbox_id"],
        "replayed": False,
        "status": "applied",
    }
    first = snapshot(store, "shop1")
    assert first["orders"]["1001"][1] == "paid"
    r = post(client, "shop1", "orders/create", created)  # the platform resends it
    assert r.json()["replayed"] is True and snapshot(store, "shop1") == first
    assert post(client, "shop1", "orders/updated", refunded).json()["status"] == "applied"
    after = snapshot(store, "shop1")
    assert after["orders"]["1001"][1:4][0] == "partially_refunded"
    # an older state arriving after the newer one, under another topic: stored, changes nothing
    older = rest_order(1, t1 + timedelta(minutes=5))
    r = post(client, "shop1", "orders/updated", older)
    assert r.status_code == 200 and r.json()["status"] == "applied"
    assert snapshot(store, "shop1") == after
    rows = client.get("/v1/connectors/shop1/inbox", headers=keys.h("read")).json()
    assert [x["status"] for x in rows] == ["applied"] * 3
    assert rows[1]["reason"].startswith("older than the delivery of")
    assert inbox_count(store) == 3


def test_unmappable_stays_visible_and_retryable(
    client: TestClient, keys: Keys, store: Store
) -> None:
    with FakeShopify(token="shpat_test") as fake:
        assert add(client, keys, fake.url).status_code == 201
        guest = rest_order(2, T0 + timedelta(hours=1), customer=False, email=None)
        r = post(client, "shop1", "orders/create", guest)
        assert r.status_code == 200 and r.json()["status"] == "failed"
        junk = post(client, "shop1", "orders/create", None, raw=b"{not json")
        assert junk.status_code == 200 and junk.json()["status"] == "failed"
        failed = client.get("/v1/connectors/shop1/inbox?failed=true", headers=keys.h("read")).json()
        assert len(failed) == 2
        assert any("no customer, e-mail or phone" in (f["reason"] or "") for f in failed)
        assert any(
            "not a JSON object" in (f["reason"] or "") or "JSON" in (f["reason"] or "")
            for f in failed
        )
        # a refund names an order whose state is fetched from the shop: pending until the
        # next sync or retry; with the shop down it fails, visibly, and a retry applies it
        fake.put(shopify_order(3, T0 + timedelta(hours=3), refunded="25.00"))
        refund = {
            "id": 555,
            "order_id": 1003,
            "created_at": (T0 + timedelta(hours=3)).isoformat(),
            "transactions": [{"kind": "refund", "status": "success", "amount": "25.00"}],
        }
        r = post(client, "shop1", "refunds/create", refund)
        assert r.json()["status"] == "pending"
        fake.fail_on = set(range(fake.requests + 1, fake.requests + 50))
        out = client.post("/v1/connectors/shop1/retry", headers=keys.h("operator"))
        assert out.status_code == 200 and out.json()["applied"] == 0, out.text
        fake.fail_on = set()
        out = client.post("/v1/connectors/shop1/retry", headers=keys.h("operator")).json()
        assert out["applied"] == 1 and out["failed"] == 2
        assert snapshot(store, "shop1")["orders"]["1003"][1] == "partially_refunded"
        rows = {
            r["object_id"]: r
            for r in client.get("/v1/connectors/shop1/inbox", headers=keys.h("read")).json()
        }
        assert rows["refund:555"]["status"] == "applied" and rows["refund:555"]["attempts"] == 2


def test_woocommerce_webhook(client: TestClient, keys: Keys, store: Store) -> None:
    from .fakes import woo_order

    r = client.post(
        "/v1/connectors",
        json={
            "kind": "woocommerce",
            "name": "woo",
            "api_base_url": "http://127.0.0.1:9",
            "webhook_secret": "wsec",
            "consumer_key": "ck",
            "consumer_secret": "cs",
        },
        headers=keys.h("admin"),
    )
    assert r.status_code == 201, r.text
    body = json.dumps(woo_order(1, T0 + timedelta(hours=1), refunds=("10.00",))).encode()
    headers = {
        "X-WC-Webhook-Topic": "order.updated",
        "X-WC-Webhook-Resource": "order",
        "X-WC-Webhook-Event": "updated",
    }
    assert (
        client.post(
            "/v1/connectors/woo/webhook",
            content=body,
            headers={**headers, "X-WC-Webhook-Signature": hmac_sha256_b64("bad", body)},
        ).status_code
        == 401
    )
    r = client.post(
        "/v1/connectors/woo/webhook",
        content=body,
        headers={**headers, "X-WC-Webhook-Signature": hmac_sha256_b64("wsec", body)},
    )
    assert r.json()["status"] == "pending", r.text  # acknowledged once stored
    assert delivered(client, r).json()["status"] == "applied", r.text
    o = snapshot(store, "woo")["orders"]["501"]
    assert o[1] == "partially_refunded" and o[4] == "EUR"


def test_paused_deliveries_wait_and_conflicts_fail_visibly(
    client: TestClient, keys: Keys, store: Store
) -> None:
    with FakeShopify(token="shpat_test") as fake:
        assert add(client, keys, fake.url).status_code == 201
        assert (
            client.post("/v1/connectors/shop1/pause", headers=keys.h("operator")).status_code == 200
        )
        r = post(client, "shop1", "orders/create", rest_order(1, T0 + timedelta(hours=1)))
        assert r.status_code == 200 and r.json()["status"] == "pending"  # stored, not applied
        assert snapshot(store, "shop1")["orders"] == {}
        assert (
            client.post("/v1/connectors/shop1/resume", headers=keys.h("operator")).status_code
            == 200
        )
        out = client.post("/v1/connectors/shop1/sync", headers=keys.h("operator")).json()
        assert out["inbox_applied"] == 1 and out["pulled"] == 0
        assert snapshot(store, "shop1")["orders"]["1001"][1] == "paid"
        # the platform says the same order now has another amount: refused, kept, visible
        changed = rest_order(1, T0 + timedelta(hours=2))
        changed["total_price_set"]["shop_money"]["amount"] = "120.00"
        r = post(client, "shop1", "orders/updated", changed)
        assert r.status_code == 200 and r.json()["status"] == "failed"
        (row,) = client.get("/v1/connectors/shop1/inbox?failed=true", headers=keys.h("read")).json()
        assert "amount" in row["reason"] and row["attempts"] == 1
        assert snapshot(store, "shop1")["orders"]["1001"][2] == 100

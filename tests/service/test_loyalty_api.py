"""The loyalty endpoints over HTTP (program: the shop example), on SQLite and PostgreSQL."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml

from huitouke.store.db import Store

from .conftest import Keys
from .test_orders_api import install_shop_program, order

EXAMPLES = Path(__file__).resolve().parents[2] / "src" / "huitouke" / "loyalty" / "examples"


@pytest.fixture
def shop(store: Store) -> Store:
    install_shop_program(store)
    return store


def issue(
    client: Any, keys: Keys, customer: str = "c1", key: str = "i1", template: str = "fixed20"
) -> str:
    r = client.post(
        "/v1/coupons",
        json={"template": template, "customer_id": customer, "idempotency_key": key},
        headers=keys.h("operator"),
    )
    assert r.status_code == 200, r.text
    return str(r.json()["code"])


def test_customer_loyalty_contract(client, keys: Keys, shop: Store) -> None:
    client.post("/v1/orders", json=order(), headers=keys.h("operator"))
    client.post(
        "/v1/customers/c1/topups",
        json={"amount": "200", "idempotency_key": "t1"},
        headers=keys.h("operator"),
    )
    v = client.get("/v1/customers/c1/loyalty", headers=keys.h("read")).json()
    assert set(v) >= {"points_balance", "tier", "stamp_cards", "stored_value", "coupons"}
    assert v["points_balance"] == "309" and v["tier"]["id"] == "v1"
    # 充200送200: 200 paid now, the 200 bonus as 20 a month for 10 months (first now)
    assert v["stored_value"] == {"paid": "200", "bonus": "20", "pending_bonus": "180"}
    assert all(isinstance(Decimal(c["value"]), Decimal) for c in v["coupons"] if c["value"])
    assert {c["status"] for c in v["coupons"]} == {"issued"}
    assert (
        client.get("/v1/customers/c1/loyalty/balances", headers=keys.h("read")).json()["points"]
        == "309"
    )
    history = client.get("/v1/customers/c1/loyalty/history?limit=5", headers=keys.h("read")).json()
    assert history and all({"asset", "delta", "before", "after"} <= set(e) for e in history)


def test_redeem_once_then_409_and_replay(client, keys: Keys, shop: Store) -> None:
    code = issue(client, keys)
    body = {"order_id": "o9", "customer_id": "c1", "order_amount": "100"}
    first = client.post(f"/v1/coupons/{code}/redeem", json=body, headers=keys.h("operator"))
    assert first.status_code == 200 and first.json()["discount"] == "20"
    replay = client.post(f"/v1/coupons/{code}/redeem", json=body, headers=keys.h("operator"))
    assert replay.json() == first.json() and replay.headers["Idempotent-Replayed"] == "true"
    other = client.post(
        f"/v1/coupons/{code}/redeem", json={**body, "order_id": "o10"}, headers=keys.h("operator")
    )
    assert other.status_code == 409 and other.json()["error"]["code"] == "coupon.already_redeemed"
    r = client.post("/v1/coupons/ZZZZ-ZZZZ-ZZZZ/redeem", json=body, headers=keys.h("operator"))
    assert r.status_code == 404 and r.json()["error"]["code"] == "coupon.not_found"
    assert (
        client.post(f"/v1/coupons/{code}/redeem", json=body, headers=keys.h("read")).status_code
        == 403
    )
    events = client.get(f"/v1/coupons/{code}", headers=keys.h("read")).json()["events"]
    assert [e["kind"] for e in events].count("redeemed") == 1


def test_gift_void_and_holder_checks(client, keys: Keys, shop: Store) -> None:
    code = issue(client, keys)
    g = client.post(
        f"/v1/coupons/{code}/gift",
        json={"from_customer": "c1", "to_customer": "c2"},
        headers=keys.h("operator"),
    )
    assert g.status_code == 200 and g.json()["holder"] == "c2"
    not_holder = client.post(
        f"/v1/coupons/{code}/redeem",
        json={"order_id": "o1", "customer_id": "c1"},
        headers=keys.h("operator"),
    )
    assert (not_holder.status_code, not_holder.json()["error"]["code"]) == (
        403,
        "coupon.not_holder",
    )
    v = client.post(f"/v1/coupons/{code}/void", json={"reason": "test"}, headers=keys.h("operator"))
    assert v.status_code == 200 and v.json()["status"] == "voided"
    assert client.get(f"/v1/coupons/{code}", headers=keys.h("read")).json()["status"] == "voided"


def test_points_membership_groupbuy_and_jobs(client, keys: Keys, shop: Store) -> None:
    client.post("/v1/orders", json=order(amount="2500"), headers=keys.h("operator"))
    r = client.post(
        "/v1/customers/c1/points/redeem",
        json={"reward": "coupon20", "idempotency_key": "p1"},
        headers=keys.h("operator"),
    )
    assert r.status_code == 200, r.text
    assert r.json()["coupon"]["template"] == "fixed20"
    bad = client.post(
        "/v1/customers/c1/points/adjust",
        json={"delta": "abc", "reason": "x", "idempotency_key": "a1"},
        headers=keys.h("operator"),
    )
    assert (
        bad.status_code == 422 and bad.json()["error"]["details"]["fields"][0]["field"] == "delta"
    )
    no_key = client.post(
        "/v1/customers/c1/topups", json={"amount": "100"}, headers=keys.h("operator")
    )
    assert (
        no_key.status_code == 422
        and no_key.json()["error"]["details"]["fields"][0]["field"] == "idempotency_key"
    )
    hdr = client.post(
        "/v1/customers/c1/topups",
        json={"amount": "100"},
        headers=keys.h("operator", **{"Idempotency-Key": "t9"}),
    )
    assert hdr.status_code == 200

    m = client.post(
        "/v1/customers/c1/memberships",
        json={"plan_id": "plus_month", "idempotency_key": "m1"},
        headers=keys.h("operator"),
    )
    assert m.status_code == 200 and m.json()["plan"] == "plus_month"
    q = client.post(
        "/v1/checkout/quote",
        json={"customer_id": "c1", "amount": "300"},
        headers=keys.h("operator"),
    ).json()
    assert q["member_discount"]["percent"] == "50" and q["total"] == "150"

    g = client.post(
        "/v1/group-buys",
        json={"deal_id": "tea3", "leader_id": "c1", "idempotency_key": "g1"},
        headers=keys.h("operator"),
    ).json()
    for c in ("c2", "c3"):
        j = client.post(
            f"/v1/group-buys/{g['group_id']}/join",
            json={"customer_id": c},
            headers=keys.h("operator"),
        )
        assert j.status_code == 200, j.text
    assert (
        client.get(f"/v1/group-buys/{g['group_id']}", headers=keys.h("read")).json()["status"]
        == "formed"
    )
    assert client.get("/v1/group-buys/NOPE", headers=keys.h("read")).status_code == 404

    soon = client.get(
        "/v1/points/expiring?within_days=60&customer_id=c1", headers=keys.h("read")
    ).json()
    assert {x["kind"] for x in soon} <= {"points", "stamps", "coupon"} and soon
    for job in (
        "expire",
        "release-bonus",
        "release-referral-rewards",
        "settle-group-buys",
        "review-tiers",
    ):
        assert (
            client.post(f"/v1/loyalty/jobs/{job}", json={}, headers=keys.h("operator")).status_code
            == 200
        )
    assert client.get("/v1/loyalty/verify", headers=keys.h("admin")).json() == {
        "ok": True,
        "discrepancies": [],
    }


def test_referral_over_http(client, keys: Keys, shop: Store) -> None:
    code = client.post("/v1/customers/c1/referral-code", headers=keys.h("operator")).json()["code"]
    r = client.post(
        "/v1/referrals",
        json={"referred_customer_id": "c2", "code": code},
        headers=keys.h("operator"),
    )
    assert r.status_code == 200, r.text
    self_ref = client.post(
        "/v1/referrals",
        json={"referred_customer_id": "c1", "code": code},
        headers=keys.h("operator"),
    )
    assert self_ref.status_code in (409, 422)


def test_program_get_put_and_validation(client, keys: Keys, store: Store) -> None:
    default = client.get("/v1/program", headers=keys.h("read")).json()
    assert default["currency"] == "CNY"
    bad = client.put(
        "/v1/program", json={"earn": {"points_per_unit": "lots"}}, headers=keys.h("admin")
    )
    assert bad.status_code == 422
    assert "earn.points_per_unit" in bad.json()["error"]["message"]
    assert (
        client.put("/v1/program", json={"name": "x"}, headers=keys.h("operator")).status_code == 403
    )
    ok = client.put(
        "/v1/program",
        json={
            "name": "咖啡",
            "coupon_templates": [{"id": "latte", "kind": "free_item", "value": 28, "sku": "latte"}],
        },
        headers=keys.h("admin"),
    )
    assert ok.status_code == 200 and ok.json()["version"] == 1
    assert client.get("/v1/program", headers=keys.h("read")).json()["name"] == "咖啡"
    assert issue(client, keys, template="latte")


def test_stamps_visit_and_grant_over_http(client, keys: Keys, store: Store) -> None:
    cafe = yaml.safe_load((EXAMPLES / "cafe.yaml").read_text(encoding="utf-8"))
    r = client.put("/v1/program", json=cafe, headers=keys.h("admin"))
    assert r.status_code == 200, r.text
    url = "/v1/customers/c1/stamps"
    body = {"card_id": "coffee", "visited_at": "2026-03-01T09:00:00+08:00"}
    first = client.post(url, json={**body, "idempotency_key": "v1"}, headers=keys.h("operator"))
    assert first.status_code == 200, first.text
    v = first.json()
    assert (v["added"], v["balance"], v["day"], v["ignored"]) == (1, 1, "2026-03-01", None)
    assert [c["template"] for c in v["coupons_issued"]] == ["americano"]
    # the Idempotency-Key header works too; a replay answers the same body
    again = client.post(url, json=body, headers=keys.h("operator", **{"Idempotency-Key": "v1"}))
    assert again.json() == v and again.headers["Idempotent-Replayed"] == "true"
    same_day = client.post(
        url,
        json={**body, "visited_at": "2026-03-01T20:00:00+08:00", "idempotency_key": "v2"},
        headers=keys.h("operator"),
    ).json()
    assert same_day["added"] == 0 and same_day["ignored"] == "already_stamped_today"
    grant = client.post(
        url,
        json={"card_id": "coffee", "stamps": 4, "reason": "paper card", "idempotency_key": "g1"},
        headers=keys.h("operator"),
    ).json()
    assert grant["balance"] == 5 and [c["template"] for c in grant["coupons_issued"]] == ["latte"]
    cards = client.get("/v1/customers/c1/loyalty", headers=keys.h("read")).json()["stamp_cards"]
    assert cards[0]["stamps"] == 5 and cards[0]["next_reward"]["template"] == "signature"
    # errors: a grant needs a reason; no key; unknown card; read scope; future visit
    bad = [
        ({"card_id": "coffee", "stamps": 2, "idempotency_key": "x"}, "operator", 422),
        ({"card_id": "coffee"}, "operator", 422),
        ({"card_id": "tea", "idempotency_key": "x"}, "operator", 404),
        ({"card_id": "coffee", "idempotency_key": "x"}, "read", 403),
        (
            {"card_id": "coffee", "stamps": 0, "reason": "r", "idempotency_key": "x"},
            "operator",
            422,
        ),
        (
            {
                "card_id": "coffee",
                "visited_at": "2199-01-01T00:00:00+00:00",
                "idempotency_key": "x",
            },
            "operator",
            422,
        ),
    ]
    for payload, scope, status in bad:
        r = client.post(url, json=payload, headers=keys.h(scope))
        assert r.status_code == status, (payload, r.text)
    assert client.get("/v1/loyalty/verify", headers=keys.h("admin")).json()["ok"] is True


def test_stored_value_given_back_over_http(client, keys: Keys, shop: Store) -> None:
    op = keys.h("operator")
    client.post("/v1/orders", json=order(amount="300"), headers=op)
    # shop.yaml: 充200送200, the first 20 of the bonus at once; paid first
    client.post(
        "/v1/customers/c1/topups", json={"amount": "200", "idempotency_key": "t"}, headers=op
    )
    s = client.post(
        "/v1/customers/c1/stored-value/spend", json={"amount": "210", "order_id": "o1"}, headers=op
    ).json()
    assert (s["from_paid"], s["from_bonus"]) == ("200", "10")
    url = "/v1/customers/c1/stored-value/reverse"
    r = client.post(
        url, json={"order_id": "o1", "amount": "21", "idempotency_key": "r1"}, headers=op
    )
    assert r.status_code == 200, r.text
    assert (r.json()["to_paid"], r.json()["to_bonus"]) == ("20", "1")
    replay = client.post(
        url,
        json={"order_id": "o1", "amount": "21"},
        headers=keys.h("operator", **{"Idempotency-Key": "r1"}),
    )
    assert replay.json() == r.json() and replay.headers["Idempotent-Replayed"] == "true"
    too_much = client.post(
        url, json={"order_id": "o1", "amount": "190", "idempotency_key": "r2"}, headers=op
    )
    assert too_much.status_code == 409
    assert too_much.json()["error"]["code"] == "stored_value.return_exceeds_spend"
    none = client.post(url, json={"order_id": "o2", "idempotency_key": "r3"}, headers=op)
    assert (
        none.status_code == 404 and none.json()["error"]["code"] == "stored_value.spend_not_found"
    )
    assert (
        client.post(
            url, json={"order_id": "o1", "idempotency_key": "r4"}, headers=keys.h("read")
        ).status_code
        == 403
    )
    # the order's refund gives back its share: half of 210 = 105, of which 21 came back
    half = client.post(
        "/v1/orders",
        json=order(amount="300", status="partially_refunded", refunded_amount="150"),
        headers=op,
    ).json()
    assert half["loyalty"]["stored_value_returned"] == {"amount": "84", "paid": "80", "bonus": "4"}
    full = client.post("/v1/orders", json=order(amount="300", status="refunded"), headers=op).json()
    assert full["loyalty"]["stored_value_returned"]["amount"] == "105"
    view = client.get("/v1/customers/c1/loyalty", headers=keys.h("read")).json()
    assert view["stored_value"] == {"paid": "200", "bonus": "20", "pending_bonus": "180"}
    assert client.get("/v1/loyalty/verify", headers=keys.h("admin")).json()["ok"] is True

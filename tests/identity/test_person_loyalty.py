"""Loyalty per person: after a merge the person's points, stored value, tier and coupons are
seen as one (REST and CLI) and points are redeemable across the merged accounts; every ledger
entry stays with its account, and an unmerge gives each account its own standing back
(SQLite and PostgreSQL, through ``create_app()`` and the CLI)."""

from __future__ import annotations

import contextlib
import io
import json
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import select

from huitouke.cli.main import main
from huitouke.core.orders import order_ref
from huitouke.loyalty import tables as lt
from huitouke.loyalty.ledger import verify_ledger
from huitouke.service.apikeys import create_api_key
from huitouke.settings import Settings
from huitouke.store.db import Store

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

SHOP = (
    Path(__file__).resolve().parents[2] / "src" / "huitouke" / "loyalty" / "examples" / "shop.yaml"
)


@pytest.fixture
def api(store: Store) -> Iterator[tuple[TestClient, dict[str, str]]]:
    from huitouke.service import create_app

    with store.begin() as conn:
        key = create_api_key(conn, scope="admin", name="t", now=datetime.now(UTC))[1]
    settings = Settings(database_url=store.url, lang="en", timezone="Asia/Shanghai")
    with TestClient(create_app(settings, store), raise_server_exceptions=False) as c:
        yield c, {"Authorization": f"Bearer {key}"}


def _cli(*args: str) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        try:
            main(list(args))
        except SystemExit as exc:
            assert not exc.code, out.getvalue()
    return out.getvalue()


def test_a_merged_person_is_one_standing_and_redeems_across_accounts(
    store: Store, api: tuple[TestClient, dict[str, str]]
) -> None:
    client, h = api
    doc = json.loads(json.dumps(yaml.safe_load(SHOP.read_text("utf-8")), default=str))
    assert client.put("/v1/program", json=doc, headers=h).status_code == 200
    now = datetime.now(UTC).isoformat()
    for source, oid, cid, amount in (
        ("taobao", "t1", "tb_1", "1200"),  # 1,210 points (1 a yuan + 10 an order)
        ("youzan", "y1", "yz_1", "1000"),  # 1,010 points
    ):
        r = client.post(
            "/v1/orders",
            json={"source": source, "order_id": oid, "customer_id": cid, "ordered_at": now,
                  "amount": amount},
            headers=h,
        )  # fmt: skip
        assert r.status_code in (200, 201), r.text
    alone = client.get("/v1/customers/tb_1/loyalty/person", headers=h).json()
    assert alone["accounts"] == ["tb_1"] and alone["points_balance"] == "1210"
    assert alone["tier"]["id"] == "v1" and alone["tier"]["combined_metric"] == "1200"

    merged = client.post(
        "/v1/identity/merge",
        json={"customer_ids": ["tb_1", "yz_1"], "reason": "same phone"},
        headers=h,
    )
    assert merged.status_code == 200, merged.text
    view = client.get("/v1/customers/yz_1/loyalty/person", headers=h).json()
    assert view["person_id"] == "tb_1" and view["accounts"] == ["tb_1", "yz_1"]
    assert view["points_balance"] == "2220"
    # neither account reaches V2 (2,000 spend) alone; together they do
    assert view["tier"]["id"] == "v2" and view["tier"]["from"] == "combined"
    assert view["tier"]["account_tiers"] == {"tb_1": "v1", "yz_1": "v1"}
    assert view["tier"]["combined_metric"] == "2200"
    assert {c["holder"] for c in view["coupons"]} == {"tb_1", "yz_1"}
    assert view["per_account"]["yz_1"]["points_balance"] == "1010"  # per-source view kept

    # 2,000 points from the Youzan account, which holds 1,010 of its own: earliest-expiring
    # first across the person (same month: the older lot, Taobao's, first)
    body = {"points": "2000", "idempotency_key": "r-1"}
    r = client.post("/v1/customers/yz_1/points/redeem", json=body, headers=h)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["taken_from"] == {"tb_1": "1210", "yz_1": "790"}
    assert out["points_balance"] == "220" and out["account_points_balance"] == "220"
    again = client.post("/v1/customers/yz_1/points/redeem", json=body, headers=h)
    assert again.json() == out and again.headers.get("Idempotent-Replayed") == "true"
    too_much = client.post(
        "/v1/customers/tb_1/points/redeem", json={"points": "300", "idempotency_key": "r-2"},
        headers=h,
    )  # fmt: skip
    assert too_much.status_code == 409
    assert too_much.json()["error"]["code"] == "points.insufficient"
    assert too_much.json()["error"]["details"]["person_id"] == "tb_1"

    # every entry stayed on the account whose lot it took: nothing moved between accounts
    with store.connect() as conn:
        rows = conn.execute(
            select(lt.accounts.c.customer_id, lt.entries.c.delta)
            .join(lt.accounts, lt.accounts.c.account_id == lt.entries.c.account_id)
            .where(lt.entries.c.kind == "redeem")
        ).all()
        assert sorted((c, int(d)) for c, d in rows) == [
            ("tb_1", -1210),
            ("yz_1", -790),
        ]
        assert verify_ledger(conn) == []

    # a coupon of the Taobao account is redeemed on a Youzan order of the same person
    def fixed20(key: str) -> str:
        r = client.post("/v1/coupons", json={"template": "fixed20", "customer_id": "tb_1",
                                             "idempotency_key": key}, headers=h)  # fmt: skip
        assert r.status_code in (200, 201), r.text
        return str(r.json()["code"])

    code = fixed20("c-1")
    red = client.post(
        f"/v1/coupons/{code}/redeem",
        json={"order_id": "y2", "source": "youzan", "customer_id": "yz_1", "order_amount": "500"},
        headers=h,
    )
    assert red.status_code == 200, red.text
    assert red.json()["holder"] == "tb_1" and red.json()["customer_id"] == "yz_1"
    other = fixed20("c-2")

    # the CLI shows the same person view
    shown = json.loads(_cli("loyalty", "customer", "show", "tb_1", "--person",
                            "--database-url", store.url))  # fmt: skip
    assert shown["points_balance"] == "220" and shown["tier"]["id"] == "v2"

    # taken apart: each account has what its own ledger says, the tier its own metric's
    apart = client.post(
        "/v1/identity/unmerge", json={"customer_id": "yz_1", "reason": "two people"}, headers=h
    )
    assert apart.status_code == 200, apart.text
    yz = client.get("/v1/customers/yz_1/loyalty/person", headers=h).json()
    assert yz["accounts"] == ["yz_1"] and yz["points_balance"] == "220"
    assert yz["tier"]["id"] == "v1" and yz["tier"]["combined_metric"] == "1000"
    tb = client.get("/v1/customers/tb_1/loyalty", headers=h).json()
    assert tb["points_balance"] == "0"
    refused = client.post(
        "/v1/customers/yz_1/points/redeem", json={"points": "300", "idempotency_key": "r-3"},
        headers=h,
    )  # fmt: skip
    assert refused.status_code == 409 and "person_id" not in refused.json()["error"]["details"]
    apart_red = client.post(
        f"/v1/coupons/{other}/redeem",
        json={"order_id": "y3", "source": "youzan", "customer_id": "yz_1", "order_amount": "500"},
        headers=h,
    )
    assert apart_red.status_code == 403
    assert apart_red.json()["error"]["code"] == "coupon.not_holder"


def test_a_merged_persons_tier_benefits_and_stored_value_at_order_time(
    store: Store, api: tuple[TestClient, dict[str, str]]
) -> None:
    client, h = api
    doc = json.loads(json.dumps(yaml.safe_load(SHOP.read_text("utf-8")), default=str))
    assert client.put("/v1/program", json=doc, headers=h).status_code == 200
    now = datetime.now(UTC).isoformat()

    def order(source: str, oid: str, cid: str, amount: str, **more: str) -> dict[str, object]:
        r = client.post(
            "/v1/orders",
            json={"source": source, "order_id": oid, "customer_id": cid, "ordered_at": now,
                  "amount": amount, **more},
            headers=h,
        )  # fmt: skip
        assert r.status_code in (200, 201), r.text
        return dict(r.json()["loyalty"])

    def quote(cid: str) -> dict[str, object]:
        r = client.post("/v1/checkout/quote", json={"customer_id": cid, "amount": "100"}, headers=h)
        assert r.status_code == 200, r.text
        return dict(r.json())

    order("taobao", "t1", "tb_1", "1200")
    order("youzan", "y1", "yz_1", "1000")
    order("default", "d1", "solo", "1000")  # an account never merged: V1, no benefits
    alone = order("youzan", "y2", "yz_1", "100")
    base_points = alone["points_earned"]
    base_quote = quote("yz_1")
    assert (
        client.post(
            "/v1/identity/merge",
            json={"customer_ids": ["tb_1", "yz_1"], "reason": "same phone"},
            headers=h,
        ).status_code
        == 200
    )
    # the person is V2 (2,300 spend together): 1.5× points and 3% off at order time for
    # either account, though each account's own tier is still V1
    merged = order("youzan", "y3", "yz_1", "100")
    # 1 point a yuan and 10 an order; V2 multiplies the amount's points by 1.5
    assert (base_points, merged["points_earned"]) == ("110", "160")
    v2 = {"source": "tier", "percent": "3", "amount": "3"}
    assert quote("yz_1")["member_discount"] == quote("tb_1")["member_discount"] == v2
    assert order("default", "d2", "solo", "100")["points_earned"] == base_points
    with store.connect() as conn:
        own = dict(conn.execute(select(lt.members.c.customer_id, lt.members.c.tier)).all())
    assert own["yz_1"] == own["tb_1"] == "v1"  # nothing written to the accounts' tiers

    # stored value: 200 on the Taobao account, 50 on the Youzan one; the Youzan account
    # pays 230 with the person's — its own first, the rest from Taobao's
    for cid, amount, key in (("tb_1", "200", "top-1"), ("yz_1", "50", "top-2")):
        r = client.post(
            f"/v1/customers/{cid}/topups",
            json={"amount": amount, "idempotency_key": key},
            headers=h,
        )
        assert r.status_code in (200, 201), r.text
    spend = {"amount": "230", "order_id": "y4", "source": "youzan", "idempotency_key": "sv-1"}
    r = client.post("/v1/customers/yz_1/stored-value/spend", json=spend, headers=h)
    assert r.status_code == 200, r.text
    paid = r.json()
    assert paid["person_id"] == "tb_1"
    assert paid["taken_from"] == {
        "tb_1": {"paid": "180", "bonus": "0"},
        "yz_1": {"paid": "50", "bonus": "0"},
    }
    # (充200送200 released its first installment of bonus at once: 20 on tb_1)
    assert paid["from_paid"] == "230" and paid["person_balances"] == {"paid": "20", "bonus": "20"}
    again = client.post("/v1/customers/yz_1/stored-value/spend", json=spend, headers=h)
    assert again.json() == paid
    over = client.post(
        "/v1/customers/tb_1/stored-value/spend",
        json={"amount": "41", "order_id": "t9", "source": "taobao", "idempotency_key": "sv-2"},
        headers=h,
    )
    assert over.status_code == 409
    assert over.json()["error"]["code"] == "stored_value.insufficient"
    assert over.json()["error"]["details"]["person_id"] == "tb_1"

    def sv(cid: str) -> str:
        got = client.get(f"/v1/customers/{cid}/loyalty", headers=h).json()
        return str(got["stored_value"]["paid"])

    assert (sv("tb_1"), sv("yz_1")) == ("20", "0")
    # the order is refunded in full: each account gets back what it paid
    order("youzan", "y4", "yz_1", "230")
    refunded = order("youzan", "y4", "yz_1", "230", status="refunded")
    back = refunded["stored_value_returned"]
    assert back["amount"] == "230"
    assert back["accounts"] == {
        "yz_1": {"amount": "50", "paid": "50", "bonus": "0"},
        "tb_1": {"amount": "180", "paid": "180", "bonus": "0"},
    }
    assert (sv("tb_1"), sv("yz_1")) == ("200", "50")

    # paid across again; a give-back while merged returns the payer's share first, then the
    # other account's; taken apart, each account's entries stayed with it, so each gives
    # back what is left of its own by its own id
    spend5 = {**spend, "order_id": "y5", "idempotency_key": "sv-3"}
    r = client.post("/v1/customers/yz_1/stored-value/spend", json=spend5, headers=h)
    assert r.status_code == 200, r.text

    def reverse(cid: str, key: str, amount: str | None = None) -> Any:
        body = {"order_id": "y5", "source": "youzan", "idempotency_key": key}
        if amount is not None:
            body["amount"] = amount
        return client.post(f"/v1/customers/{cid}/stored-value/reverse", json=body, headers=h)

    rev = reverse("yz_1", "rv-1", "70")
    assert rev.status_code == 200, rev.text
    assert (rev.json()["amount"], rev.json()["spent"], rev.json()["returned"]) == (
        "70",
        "230",
        "70",
    )
    assert rev.json()["accounts"] == {
        "yz_1": {"amount": "50", "paid": "50", "bonus": "0"},
        "tb_1": {"amount": "20", "paid": "20", "bonus": "0"},
    }
    assert (
        client.post(
            "/v1/identity/unmerge", json={"customer_id": "yz_1", "reason": "two people"}, headers=h
        ).status_code
        == 200
    )
    assert quote("yz_1")["member_discount"] == base_quote["member_discount"]
    assert base_quote["member_discount"]["percent"] == "0"
    assert order("youzan", "y6", "yz_1", "100")["points_earned"] == base_points
    nothing_left = reverse("yz_1", "rv-2")
    assert nothing_left.status_code == 409, nothing_left.text
    assert nothing_left.json()["error"]["code"] == "stored_value.return_exceeds_spend"
    rev = reverse("tb_1", "rv-3")
    assert rev.status_code == 200, rev.text
    assert rev.json()["amount"] == "160" and "accounts" not in rev.json()
    assert (sv("tb_1"), sv("yz_1")) == ("200", "50")
    with store.connect() as conn:
        rows = conn.execute(
            select(lt.accounts.c.customer_id, lt.entries.c.kind, lt.entries.c.delta)
            .join(lt.accounts, lt.accounts.c.account_id == lt.entries.c.account_id)
            .where(lt.entries.c.reference == f"order:{order_ref('youzan', 'y5')}")
        ).all()
        assert sorted((c, k, int(d)) for c, k, d in rows) == [
            ("tb_1", "spend", -180),
            ("tb_1", "spend_reversal", 20),
            ("tb_1", "spend_reversal", 160),
            ("yz_1", "spend", -50),
            ("yz_1", "spend_reversal", 50),
        ]
        assert verify_ledger(conn) == []


def test_a_paid_membership_on_one_account_serves_the_whole_person(
    store: Store, api: tuple[TestClient, dict[str, str]]
) -> None:
    """PLUS bought on the Taobao account: once merged, an order on the Youzan account earns
    PLUS's doubled points and its quote gets PLUS's 10% — in the order batch and in the
    checkout quote alike; unmerged, the Youzan account is on its own again."""
    client, h = api
    doc = json.loads(json.dumps(yaml.safe_load(SHOP.read_text("utf-8")), default=str))
    assert client.put("/v1/program", json=doc, headers=h).status_code == 200

    def order(oid: str, cid: str, amount: str) -> dict[str, object]:
        now = datetime.now(UTC).isoformat()  # placed now: after the membership was bought
        r = client.post(
            "/v1/orders",
            json={"source": "youzan" if cid.startswith("yz") else "taobao", "order_id": oid,
                  "customer_id": cid, "ordered_at": now, "amount": amount},
            headers=h,
        )  # fmt: skip
        assert r.status_code in (200, 201), r.text
        return dict(r.json()["loyalty"])

    def discount(cid: str) -> object:
        r = client.post("/v1/checkout/quote", json={"customer_id": cid, "amount": "100"}, headers=h)
        assert r.status_code == 200, r.text
        return r.json()["member_discount"]

    order("t1", "tb_2", "100")
    order("y1", "yz_2", "100")
    r = client.post(
        "/v1/customers/tb_2/memberships",
        json={"plan_id": "plus_year", "idempotency_key": "plus-1"},
        headers=h,
    )
    assert r.status_code in (200, 201), r.text
    plus = {"source": "membership", "percent": "10", "amount": "10"}
    assert discount("tb_2") == plus
    alone_discount = discount("yz_2")
    assert alone_discount != plus
    alone = order("y2", "yz_2", "100")["points_earned"]
    assert alone == "110"  # 1 a yuan + 10 an order, no multiplier
    merged = client.post(
        "/v1/identity/merge",
        json={"customer_ids": ["tb_2", "yz_2"], "reason": "same phone"},
        headers=h,
    )
    assert merged.status_code == 200, merged.text
    # the person holds PLUS: 2× the amount's points on the Youzan account's order, 10% off
    assert order("y3", "yz_2", "100")["points_earned"] == "210"
    assert discount("yz_2") == plus
    with store.connect() as conn:  # the membership stays with the account that bought it
        held = conn.execute(select(lt.memberships.c.customer_id)).scalars().all()
    assert held == ["tb_2"]
    # an account that never ordered (no member row: say a WeCom contact) merged into the
    # person: its checkout quote gets the person's PLUS too
    from huitouke.store.tables import customers

    at = datetime.now(UTC)
    with store.begin() as conn:
        conn.execute(
            customers.insert().values(
                customer_id="wc_2", tags=[], attributes={}, consent={}, created_at=at,
                updated_at=at,
            )
        )  # fmt: skip
    assert discount("wc_2") != plus
    joined = client.post(
        "/v1/identity/merge",
        json={"customer_ids": ["tb_2", "wc_2"], "reason": "same WeChat"},
        headers=h,
    )
    assert joined.status_code == 200, joined.text
    assert discount("wc_2") == plus
    assert (
        client.post(
            "/v1/identity/unmerge", json={"customer_id": "yz_2", "reason": "two people"}, headers=h
        ).status_code
        == 200
    )
    assert order("y4", "yz_2", "100")["points_earned"] == alone
    assert discount("yz_2") == alone_discount
    with store.connect() as conn:
        assert verify_ledger(conn) == []

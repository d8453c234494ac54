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

import pytest
import yaml
from sqlalchemy import select

from huitouke.cli.main import main
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

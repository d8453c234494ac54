"""Buyer contacts from the connectors reach the customer's profile (SQLite and PostgreSQL):
what each platform gives in clear — Shopify's customer e-mail, phone and name (pulled and by
webhook), WooCommerce's billing contacts, Youzan's phone when it is not encrypted — fills
``customers`` through the same use case as ``POST /v1/orders`` ``buyer``, with the hashed
matching keys beside it; encrypted or masked values (Youzan, Douyin) never do, and a later
order without a contact erases nothing."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select

from huitouke.app import connectors as uc
from huitouke.connectors.model import MappedOrder, in_clear
from huitouke.identity.tables import identity_keys
from huitouke.settings import Settings
from huitouke.store.db import Store
from huitouke.store.tables import customers

from .conftest import Keys
from .douyin_fake import APP_KEY, APP_SECRET, FakeDouyin, douyin_order
from .fakes import T0, FakeShopify, FakeWoo, shopify_order, woo_order
from .youzan_fake import CLIENT_ID, CLIENT_SECRET, FakeYouzan, youzan_trade

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

pytestmark = pytest.mark.timeout(120)


class Clock:
    def __init__(self, now: Any) -> None:
        self.now = now

    def __call__(self) -> Any:
        return self.now


def profile(store: Store) -> dict[str, tuple[str | None, str | None, str | None]]:
    """Every customer's (name, phone, email)."""
    c = customers.c
    with store.connect() as conn:
        rows = conn.execute(select(c.customer_id, c.name, c.phone, c.email)).all()
    return {r.customer_id: (r.name, r.phone, r.email) for r in rows}


def key_kinds(store: Store, customer_id: str) -> set[str]:
    k = identity_keys.c
    with store.connect() as conn:
        return set(conn.execute(select(k.kind).where(k.customer_id == customer_id)).scalars().all())


def test_in_clear_drops_masked_and_encrypted_values() -> None:
    assert in_clear(" 13800138000 ") == "13800138000"
    assert in_clear("王伟") == "王伟"
    for hidden in ("138****8000", "王**", "$eTS8t8hAECdXKgNtV6DIfw==$1$", "$$U/qaYiUFjC$1$$",
                   "##5e4wPfKQCWbYKOTVtch6H##", "~AgAAAAAB2h0XtWY~", "", "  ", None):  # fmt: skip
        assert in_clear(hidden) is None
    m = MappedOrder("1", "c1", T0, T0, Decimal(1), "CNY", "paid", Decimal(0),
                    phone="138****8000", email="a@example.com", name="王**")  # fmt: skip
    assert m.event("s")["buyer"] == {"email": "a@example.com"}


def test_shopify_pull_fills_the_profile_and_keeps_what_a_later_order_lacks(
    store: Store, settings: Settings
) -> None:
    with FakeShopify() as fake:
        fake.put(shopify_order(0, T0, phone="+1 212 555 0100"))
        fake.put(shopify_order(1, T0 + timedelta(minutes=1), name=("伟", "王")))
        fake.put(shopify_order(2, T0 + timedelta(minutes=2), customer=None, email="G@Example.com",
                               name=None))  # fmt: skip
        uc.add_connector(
            store,
            settings,
            uc.ConnectorIn(kind="shopify", name="shop1", api_base_url=fake.url,
                           webhook_secret="whsec", access_token=fake.token),
        )  # fmt: skip
        assert uc.sync(store, settings, "shop1").pulled == 3
        got = profile(store)
        assert got["7000"] == ("Ana Lima", "+1 212 555 0100", "buyer@example.com")
        assert got["7001"] == ("王伟", None, "buyer@example.com")
        assert got["email:g@example.com"] == (None, None, "G@Example.com")
        assert key_kinds(store, "7000") == {"email", "phone"}
        # the same buyer later without phone or name: nothing erased; a new e-mail replaces
        fake.put(shopify_order(50, T0 + timedelta(hours=1), email="new@example.com", name=None))
        uc.sync(store, settings, "shop1")
        assert profile(store)["7000"] == ("Ana Lima", "+1 212 555 0100", "new@example.com")


def test_woocommerce_pull_fills_the_profile(store: Store, settings: Settings) -> None:
    with FakeWoo() as fake:
        fake.put(woo_order(0, T0))
        fake.put(woo_order(1, T0 + timedelta(seconds=10), customer_id=42, email="k@example.de",
                           name=("Kim", "Schulz"), phone="+49 40 7654321"))  # fmt: skip
        uc.add_connector(
            store,
            settings,
            uc.ConnectorIn(kind="woocommerce", name="woo", api_base_url=fake.url,
                           webhook_secret="wsec", consumer_key="ck_test",
                           consumer_secret="cs_test"),
        )  # fmt: skip
        uc.sync(store, settings, "woo")
    got = profile(store)
    assert got["email:guest@example.com"] == ("Jonas Weber", "+49 30 1234567", "guest@example.com")
    assert got["42"] == ("Kim Schulz", "+49 40 7654321", "k@example.de")


def test_youzan_phone_in_clear_only_and_douyin_nothing(store: Store, settings: Settings) -> None:
    settings = settings.model_copy(update={"currency": "CNY"})
    now = T0 + timedelta(days=3)
    with FakeYouzan() as fake:
        fake.put(youzan_trade(0, T0 + timedelta(hours=1), phone="13800138000"))
        fake.put(youzan_trade(1, T0 + timedelta(hours=2)))  # the phone encrypted
        uc.add_connector(
            store,
            settings,
            uc.ConnectorIn(kind="youzan", name="yz", api_base_url=fake.url,
                           webhook_secret=CLIENT_SECRET, access_token=fake.token,
                           consumer_key=CLIENT_ID),
        )  # fmt: skip
        assert uc.sync(store, settings, "yz", clock=Clock(now)).pulled == 2
    with FakeDouyin() as dy:
        dy.put(douyin_order(0, T0 + timedelta(hours=1)))
        uc.add_connector(
            store,
            settings,
            uc.ConnectorIn(kind="douyin", name="dy", api_base_url=dy.url,
                           webhook_secret=APP_SECRET, access_token=dy.token,
                           consumer_key=APP_KEY),
        )  # fmt: skip
        assert uc.sync(store, settings, "dy", clock=Clock(now)).pulled == 1
    got = profile(store)
    assert got["lDWyZBas80763614035200"] == (None, "13800138000", None)
    assert got["lDWyZBas80763614035201"] == (None, None, None)  # "$…$1$" is no phone
    assert key_kinds(store, "lDWyZBas80763614035201") == set()
    assert got["1@#dyOpenIdAbCdEf0"] == (None, None, None)  # encrypt_post_tel stays out
    for name, phone, email in got.values():
        for v in (name, phone, email):
            assert v is None or ("$" not in v and "#" not in v and "*" not in v)


@pytest.fixture
def client(settings: Settings, store: Store) -> Iterator[TestClient]:
    from huitouke.service import create_app

    with TestClient(create_app(settings, store), raise_server_exceptions=False) as c:
        yield c


def test_shopify_webhook_fills_the_profile(client: TestClient, keys: Keys, store: Store) -> None:
    from .test_webhooks import add, post, rest_order

    assert add(client, keys).status_code == 201
    order = rest_order(3, T0 + timedelta(minutes=5), email="wang@example.com")
    assert post(client, "shop1", "orders/create", order).json()["status"] == "applied"
    assert profile(store)["7003"] == ("王伟", None, "wang@example.com")


def test_post_orders_buyer_name(client: TestClient, keys: Keys, store: Store) -> None:
    order = {"order_id": "o1", "customer_id": "c1", "ordered_at": "2026-11-01T10:00:00+08:00",
             "amount": "10"}  # fmt: skip
    r = client.post("/v1/orders", json={**order, "buyer": {"name": "李娜", "phone": "13800138000"}},
                    headers=keys.h("operator"))  # fmt: skip
    assert r.status_code in (200, 201), r.text
    assert profile(store)["c1"] == ("李娜", "13800138000", None)
    bad = client.post("/v1/orders", json={**order, "order_id": "o2", "buyer": {"name": "x" * 201}},
                      headers=keys.h("operator"))  # fmt: skip
    assert bad.status_code == 422

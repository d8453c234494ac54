"""The platforms' order shapes mapped to order events (pure), and the invariants: refunds
never exceed the order; a replayed stream of deliveries changes nothing."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from huitouke.connectors import shopify, woocommerce
from huitouke.connectors.http import retry_after
from huitouke.connectors.model import Skip, Unmappable, refund_status
from huitouke.connectors.pull import throttle_wait

from .fakes import T0, shopify_order, woo_order


def wire(order: dict) -> dict:
    """As the connector reads it off the wire: JSON numbers as decimals."""
    return json.loads(json.dumps(order), parse_float=Decimal)


money = st.decimals(min_value=0, max_value=10_000, places=2, allow_nan=False, allow_infinity=False)


def test_shopify_graphql_node() -> None:
    m = shopify.from_graphql(shopify_order(3, T0 + timedelta(hours=1), refunded="30.00"))
    assert (m.order_id, m.customer_id, m.currency) == ("1003", "7003", "USD")
    assert (m.status, m.amount, m.refunded_amount) == (
        "partially_refunded",
        Decimal("100.00"),
        Decimal("30.00"),
    )
    # processedAt carried an offset of -05:00: the same instant
    assert m.ordered_at == T0 + timedelta(minutes=3)
    assert m.lines == [
        {"sku": "SKU-3", "product_name": "Tea 茶", "quantity": 2, "unit_price": Decimal("50.00")}
    ]
    guest = shopify.from_graphql(shopify_order(4, T0, customer=None, email="A@Example.com"))
    assert guest.customer_id == "email:a@example.com"
    with pytest.raises(Unmappable, match="no customer"):
        shopify.from_graphql(shopify_order(4, T0, customer=None, email=None))
    with pytest.raises(Skip, match="not paid"):
        shopify.from_graphql(shopify_order(5, T0, financial="PENDING"))
    assert (
        shopify.from_graphql(shopify_order(5, T0, financial="VOIDED", cancelled=True)).status
        == "cancelled"
    )
    node = shopify_order(6, T0)
    node["updatedAt"] = "2026-11-01T00:00:00"  # no offset: refused, never read in a local zone
    with pytest.raises(Unmappable, match="time zone"):
        shopify.from_graphql(node)


def test_woocommerce_order() -> None:
    m = woocommerce.from_rest(wire(woo_order(1, T0, refunds=("10.00", "5.50"), customer_id=42)))
    assert (m.customer_id, m.status, m.refunded_amount) == (
        "42",
        "partially_refunded",
        Decimal("15.50"),
    )
    assert m.lines[0]["sku"] == "product-33" and m.ordered_at.tzinfo is not None
    assert woocommerce.from_rest(wire(woo_order(2, T0, status="cancelled"))).status == "cancelled"
    with pytest.raises(Skip):
        woocommerce.from_rest(wire(woo_order(3, T0, status="on-hold")))
    with pytest.raises(Unmappable, match="not a decimal"):
        woocommerce.from_rest(woo_order(4, T0))  # a float price never becomes money


@given(amount=money, refunds=st.lists(money, max_size=5), cancelled=st.booleans())
def test_refunds_never_exceed_the_order(
    amount: Decimal, refunds: list[Decimal], cancelled: bool
) -> None:
    status, refunded = refund_status(cancelled, amount, sum(refunds, Decimal(0)))
    assert Decimal(0) <= refunded <= amount
    node = shopify_order(
        1, T0, amount=str(amount), refunded=str(sum(refunds, Decimal(0))), cancelled=cancelled
    )
    m = shopify.from_graphql(node)
    assert 0 <= m.refunded_amount <= m.amount
    w = woocommerce.from_rest(
        wire(woo_order(1, T0, total=str(amount), refunds=tuple(str(r) for r in refunds)))
    )
    assert 0 <= w.refunded_amount <= w.amount
    if not cancelled and amount > 0 and refunded >= amount:
        assert status == "refunded"


def test_throttle_and_retry_after() -> None:
    cost = {
        "requestedQueryCost": 52,
        "throttleStatus": {"maximumAvailable": 1000, "currentlyAvailable": 2, "restoreRate": 50},
    }
    assert throttle_wait(cost) == pytest.approx(1.0)
    assert (
        throttle_wait(
            {**cost, "throttleStatus": {**cost["throttleStatus"], "currentlyAvailable": 900}}
        )
        == 0
    )
    assert retry_after("2") == 2.0 and retry_after(None) is None and retry_after("soon") is None
    assert retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0


@hsettings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_replayed_stream_changes_nothing(
    tmp_path_factory: pytest.TempPathFactory, data: st.DataObject
) -> None:
    """A stream of deliveries (states of a few orders, in any order, with repeats) applied,
    then the whole stream replayed in another order: nothing changes."""
    from huitouke.app import connectors as uc
    from huitouke.core.secretbox import new_key
    from huitouke.settings import Settings
    from huitouke.store.db import Store

    from .conftest import program_loyalty, snapshot

    path = tmp_path_factory.mktemp("replay") / "s.db"
    settings = Settings(
        database_url=f"sqlite:///{path}", encryption_keys=new_key(), timezone="Asia/Shanghai"
    )
    store = Store(settings.database_url)
    store.migrate()
    try:
        uc.add_connector(
            store,
            settings,
            uc.ConnectorIn(
                kind="woocommerce",
                name="woo",
                api_base_url="http://127.0.0.1:9",
                webhook_secret="s",
                consumer_key="k",
                consumer_secret="c",
            ),
        )
        states = st.tuples(
            st.integers(0, 2),
            st.integers(0, 5),
            st.sampled_from(["processing", "completed", "refunded", "cancelled", "pending"]),
            st.lists(st.sampled_from(["5.00", "20.00", "90.00"]), max_size=2),
        )
        stream = data.draw(st.lists(states, min_size=1, max_size=12))
        from huitouke.connectors.signatures import hmac_sha256_b64

        def deliver(items: list) -> None:
            for i, minute, status, refunds in items:
                body = json.dumps(
                    woo_order(
                        i, T0 + timedelta(minutes=minute), status=status, refunds=tuple(refunds)
                    )
                ).encode()
                headers = {
                    "x-wc-webhook-topic": "order.updated",
                    "x-wc-webhook-signature": hmac_sha256_b64("s", body),
                }
                receipt = uc.receive_webhook(store, settings, "woo", headers, body)
                uc.apply_inbox(
                    store, settings, "woo", ids=[receipt.inbox_id], loyalty=program_loyalty("EUR")
                )

        deliver(stream)
        once = snapshot(store, "woo")
        inbox_once = len(uc.inbox(store, "woo", limit=1000))
        deliver(data.draw(st.permutations(stream)))
        assert snapshot(store, "woo") == once
        assert len(uc.inbox(store, "woo", limit=1000)) == inbox_once
        for o in once["orders"].values():
            assert 0 <= o[3] <= o[2]
    finally:
        store.dispose()

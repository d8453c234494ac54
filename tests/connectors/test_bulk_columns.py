"""The bulk-operation backfill read by columns stores what the per-order page pull stores:
the same orders, lines, customers, matching keys, inbox rows and points — for a few
thousand generated orders with refunds, cancellations, unpaid and guest orders, and orders
the columns leave to the per-order mapping; and a backfill killed midway resumes with no
gap and no double."""

from __future__ import annotations

import json
import random
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select

from huitouke.app import connectors as uc
from huitouke.connectors import shopify_bulk
from huitouke.connectors.model import Unmappable
from huitouke.identity.tables import identity_keys
from huitouke.settings import Settings
from huitouke.store.db import Store
from huitouke.store.tables import customers, order_lines, orders

from .conftest import program_loyalty, snapshot
from .fakes import T0, FakeShopify, shopify_order

pytestmark = pytest.mark.timeout(300)


_NAMES: list[tuple[str, str] | None] = [
    ("Ana", "Lima"),
    ("伟", "王"),
    None,
    ("**", "王"),
    ("Jo", ""),
]


def generated_orders(n: int, seed: int = 12) -> list[dict[str, Any]]:
    """``n`` Shopify orders of every kind the mapping tells apart. A customer's contacts are
    the same on each of their orders: a bulk file is in no update order, so where they
    differ, which one a customer keeps depends on how the file is cut into units of work
    (as it did order by order) — not what is compared here."""
    rnd = random.Random(seed)
    out = []
    for i in range(n):
        kind = rnd.random()
        kw: dict[str, Any] = {}
        if kind < 0.10:
            kw["refunded"] = f"{rnd.randint(1, 99)}.{rnd.randint(0, 99):02d}"
            kw["financial"] = "PARTIALLY_REFUNDED"
        elif kind < 0.14:
            kw["refunded"] = "100.00"
            kw["financial"] = "REFUNDED"
        elif kind < 0.16:
            kw["refunded"] = "130.00"  # more than the order: capped
            kw["financial"] = "refunded"  # lower case: still paid
        elif kind < 0.20:
            kw["cancelled"] = True
            kw["financial"] = rnd.choice(["VOIDED", "PAID"])
        elif kind < 0.23:
            kw["financial"] = rnd.choice(["PENDING", "AUTHORIZED", "EXPIRED", ""])
        elif kind < 0.26:
            kw["customer"] = None  # a guest: known by e-mail
            kw["email"] = f" Guest{i % 17}@Example.COM "
        elif kind < 0.27:
            kw["customer"], kw["email"] = None, None  # nobody: unmappable
        elif kind < 0.28:
            kw["currency"] = "usd"  # not a currency code: unmappable
        elif kind < 0.29:
            kw["amount"] = rnd.choice(["100.125", "+100.00"])  # the second: order by order
        elif kind < 0.30:
            kw["email"] = None
        # names as buyers write them: Latin, Chinese (family name first), one part, masked,
        # none — the same for each of a customer's orders (the customer is ``i % 50``)
        kw.setdefault("name", _NAMES[i % 50 % len(_NAMES)])
        node = shopify_order(i, T0 + timedelta(seconds=rnd.randint(0, 5000)), **kw)
        if kind >= 0.30:
            node["customer"] = (
                None
                if node["customer"] is None
                else {**node["customer"], "phone": f"+86 138 0013 {i % 50:04d}"}
            )
        if rnd.random() < 0.15:  # a second line: no sku, a variant
            node["lineItems"]["nodes"].append(
                {"id": f"gid://shopify/LineItem/{i}2", "sku": "", "title": "",
                 "quantity": rnd.randint(0, 3), "variant": {"id": "gid://shopify/ProductVariant/9"},
                 "originalUnitPriceSet": {"shopMoney": {"amount": "12.5", "currencyCode": "USD"}}}
            )  # fmt: skip
        if rnd.random() < 0.01:
            node["createdAt"] = node["createdAt"].replace("Z", ".25+08:00")
            node["processedAt"] = None
        out.append(node)
    return out


def add(store: Store, settings: Settings, fake: FakeShopify) -> None:
    uc.add_connector(
        store,
        settings,
        uc.ConnectorIn(
            kind="shopify", name="shop1", api_base_url=fake.url, webhook_secret="whsec",
            access_token=fake.token, page_size=250,
        ),
    )  # fmt: skip


def stored(store: Store) -> dict[str, Any]:
    """Everything a pull writes, as comparable values."""
    with store.connect() as conn:
        o = sorted(
            (r.order_id, r.customer_id, r.ordered_at, r.amount, r.currency, r.status,
             r.refunded_amount, r.channel)
            for r in conn.execute(select(orders).where(orders.c.source == "shop1"))
        )  # fmt: skip
        ln = sorted(
            (r.order_id, r.line_no, r.sku, r.product_name, r.category, r.quantity, r.unit_price)
            for r in conn.execute(select(order_lines).where(order_lines.c.source == "shop1"))
        )
        c = sorted(
            (r.customer_id, r.phone, r.email, r.name) for r in conn.execute(select(customers))
        )
        k = sorted((r.kind, r.key_hash, r.customer_id) for r in conn.execute(select(identity_keys)))
    inbox = sorted((r["object_id"], r["status"], r["reason"]) for r in uc.inbox(store, "shop1"))
    return {"orders": o, "lines": ln, "customers": c, "keys": k, "inbox": inbox}


def test_bulk_by_columns_stores_what_the_page_pull_stores(
    store: Store, settings: Settings, ref_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(uc, "_BULK_BLOCK_BYTES", 200_000)  # some 15 blocks
    nodes = generated_orders(3000)
    loyalty = program_loyalty("USD")
    with FakeShopify(maximum=1e9, restore_rate=1e9) as fake:
        for n in nodes:
            fake.put(n)
        add(store, settings, fake)
        add(ref_store, settings, fake)
        got = uc.sync(store, settings, "shop1", loyalty=loyalty, bulk=True, sleep=lambda s: 0)
        ref = uc.sync(ref_store, settings, "shop1", loyalty=loyalty)
    assert got.pages > 10
    assert (got.pulled, got.ignored, got.failed) == (ref.pulled, ref.ignored, ref.failed)
    assert got.failed > 20 and got.ignored > 50 and got.pulled > 2500
    assert got.watermark == ref.watermark
    a, b = stored(store), stored(ref_store)
    for part in ("orders", "lines", "customers", "keys", "inbox"):
        assert a[part] == b[part], part
    assert len(a["keys"]) > 100  # phones and e-mails of 50 customers and the guests
    assert {o[5] for o in a["orders"]} == {
        "paid", "refunded", "partially_refunded", "cancelled"
    }  # fmt: skip
    assert snapshot(store, "shop1")["points"] == snapshot(ref_store, "shop1")["points"]


def test_a_bulk_backfill_killed_midway_resumes_with_no_gap_and_no_double(
    store: Store, settings: Settings, ref_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(uc, "_BULK_BLOCK_BYTES", 100_000)
    nodes = generated_orders(1200, seed=3)
    loyalty = program_loyalty("USD")
    with FakeShopify(maximum=1e9, restore_rate=1e9) as fake:
        for n in nodes:
            fake.put(n)
        add(store, settings, fake)
        add(ref_store, settings, fake)
        seen: list[int] = []

        def crash(r: uc.SyncResult) -> None:
            seen.append(r.pulled)
            if len(seen) == 3:
                raise KeyboardInterrupt  # the process killed after the third block

        with pytest.raises(KeyboardInterrupt):
            uc.sync(store, settings, "shop1", loyalty=loyalty, bulk=True, progress=crash)
        assert 0 < seen[-1] < 1000
        assert uc.show_connector(store, "shop1")["watermark"] is None  # not moved
        again = uc.sync(store, settings, "shop1", loyalty=loyalty, bulk=True, sleep=lambda s: 0)
        ref = uc.sync(ref_store, settings, "shop1", loyalty=loyalty)
    assert again.watermark == ref.watermark
    a, b = stored(store), stored(ref_store)
    assert a == b
    assert snapshot(store, "shop1")["points"] == snapshot(ref_store, "shop1")["points"]


# -- the reader ------------------------------------------------------------------------------
def _jsonl(nodes: list[dict[str, Any]]) -> bytes:
    out = []
    for n in nodes:
        out.append(json.dumps({k: v for k, v in n.items() if k != "lineItems"}))
        out += [json.dumps({**it, "__parentId": n["id"]}) for it in n["lineItems"]["nodes"]]
    return ("\n".join(out) + "\n").encode()


def test_blocks_end_before_an_order_line() -> None:
    data = _jsonl(generated_orders(200))
    parts = list(shopify_bulk.blocks([data[i : i + 999] for i in range(0, len(data), 999)], 5000))
    assert b"".join(parts) == data and len(parts) > 5
    for p in parts:
        first = p.split(b"\n", 1)[0]
        assert p.endswith(b"\n") and b"__parentId" not in first


def test_the_columns_leave_what_they_cannot_vouch_for() -> None:
    nodes = generated_orders(40, seed=5)
    plain = shopify_bulk.read_block(_jsonl(nodes), "shop1")
    assert plain is not None and plain.orders.num_rows + len(plain.slow) + len(plain.ignored) == 40
    # an amount written as a number: the reader's types do not fit, the block goes whole
    odd = [dict(n) for n in nodes]
    odd[3] = {**odd[3], "totalPriceSet": {"shopMoney": {"amount": 100, "currencyCode": "USD"}}}
    assert shopify_bulk.read_block(_jsonl(odd), "shop1") is None
    # the same order twice in one block: whole, too
    assert shopify_bulk.read_block(_jsonl([*nodes, nodes[0]]), "shop1") is None
    # a line item whose order is not in the block: an error naming it, as order by order
    items = b'{"id": "gid://shopify/LineItem/1", "__parentId": "gid://shopify/Order/77"}\n'
    with pytest.raises(Unmappable, match="Order/77 before its order"):
        shopify_bulk.read_block(items, "shop1")


def test_a_buyer_whose_contacts_change_in_a_later_block_keeps_the_latest(
    store: Store, settings: Settings, ref_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Matching keys are written once per buyer and sync unless they change: a new e-mail
    in a later block still replaces the old key."""
    monkeypatch.setattr(uc, "_BULK_BLOCK_BYTES", 50_000)
    nodes = []
    for i in range(600):
        email = "old@example.com" if i < 300 else "new@example.com"
        nodes.append(shopify_order(i, T0 + timedelta(seconds=i), email=email))
    with FakeShopify(maximum=1e9, restore_rate=1e9) as fake:
        for n in nodes:
            fake.put(n)
        add(store, settings, fake)
        add(ref_store, settings, fake)
        got = uc.sync(store, settings, "shop1", bulk=True, sleep=lambda s: 0)
        uc.sync(ref_store, settings, "shop1")
    assert got.pages > 3
    a, b = stored(store), stored(ref_store)
    assert a == b
    assert len(a["keys"]) == 50  # one e-mail key per customer: the new one
    assert {c[2] for c in a["customers"]} == {"new@example.com"}


def test_an_order_conflicting_in_a_bulk_block_waits_in_the_inbox(
    store: Store, settings: Settings
) -> None:
    """A block whose order names another amount than the recorded one is recorded order by
    order instead: that order is kept in the inbox as failed, the rest recorded."""
    with FakeShopify(maximum=1e9, restore_rate=1e9) as fake:
        for i in range(60):
            fake.put(shopify_order(i, T0 + timedelta(seconds=i)))
        add(store, settings, fake)
        assert uc.sync(store, settings, "shop1", bulk=True, sleep=lambda s: 0).pulled == 60
        later = T0 + timedelta(hours=1)
        for i in range(60):
            fake.put(shopify_order(i, later + timedelta(seconds=i), refunded="10.00",
                                   amount="120.00" if i == 7 else "100.00"))  # fmt: skip
        r = uc.sync(store, settings, "shop1", bulk=True, sleep=lambda s: 0)
    assert (r.pulled, r.failed) == (59, 1)
    got = snapshot(store, "shop1")["orders"]
    assert got["1007"][1:4] == ("paid", Decimal("100"), Decimal("0"))
    assert got["1008"][1:4] == ("partially_refunded", Decimal("100"), Decimal("10"))
    (row,) = uc.inbox(store, "shop1", failed_only=True)
    assert row["object_id"] == "order:1007" and "amount" in row["reason"]

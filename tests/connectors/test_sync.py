"""Pulling orders from the fake platforms into the real store (SQLite and PostgreSQL):
incremental cursor with overlap, kill-and-resume, throttling and 429s honoured."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from huitouke.app import connectors as uc
from huitouke.app.orders import order_event, record_order_events
from huitouke.connectors import shopify, woocommerce
from huitouke.connectors.model import PlatformError
from huitouke.errors import InputError
from huitouke.settings import Settings
from huitouke.store.db import Store

from .conftest import program_loyalty, snapshot
from .fakes import T0, FakeShopify, FakeWoo, shopify_order, woo_order

pytestmark = pytest.mark.timeout(120)


def add_shopify(store: Store, settings: Settings, fake: FakeShopify, **kw: int) -> None:
    uc.add_connector(
        store,
        settings,
        uc.ConnectorIn(
            kind="shopify",
            name="shop1",
            api_base_url=fake.url,
            webhook_secret="whsec",
            access_token=fake.token,
            overlap_seconds=kw.get("overlap", 300),
            page_size=kw.get("page_size", 10),
        ),
    )


def reference(tmp_store: Store, nodes: list[dict], currency: str = "USD") -> dict:
    """Every order recorded once, straight through record_order_events, in a fresh store."""
    loyalty = program_loyalty(currency)
    with tmp_store.begin() as conn:
        events = [
            order_event(shopify.from_graphql(n).event("shop1"), currency=currency)
            for n in sorted(nodes, key=lambda n: n["updatedAt"])
        ]
        record_order_events(conn, events, loyalty=loyalty(conn))
    return snapshot(tmp_store, "shop1")


def same_outcome(got: dict, ref: dict) -> bool:
    """The same orders and the same points (the number of ledger entries depends on the
    path: an order seen paid then refunded earns and reverses)."""
    return got["orders"] == ref["orders"] and got["points"] == ref["points"]


def test_incremental_pull_with_overlap(store: Store, settings: Settings, ref_store: Store) -> None:
    loyalty = program_loyalty("USD")
    with FakeShopify() as fake:
        for i in range(25):
            fake.put(shopify_order(i, T0 + timedelta(minutes=i)))
        add_shopify(store, settings, fake)
        r1 = uc.sync(store, settings, "shop1", loyalty=loyalty)
        assert (r1.pages, r1.pulled, r1.since) == (3, 25, None)
        assert r1.watermark == T0 + timedelta(minutes=24)
        # later: a refund, a cancellation, a full refund, two new orders
        later = T0 + timedelta(hours=2)
        fake.put(shopify_order(3, later, refunded="30.00"))
        fake.put(shopify_order(4, later + timedelta(seconds=1), cancelled=True))
        fake.put(shopify_order(5, later + timedelta(seconds=2), refunded="100.00"))
        fake.put(shopify_order(25, later + timedelta(seconds=3)))
        fake.put(shopify_order(26, later + timedelta(seconds=4)))
        r2 = uc.sync(store, settings, "shop1", loyalty=loyalty)
        # asks from the mark less the 300 s overlap: orders 19–24 again, then the 5 changes
        assert r2.since == T0 + timedelta(minutes=24) - timedelta(seconds=300)
        assert fake.queries[-1]["query"] == "updated_at:>='2026-11-01T00:19:00Z'"
        assert r2.pulled == 6 + 5
        got = snapshot(store, "shop1")
        assert same_outcome(got, reference(ref_store, list(fake.orders.values())))
        assert got["orders"]["1003"][1:4] == ("partially_refunded", Decimal("100"), Decimal("30"))
        assert got["orders"]["1004"][1] == "cancelled"
        assert got["orders"]["1005"][1] == "refunded"
        # a third sync with nothing new changes nothing
        uc.sync(store, settings, "shop1", loyalty=loyalty)
        assert snapshot(store, "shop1") == got
        shown = uc.show_connector(store, "shop1")
        assert shown["watermark"] == (later + timedelta(seconds=4)).isoformat()
        assert shown["credentials"] == {"access_token": "set", "webhook_secret": "set"}


class Crash(Exception):
    pass


def test_kill_and_resume_no_gap_no_double(
    store: Store, settings: Settings, ref_store: Store
) -> None:
    loyalty = program_loyalty("USD")
    with FakeShopify() as fake:
        for i in range(47):
            fake.put(shopify_order(i, T0 + timedelta(seconds=30 * i)))
        add_shopify(store, settings, fake, page_size=5)

        def crash_after_3_pages(r: uc.SyncResult) -> None:
            if r.pages == 3:
                raise Crash

        with pytest.raises(Crash):
            uc.sync(
                store,
                settings,
                "shop1",
                loyalty=loyalty,
                progress=crash_after_3_pages,
                pages_per_unit=3,
            )
        assert len(snapshot(store, "shop1")["orders"]) == 15  # the committed pages
        # meanwhile an order already pulled changes, and the platform fails mid-page
        fake.put(shopify_order(2, T0 + timedelta(hours=5), refunded="10.00"))
        fake.fail_on = {fake.requests + 2}
        with pytest.raises(PlatformError):
            uc.sync(store, settings, "shop1", loyalty=loyalty, sleep=lambda s: None)
        assert uc.show_connector(store, "shop1")["last_error"].startswith("connector.")
        fake.fail_on = set()
        uc.sync(store, settings, "shop1", loyalty=loyalty)
        assert same_outcome(
            snapshot(store, "shop1"), reference(ref_store, list(fake.orders.values()))
        )


def test_throttle_cost_is_waited_for(store: Store, settings: Settings) -> None:
    # a bucket of 15 points restoring 20/s; a page of 10 costs 12: the puller must wait
    with FakeShopify(maximum=15, restore_rate=20) as fake:
        for i in range(60):
            fake.put(shopify_order(i, T0 + timedelta(seconds=i)))
        add_shopify(store, settings, fake)
        r = uc.sync(store, settings, "shop1")
        assert r.pulled == 60
        assert fake.throttled == 0  # waited before asking: never throttled
        assert any(w > 0 for w in r.waits)
        # another app spends the bucket: THROTTLED is waited out and asked again
        for i in range(60, 70):
            fake.put(shopify_order(i, T0 + timedelta(hours=1, seconds=i)))
        fake.drain()
        r = uc.sync(store, settings, "shop1")
        assert fake.throttled >= 1 and r.pulled >= 10
        assert len(snapshot(store, "shop1")["orders"]) == 70


def test_429_retry_after_is_honoured(store: Store, settings: Settings) -> None:
    with FakeShopify() as fake:
        for i in range(12):
            fake.put(shopify_order(i, T0 + timedelta(seconds=i)))
        add_shopify(store, settings, fake)
        fake.rate_limit_on = {2: "1"}
        r = uc.sync(store, settings, "shop1")
        assert r.pulled == 12 and 1.0 in r.waits
        (t429,) = [t for t, _, _, s in fake.log if s == 429]
        after = [t for t, _, _, s in fake.log if s == 200 and t > t429]
        assert after and after[0] - t429 >= 0.99


def test_woocommerce_pull_pages_and_concurrent_changes(store: Store, settings: Settings) -> None:
    with FakeWoo() as fake:
        for i in range(23):
            fake.put(woo_order(i, T0 + timedelta(seconds=10 * i)))
        fake.put(woo_order(23, T0 + timedelta(seconds=300), status="pending"))
        fake.put(woo_order(24, T0 + timedelta(seconds=301), status="refunded"))
        fake.put(woo_order(25, T0 + timedelta(seconds=302), refunds=("5.00",)))
        uc.add_connector(
            store,
            settings,
            uc.ConnectorIn(
                kind="woocommerce",
                name="woo",
                api_base_url=fake.url,
                webhook_secret="wsec",
                consumer_key="ck_test",
                consumer_secret="cs_test",
                page_size=5,
            ),
        )
        calls = []

        def modify_first_order(page: int) -> None:
            # while the second page is asked for, order 0 (already read) is modified: every
            # later order moves one place up — ``page=2`` would skip one
            calls.append(page)
            if len(calls) == 2:
                o = woo_order(0, T0 + timedelta(hours=1), refunds=("80.00",), status="refunded")
                fake.put(o)

        fake.before_page = modify_first_order
        r = uc.sync(store, settings, "woo")
        got = snapshot(store, "woo")["orders"]
        assert r.ignored >= 1 and "523" not in got  # the pending order waits until paid
        assert sorted(got) == sorted(str(500 + i) for i in range(26) if i != 23)
        assert got["500"][1] == "refunded"
        assert calls[:2] == [1, 1]  # asked again from page 1 after the first page's time
        assert got["524"][1:4] == ("refunded", Decimal("80"), Decimal("80"))
        assert got["525"][1:4] == ("partially_refunded", Decimal("80"), Decimal("5"))
        assert got["501"][0] == "email:guest@example.com"
        assert woocommerce.gmt("2026-11-01T00:00:00", "x") == T0


def test_conflicting_order_in_a_bulk_page_is_kept_as_failed(
    store: Store, settings: Settings
) -> None:
    with FakeShopify() as fake:
        for i in range(60):
            fake.put(shopify_order(i, T0 + timedelta(seconds=i)))
        add_shopify(store, settings, fake)
        assert uc.sync(store, settings, "shop1").pulled == 60
        # the platform now reports another amount for order 7 (an edited order), and
        # refunds on 59 others: the 59 are recorded, order 7 waits in the inbox as failed
        later = T0 + timedelta(hours=1)
        for i in range(60):
            fake.put(shopify_order(i, later + timedelta(seconds=i), refunded="10.00",
                                   amount="120.00" if i == 7 else "100.00"))  # fmt: skip
        r = uc.sync(store, settings, "shop1")
        assert (r.pulled, r.failed) == (59 + 0, 1)
        got = snapshot(store, "shop1")["orders"]
        assert got["1007"][1:4] == ("paid", Decimal("100"), Decimal("0"))
        assert got["1008"][1:4] == ("partially_refunded", Decimal("100"), Decimal("10"))
        (row,) = uc.inbox(store, "shop1", failed_only=True)
        assert row["object_id"] == "order:1007" and row["topic"] == "pull"
        assert "amount" in row["reason"]
        # within the overlap window the next sync sees it again: still failed, and still one
        # inbox row (keyed by object and update time); the rest changes nothing
        before = snapshot(store, "shop1")
        assert uc.sync(store, settings, "shop1").failed == 1
        assert len(uc.inbox(store, "shop1")) == 1 and snapshot(store, "shop1") == before


def test_bulk_operation_backfill_then_incremental(
    store: Store, settings: Settings, ref_store: Store
) -> None:
    loyalty = program_loyalty("USD")
    with FakeShopify() as fake:
        for i in range(37):
            fake.put(shopify_order(i, T0 + timedelta(seconds=37 - i)))  # not in update order
        add_shopify(store, settings, fake)
        r = uc.sync(store, settings, "shop1", loyalty=loyalty, bulk=True, sleep=lambda s: None)
        assert r.pulled == 37 and r.watermark == T0 + timedelta(seconds=37)
        assert sum(1 for w in r.waits if w == 2.0) == fake.bulk_polls  # polled until COMPLETED
        # then the ordinary pull goes on from the mark
        fake.put(shopify_order(40, T0 + timedelta(hours=1)))
        r = uc.sync(store, settings, "shop1", loyalty=loyalty)
        assert r.since == T0 + timedelta(seconds=37 - 300)
        assert same_outcome(
            snapshot(store, "shop1"), reference(ref_store, list(fake.orders.values()))
        )
        lines = snapshot(store, "shop1")["orders"]
        assert len(lines) == 38


def test_bulk_is_shopify_only(store: Store, settings: Settings) -> None:
    uc.add_connector(
        store,
        settings,
        uc.ConnectorIn(
            kind="woocommerce", name="woo", api_base_url="http://127.0.0.1:9",
            webhook_secret="w", consumer_key="k", consumer_secret="c",
        ),
    )  # fmt: skip
    with pytest.raises(InputError, match="only Shopify"):
        uc.sync(store, settings, "woo", bulk=True)


def test_the_scheduler_job_pulls_every_active_connector(store: Store, settings: Settings) -> None:
    """The scheduler's ``connectors`` job is the same sync; a paused connector is left."""
    from huitouke.app.scheduler import Registry, run_job_now

    with FakeShopify() as fake:
        for i in range(12):
            fake.put(shopify_order(i, T0 + timedelta(minutes=i)))
        add_shopify(store, settings, fake)
        reg = Registry.load(settings)
        assert "connectors" in reg.jobs
        ran = run_job_now(store, settings, reg, "connectors")
        assert ran.status == "succeeded", ran
        assert ran.result["synced"]["shop1"]["pulled"] == 12
        assert len(snapshot(store, "shop1")["orders"]) == 12
        uc.set_paused(store, "shop1", True)
        ran = run_job_now(store, settings, reg, "connectors")
        assert ran.status == "succeeded" and ran.result == {"synced": {}, "failed": {}}

"""The Taobao/Tmall TOP connector: the request signature against TOP's published example
(md5) and RFC 2202's HMAC-MD5 vectors (hmac), trades mapped (pure), and pulls from the fake
TOP into the real store (SQLite and PostgreSQL): windows of at most a day, pages from the
last to the first, App Call Limited waited out, a trade modified while its window is
paged."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from huitouke.app import connectors as uc
from huitouke.app.orders import order_event, record_order_events
from huitouke.connectors import taobao
from huitouke.connectors.http import JsonClient
from huitouke.connectors.model import PlatformError, Skip, Unmappable
from huitouke.connectors.taobao_pull import TaobaoPuller
from huitouke.errors import AuthError
from huitouke.settings import Settings
from huitouke.store.db import Store

from .conftest import program_loyalty, snapshot
from .fakes import T0
from .taobao_fake import APP_KEY, APP_SECRET, SESSION, FakeTaobao, taobao_trade
from .youzan_fake import cst

pytestmark = pytest.mark.timeout(120)
NOW = T0 + timedelta(days=2, hours=6)


def test_sign_published_examples() -> None:
    # TOP's own example of the md5 signature (open.taobao.com, 签名算法, docId 101617)
    params = {
        "method": "taobao.item.seller.get",
        "app_key": "12345678",
        "session": "test",
        "timestamp": "2016-01-01 12:00:00",
        "format": "json",
        "v": "2.0",
        "sign_method": "md5",
        "fields": "num_iid,title,nick,price,num",
        "num_iid": "11223344",
    }
    assert taobao.sign(params, "helloworld") == "66987CB115214E59E6EC978214934FB8"
    assert taobao.sign({**params, "sign": "X"}, "helloworld") == "66987CB115214E59E6EC978214934FB8"
    # hmac: HMAC-MD5 of the same concatenation; RFC 2202 test cases 1 and 2 written as
    # parameters whose name+value concatenation is the RFC's data
    assert taobao.sign({"Hi": " There"}, "\x0b" * 16, "hmac") == "9294727A3638BB1C13F48EF8158BFC9D"
    assert (
        taobao.sign({"what do ya want": " for nothing?"}, "Jefe", "hmac")
        == "750C783E6AB0B503EAA86E310A5DB738"
    )
    with pytest.raises(ValueError):
        taobao.sign(params, "x", "sha1")
    # TOP pushes nothing over HTTP here: the webhook door accepts no delivery for the kind
    with pytest.raises(AuthError) as refused:
        uc.accept_delivery("tb", ("taobao", "active", APP_SECRET), {}, b"{}", T0)
    assert refused.value.code == "connector.bad_signature"


def wire(t: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(t), parse_float=Decimal)


def test_trade_mapping() -> None:
    m = taobao.from_trade(wire(taobao_trade(1, T0 + timedelta(hours=1))))
    assert (m.order_id, m.customer_id, m.status, m.amount, m.currency) == (
        "3000000000000001",
        "AAHm5d-EAAeGwJedwSHpg8bT1",
        "paid",
        Decimal("88.00"),
        "CNY",
    )
    assert m.ordered_at == T0 + timedelta(minutes=1) and m.updated_at == T0 + timedelta(hours=1)
    assert [ln["sku"] for ln in m.lines] == ["LJ-0", "LJ-1"]
    part = taobao.from_trade(wire(taobao_trade(2, T0, refunded_orders=1)))
    assert (part.status, part.refunded_amount) == ("partially_refunded", Decimal("44.00"))
    closed = taobao.from_trade(wire(taobao_trade(3, T0, status="TRADE_CLOSED")))
    assert (closed.status, closed.refunded_amount) == ("refunded", Decimal("88.00"))
    assert taobao.from_trade(wire(taobao_trade(4, T0, open_uid=None))).customer_id == "nick:t**1"
    for state in ("WAIT_BUYER_PAY", "TRADE_NO_CREATE_PAY", "TRADE_CLOSED_BY_TAOBAO"):
        with pytest.raises(Skip):
            taobao.from_trade(wire(taobao_trade(5, T0, status=state)))
    with pytest.raises(Unmappable, match="unknown status"):
        taobao.from_trade(wire(taobao_trade(6, T0, status="SOMETHING_NEW")))
    anon = taobao_trade(7, T0, open_uid=None)
    anon.pop("buyer_nick")
    with pytest.raises(Unmappable, match="no buyer_open_uid or buyer_nick"):
        taobao.from_trade(wire(anon))


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def add_taobao(store: Store, settings: Settings, fake: FakeTaobao, page_size: int = 10) -> None:
    uc.add_connector(
        store,
        settings,
        uc.ConnectorIn(
            kind="taobao",
            name="tb",
            api_base_url=fake.url,
            webhook_secret=APP_SECRET,
            access_token=SESSION,
            consumer_key=APP_KEY,
            page_size=page_size,
        ),
    )


def reference(ref: Store, trades: list[dict[str, Any]]) -> dict[str, Any]:
    loyalty = program_loyalty("CNY")
    events = []
    for t in sorted(trades, key=lambda t: t["modified"]):
        try:
            events.append(order_event(taobao.from_trade(wire(t)).event("tb"), currency="CNY"))
        except Skip:
            continue
    with ref.begin() as conn:
        record_order_events(conn, events, loyalty=loyalty(conn))
    return snapshot(ref, "tb")


def same(got: dict[str, Any], ref: dict[str, Any]) -> bool:
    return got["orders"] == ref["orders"] and got["points"] == ref["points"]


def test_pull_windows_pages_and_limits(store: Store, settings: Settings, ref_store: Store) -> None:
    loyalty = program_loyalty("CNY")
    clock = Clock(NOW)
    waits: list[float] = []
    with FakeTaobao() as fake:
        for i in range(35):  # over two days and a quarter
            fake.put(taobao_trade(i, T0 + timedelta(hours=1.5 * i)))
        fake.put(taobao_trade(35, T0 + timedelta(hours=3), status="WAIT_BUYER_PAY"))
        add_taobao(store, settings, fake)
        fake.limited_on = {3: 1}
        r1 = uc.sync(store, settings, "tb", loyalty=loyalty, clock=clock, sleep=waits.append)
        assert (r1.pulled, r1.ignored) == (35, 1)
        assert waits == [1.0]  # the ban's seconds, from its sub_msg
        for q in fake.asked:  # every window at most a day
            span = datetime.fromisoformat(q["end_modified"]) - datetime.fromisoformat(
                q["start_modified"]
            )
            assert timedelta(0) <= span <= timedelta(days=1) and q["use_has_next"] == "false"
        assert r1.watermark == NOW
        # later: a sub-order refunded, a trade closed after payment, a new trade
        later = NOW + timedelta(minutes=2)
        fake.put(taobao_trade(3, later, refunded_orders=1))
        fake.put(taobao_trade(4, later + timedelta(seconds=1), status="TRADE_CLOSED"))
        fake.put(taobao_trade(36, later + timedelta(seconds=2)))
        clock.now = NOW + timedelta(minutes=10)
        r2 = uc.sync(store, settings, "tb", loyalty=loyalty, clock=clock)
        assert r2.since == NOW - timedelta(seconds=300) and r2.pulled == 3
        got = snapshot(store, "tb")
        assert same(got, reference(ref_store, list(fake.trades.values())))
        assert got["orders"]["3000000000000003"][1] == "partially_refunded"
        assert got["orders"]["3000000000000004"][1] == "refunded"


def test_pages_back_to_front_and_a_trade_moving(
    store: Store, settings: Settings, ref_store: Store
) -> None:
    loyalty = program_loyalty("CNY")
    clock = Clock(T0 + timedelta(hours=12))
    with FakeTaobao() as fake:
        for i in range(47):  # all in the first sync's last window: 10 pages of 5
            fake.put(taobao_trade(i, T0 + timedelta(minutes=10 * i)))
        add_taobao(store, settings, fake, page_size=5)
        moved: list[bool] = []

        def move_newest(q: dict[str, str]) -> None:
            # while page 9 is read (after 1, 10), the newest trade (page 1) is modified
            # again out of the window: every trade after it moves one place up
            if q["page_no"] == "9" and not moved:
                moved.append(True)
                fake.put(taobao_trade(46, clock.now + timedelta(minutes=1), status="TRADE_CLOSED"))

        fake.before_page = move_newest
        uc.sync(store, settings, "tb", loyalty=loyalty, clock=clock)
        last = [q["page_no"] for q in fake.asked if q["end_modified"] == cst(clock.now)]
        assert last[:4] == ["1", "10", "9", "8"]  # page 1 for the total, then back to front
        assert last.count("1") >= 2  # the window whose total moved was asked again
        fake.before_page = None
        clock.now += timedelta(minutes=5)
        uc.sync(store, settings, "tb", loyalty=loyalty, clock=clock)
        got = snapshot(store, "tb")
        assert len(got["orders"]) == 47
        assert same(got, reference(ref_store, list(fake.trades.values())))


def test_hmac_requests_and_errors_name_no_session(store: Store, settings: Settings) -> None:
    with FakeTaobao() as fake:
        for i in range(3):
            fake.put(taobao_trade(i, T0 + timedelta(minutes=i)))
        puller = TaobaoPuller(
            JsonClient("taobao", fake.url),
            APP_KEY,
            APP_SECRET,
            SESSION,
            sign_method="hmac",
            now=lambda: T0 + timedelta(hours=1),
            backfill=timedelta(hours=2),
        )
        pages = list(puller.pages(None))
        assert sum(len(p.orders) for p in pages) == 3 and fake.asked[0]["sign_method"] == "hmac"
        bad = TaobaoPuller(JsonClient("taobao", fake.url), APP_KEY, "wrong", SESSION)
        with pytest.raises(PlatformError, match="Invalid signature"):
            list(bad.pages(None))
        add_taobao(store, settings, fake)
        fake.fail_on = set(range(fake.requests + 1, fake.requests + 50))
        with pytest.raises(PlatformError) as failed:
            uc.sync(store, settings, "tb", clock=Clock(NOW))
        shown = uc.show_connector(store, "tb")
        text = json.dumps(shown) + failed.value.message + json.dumps(failed.value.details)
        assert shown["last_error"].startswith("connector.") and SESSION not in text

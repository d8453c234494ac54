"""The WeChat 小店 connector: the push crypto against WeChat's published example, orders
mapped (pure), pulls from the fake WeChat 小店 API into the real store (SQLite and
PostgreSQL) — windows, ``next_key`` paging, token expiry, the call quota, kill-and-resume —
and encrypted pushes through the production app: URL check, bad signature, duplicates, the
order fetched and applied, a replayed stream."""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from sqlalchemy import func, select

from huitouke.app import connectors as uc
from huitouke.app.orders import order_event, record_order_events
from huitouke.connectors import wechat_shop
from huitouke.connectors.http import JsonClient
from huitouke.connectors.model import PlatformError, Skip, Unmappable
from huitouke.connectors.tables import connector_inbox
from huitouke.connectors.wechat_shop_pull import WeChatShopPuller
from huitouke.core.wechat_crypto import url_signature
from huitouke.errors import AuthError, InputError
from huitouke.settings import Settings
from huitouke.store.db import Store

from .conftest import Keys, make_keys, program_loyalty, snapshot
from .fakes import T0
from .wechat_shop_fake import (
    AES_KEY,
    APPID,
    APPSECRET,
    PUSH_TOKEN,
    WEBHOOK_SECRET,
    FakeWeChatShop,
    epoch,
    message,
    push,
    wechat_order,
)

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

pytestmark = pytest.mark.timeout(120)
NOW = T0 + timedelta(days=3)
SECRET = wechat_shop.push_secret(APPID, WEBHOOK_SECRET)

# WeChat's published example of the callback encryption (the WXBizMsgCrypt sample: token
# QDG6eK, EncodingAESKey jWmY…B2C, receive id wx5823bf96d3bd56c7) — the public platform's
# safe mode uses the same construction with the AppID as receive id
PUBLISHED_MESSAGE = (
    "RypEvHKD8QQKFhvQ6QleEB4J58tiPdvo+rtK1I9qca6aM/wvqnLSV5zEPeusUiX5L5X/0lWfrf0QADHHhGd3QczcdC"
    "Upj911L3vg3W/sYYvuJTs3TUUkSUXxaccAS0qhxchrRYt66wiSpGLYL42aM6A8dTT+6k4aSknmPj48kzJs8qLjvd4X"
    "gpue06DOdnLxAUHzM6+kDZ+HMZfJYuR+LtwGc2hgf5gsijff0ekUNXZiqATP7PF5mZxZ3Izoun1s4zG4LUMnvw2r+K"
    "qCKIw+3IQH03v+BCA9nMELNqbSf6tiWSrXJB3LAVGUcallcrw8V2t9EL4EhzJWrQUax5wLVMNS0+rUPA3k22Ncx4XX"
    "ZS9o0MBH27Bo6BpNelZpS+/uh9KsNlY6bHCmJU9p8g7m3fVKn28H3KDYA5Pl/T8Z1ptDAVe0lXdQ2YoyyH2uyPIGHB"
    "ZZIs2pDBS8R07+qN+E7Q=="
)


def wire(order: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(order), parse_float=Decimal)


# -- crypto and mapping (pure) --------------------------------------------------------------
def test_push_opens_the_published_example() -> None:
    query = {
        "msg_signature": "477715d11cdb4164915debcba66cb864d751f3e6",
        "timestamp": "1409659813",
        "nonce": "1372623149",
    }
    for body in (
        json.dumps({"ToUserName": APPID, "Encrypt": PUBLISHED_MESSAGE}).encode(),
        f"<xml><ToUserName><![CDATA[{APPID}]]></ToUserName><Encrypt><![CDATA["
        f"{PUBLISHED_MESSAGE}]]></Encrypt></xml>".encode(),
    ):
        opened = wechat_shop.open_push(SECRET, body, query)
        assert opened is not None
        msg = json.loads(opened)  # the sample's message is XML: given as its elements' JSON
        assert (msg["ToUserName"], msg["MsgType"], msg["AgentID"]) == (APPID, "text", "218")
    body = json.dumps({"Encrypt": PUBLISHED_MESSAGE}).encode()
    assert wechat_shop.open_push(SECRET, body, query | {"msg_signature": "0" * 40}) is None
    # another app (receive id) cannot open it, even with the right signature
    other = wechat_shop.push_secret("wx0000000000000000", WEBHOOK_SECRET)
    assert wechat_shop.open_push(other, body, query) is None
    assert wechat_shop.open_push(SECRET, b'{"ToUserName": "x"}', query) is None  # plain mode
    # the URL check: SHA-1 of the sorted token, timestamp and nonce — no published vector for
    # it; this one computed independently (coreutils sort | sha1sum)
    assert url_signature(PUSH_TOKEN, "1409659589", "263014780") == (
        "93d1cec91cee4a4a8baada4c807ed13137622215"
    )
    check = {
        "signature": "93d1cec91cee4a4a8baada4c807ed13137622215",
        "timestamp": "1409659589",
        "nonce": "263014780",
        "echostr": "1616140317555161061",
    }
    assert wechat_shop.verify_url(SECRET, check) == "1616140317555161061"
    assert wechat_shop.verify_url(SECRET, check | {"nonce": "1"}) is None
    assert wechat_shop.valid_webhook_secret(WEBHOOK_SECRET)
    for bad in (PUSH_TOKEN, f"{PUSH_TOKEN}:short", f"x:{AES_KEY}", f"{PUSH_TOKEN}:{'!' * 43}"):
        assert not wechat_shop.valid_webhook_secret(bad)


def test_order_mapping() -> None:
    m = wechat_shop.from_order(wire(wechat_order(1, T0 + timedelta(hours=1))))
    assert (m.order_id, m.customer_id, m.union_id, m.currency, m.status) == (
        "3705115058471208001",
        "oZ3Rn5Hh2ZKh8S4eXb7n3Zx01",
        "o6_bmasdasdsad6_2sgVt7hMZOPfL01",
        "CNY",
        "paid",
    )
    assert (m.amount, m.refunded_amount) == (Decimal("139.14"), Decimal(0))
    assert m.ordered_at == T0 + timedelta(minutes=1) and m.updated_at == T0 + timedelta(hours=1)
    assert m.lines == [
        {"sku": "WX-0", "product_name": "冻干猫粮", "quantity": 2, "unit_price": Decimal("46.38")},
        {"sku": "WX-1", "product_name": "猫砂", "quantity": 1, "unit_price": Decimal("46.38")},
    ]
    # one of the two first items refunded: half of that line's paid 92.76
    part = wechat_shop.from_order(wire(wechat_order(2, T0, finished=(1, 0))))
    assert (part.status, part.refunded_amount) == ("partially_refunded", Decimal("46.38"))
    whole = wechat_shop.from_order(wire(wechat_order(3, T0, finished=(2, 1))))
    assert (whole.status, whole.refunded_amount) == ("refunded", Decimal("139.14"))
    after_sale = wechat_shop.from_order(wire(wechat_order(4, T0, status=200)))
    assert (after_sale.status, after_sale.refunded_amount) == ("refunded", Decimal("139.14"))
    assert wechat_shop.from_order(wire(wechat_order(5, T0, status=250))).status == "cancelled"
    for status in (12, 13, 21, 30, 100):
        assert wechat_shop.from_order(wire(wechat_order(6, T0, status=status))).status == "paid"
    with pytest.raises(Skip, match="not paid"):
        wechat_shop.from_order(wire(wechat_order(7, T0, status=10, paid=False)))
    with pytest.raises(Skip, match="cancelled unpaid"):
        wechat_shop.from_order(wire(wechat_order(8, T0, status=250, paid=False)))
    with pytest.raises(Unmappable, match="unknown status 77"):
        wechat_shop.from_order(wire(wechat_order(9, T0, status=77)))
    with pytest.raises(Unmappable, match="no openid"):
        wechat_shop.from_order(wire(wechat_order(10, T0, openid=None)))
    odd = wechat_order(11, T0)
    odd["order_detail"]["price_info"]["order_price"] = 139.14
    with pytest.raises(Unmappable, match="whole number of fen"):
        wechat_shop.from_order(odd)
    assert wechat_shop.fen("13914", "x") == Decimal("139.14")


@hsettings(max_examples=200, deadline=None)
@given(
    status=st.sampled_from([12, 13, 20, 21, 30, 100, 190, 200, 250]),
    lines=st.lists(
        st.tuples(st.integers(1, 5), st.integers(0, 99_999), st.integers(0, 7)),
        min_size=1,
        max_size=4,
    ),
    price=st.integers(0, 500_000),
)
def test_refunds_never_exceed_the_order(
    status: int, lines: list[tuple[int, int, int]], price: int
) -> None:
    """Whatever the item counts and paid prices (finished after-sale counts over the item
    count, line totals over the order's), the refund stays within the order's amount."""
    order = wechat_order(1, T0, status=status, price=price)
    order["order_detail"]["product_infos"] = [
        {"sku_id": str(k + 1), "sku_cnt": cnt, "sale_price": paid // cnt, "real_price": paid,
         "finish_aftersale_sku_cnt": done, "title": "x"}
        for k, (cnt, paid, done) in enumerate(lines)
    ]  # fmt: skip
    m = wechat_shop.from_order(wire(order))
    assert Decimal(0) <= m.refunded_amount <= m.amount == Decimal(price) / 100
    if m.status == "paid":
        assert m.refunded_amount == 0


# -- pull ----------------------------------------------------------------------------------
class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def add_wechat(store: Store, settings: Settings, url: str, page_size: int = 10) -> None:
    uc.add_connector(
        store,
        settings,
        uc.ConnectorIn(
            kind="wechat_shop",
            name="wx",
            api_base_url=url,
            webhook_secret=WEBHOOK_SECRET,
            consumer_key=APPID,
            consumer_secret=APPSECRET,
            page_size=page_size,
        ),
    )


@pytest.fixture
def ref_store(tmp_path: Any) -> Iterator[Store]:
    s = Store(f"sqlite:///{tmp_path / 'ref.db'}")
    s.migrate()
    yield s
    s.dispose()


def reference(ref: Store, orders: list[dict[str, Any]]) -> dict[str, Any]:
    """Every paid order recorded once, straight through record_order_events."""
    loyalty = program_loyalty("CNY")
    events = []
    for o in sorted(orders, key=lambda o: o["update_time"]):
        try:
            events.append(order_event(wechat_shop.from_order(wire(o)).event("wx"), currency="CNY"))
        except Skip:
            continue
    with ref.begin() as conn:
        record_order_events(conn, events, loyalty=loyalty(conn))
    return snapshot(ref, "wx")


def same(got: dict[str, Any], ref: dict[str, Any]) -> bool:
    return got["orders"] == ref["orders"] and got["points"] == ref["points"]


def test_pull_windows_paging_token_and_quota(
    store: Store, settings: Settings, ref_store: Store
) -> None:
    settings = settings.model_copy(update={"currency": "CNY"})
    loyalty = program_loyalty("CNY")
    clock = Clock(NOW)
    waits: list[float] = []
    with FakeWeChatShop() as fake:
        for i in range(25):  # spread over two days
            fake.put(wechat_order(i, T0 + timedelta(hours=2 * i, seconds=i % 2)))
        fake.put(wechat_order(25, T0 + timedelta(hours=5), status=10, paid=False))
        add_wechat(store, settings, fake.url)
        fake.limited_on = {4}  # the quota answer once: waited out, asked again
        r1 = uc.sync(store, settings, "wx", loyalty=loyalty, clock=clock, sleep=waits.append)
        assert (r1.pulled, r1.ignored, r1.since) == (25, 1, None)
        assert waits == [1.0] and r1.watermark == NOW
        spans = [a["update_time_range"] for a in fake.asked]
        assert spans[0]["start_time"] == epoch(NOW - timedelta(days=90))
        assert all(0 <= s["end_time"] - s["start_time"] <= 86400 for s in spans)
        assert any("next_key" in a for a in fake.asked)  # a day of 12 orders: two pages
        assert len(fake.tokens) == 1
        # later: a partial refund, everything refunded (200), a cancellation after
        # payment, the unpaid one paid, a new order; the token has expired meanwhile
        later = NOW + timedelta(minutes=1)
        fake.put(wechat_order(3, later, finished=(1, 0)))
        fake.put(wechat_order(4, later + timedelta(seconds=1), status=200))
        fake.put(wechat_order(5, later + timedelta(seconds=2), status=250))
        fake.put(wechat_order(25, later + timedelta(seconds=3)))
        fake.put(wechat_order(26, later + timedelta(seconds=4)))
        fake.expire()
        clock.now = NOW + timedelta(minutes=10)
        n = len(fake.asked)
        r2 = uc.sync(store, settings, "wx", loyalty=loyalty, clock=clock)
        assert r2.since == NOW - timedelta(seconds=300) and r2.pulled == 5
        assert fake.asked[n]["update_time_range"] == {
            "start_time": epoch(NOW - timedelta(seconds=300)),
            "end_time": epoch(NOW + timedelta(minutes=10)),
        }
        assert len(fake.tokens) == 2  # 42001: a fresh token, the request again
        got = snapshot(store, "wx")
        assert same(got, reference(ref_store, list(fake.orders.values())))
        o = got["orders"]
        assert o["3705115058471208003"][1:4] == (
            "partially_refunded",
            Decimal("139.14"),
            Decimal("46.38"),
        )
        assert o["3705115058471208004"][1] == "refunded"
        assert o["3705115058471208005"][1] == "cancelled"
        assert o["3705115058471208025"][1] == "paid"
        clock.now += timedelta(minutes=10)
        uc.sync(store, settings, "wx", loyalty=loyalty, clock=clock)
        assert snapshot(store, "wx") == got  # nothing new: nothing changes


class Crash(Exception):
    pass


def test_kill_and_resume(store: Store, settings: Settings, ref_store: Store) -> None:
    settings = settings.model_copy(update={"currency": "CNY"})
    loyalty = program_loyalty("CNY")
    clock = Clock(T0 + timedelta(hours=12))
    with FakeWeChatShop() as fake:
        for i in range(47):  # the first sync's last window: 10 pages of 5
            fake.put(wechat_order(i, T0 + timedelta(minutes=10 * i)))
        add_wechat(store, settings, fake.url, page_size=5)

        def crash_after_3_pages(r: uc.SyncResult) -> None:
            if r.pages >= 90 + 3:  # 89 empty windows, then pages of the last
                raise Crash

        with pytest.raises(Crash):
            uc.sync(store, settings, "wx", loyalty=loyalty, clock=clock,
                    progress=crash_after_3_pages, pages_per_unit=1)  # fmt: skip
        assert len(snapshot(store, "wx")["orders"]) >= 10
        mark = uc.show_connector(store, "wx")["watermark"]
        assert mark is not None and datetime.fromisoformat(mark) < T0
        # meanwhile an order already recorded is refunded, out of the window
        fake.put(wechat_order(2, clock.now - timedelta(seconds=30), status=200))
        uc.sync(store, settings, "wx", loyalty=loyalty, clock=clock)
        got = snapshot(store, "wx")
        assert len(got["orders"]) == 47
        assert same(got, reference(ref_store, list(fake.orders.values())))
        assert got["orders"]["3705115058471208002"][1] == "refunded"


def test_errors_name_no_secret_or_token(store: Store, settings: Settings) -> None:
    with FakeWeChatShop() as fake:
        puller = WeChatShopPuller(JsonClient("wechat_shop", fake.url), APPID, "wrong")
        with pytest.raises(PlatformError, match="40125"):
            puller.token()
        wide = WeChatShopPuller(JsonClient("wechat_shop", fake.url), APPID, APPSECRET,
                                window=timedelta(days=30), backfill=timedelta(days=20),
                                now=lambda: NOW)  # fmt: skip
        assert wide.window == timedelta(days=7)  # the API's limit
        assert list(wide.pages(None))[-1].latest == NOW
        wide.window = timedelta(days=8)  # past it: refused, with WeChat's code
        with pytest.raises(PlatformError, match="40097"):
            list(wide.pages(None))
        add_wechat(store, settings, fake.url)
        fake.limited_on = set(range(fake.requests + 2, fake.requests + 40))  # quota stays reached
        waits: list[float] = []
        with pytest.raises(PlatformError, match="call limit"):
            uc.sync(store, settings, "wx", clock=Clock(NOW), sleep=waits.append)
        assert waits[:4] == [1.0, 2.0, 4.0, 8.0] and max(waits) == 30.0
        fake.limited_on = set()
        fake.fail_on = set(range(fake.requests + 1, fake.requests + 100))
        with pytest.raises(PlatformError) as failed:
            uc.sync(store, settings, "wx", clock=Clock(NOW), sleep=lambda s: None)
        shown = uc.show_connector(store, "wx")
        text = json.dumps(shown) + failed.value.message + json.dumps(failed.value.details)
        assert shown["last_error"].startswith("connector.")
        assert APPSECRET not in text and all(t not in text for t in fake.tokens)
    with pytest.raises(InputError) as bad:
        uc.add_connector(store, settings, uc.ConnectorIn(
            kind="wechat_shop", name="wx2", api_base_url="http://127.0.0.1:9",
            webhook_secret=PUSH_TOKEN, consumer_key=APPID, consumer_secret=APPSECRET))  # fmt: skip
    assert bad.value.code == "connector.invalid"


# -- pushes through the production app -----------------------------------------------------
@pytest.fixture
def keys(store: Store) -> Keys:
    return make_keys(store)


@pytest.fixture
def client(settings: Settings, store: Store) -> Iterator[TestClient]:
    from huitouke.service import create_app

    cny = settings.model_copy(update={"currency": "CNY"})
    with TestClient(create_app(cny, store), raise_server_exceptions=False) as c:
        yield c


def add_rest(client: TestClient, keys: Keys, url: str) -> None:
    r = client.post(
        "/v1/connectors",
        json={
            "kind": "wechat_shop",
            "name": "wx",
            "api_base_url": url,
            "webhook_secret": WEBHOOK_SECRET,
            "consumer_key": APPID,
            "consumer_secret": APPSECRET,
        },
        headers=keys.h("admin"),
    )
    assert r.status_code == 201, r.text
    assert APPSECRET not in r.text and AES_KEY not in r.text


def send(client: TestClient, body: bytes, query: dict[str, str]) -> Any:
    """Post a push, then wait for the service's background applier (it fetches the order
    the push names after the answer)."""
    from huitouke.service.webhook_door import applier

    got = client.post(
        "/v1/connectors/wx/webhook",
        params=query,
        content=body,
        headers={"Content-Type": "application/json"},
    )
    assert applier(client.app.state.ctx).wait_idle(60), "the background applier did not finish"  # type: ignore[attr-defined]
    return got


def inbox_count(store: Store) -> int:
    with store.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(connector_inbox)).scalar_one())


def test_url_check_and_bad_signature(client: TestClient, keys: Keys, store: Store) -> None:
    add_rest(client, keys, "http://127.0.0.1:9")
    q = {"timestamp": "1409659589", "nonce": "263014780", "echostr": "5837397520665436492"}
    ok = client.get("/v1/connectors/wx/webhook",
                    params=q | {"signature": url_signature(PUSH_TOKEN, q["timestamp"], q["nonce"])})  # fmt: skip
    assert ok.status_code == 200 and ok.text == "5837397520665436492"
    bad = client.get("/v1/connectors/wx/webhook", params=q | {"signature": "0" * 40})
    assert bad.status_code == 401 and bad.json()["error"]["code"] == "connector.bad_signature"
    msg = message("channels_ec_order_pay", "3705115058471208001", T0)
    body, query = push(msg)
    _other_body, other_query = push(message("channels_ec_order_pay", "3705115058471208002", T0))
    for b, q2 in (
        push(msg, token="OtherToken"),  # signed and sealed under another token
        push(msg, appid="wx0000000000000000"),  # sealed for another app
        (body, {k: v for k, v in query.items() if k != "msg_signature"}),
        (body, other_query),  # the signature of another body
        (json.dumps(msg).encode(), {}),  # plain mode
    ):
        got = send(client, b, q2)
        assert got.status_code == 401, got.text
        assert got.json()["error"]["code"] == "connector.bad_signature"
    assert inbox_count(store) == 0 and snapshot(store, "wx")["orders"] == {}


def test_pushes_fetch_and_apply(client: TestClient, keys: Keys, store: Store) -> None:
    with FakeWeChatShop() as fake:
        add_rest(client, keys, fake.url)
        oid = "3705115058471208001"
        fake.put(wechat_order(1, T0 + timedelta(hours=1)))
        r = send(client, *push(message("channels_ec_order_pay", oid, T0 + timedelta(hours=1))))
        assert r.status_code == 200 and r.text == "success", r.text
        first = snapshot(store, "wx")
        assert first["orders"][oid][1] == "paid" and fake.details == 1
        # WeChat repeats it (no answer in time): stored once, nothing changes
        again = send(client, *push(message("channels_ec_order_pay", oid, T0 + timedelta(hours=1))))
        assert again.text == "success" and snapshot(store, "wx") == first
        assert inbox_count(store) == 1
        # an after-sale refund finished: the order fetched again, partially refunded
        fake.put(wechat_order(1, T0 + timedelta(hours=2), finished=(1, 0)))
        send(client, *push(message("channels_ec_aftersale_update", oid, T0 + timedelta(hours=2))))
        after = snapshot(store, "wx")["orders"][oid]
        assert after[1:4] == ("partially_refunded", Decimal("139.14"), Decimal("46.38"))
        # an unpaid order's new-order message: fetched, ignored; then paid
        fake.put(wechat_order(2, T0 + timedelta(hours=3), status=10, paid=False))
        send(client, *push(message("channels_ec_order_new", "3705115058471208002",
                                   T0 + timedelta(hours=3))))  # fmt: skip
        assert "3705115058471208002" not in snapshot(store, "wx")["orders"]
        # a message about no order, an event we take nothing from: stored, ignored
        send(client, *push(message("product_spu_audit", None, T0 + timedelta(hours=3))))
        send(client, *push(message("channels_ec_coupon_receive", oid, T0 + timedelta(hours=4))))
        # an order the shop does not know: failed, visible, retried
        send(client, *push(message("channels_ec_order_cancel", "3705115058471208099",
                                   T0 + timedelta(hours=4), cancel_type=1)))  # fmt: skip
        rows = client.get("/v1/connectors/wx/inbox", headers=keys.h("read")).json()
        by = {(r["object_id"], r["topic"]): r for r in rows}
        assert by[("order:3705115058471208002", "channels_ec_order_new")]["status"] == "ignored"
        assert by[("order:3705115058471208001", "channels_ec_coupon_receive")]["status"] == (
            "ignored"
        )
        assert any(r["topic"] == "product_spu_audit" and r["status"] == "ignored" for r in rows)
        failed = by[("order:3705115058471208099", "channels_ec_order_cancel")]
        assert failed["status"] == "failed" and "100002" in failed["reason"]
        fake.put(wechat_order(99, T0 + timedelta(hours=5), status=250))
        out = client.post("/v1/connectors/wx/retry", headers=keys.h("operator")).json()
        assert out["applied"] == 1 and out["failed"] == 0
        assert snapshot(store, "wx")["orders"]["3705115058471208099"][1] == "cancelled"
        assert all(AES_KEY not in json.dumps(r) for r in rows)


def test_cli_add_and_sync_wechat_shop(store_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from huitouke.cli.main import app
    from huitouke.core.secretbox import new_key
    from huitouke.settings import get_settings

    monkeypatch.setenv("HUITOUKE_DATABASE_URL", store_url)
    monkeypatch.setenv("HUITOUKE_LANG", "en")
    monkeypatch.setenv("HUITOUKE_ENCRYPTION_KEYS", new_key())
    get_settings.cache_clear()
    runner = CliRunner()
    try:
        with FakeWeChatShop() as fake:
            now = datetime.now(UTC).replace(microsecond=0)
            for i in range(7):
                fake.put(wechat_order(i, now - timedelta(hours=1, minutes=i)))
            r = runner.invoke(
                app,
                ["connectors", "add", "wechat_shop", "wxcli", "--api-base-url", fake.url,
                 "--consumer-key", APPID, "--webhook-secret", WEBHOOK_SECRET],
                input=f"{APPSECRET}\n",
            )  # fmt: skip
            assert r.exit_code == 0, r.output
            shown = runner.invoke(app, ["connectors", "show", "wxcli"]).output
            assert APPSECRET not in shown and AES_KEY not in shown
            r = runner.invoke(app, ["connectors", "sync", "wxcli", "--json"])
            assert r.exit_code == 0, r.output
            assert json.loads(r.stdout)["pulled"] == 7
            bad = runner.invoke(
                app,
                ["connectors", "add", "wechat_shop", "wxbad", "--api-base-url", fake.url,
                 "--consumer-key", APPID, "--webhook-secret", PUSH_TOKEN],
                input=f"{APPSECRET}\n",
            )  # fmt: skip
            assert bad.exit_code != 0 and isinstance(bad.exception, InputError)
            assert bad.exception.code == "connector.invalid"
            assert "ENCODING_AES_KEY" in bad.exception.message
    finally:
        get_settings.cache_clear()


@hsettings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_replayed_push_stream_changes_nothing(
    tmp_path_factory: pytest.TempPathFactory, data: st.DataObject
) -> None:
    """Pushes for a few orders, each applied with the order's state then (fetched), in any
    order with repeats, then replayed in another order: nothing changes; refunds stay within
    the amount."""
    from huitouke.core.secretbox import new_key

    path = tmp_path_factory.mktemp("wxreplay") / "s.db"
    settings = Settings(
        database_url=f"sqlite:///{path}", encryption_keys=new_key(), timezone="Asia/Shanghai"
    )
    store = Store(settings.database_url)
    store.migrate()
    try:
        with FakeWeChatShop() as fake:
            add_wechat(store, settings, fake.url)
            states = st.tuples(
                st.integers(0, 2),
                st.integers(0, 5),
                st.sampled_from([20, 100, 200, 250, 10]),
                st.sampled_from([(0, 0), (1, 0), (2, 1), (2, 0)]),
            )
            stream = data.draw(st.lists(states, min_size=1, max_size=10))

            def deliver(items: list[Any]) -> None:
                for i, minute, status, finished in items:
                    at = T0 + timedelta(minutes=minute)
                    fake.put(wechat_order(i, at, status=status, finished=finished,
                                          paid=status != 10))  # fmt: skip
                    oid = str(3705115058471208000 + i)
                    body, query = push(message("channels_ec_order_pay", oid, at))
                    receipt = uc.receive_webhook(store, settings, "wx", {}, body, query=query)
                    uc.apply_inbox(store, settings, "wx", ids=[receipt.inbox_id],
                                   loyalty=program_loyalty("CNY"))  # fmt: skip

            deliver(stream)
            once = snapshot(store, "wx")
            inbox_once = len(uc.inbox(store, "wx", limit=1000))
            deliver(data.draw(st.permutations(stream)))
            assert snapshot(store, "wx") == once
            assert len(uc.inbox(store, "wx", limit=1000)) == inbox_once
            for o in once["orders"].values():
                assert 0 <= o[3] <= o[2]
            body, _query = push(message("channels_ec_order_pay", "3705115058471208000", T0))
            with pytest.raises(AuthError):
                uc.receive_webhook(store, settings, "wx", {}, body, query={})
    finally:
        store.dispose()

"""The JD 京东 connector: JOS's request signature (an independently computed vector: JD
publishes the algorithm, not an example), orders mapped (pure), and pulls from the fake JOS
into the real store (SQLite and PostgreSQL): windows of a day, pages from the last to the
first, App Call Limited waited out, an order modified while its window is paged,
kill-and-resume; the webhook door refuses every push (JD's messages use its own service)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from huitouke.app import connectors as uc
from huitouke.app.orders import order_event, record_order_events
from huitouke.connectors import jd
from huitouke.connectors.http import JsonClient
from huitouke.connectors.jd_pull import JdPuller
from huitouke.connectors.model import PlatformError, Skip, Unmappable
from huitouke.errors import AuthError
from huitouke.settings import Settings
from huitouke.store.db import Store

from .conftest import program_loyalty, snapshot
from .fakes import T0
from .jd_fake import ACCESS_TOKEN, APP_KEY, APP_SECRET, FakeJd, jd_order

pytestmark = pytest.mark.timeout(120)
NOW = T0 + timedelta(days=2, hours=6)


def test_sign() -> None:
    params = {
        "method": "jingdong.pop.order.search",
        "app_key": APP_KEY,
        "access_token": ACCESS_TOKEN,
        "timestamp": "2026-11-01 08:00:00",
        "v": "2.0",
        "360buy_param_json": '{"end_date":"2026-11-02 08:00:00","page":"1",'
        '"start_date":"2026-11-01 08:00:00"}',
    }
    # computed independently of this code: coreutils md5sum over app_secret + the sorted
    # name+value pairs + app_secret, upper-cased
    expected = "3FB70CAAF6D0EDB210C7D3849DD78E3F"
    assert jd.sign(params, APP_SECRET) == expected
    assert jd.sign({**params, "sign": "X"}, APP_SECRET) == expected
    assert jd.sign(params, "other") != expected
    # JD's order messages come through its own message service: no HTTP push is accepted
    with pytest.raises(AuthError) as refused:
        uc.accept_delivery("jd", ("jd", "active", APP_SECRET), {}, b"{}", T0)
    assert refused.value.code == "connector.bad_signature"


def wire(o: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(o), parse_float=Decimal)


def test_order_mapping() -> None:
    m = jd.from_order(wire(jd_order(1, T0 + timedelta(hours=1))))
    assert (m.order_id, m.customer_id, m.status, m.amount, m.currency) == (
        "280000000001",
        "4d8ba0f2c9e11",
        "paid",
        Decimal("199.00"),
        "CNY",
    )
    assert m.ordered_at == T0 + timedelta(minutes=1) and m.updated_at == T0 + timedelta(hours=1)
    assert [(ln["sku"], ln["quantity"], ln["unit_price"]) for ln in m.lines] == [
        ("JD-0", 1, Decimal("99.50")),
        ("sku-100012345679", 1, Decimal("99.50")),
    ]
    cancelled = jd.from_order(wire(jd_order(2, T0, state="TRADE_CANCELED")))
    assert (cancelled.status, cancelled.refunded_amount) == ("refunded", Decimal("199.00"))
    with pytest.raises(Skip, match="cancelled unpaid"):
        jd.from_order(wire(jd_order(3, T0, state="TRADE_CANCELED", paid=False)))
    for state in ("WAIT_SELLER_STOCK_OUT", "FINISHED_L", "LOCKED", "POP_ORDER_PAUSE"):
        assert jd.from_order(wire(jd_order(4, T0, state=state))).status == "paid"
    assert jd.from_order(wire(jd_order(5, T0, open_id=None))).customer_id == "xid:o*AAQ8dxb8WzY5"
    anon = jd_order(6, T0, open_id=None)
    anon.pop("xid_buyer")
    with pytest.raises(Unmappable, match="no open_id_buyer, xid_buyer or unmasked pin"):
        jd.from_order(wire(anon))
    anon["pin"] = "jd_buyer42"
    assert jd.from_order(wire(anon)).customer_id == "pin:jd_buyer42"
    with pytest.raises(Unmappable, match="unknown orderState"):
        jd.from_order(wire(jd_order(7, T0, state="SOMETHING_NEW")))
    with pytest.raises(Unmappable, match="not a decimal"):
        jd.from_order(jd_order(8, T0) | {"orderPayment": 1.5})


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def add_jd(store: Store, settings: Settings, fake: FakeJd, page_size: int = 10) -> None:
    uc.add_connector(
        store,
        settings,
        uc.ConnectorIn(
            kind="jd",
            name="jd",
            api_base_url=fake.url,
            webhook_secret=APP_SECRET,
            access_token=ACCESS_TOKEN,
            consumer_key=APP_KEY,
            page_size=page_size,
        ),
    )


def reference(ref: Store, orders: list[dict[str, Any]]) -> dict[str, Any]:
    loyalty = program_loyalty("CNY")
    events = []
    for o in sorted(orders, key=lambda o: o["modified"]):
        try:
            events.append(order_event(jd.from_order(wire(o)).event("jd"), currency="CNY"))
        except Skip:
            continue
    with ref.begin() as conn:
        record_order_events(conn, events, loyalty=loyalty(conn))
    return snapshot(ref, "jd")


def same(got: dict[str, Any], ref: dict[str, Any]) -> bool:
    return got["orders"] == ref["orders"] and got["points"] == ref["points"]


def test_pull_windows_pages_and_limits(store: Store, settings: Settings, ref_store: Store) -> None:
    loyalty = program_loyalty("CNY")
    clock = Clock(NOW)
    waits: list[float] = []
    with FakeJd() as fake:
        for i in range(35):  # over two days and a quarter
            fake.put(jd_order(i, T0 + timedelta(hours=1.5 * i)))
        fake.put(jd_order(35, T0 + timedelta(hours=3), state="TRADE_CANCELED", paid=False))
        add_jd(store, settings, fake)
        fake.limited_on = {3, 4}
        r1 = uc.sync(store, settings, "jd", loyalty=loyalty, clock=clock, sleep=waits.append)
        assert (r1.pulled, r1.ignored) == (35, 1)
        assert waits == [1.0, 2.0]  # App Call Limited, twice: a pause doubling from 1 s
        for p in fake.asked:  # every window at most a day, by modification time, newest first
            span = datetime.fromisoformat(p["end_date"]) - datetime.fromisoformat(p["start_date"])
            assert timedelta(0) <= span <= timedelta(days=1)
            assert (p["dateType"], p["sortType"]) == ("0", "1")
            assert set(p["order_state"].split(",")) == set(jd.ORDER_STATES)
        assert r1.watermark == NOW
        later = NOW + timedelta(minutes=2)
        fake.put(jd_order(3, later, state="TRADE_CANCELED"))
        fake.put(jd_order(4, later + timedelta(seconds=1), state="FINISHED_L"))
        fake.put(jd_order(36, later + timedelta(seconds=2)))
        clock.now = NOW + timedelta(minutes=10)
        r2 = uc.sync(store, settings, "jd", loyalty=loyalty, clock=clock)
        assert r2.since == NOW - timedelta(seconds=300) and r2.pulled == 3
        got = snapshot(store, "jd")
        assert same(got, reference(ref_store, list(fake.orders.values())))
        assert got["orders"]["280000000003"][1] == "refunded"
        clock.now += timedelta(minutes=10)
        uc.sync(store, settings, "jd", loyalty=loyalty, clock=clock)
        assert snapshot(store, "jd") == got  # replayed overlap: nothing changes


class Crash(Exception):
    pass


def test_back_to_front_an_order_moving_and_kill_resume(
    store: Store, settings: Settings, ref_store: Store
) -> None:
    loyalty = program_loyalty("CNY")
    clock = Clock(T0 + timedelta(hours=12))
    with FakeJd() as fake:
        for i in range(47):  # all in the first sync's last window: 10 pages of 5
            fake.put(jd_order(i, T0 + timedelta(minutes=10 * i)))
        add_jd(store, settings, fake, page_size=5)

        def crash_after_3_pages(r: uc.SyncResult) -> None:
            if r.pages >= 90 + 3:
                raise Crash

        with pytest.raises(Crash):
            uc.sync(store, settings, "jd", loyalty=loyalty, clock=clock,
                    progress=crash_after_3_pages, pages_per_unit=1)  # fmt: skip
        mark = uc.show_connector(store, "jd")["watermark"]
        assert mark is not None and datetime.fromisoformat(mark) < T0
        assert len(snapshot(store, "jd")["orders"]) >= 10
        moved: list[bool] = []

        def move_newest(p: dict[str, Any]) -> None:
            # while page 9 is read (after 1, 10), the newest order (page 1) is modified
            # again out of the window: every order after it moves one place up
            if p["page"] == "9" and not moved:
                moved.append(True)
                fake.put(jd_order(46, clock.now + timedelta(minutes=1), state="TRADE_CANCELED"))

        fake.before_page = move_newest
        n = len(fake.asked)
        uc.sync(store, settings, "jd", loyalty=loyalty, clock=clock)
        # resumed from the mark less the overlap: the orders are in its first window
        first = fake.asked[n]["end_date"]
        last = [p["page"] for p in fake.asked[n:] if p["end_date"] == first]
        assert last[:4] == ["1", "10", "9", "8"]  # page 1 for the total, then back to front
        assert last.count("1") >= 2  # the window whose total moved was asked again
        fake.before_page = None
        clock.now += timedelta(minutes=5)
        uc.sync(store, settings, "jd", loyalty=loyalty, clock=clock)
        got = snapshot(store, "jd")
        assert len(got["orders"]) == 47
        assert same(got, reference(ref_store, list(fake.orders.values())))
        assert got["orders"]["280000000046"][1] == "refunded"


def test_errors_name_no_token(store: Store, settings: Settings) -> None:
    with FakeJd() as fake:
        fake.put(jd_order(1, T0 + timedelta(minutes=1)))
        bad = JdPuller(JsonClient("jd", fake.url), APP_KEY, "wrong", ACCESS_TOKEN,
                       now=lambda: T0 + timedelta(hours=1), backfill=timedelta(hours=2))  # fmt: skip
        with pytest.raises(PlatformError, match="Invalid Signature"):
            list(bad.pages(None))
        wide = JdPuller(JsonClient("jd", fake.url), APP_KEY, APP_SECRET, ACCESS_TOKEN,
                        now=lambda: T0 + timedelta(days=40), backfill=timedelta(days=40),
                        window=timedelta(days=60))  # fmt: skip
        assert wide.window == timedelta(days=30)
        assert sum(len(p.orders) for p in wide.pages(None)) == 1  # windows within a month
        wide.window = timedelta(days=40)  # past JOS's limit: refused, with JD's words
        with pytest.raises(PlatformError, match="time span over one month"):
            list(wide.pages(None))
        add_jd(store, settings, fake)
        fake.fail_on = set(range(fake.requests + 1, fake.requests + 50))
        with pytest.raises(PlatformError) as failed:
            uc.sync(store, settings, "jd", clock=Clock(NOW), sleep=lambda s: None)
        shown = uc.show_connector(store, "jd")
        text = json.dumps(shown) + failed.value.message + json.dumps(failed.value.details)
        assert shown["last_error"].startswith("connector.") and ACCESS_TOKEN not in text


def test_cli_and_rest_add_jd(store_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import warnings

    from typer.testing import CliRunner

    from huitouke.cli.main import app
    from huitouke.core.secretbox import new_key
    from huitouke.settings import get_settings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient

    from huitouke.service import create_app

    from .conftest import make_keys

    monkeypatch.setenv("HUITOUKE_DATABASE_URL", store_url)
    monkeypatch.setenv("HUITOUKE_LANG", "en")
    monkeypatch.setenv("HUITOUKE_ENCRYPTION_KEYS", new_key())
    get_settings.cache_clear()
    runner = CliRunner()
    try:
        with FakeJd() as fake:
            now = datetime.now(UTC).replace(microsecond=0)
            for i in range(7):
                fake.put(jd_order(i, now - timedelta(hours=1, minutes=i)))
            r = runner.invoke(
                app,
                ["connectors", "add", "jd", "jdcli", "--api-base-url", fake.url,
                 "--consumer-key", APP_KEY, "--webhook-secret", APP_SECRET],
                input=f"{ACCESS_TOKEN}\n",
            )  # fmt: skip
            assert r.exit_code == 0, r.output
            shown = runner.invoke(app, ["connectors", "show", "jdcli"]).output
            assert ACCESS_TOKEN not in shown and APP_SECRET not in shown
            r = runner.invoke(app, ["connectors", "sync", "jdcli", "--json"])
            assert r.exit_code == 0, r.output
            assert json.loads(r.stdout)["pulled"] == 7
            store = Store(store_url)
            try:
                keys = make_keys(store)
                with TestClient(create_app(get_settings(), store)) as client:
                    r = client.post(
                        "/v1/connectors",
                        json={"kind": "jd", "name": "jdrest", "api_base_url": fake.url,
                              "webhook_secret": APP_SECRET, "access_token": ACCESS_TOKEN,
                              "consumer_key": APP_KEY},
                        headers=keys.h("admin"),
                    )  # fmt: skip
                    assert r.status_code == 201 and ACCESS_TOKEN not in r.text
                    hook = client.post("/v1/connectors/jdrest/webhook", content=b"{}")
                    assert hook.status_code == 401
                    check = client.get("/v1/connectors/jdrest/webhook?signature=x&echostr=y")
                    assert check.status_code == 401
                    assert (
                        client.get("/v1/connectors/jdrest/inbox", headers=keys.h("read")).json()
                        == []
                    )
            finally:
                store.dispose()
    finally:
        get_settings.cache_clear()

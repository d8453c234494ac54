"""The Youzan 有赞 connector: trades mapped (pure), the push signature, pulls from the fake
Youzan Cloud into the real store (SQLite and PostgreSQL) — windows, paging, overlap,
kill-and-resume, a trade updated while its window is paged — and push messages through
the production app (``create_app``): bad signature, duplicates, out-of-order, unmappable."""

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
from huitouke.connectors import youzan
from huitouke.connectors.model import PlatformError, Skip, Unmappable
from huitouke.connectors.signatures import verify
from huitouke.connectors.tables import connector_inbox
from huitouke.settings import Settings
from huitouke.store.db import Store

from .conftest import Keys, delivered, program_loyalty, snapshot
from .fakes import T0
from .youzan_fake import CLIENT_ID, CLIENT_SECRET, FakeYouzan, cst, push, youzan_trade

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

pytestmark = pytest.mark.timeout(120)
NOW = T0 + timedelta(days=3)


def wire(trade: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(trade), parse_float=Decimal)


# -- mapping and signature (pure) -----------------------------------------------------------
def test_trade_mapping() -> None:
    m = youzan.from_trade(wire(youzan_trade(1, T0 + timedelta(hours=1))))
    assert (m.order_id, m.customer_id, m.currency, m.status) == (
        "E2026110100000001",
        "lDWyZBas80763614035201",
        "CNY",
        "paid",
    )
    assert (m.amount, m.refunded_amount, m.phone) == (Decimal("139.14"), Decimal(0), None)
    # "2026-11-01 08:01:00" written in China Standard Time is 00:01 UTC
    assert m.ordered_at == T0 + timedelta(minutes=1)
    assert m.updated_at == T0 + timedelta(hours=1)
    assert m.lines == [
        {"sku": "YZ-1", "product_name": "冻干猫粮", "quantity": 1, "unit_price": Decimal("139.14")}
    ]
    assert youzan.trade_time("2026-11-01 08:00:00", "x") == datetime(2026, 11, 1, tzinfo=UTC)
    # no yz_open_id: the fan id; no fan either: the phone when in clear, never a cipher text
    assert youzan.from_trade(wire(youzan_trade(2, T0, open_id=None))).customer_id == (
        "fans:19582175287"
    )
    clear = youzan.from_trade(
        wire(youzan_trade(3, T0, open_id=None, fans_id=0, phone="13800138000"))
    )
    assert (clear.customer_id, clear.phone) == ("phone:13800138000", "13800138000")
    with pytest.raises(Unmappable, match="no yz_open_id, fans_id or phone"):
        youzan.from_trade(wire(youzan_trade(4, T0, open_id=None, fans_id=0)))
    # refunds by refund_state: 12 full, 2 partial (amounts from refund_order), 1/11 under way
    full = youzan.from_trade(wire(youzan_trade(5, T0, status="TRADE_CLOSED", refund_state=12)))
    assert (full.status, full.refunded_amount) == ("refunded", Decimal("139.14"))
    part = youzan.from_trade(wire(youzan_trade(6, T0, refund_state=2, refunds=("20.00", "9.14"))))
    assert (part.status, part.refunded_amount) == ("partially_refunded", Decimal("29.14"))
    assert youzan.from_trade(wire(youzan_trade(7, T0, refund_state=11))).status == "paid"
    with pytest.raises(Unmappable, match="without refund_order"):
        youzan.from_trade(wire(youzan_trade(8, T0, refund_state=2)))
    too_much = youzan.from_trade(wire(youzan_trade(9, T0, refund_state=2, refunds=("999.00",))))
    assert too_much.refunded_amount == Decimal("139.14")  # never more than the order
    # closed after payment without a full refund: cancelled; closed unpaid, unpaid: skipped
    assert youzan.from_trade(wire(youzan_trade(10, T0, status="TRADE_CLOSED"))).status == (
        "cancelled"
    )
    with pytest.raises(Skip, match="closed unpaid"):
        youzan.from_trade(wire(youzan_trade(11, T0, status="TRADE_CLOSED", paid=False)))
    with pytest.raises(Skip, match="not paid"):
        youzan.from_trade(wire(youzan_trade(12, T0, status="WAIT_BUYER_PAY", paid=False)))
    assert youzan.from_trade(
        wire(youzan_trade(13, T0, status="WAIT_SELLER_SEND_GOODS"))
    ).status == ("paid")
    bad = youzan_trade(14, T0)
    bad["order_info"]["update_time"] = "2026-11-01T08:00:00Z"
    with pytest.raises(Unmappable, match="yyyy-MM-dd HH:mm:ss"):
        youzan.from_trade(wire(bad))
    with pytest.raises(Unmappable, match="not a decimal"):
        youzan.from_trade(youzan_trade(15, T0) | {"pay_info": {"payment": 139.14}})


def test_event_sign() -> None:
    # computed independently of this code (coreutils md5sum over the concatenation)
    body = (
        b'{"client_id":"3f8a6b1c2d4e5f60","id":"E20261101000001","type":"trade_TradePaid",'
        b'"msg":"%7B%7D","test":false}'
    )
    assert youzan.event_sign(CLIENT_ID, body, CLIENT_SECRET) == "4f219232243ff7ac0151e231c08ecd56"
    secret = youzan.push_secret(CLIENT_ID, CLIENT_SECRET)
    good = {"event-sign": "4F219232243FF7AC0151E231C08ECD56"}  # hex case does not matter
    assert verify("youzan", secret, body, good)
    assert not verify("youzan", secret, body + b" ", good)
    assert not verify("youzan", youzan.push_secret("other", CLIENT_SECRET), body, good)
    assert not verify("youzan", youzan.push_secret(CLIENT_ID, ""), body, good)
    assert not verify("youzan", secret, body, {})
    assert not verify("shopify", secret, body, good)


# -- pull ----------------------------------------------------------------------------------
class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def add_youzan(store: Store, settings: Settings, fake: FakeYouzan, page_size: int = 10) -> None:
    uc.add_connector(
        store,
        settings,
        uc.ConnectorIn(
            kind="youzan",
            name="yz",
            api_base_url=fake.url,
            webhook_secret=CLIENT_SECRET,
            access_token=fake.token,
            consumer_key=CLIENT_ID,
            page_size=page_size,
        ),
    )


def reference(ref: Store, trades: list[dict[str, Any]]) -> dict[str, Any]:
    """Every paid trade recorded once, straight through record_order_events."""
    loyalty = program_loyalty("CNY")
    events = []
    for t in sorted(trades, key=lambda t: t["order_info"]["update_time"]):
        try:
            events.append(order_event(youzan.from_trade(wire(t)).event("yz"), currency="CNY"))
        except Skip:
            continue
    with ref.begin() as conn:
        record_order_events(conn, events, loyalty=loyalty(conn))
    return snapshot(ref, "yz")


def same(got: dict[str, Any], ref: dict[str, Any]) -> bool:
    return got["orders"] == ref["orders"] and got["points"] == ref["points"]


def test_incremental_pull_windows_overlap(
    store: Store, settings: Settings, ref_store: Store
) -> None:
    settings = settings.model_copy(update={"currency": "CNY"})
    loyalty = program_loyalty("CNY")
    clock = Clock(NOW)
    with FakeYouzan() as fake:
        for i in range(25):  # spread over two days, some sharing a second
            fake.put(youzan_trade(i, T0 + timedelta(hours=2 * i, seconds=i % 2)))
        fake.put(youzan_trade(25, T0 + timedelta(hours=5), status="WAIT_BUYER_PAY", paid=False))
        add_youzan(store, settings, fake)
        r1 = uc.sync(store, settings, "yz", loyalty=loyalty, clock=clock)
        assert (r1.pulled, r1.ignored, r1.since) == (25, 1, None)
        # the first sync reaches back 90 days, one day a window, pages of 10
        assert fake.asked[0]["start_update"] == cst(NOW - timedelta(days=90))
        assert all(a["page_size"] == 10 for a in fake.asked)
        assert r1.watermark == NOW  # the last window's end: all of it recorded
        # later: a partial refund, a full refund (closed), a cancellation, the unpaid one
        # paid, a new trade
        later = NOW + timedelta(minutes=1)
        fake.put(youzan_trade(3, later, refund_state=2, refunds=("39.14",)))
        fake.put(
            youzan_trade(4, later + timedelta(seconds=1), status="TRADE_CLOSED", refund_state=12)
        )
        fake.put(youzan_trade(5, later + timedelta(seconds=2), status="TRADE_CLOSED"))
        fake.put(youzan_trade(25, later + timedelta(seconds=3)))
        fake.put(youzan_trade(26, later + timedelta(seconds=4)))
        clock.now = NOW + timedelta(minutes=10)
        n = len(fake.asked)
        r2 = uc.sync(store, settings, "yz", loyalty=loyalty, clock=clock)
        # asked from the mark less the 300 s overlap, to the sync's time: one window
        assert r2.since == NOW - timedelta(seconds=300)
        assert fake.asked[n] == {
            "start_update": cst(NOW - timedelta(seconds=300)),
            "end_update": cst(NOW + timedelta(minutes=10)),
            "page_no": 1,
            "page_size": 10,
        }
        assert r2.pulled == 5
        got = snapshot(store, "yz")
        assert same(got, reference(ref_store, list(fake.trades.values())))
        o = got["orders"]
        assert o["E2026110100000003"][1:4] == (
            "partially_refunded",
            Decimal("139.14"),
            Decimal("39.14"),
        )
        assert o["E2026110100000004"][1] == "refunded"
        assert o["E2026110100000005"][1] == "cancelled"
        assert o["E2026110100000025"][1] == "paid"
        # again with nothing new: nothing changes
        clock.now += timedelta(minutes=10)
        uc.sync(store, settings, "yz", loyalty=loyalty, clock=clock)
        assert snapshot(store, "yz") == got
        shown = uc.show_connector(store, "yz")
        assert shown["credentials"] == {
            "access_token": "set",
            "consumer_key": "set",
            "webhook_secret": "set",
        }


class Crash(Exception):
    pass


def test_kill_and_resume_and_trades_moving_while_paged(
    store: Store, settings: Settings, ref_store: Store
) -> None:
    settings = settings.model_copy(update={"currency": "CNY"})
    loyalty = program_loyalty("CNY")
    clock = Clock(T0 + timedelta(hours=12))
    with FakeYouzan() as fake:
        for i in range(47):  # one window (the first sync's last day), 10 pages of 5
            fake.put(youzan_trade(i, T0 + timedelta(minutes=10 * i)))
        add_youzan(store, settings, fake, page_size=5)

        def crash_after_3_pages(r: uc.SyncResult) -> None:
            if r.pages >= 90 + 3:  # 89 empty windows, then pages of the last
                raise Crash

        with pytest.raises(Crash):
            uc.sync(
                store,
                settings,
                "yz",
                loyalty=loyalty,
                clock=clock,
                progress=crash_after_3_pages,
                pages_per_unit=1,
            )
        # pages committed, but the mark stays before the unfinished window
        assert len(snapshot(store, "yz")["orders"]) >= 10
        mark = uc.show_connector(store, "yz")["watermark"]
        assert mark is not None and datetime.fromisoformat(mark) < T0

        # resume; while page 7 of the window is served, a trade already read (the newest:
        # page 1) is updated again, out of the window — every later trade moves one place
        # up, and the one at page 7's start (not recorded yet) would be skipped
        moved: list[bool] = []

        def move_a_trade(req: dict[str, Any]) -> None:
            if req["page_no"] == 7 and not moved:
                moved.append(True)
                fake.put(youzan_trade(46, clock.now - timedelta(seconds=60), refund_state=12,
                                      status="TRADE_CLOSED"))  # fmt: skip

        fake.before_page = move_a_trade
        n = len(fake.asked)
        uc.sync(store, settings, "yz", loyalty=loyalty, clock=clock)
        firsts = [json.dumps(a) for a in fake.asked[n:] if a["page_no"] == 1]
        assert moved and len(firsts) > len(set(firsts))  # the moved window was asked again
        fake.before_page = None
        got = snapshot(store, "yz")
        assert len(got["orders"]) == 47
        assert same(got, reference(ref_store, list(fake.trades.values())))
        assert got["orders"]["E2026110100000046"][1] == "refunded"


def test_errors_name_no_token(store: Store, settings: Settings) -> None:
    with FakeYouzan() as fake:
        add_youzan(store, settings, fake)
        fake.token = "another"
        with pytest.raises(PlatformError, match="4203"):
            uc.sync(store, settings, "yz", clock=Clock(NOW))
        fake.token = "yz_token_test"
        fake.gateway_error_on = {fake.requests + 1}
        with pytest.raises(PlatformError, match="5001"):
            uc.sync(store, settings, "yz", clock=Clock(NOW))
        # a 429 is waited out for its Retry-After and asked again
        fake.gateway_error_on = set()
        fake.rate_limit_on = {fake.requests + 2: "1"}
        waits: list[float] = []
        r = uc.sync(store, settings, "yz", clock=Clock(NOW), sleep=waits.append)
        assert waits == [1.0] and r.pages == 90  # 90 days back, a window a day
        fake.fail_on = set(range(fake.requests + 1, fake.requests + 100))
        with pytest.raises(PlatformError) as failed:
            uc.sync(store, settings, "yz", clock=Clock(NOW), sleep=lambda s: None)
        shown = uc.show_connector(store, "yz")
        text = json.dumps(shown) + failed.value.message + json.dumps(failed.value.details)
        assert shown["last_error"].startswith("connector.") and "yz_token_test" not in text


# -- push messages through the production app ----------------------------------------------
@pytest.fixture
def client(settings: Settings, store: Store) -> Iterator[TestClient]:
    from huitouke.service import create_app

    cny = settings.model_copy(update={"currency": "CNY"})
    with TestClient(create_app(cny, store), raise_server_exceptions=False) as c:
        yield c


def add_rest(client: TestClient, keys: Keys, url: str = "http://127.0.0.1:9") -> None:
    r = client.post(
        "/v1/connectors",
        json={
            "kind": "youzan",
            "name": "yz",
            "api_base_url": url,
            "webhook_secret": CLIENT_SECRET,
            "access_token": "yz_token_test",
            "consumer_key": CLIENT_ID,
        },
        headers=keys.h("admin"),
    )
    assert r.status_code == 201, r.text
    assert CLIENT_SECRET not in r.text and "yz_token_test" not in r.text


def send(client: TestClient, body: bytes, headers: dict[str, str]) -> Any:
    return delivered(
        client, client.post("/v1/connectors/yz/webhook", content=body, headers=headers)
    )


def inbox_count(store: Store) -> int:
    with store.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(connector_inbox)).scalar_one())


def test_push_bad_signature_is_401_and_stores_nothing(
    client: TestClient, keys: Keys, store: Store
) -> None:
    add_rest(client, keys)
    trade = youzan_trade(1, T0 + timedelta(hours=1))
    for kw in ({"secret": "wrong"}, {"client_id": "other"}, {"sign": False}):
        body, headers = push(trade, "trade_TradePaid", **kw)  # type: ignore[arg-type]
        r = send(client, body, headers)
        assert r.status_code == 401 and r.json()["error"]["code"] == "connector.bad_signature"
    # signed over other bytes than those sent
    body, headers = push(trade, "trade_TradePaid")
    assert send(client, body.replace(b"139.14", b"1.00"), headers).status_code == 401
    assert inbox_count(store) == 0 and snapshot(store, "yz")["orders"] == {}


def test_push_duplicates_out_of_order_unmappable(
    client: TestClient, keys: Keys, store: Store
) -> None:
    add_rest(client, keys)
    t1, t2 = T0 + timedelta(hours=1), T0 + timedelta(hours=2)
    paid = youzan_trade(1, t1)
    refunded = youzan_trade(1, t2, refund_state=2, refunds=("40.00",))
    r = send(client, *push(paid, "trade_TradePaid"))
    assert r.status_code == 200 and r.json()["status"] == "applied", r.text
    assert (r.json()["code"], r.json()["msg"]) == (0, "success")  # Youzan's acknowledgement
    first = snapshot(store, "yz")
    assert first["orders"]["E2026110100000001"][1] == "paid"
    r = send(client, *push(paid, "trade_TradePaid"))  # Youzan resends it
    assert r.json()["replayed"] is True and snapshot(store, "yz") == first
    assert send(client, *push(refunded, "trade_TradeSuccess")).json()["status"] == "applied"
    after = snapshot(store, "yz")
    assert after["orders"]["E2026110100000001"][1:4] == (
        "partially_refunded",
        Decimal("139.14"),
        Decimal("40.00"),
    )
    # an older state arriving late, under another type: stored, changes nothing
    older = youzan_trade(1, t1 + timedelta(minutes=5))
    assert send(client, *push(older, "trade_TradeSellerShip")).json()["status"] == "applied"
    assert snapshot(store, "yz") == after
    # without an Event-Type header the body's type is the topic
    body, headers = push(youzan_trade(4, t2), "trade_TradePaid")
    headers.pop("Event-Type")
    assert send(client, body, headers).json()["status"] == "applied"
    rows = client.get("/v1/connectors/yz/inbox", headers=keys.h("read")).json()
    assert [r["topic"] for r in rows if r["object_id"] == "order:E2026110100000004"] == [
        "trade_TradePaid"
    ]
    # Youzan's test push, and a type we take no state from: stored, ignored
    assert send(client, *push(None, "trade_TradePaid", test=True)).json()["status"] == "ignored"
    memo = youzan_trade(2, t2)
    assert send(client, *push(memo, "trade_refund_RefundCreated")).json()["status"] == "ignored"
    # a buyer known by nothing: failed, visible with its reason, retried after a fix
    anon = youzan_trade(3, t2, open_id=None, fans_id=0)
    r = send(client, *push(anon, "trade_TradePaid"))
    assert r.status_code == 200 and r.json()["status"] == "failed"
    junk = send(client, b"{not json", push(None, "trade_TradePaid")[1] | {
        "Event-Sign": youzan.event_sign(CLIENT_ID, b"{not json", CLIENT_SECRET)})  # fmt: skip
    assert junk.status_code == 200 and junk.json()["status"] == "failed"
    failed = client.get("/v1/connectors/yz/inbox?failed=true", headers=keys.h("read")).json()
    assert len(failed) == 2
    assert any("no yz_open_id, fans_id or phone" in (f["reason"] or "") for f in failed)
    rows = client.get("/v1/connectors/yz/inbox", headers=keys.h("read")).json()
    assert rows[[r["object_id"] for r in rows].index("order:E2026110100000001") + 1][
        "reason"
    ].startswith("older than the delivery of")
    out = client.post("/v1/connectors/yz/retry", headers=keys.h("operator")).json()
    assert out == {"applied": 0, "ignored": 0, "failed": 2, "pending": 0}
    assert snapshot(store, "yz")["orders"].keys() == {"E2026110100000001", "E2026110100000004"}


def test_cli_add_and_sync_youzan(store_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
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
        with FakeYouzan(token="yz_from_stdin") as fake:
            now = datetime.now(UTC).replace(microsecond=0)
            for i in range(7):
                fake.put(youzan_trade(i, now - timedelta(hours=1, minutes=i)))
            r = runner.invoke(
                app,
                ["connectors", "add", "youzan", "yzcli", "--api-base-url", fake.url,
                 "--consumer-key", CLIENT_ID, "--webhook-secret", CLIENT_SECRET],
                input="yz_from_stdin\n",
            )  # fmt: skip
            assert r.exit_code == 0, r.output
            shown = runner.invoke(app, ["connectors", "show", "yzcli"]).output
            assert "yz_from_stdin" not in shown and CLIENT_SECRET not in shown
            r = runner.invoke(app, ["connectors", "sync", "yzcli", "--json"])
            assert r.exit_code == 0, r.output
            assert json.loads(r.stdout)["pulled"] == 7
    finally:
        get_settings.cache_clear()


@hsettings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_replayed_push_stream_changes_nothing(
    tmp_path_factory: pytest.TempPathFactory, data: st.DataObject
) -> None:
    """A stream of push messages (states of a few trades, in any order, with repeats)
    applied, then replayed in another order: nothing changes; refunds within the amount."""
    from huitouke.core.secretbox import new_key

    path = tmp_path_factory.mktemp("yzreplay") / "s.db"
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
                kind="youzan",
                name="yz",
                api_base_url="http://127.0.0.1:9",
                webhook_secret=CLIENT_SECRET,
                access_token="t",
                consumer_key=CLIENT_ID,
            ),
        )
        states = st.tuples(
            st.integers(0, 2),
            st.integers(0, 5),
            st.sampled_from(["TRADE_PAID", "TRADE_SUCCESS", "TRADE_CLOSED", "WAIT_BUYER_PAY"]),
            st.sampled_from([(0, ()), (2, ("20.00",)), (2, ("90.00", "90.00")), (12, ())]),
        )
        stream = data.draw(st.lists(states, min_size=1, max_size=12))

        def deliver(items: list[Any]) -> None:
            for i, minute, status, (refund_state, refunds) in items:
                trade = youzan_trade(
                    i,
                    T0 + timedelta(minutes=minute),
                    status=status,
                    refund_state=refund_state,
                    refunds=refunds,
                    paid=status != "WAIT_BUYER_PAY",
                )
                body, headers = push(trade, "trade_TradeSuccess")
                receipt = uc.receive_webhook(
                    store, settings, "yz", {k.lower(): v for k, v in headers.items()}, body
                )
                uc.apply_inbox(
                    store, settings, "yz", ids=[receipt.inbox_id], loyalty=program_loyalty("CNY")
                )

        deliver(stream)
        once = snapshot(store, "yz")
        inbox_once = len(uc.inbox(store, "yz", limit=1000))
        deliver(data.draw(st.permutations(stream)))
        assert snapshot(store, "yz") == once
        assert len(uc.inbox(store, "yz", limit=1000)) == inbox_once
        for o in once["orders"].values():
            assert 0 <= o[3] <= o[2]
    finally:
        store.dispose()

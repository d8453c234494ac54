"""The Douyin 抖店 connector: the request and push signatures against vectors computed
independently (coreutils ``md5sum``, ``openssl dgst -sha256 -hmac``; the platform publishes
no worked example), shop orders mapped (pure), pulls from the fake open platform into the
real store (SQLite and PostgreSQL) — windows, paging, overlap, flow control, kill-and-resume,
an order updated while its window is paged — and push messages through the production app:
bad sign, the acknowledgement, the order fetched by the next sync, duplicates, a property
test replaying a stream."""

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
from huitouke.connectors import douyin
from huitouke.connectors.douyin_pull import DouyinPuller
from huitouke.connectors.http import JsonClient
from huitouke.connectors.model import PlatformError, Skip, Unmappable
from huitouke.connectors.signatures import verify
from huitouke.connectors.tables import connector_inbox
from huitouke.settings import Settings
from huitouke.store.db import Store

from .conftest import Keys, program_loyalty, snapshot
from .douyin_fake import (
    APP_KEY,
    APP_SECRET,
    REFRESH,
    TOKEN,
    FakeDouyin,
    douyin_order,
    order_message,
    push,
    unix,
)
from .fakes import T0

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

pytestmark = pytest.mark.timeout(120)
NOW = T0 + timedelta(days=2, hours=6)


def wire(o: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(o), parse_float=Decimal)


# -- signatures and mapping (pure) ----------------------------------------------------------
def test_request_and_push_signatures() -> None:
    # vectors computed independently of this code: printf '%s' "<text>" | md5sum, and
    # | openssl dgst -sha256 -hmac "<app_secret>"
    pj = douyin.param_json(
        {
            "update_time_start": 1761955200,
            "update_time_end": 1762041600,
            "order_by": "update_time",
            "order_asc": False,
            "page": 0,
            "size": 100,
        }
    )
    assert pj == (
        '{"order_asc":false,"order_by":"update_time","page":0,"size":100,'
        '"update_time_end":1762041600,"update_time_start":1761955200}'
    )
    args = (APP_KEY, APP_SECRET, "order.searchList", pj, "2026-11-02 08:00:00")
    assert douyin.sign(*args) == "0108bf651e3a8cead8f1372c853f1263"
    assert douyin.sign(*args, sign_method="hmac-sha256") == (
        "9d9784a08d618ef0f6315104e724fe7921a2ef8253e07d5e4c0cfa162686814c"
    )
    with pytest.raises(ValueError):
        douyin.sign(*args, sign_method="sha1")
    assert (
        douyin.param_json({"b": {"z": 1, "a": "抖"}, "a": [2]}) == '{"a":[2],"b":{"a":"抖","z":1}}'
    )
    body = (
        b'[{"tag":"101","msg_id":"7290001","data":"{\\"p_id\\":4900000000000000001,'
        b'\\"update_time\\":1762000000}"}]'
    )
    assert douyin.push_sign(APP_KEY, body, APP_SECRET) == "16f562cf81dcf1fedd8855bb39d196ab"
    assert douyin.push_sign(APP_KEY, body, APP_SECRET, "hmac-sha256") == (
        "68c2c3286f75352c51cb9794883291b67cedba2911ebb1869070bfc01c9f7a7e"
    )
    secret = douyin.push_secret(APP_KEY, APP_SECRET)
    md5 = {"event-sign": "16F562CF81DCF1FEDD8855BB39D196AB", "app-id": APP_KEY}
    assert verify("douyin", secret, body, md5)  # no sign-method: md5; hex case ignored
    sha = {
        "event-sign": "68c2c3286f75352c51cb9794883291b67cedba2911ebb1869070bfc01c9f7a7e",
        "sign-method": "hmac-sha256",
    }
    assert verify("douyin", secret, body, sha)
    assert not verify("douyin", secret, body, {**sha, "sign-method": "md5"})
    assert not verify("douyin", secret, body + b" ", md5)
    assert not verify("douyin", secret, body, {**md5, "app-id": "another"})
    assert not verify("douyin", douyin.push_secret(APP_KEY, "wrong"), body, md5)
    assert not verify("douyin", secret, body, {"app-id": APP_KEY})
    assert not verify("douyin", secret, body, {**md5, "sign-method": "sha1"})
    # Pinduoduo publishes no signed HTTP push: nothing verifies for it
    assert not verify("pinduoduo", secret, body, md5)


def test_order_mapping() -> None:
    m = douyin.from_order(wire(douyin_order(1, T0 + timedelta(hours=1))))
    assert (m.order_id, m.customer_id, m.status, m.amount, m.currency) == (
        "4900000000000000001",
        "1@#dyOpenIdAbCdEf1",
        "paid",
        Decimal("88.00"),
        "CNY",
    )
    assert m.ordered_at == T0 + timedelta(minutes=1) and m.updated_at == T0 + timedelta(hours=1)
    assert m.lines[0] == {
        "sku": "DY-0",
        "product_name": "云南小粒咖啡豆 500g",
        "quantity": 1,
        "unit_price": Decimal("44.00"),
    }
    odd = douyin.from_order(wire(douyin_order(2, T0, pay_amount=1999)))  # fen → yuan, exact
    assert odd.amount == Decimal("19.99")
    part = douyin.from_order(wire(douyin_order(3, T0, status=5, refunded_skus=1)))
    assert (part.status, part.refunded_amount) == ("partially_refunded", Decimal("44.00"))
    full = douyin.from_order(wire(douyin_order(4, T0, status=4, refunded_skus=2)))
    assert (full.status, full.refunded_amount) == ("refunded", Decimal("88.00"))
    cancelled = douyin.from_order(wire(douyin_order(5, T0, status=4)))
    assert (cancelled.status, cancelled.refunded_amount) == ("cancelled", Decimal(0))
    for state, paid in ((1, False), (4, False)):
        with pytest.raises(Skip):
            douyin.from_order(wire(douyin_order(6, T0, status=state, paid=paid)))
    for state in (105, 101, 3):
        assert douyin.from_order(wire(douyin_order(7, T0, status=state))).status == "paid"
    with pytest.raises(Unmappable, match="unknown order_status 42"):
        douyin.from_order(wire(douyin_order(8, T0, status=42)))
    old = douyin_order(9, T0, open_id=None)
    assert douyin.from_order(wire(old | {"open_id": "xyz"})).customer_id == "open:xyz"
    with pytest.raises(Unmappable, match="no doudian_open_id or open_id"):
        douyin.from_order(wire(old))
    with pytest.raises(Unmappable, match="pay_amount"):
        douyin.from_order(douyin_order(10, T0) | {"pay_amount": 88.0})
    no_code = douyin_order(11, T0)
    no_code["sku_order_list"][0]["code"] = ""  # out_sku_id is 0: unset
    assert douyin.from_order(wire(no_code)).lines[0]["sku"] == "product-3500000000-1700000000"
    no_code["sku_order_list"][0]["out_sku_id"] = 880012
    assert douyin.from_order(wire(no_code)).lines[0]["sku"] == "880012"


# -- pull ----------------------------------------------------------------------------------
class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def add_douyin(
    store: Store,
    settings: Settings,
    fake: FakeDouyin,
    page_size: int = 10,
    refresh_token: str | None = None,
) -> None:
    uc.add_connector(
        store,
        settings,
        uc.ConnectorIn(
            kind="douyin",
            name="dy",
            api_base_url=fake.url,
            webhook_secret=APP_SECRET,
            access_token=fake.token,
            consumer_key=APP_KEY,
            page_size=page_size,
            refresh_token=refresh_token,
        ),
    )


def reference(ref: Store, orders: list[dict[str, Any]]) -> dict[str, Any]:
    """Every paid order recorded once, straight through record_order_events."""
    loyalty = program_loyalty("CNY")
    events = []
    for o in sorted(orders, key=lambda o: o["update_time"]):
        try:
            events.append(order_event(douyin.from_order(wire(o)).event("dy"), currency="CNY"))
        except Skip:
            continue
    with ref.begin() as conn:
        record_order_events(conn, events, loyalty=loyalty(conn))
    return snapshot(ref, "dy")


def same(got: dict[str, Any], ref: dict[str, Any]) -> bool:
    return got["orders"] == ref["orders"] and got["points"] == ref["points"]


def test_incremental_pull_windows_flow_control(
    store: Store, settings: Settings, ref_store: Store
) -> None:
    settings = settings.model_copy(update={"currency": "CNY"})
    loyalty = program_loyalty("CNY")
    clock = Clock(NOW)
    waits: list[float] = []
    with FakeDouyin() as fake:
        for i in range(30):  # over two days and a quarter, some sharing a second
            fake.put(douyin_order(i, T0 + timedelta(hours=1.8 * i, seconds=i % 2)))
        fake.put(douyin_order(30, T0 + timedelta(hours=3), status=1, paid=False))
        add_douyin(store, settings, fake)
        fake.limited_on = {4}
        r1 = uc.sync(store, settings, "dy", loyalty=loyalty, clock=clock, sleep=waits.append)
        assert (r1.pulled, r1.ignored, r1.since) == (30, 1, None)
        assert waits == [1.0]  # flow control waited out, then asked again
        assert fake.asked[0]["update_time_start"] == unix(NOW - timedelta(days=90))
        for a in fake.asked:  # windows of at most a day, pages of 10, newest first
            assert 0 < a["update_time_end"] - a["update_time_start"] <= 86_400
            assert (a["size"], a["order_by"], a["order_asc"]) == (10, "update_time", False)
        assert all(q["sign_method"] == "hmac-sha256" for q in fake.queries)
        assert r1.watermark == NOW
        later = NOW + timedelta(minutes=2)
        fake.put(douyin_order(3, later, status=5, refunded_skus=1))
        fake.put(douyin_order(4, later + timedelta(seconds=1), status=4, refunded_skus=2))
        fake.put(douyin_order(5, later + timedelta(seconds=2), status=4))
        fake.put(douyin_order(30, later + timedelta(seconds=3)))
        clock.now = NOW + timedelta(minutes=10)
        n = len(fake.asked)
        r2 = uc.sync(store, settings, "dy", loyalty=loyalty, clock=clock)
        assert r2.since == NOW - timedelta(seconds=300) and r2.pulled == 4
        assert fake.asked[n]["update_time_start"] == unix(NOW - timedelta(seconds=300))
        got = snapshot(store, "dy")
        assert same(got, reference(ref_store, list(fake.orders.values())))
        o = got["orders"]
        assert o["4900000000000000003"][1:4] == (
            "partially_refunded",
            Decimal("88.00"),
            Decimal("44.00"),
        )
        assert o["4900000000000000004"][1] == "refunded"
        assert o["4900000000000000005"][1] == "cancelled"
        clock.now += timedelta(minutes=10)
        uc.sync(store, settings, "dy", loyalty=loyalty, clock=clock)
        assert snapshot(store, "dy") == got  # nothing new: nothing changes


class Crash(Exception):
    pass


def test_kill_and_resume_and_orders_moving_while_paged(
    store: Store, settings: Settings, ref_store: Store
) -> None:
    settings = settings.model_copy(update={"currency": "CNY"})
    loyalty = program_loyalty("CNY")
    clock = Clock(T0 + timedelta(hours=12))
    with FakeDouyin() as fake:
        for i in range(47):  # in the first sync's last window: 10 pages of 5
            fake.put(douyin_order(i, T0 + timedelta(minutes=10 * i)))
        add_douyin(store, settings, fake, page_size=5)

        def crash_after_3_pages(r: uc.SyncResult) -> None:
            if r.pages >= 89 + 3:  # 89 empty windows, then pages of the last
                raise Crash

        with pytest.raises(Crash):
            uc.sync(
                store,
                settings,
                "dy",
                loyalty=loyalty,
                clock=clock,
                progress=crash_after_3_pages,
                pages_per_unit=1,
            )
        assert len(snapshot(store, "dy")["orders"]) >= 10
        mark = uc.show_connector(store, "dy")["watermark"]
        assert mark is not None and datetime.fromisoformat(mark) < T0
        # resume; while page 6 is served, the newest order (page 0, read) is updated out of
        # the window: every later order moves one place up
        moved: list[bool] = []

        def move_an_order(req: dict[str, Any]) -> None:
            if req["page"] == 6 and not moved:
                moved.append(True)
                fake.put(
                    douyin_order(46, clock.now + timedelta(minutes=1), status=4, refunded_skus=2)
                )

        fake.before_page = move_an_order
        n = len(fake.asked)
        uc.sync(store, settings, "dy", loyalty=loyalty, clock=clock)
        firsts = [json.dumps(a) for a in fake.asked[n:] if a["page"] == 0]
        assert moved and len(firsts) > len(set(firsts))  # the moved window was asked again
        fake.before_page = None
        clock.now += timedelta(minutes=5)
        uc.sync(store, settings, "dy", loyalty=loyalty, clock=clock)
        got = snapshot(store, "dy")
        assert len(got["orders"]) == 47
        assert same(got, reference(ref_store, list(fake.orders.values())))
        assert got["orders"]["4900000000000000046"][1] == "refunded"


def test_md5_requests_errors_name_no_token(store: Store, settings: Settings) -> None:
    with FakeDouyin() as fake:
        for i in range(3):
            fake.put(douyin_order(i, T0 + timedelta(minutes=i)))
        puller = DouyinPuller(
            JsonClient("douyin", fake.url),
            APP_KEY,
            APP_SECRET,
            TOKEN,
            sign_method="md5",
            now=lambda: T0 + timedelta(hours=1),
            backfill=timedelta(hours=2),
        )
        assert sum(len(p.orders) for p in puller.pages(None)) == 3
        assert fake.queries[-1]["sign_method"] == "md5"
        assert puller.order("4900000000000000001") is not None
        bad = DouyinPuller(JsonClient("douyin", fake.url), APP_KEY, "wrong", TOKEN)
        with pytest.raises(PlatformError, match="40002"):
            list(bad.pages(None))
        add_douyin(store, settings, fake)
        fake.expire()  # and the connector holds no refresh token
        with pytest.raises(PlatformError, match="refresh token") as no_refresh:
            uc.sync(store, settings, "dy", clock=Clock(NOW))
        assert fake.refused == ["isv.access-token-expired"] and not fake.refreshes
        assert "--refresh-token" in no_refresh.value.message
        assert "refresh_token" in no_refresh.value.message_zh
        fake.token = TOKEN
        fake.fail_on = set(range(fake.requests + 1, fake.requests + 50))
        with pytest.raises(PlatformError) as failed:
            uc.sync(store, settings, "dy", clock=Clock(NOW), sleep=lambda s: None)
        shown = uc.show_connector(store, "dy")
        text = json.dumps(shown) + failed.value.message + json.dumps(failed.value.details)
        assert shown["last_error"].startswith("connector.") and TOKEN not in text


# -- the shop's access token ------------------------------------------------------------------
def stored_credentials(store: Store, settings: Settings) -> tuple[dict[str, str], dict[str, str]]:
    """The connector's credentials as stored (sealed) and opened."""
    from huitouke.connectors import repo
    from huitouke.core.secretbox import SecretBox

    with store.connect() as conn:
        row = repo.get_connector(conn, "dy")
    assert row is not None
    box = SecretBox.from_text(settings.encryption_keys.get_secret_value())
    sealed = dict(row["credentials"])
    return sealed, {k: box.open(v, context=f"connector:dy:{k}") for k, v in sealed.items()}


def test_token_refreshed_on_expiry_and_ahead_stored_sealed(
    store: Store, settings: Settings
) -> None:
    settings = settings.model_copy(update={"currency": "CNY"})
    clock = Clock(NOW)
    with FakeDouyin(now=clock) as fake:
        for i in range(5):
            fake.put(douyin_order(i, T0 + timedelta(hours=i)))
        add_douyin(store, settings, fake, refresh_token=REFRESH)
        assert uc.show_connector(store, "dy")["credentials"]["refresh_token"] == "set"
        assert uc.sync(store, settings, "dy", clock=clock).pulled == 5
        assert not fake.refreshes  # a valid token is not refreshed
        # the token expires: the answer says so, the token is refreshed and the call repeated
        fake.expire()
        clock.now += timedelta(hours=1)
        fake.put(douyin_order(5, clock.now - timedelta(minutes=20)))
        r = uc.sync(store, settings, "dy", clock=clock)
        assert r.pulled >= 1 and "4900000000000000005" in snapshot(store, "dy")["orders"]
        assert fake.refused == ["isv.access-token-expired"]
        assert fake.refreshes == [{"grant_type": "refresh_token", "refresh_token": REFRESH}]
        assert fake.queries[-1]["access_token"] == fake.token != TOKEN
        sealed, opened = stored_credentials(store, settings)
        new_token, new_refresh = fake.token, opened["refresh_token"]
        assert opened["access_token"] == new_token != TOKEN and new_refresh != REFRESH
        assert datetime.fromisoformat(opened["access_token_expires_at"]) == clock.now + timedelta(
            days=7
        )
        assert new_token not in json.dumps(sealed) and new_refresh not in json.dumps(sealed)
        shown = json.dumps(uc.show_connector(store, "dy"))
        assert new_token not in shown and "access_token_expires_at" not in shown
        assert TOKEN not in json.dumps(fake.refreshes[-1])  # the refresh carries no token
        # 20 minutes before the new token's expiry: refreshed ahead, no call refused
        clock.now += timedelta(days=7) - timedelta(minutes=20)
        uc.sync(store, settings, "dy", clock=clock)
        assert len(fake.refreshes) == 2 and fake.refreshes[1]["refresh_token"] == new_refresh
        assert fake.refused == ["isv.access-token-expired"]
        _, again = stored_credentials(store, settings)
        assert again["access_token"] == fake.token != new_token
        # refreshed within its last hour, the old token was left an hour more; past it, the
        # stored new one serves without another refresh
        clock.now += timedelta(hours=2)
        uc.sync(store, settings, "dy", clock=clock)
        assert len(fake.refreshes) == 2 and fake.refused == ["isv.access-token-expired"]
        assert fake.queries[-1]["access_token"] == fake.token


def test_token_another_process_refreshed_and_refused_refresh(
    store: Store, settings: Settings
) -> None:
    settings = settings.model_copy(update={"currency": "CNY"})
    clock = Clock(NOW)
    with FakeDouyin(now=clock) as fake:
        fake.put(douyin_order(1, T0 + timedelta(hours=1)))
        add_douyin(store, settings, fake, refresh_token=REFRESH)
        with store.connect() as conn:
            from huitouke.connectors import repo

            row = repo.get_connector(conn, "dy")
        assert row is not None
        client = JsonClient("douyin", fake.url)
        first = uc._market_puller(settings, row, client, clock, store)
        second = uc._market_puller(settings, row, client, clock, store)
        assert isinstance(first, DouyinPuller) and isinstance(second, DouyinPuller)
        fake.expire()
        assert first.order("4900000000000000001") is not None
        assert len(fake.refreshes) == 1  # the old pair is now void
        # the second process still holds the old token: refused, it reads the stored one
        # instead of refreshing with a refresh token that no longer exists
        assert second.order("4900000000000000001") is not None
        assert len(fake.refreshes) == 1 and second.token == first.token == fake.token
        assert fake.refused == ["isv.access-token-expired", "isv.access-token-no-existed"]
        # a refresh token the platform refuses: authorise again, no secret in the error
        fake.expire()
        with fake.lock:
            fake.refresh_tokens.clear()
        with pytest.raises(PlatformError) as refused:
            uc.sync(store, settings, "dy", clock=clock)
        err = refused.value
        assert "authorise the shop again" in err.message and "重新授权" in err.message_zh
        assert err.details["platform_code"] == "50001"
        _, opened = stored_credentials(store, settings)
        text = err.message + err.message_zh + json.dumps(err.details)
        text += json.dumps(uc.show_connector(store, "dy"))
        assert opened["access_token"] not in text and opened["refresh_token"] not in text


def test_push_fetch_refreshes_the_token(client: TestClient, keys: Keys, store: Store) -> None:
    with FakeDouyin() as fake:
        order = douyin_order(3, T0 + timedelta(hours=2))
        fake.put(order)
        r = client.post(
            "/v1/connectors",
            json={
                "kind": "douyin",
                "name": "dy",
                "api_base_url": fake.url,
                "webhook_secret": APP_SECRET,
                "access_token": TOKEN,
                "consumer_key": APP_KEY,
                "refresh_token": REFRESH,
            },
            headers=keys.h("admin"),
        )
        assert r.status_code == 201, r.text
        assert REFRESH not in r.text and r.json()["credentials"]["refresh_token"] == "set"
        fake.expire()
        body, headers = push([order_message(order)])
        assert send(client, body, headers).status_code == 200
        r = client.post("/v1/connectors/dy/sync", headers=keys.h("operator"))
        assert r.status_code == 200, r.text
        assert "4900000000000000003" in snapshot(store, "dy")["orders"]
        assert len(fake.refreshes) == 1 and fake.refused == ["isv.access-token-expired"]


# -- push messages through the production app ----------------------------------------------
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
            "kind": "douyin",
            "name": "dy",
            "api_base_url": url,
            "webhook_secret": APP_SECRET,
            "access_token": TOKEN,
            "consumer_key": APP_KEY,
        },
        headers=keys.h("admin"),
    )
    assert r.status_code == 201, r.text
    assert APP_SECRET not in r.text and TOKEN not in r.text


def send(client: TestClient, body: bytes, headers: dict[str, str]) -> Any:
    return client.post("/v1/connectors/dy/webhook", content=body, headers=headers)


def inbox_count(store: Store) -> int:
    with store.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(connector_inbox)).scalar_one())


def test_push_bad_signature_is_401_and_stores_nothing(
    client: TestClient, keys: Keys, store: Store
) -> None:
    with FakeDouyin() as fake:
        add_rest(client, keys, fake.url)
        msg = order_message(douyin_order(1, T0 + timedelta(hours=1)))
        for kw in ({"secret": "wrong"}, {"app_key": "other"}, {"sign": False}):
            body, headers = push([msg], **kw)  # type: ignore[arg-type]
            r = send(client, body, headers)
            assert r.status_code == 401 and r.json()["error"]["code"] == "connector.bad_signature"
        body, headers = push([msg], method="hmac-sha256")
        headers["sign-method"] = "md5"  # the sign is not what the header says
        assert send(client, body, headers).status_code == 401
        body, headers = push([msg])
        assert send(client, body.replace(b"101", b"106"), headers).status_code == 401
        assert inbox_count(store) == 0 and snapshot(store, "dy")["orders"] == {}


def test_push_fetched_by_sync_duplicates_unmappable(
    client: TestClient, keys: Keys, store: Store, settings: Settings
) -> None:
    settings = settings.model_copy(update={"currency": "CNY"})
    with FakeDouyin() as fake:
        add_rest(client, keys, fake.url)
        paid = douyin_order(1, T0 + timedelta(hours=1))
        fake.put(paid)
        r = send(client, *push([order_message(paid)], method="hmac-sha256"))
        assert r.status_code == 200, r.text
        out = r.json()
        assert (out["code"], out["msg"], out["status"]) == (0, "success", "pending")
        assert snapshot(store, "dy")["orders"] == {}  # the order is fetched, not in the push
        r = send(client, *push([order_message(paid)], method="hmac-sha256"))  # resent
        assert r.json()["replayed"] is True
        # the check message sent when the URL is set names no order: stored, ignored
        r = send(client, *push([("0", {"msg": "verify"})]))
        assert r.json()["status"] == "ignored"
        batch = send(client, *push([("0", {"msg": str(k)}) for k in range(40)]))
        assert batch.status_code == 200 and batch.json()["status"] == "ignored"
        # one push naming two orders (a refund of the first, the second paid)
        refunded = douyin_order(1, T0 + timedelta(hours=2), status=5, refunded_skus=1)
        other = douyin_order(2, T0 + timedelta(hours=2))
        fake.put(refunded)
        fake.put(other)
        r = send(client, *push([order_message(refunded, "206"), order_message(other)]))
        assert r.json()["status"] == "pending"
        # an order the shop does not have: failed when fetched, visible, retryable
        ghost = douyin_order(9, T0 + timedelta(hours=2))
        send(client, *push([order_message(ghost, "100")]))
        # the next sync applies the pending pushes (fetching each order) before it pulls
        fake.orders.pop("4900000000000000002")  # (not listed: only the push brings it)
        fake.put(other | {"update_time": unix(T0 - timedelta(days=200))})
        r = uc.sync(store, settings, "dy", loyalty=program_loyalty("CNY"))
        assert r.inbox_applied == 2
        got = snapshot(store, "dy")["orders"]
        assert got["4900000000000000001"][1:4] == (
            "partially_refunded",
            Decimal("88.00"),
            Decimal("44.00"),
        )
        assert got["4900000000000000002"][1] == "paid"
        failed = client.get("/v1/connectors/dy/inbox?failed=true", headers=keys.h("read")).json()
        assert [f["object_id"] for f in failed] == ["order:4900000000000000009"]
        assert "50002" in (failed[0]["reason"] or "")
        fake.put(ghost)
        out = client.post("/v1/connectors/dy/retry", headers=keys.h("operator")).json()
        assert out["applied"] == 1 and out["failed"] == 0
        assert "4900000000000000009" in snapshot(store, "dy")["orders"]


@hsettings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_replayed_push_stream_changes_nothing(
    tmp_path_factory: pytest.TempPathFactory, data: st.DataObject
) -> None:
    """A stream of pushes about a few orders (paid, refunds of sub-orders, cancelled,
    unpaid; each fetched from the fake as the platform then had it) applied, then replayed
    in another order: nothing changes; refunds never exceed the order."""
    from huitouke.core.secretbox import new_key

    path = tmp_path_factory.mktemp("dyreplay") / "s.db"
    settings = Settings(
        database_url=f"sqlite:///{path}",
        encryption_keys=new_key(),
        timezone="Asia/Shanghai",
        currency="CNY",
    )
    store = Store(settings.database_url)
    store.migrate()
    states = st.tuples(
        st.integers(0, 2),
        st.integers(0, 5),
        st.sampled_from([(2, 0), (5, 1), (5, 2), (4, 0), (4, 2), (1, 0)]),
        st.sampled_from([8800, 1, 9999]),
    )
    drawn = data.draw(st.lists(states, min_size=1, max_size=10))
    stream = list({(i, minute): (i, minute, s, fen) for i, minute, s, fen in drawn}.values())
    try:
        with FakeDouyin() as fake:
            add_douyin(store, settings, fake)

            def deliver(items: list[Any]) -> None:
                for i, minute, (status, refunded), fen in items:
                    order = douyin_order(
                        i,
                        T0 + timedelta(minutes=minute),
                        status=status,
                        refunded_skus=refunded,
                        pay_amount=fen,
                        paid=status != 1,
                    )
                    fake.put(order)  # what the platform answers when the order is fetched
                    body, headers = push([order_message(order)])
                    receipt = uc.receive_webhook(
                        store, settings, "dy", {k.lower(): v for k, v in headers.items()}, body
                    )
                    uc.apply_inbox(
                        store,
                        settings,
                        "dy",
                        ids=[receipt.inbox_id],
                        loyalty=program_loyalty("CNY"),
                    )

            deliver(stream)
            once = snapshot(store, "dy")
            inbox_once = len(uc.inbox(store, "dy", limit=1000))
            deliver(data.draw(st.permutations(stream)))
            assert snapshot(store, "dy") == once
            assert len(uc.inbox(store, "dy", limit=1000)) == inbox_once
            for o in once["orders"].values():
                assert 0 <= o[3] <= o[2]
    finally:
        store.dispose()


def test_cli_add_and_sync_douyin(store_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
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
        with FakeDouyin(token="dy_from_stdin") as fake:
            now = datetime.now(UTC).replace(microsecond=0)
            for i in range(7):
                fake.put(douyin_order(i, now - timedelta(hours=1, minutes=i)))
            r = runner.invoke(
                app,
                ["connectors", "add", "douyin", "dycli", "--api-base-url", fake.url,
                 "--consumer-key", APP_KEY, "--webhook-secret", APP_SECRET],
                input="dy_from_stdin\n",
            )  # fmt: skip
            assert r.exit_code == 0, r.output
            shown = runner.invoke(app, ["connectors", "show", "dycli"]).output
            assert "dy_from_stdin" not in shown and APP_SECRET not in shown
            assert json.loads(shown)["kind"] == "douyin"
            r = runner.invoke(app, ["connectors", "sync", "dycli", "--json"])
            assert r.exit_code == 0, r.output
            assert json.loads(r.stdout)["pulled"] == 7
    finally:
        get_settings.cache_clear()

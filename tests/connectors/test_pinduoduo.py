"""The Pinduoduo 拼多多 connector: the request signature against a vector computed
independently (coreutils ``md5sum``; no worked example from PDD was found), orders mapped
(pure), and pulls from the fake PDD gateway into the real store (SQLite and PostgreSQL):
windows of at most 30 minutes, pages from the last to the first, the retry codes waited
out, kill-and-resume, an order updated while its window is paged, a property test replaying
states; no push verifies."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from huitouke.app import connectors as uc
from huitouke.app.orders import order_event, record_order_events
from huitouke.connectors import pinduoduo
from huitouke.connectors.http import JsonClient
from huitouke.connectors.model import PlatformError, Skip, Unmappable
from huitouke.connectors.pinduoduo_pull import PinduoduoPuller
from huitouke.errors import AuthError
from huitouke.settings import Settings
from huitouke.store.db import Store

from .conftest import program_loyalty, snapshot
from .fakes import T0
from .pdd_fake import CLIENT_ID, CLIENT_SECRET, TOKEN, FakePdd, pdd_order

pytestmark = pytest.mark.timeout(120)
NOW = T0 + timedelta(hours=6)


def wire(o: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(o), parse_float=Decimal)


def test_sign_and_no_push() -> None:
    # computed independently of this code: printf '%s' "<secret><sorted k+v><secret>" |
    # md5sum | tr a-f A-F
    params = {
        "type": "pdd.order.number.list.increment.get",
        "client_id": CLIENT_ID,
        "access_token": TOKEN,
        "timestamp": "1762000100",
        "data_type": "JSON",
        "version": "V1",
        "start_updated_at": "1761998200",
        "end_updated_at": "1762000000",
        "page": "1",
        "page_size": "100",
    }
    assert pinduoduo.sign(params, CLIENT_SECRET) == "147988B68F4051CA967B020F3EEE1A42"
    assert pinduoduo.sign({**params, "sign": "X", "empty": ""}, CLIENT_SECRET) == (
        "147988B68F4051CA967B020F3EEE1A42"
    )
    # PDD publishes no signed HTTP push: the webhook door accepts nothing for the kind
    with pytest.raises(AuthError) as refused:
        uc.accept_delivery("pdd", ("pinduoduo", "active", CLIENT_SECRET), {}, b"{}", T0)
    assert refused.value.code == "connector.bad_signature"


def test_order_mapping() -> None:
    m = pinduoduo.from_order(wire(pdd_order(1, T0 + timedelta(hours=1))))
    assert (m.order_id, m.customer_id, m.status, m.amount, m.currency) == (
        "261101-482910000000001",
        "address:#GKTB7s7wOxP/iHoVtQM9LrM0EXj6pJo6xT/cJJ9rjxCl2AYG1",
        "paid",
        Decimal("59.9"),
        "CNY",
    )
    # "2026-11-01 08:01:00" China Standard Time is 00:01 UTC
    assert m.ordered_at == T0 + timedelta(minutes=1) and m.updated_at == T0 + timedelta(hours=1)
    assert m.lines == [
        {
            "sku": "PDD-1",
            "product_name": "赣南脐橙 5斤",
            "quantity": 1,
            "unit_price": Decimal("59.9"),
        }
    ]
    full = pinduoduo.from_order(wire(pdd_order(2, T0, refund_status=4)))
    assert (full.status, full.refunded_amount) == ("refunded", Decimal("59.9"))
    assert pinduoduo.from_order(wire(pdd_order(3, T0, refund_status=3))).status == "paid"
    cancelled = pinduoduo.from_order(wire(pdd_order(4, T0, confirm_status=2)))
    assert cancelled.status == "cancelled"
    with pytest.raises(Skip, match="not formed"):
        pinduoduo.from_order(wire(pdd_order(5, T0, confirm_status=0)))
    with pytest.raises(Skip, match="cancelled unpaid"):
        pinduoduo.from_order(wire(pdd_order(6, T0, confirm_status=2, paid=False)))
    with pytest.raises(Unmappable, match="unknown confirm_status"):
        pinduoduo.from_order(wire(pdd_order(7, T0, confirm_status=9)))
    with pytest.raises(Unmappable, match="no open_address_id"):
        pinduoduo.from_order(wire(pdd_order(8, T0, address=None)))
    with pytest.raises(Unmappable, match="not a decimal"):
        pinduoduo.from_order(pdd_order(9, T0))  # a float, not read as a decimal


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def add_pdd(store: Store, settings: Settings, fake: FakePdd, page_size: int = 10) -> None:
    uc.add_connector(
        store,
        settings,
        uc.ConnectorIn(
            kind="pinduoduo",
            name="pdd",
            api_base_url=fake.url,
            webhook_secret=CLIENT_SECRET,
            access_token=fake.token,
            consumer_key=CLIENT_ID,
            page_size=page_size,
        ),
    )


def reference(ref: Store, orders: list[dict[str, Any]]) -> dict[str, Any]:
    loyalty = program_loyalty("CNY")
    events = []
    for o in sorted(orders, key=lambda o: o["updated_at"]):
        try:
            events.append(order_event(pinduoduo.from_order(wire(o)).event("pdd"), currency="CNY"))
        except Skip:
            continue
    with ref.begin() as conn:
        record_order_events(conn, events, loyalty=loyalty(conn))
    return snapshot(ref, "pdd")


def same(got: dict[str, Any], ref: dict[str, Any]) -> bool:
    return got["orders"] == ref["orders"] and got["points"] == ref["points"]


def test_pull_windows_limits_and_retry_codes(
    store: Store, settings: Settings, ref_store: Store
) -> None:
    settings = settings.model_copy(update={"currency": "CNY"})
    loyalty = program_loyalty("CNY")
    clock = Clock(NOW)
    waits: list[float] = []
    with FakePdd() as fake:
        for i in range(40):  # over the last six hours, some sharing a second, none on a
            # window's boundary (read by both windows: recorded twice, counted twice)
            fake.put(pdd_order(i, T0 + timedelta(minutes=9 * i, seconds=1 + i % 2)))
        fake.put(pdd_order(40, T0 + timedelta(hours=1, seconds=7), confirm_status=0))
        add_pdd(store, settings, fake)
        fake.limited_on = {5: 70031, 9: 52101}
        r1 = uc.sync(store, settings, "pdd", loyalty=loyalty, clock=clock, sleep=waits.append)
        assert (r1.pulled, r1.ignored) == (40, 1)
        assert waits == [1.0, 1.0]  # each retry code waited out and asked again
        assert fake.refused == []  # no window over 30 minutes was ever asked
        assert int(fake.asked[0]["start_updated_at"]) == int((NOW - timedelta(days=7)).timestamp())
        for q in fake.asked:
            span = int(q["end_updated_at"]) - int(q["start_updated_at"])
            assert 0 < span <= 1800 and q["use_has_next"] == "false" and q["page_size"] == "10"
        assert r1.watermark == NOW
        later = NOW + timedelta(minutes=2)
        fake.put(pdd_order(3, later, refund_status=4))
        fake.put(pdd_order(4, later + timedelta(seconds=1), confirm_status=2))
        fake.put(pdd_order(40, later + timedelta(seconds=2)))  # the group formed
        clock.now = NOW + timedelta(minutes=10)
        r2 = uc.sync(store, settings, "pdd", loyalty=loyalty, clock=clock)
        assert r2.since == NOW - timedelta(seconds=300) and r2.pulled == 3
        got = snapshot(store, "pdd")
        assert same(got, reference(ref_store, list(fake.orders.values())))
        assert got["orders"]["261101-482910000000003"][1] == "refunded"
        assert got["orders"]["261101-482910000000004"][1] == "cancelled"
        clock.now += timedelta(minutes=10)
        uc.sync(store, settings, "pdd", loyalty=loyalty, clock=clock)
        assert snapshot(store, "pdd") == got


class Crash(Exception):
    pass


def test_back_to_front_kill_and_resume_order_moving(
    store: Store, settings: Settings, ref_store: Store
) -> None:
    settings = settings.model_copy(update={"currency": "CNY"})
    loyalty = program_loyalty("CNY")
    clock = Clock(T0 + timedelta(minutes=30))
    with FakePdd() as fake:
        for i in range(47):  # all in one 30-minute window: 10 pages of 5
            fake.put(pdd_order(i, T0 + timedelta(seconds=30 * (i + 1))))
        add_pdd(store, settings, fake, page_size=5)
        before = 7 * 48 - 1  # the empty windows of the first sync's seven days

        def crash_after_3_pages(r: uc.SyncResult) -> None:
            if r.pages >= before + 3:
                raise Crash

        with pytest.raises(Crash):
            uc.sync(
                store,
                settings,
                "pdd",
                loyalty=loyalty,
                clock=clock,
                progress=crash_after_3_pages,
                pages_per_unit=1,
            )
        mark = uc.show_connector(store, "pdd")["watermark"]
        assert mark is not None and datetime.fromisoformat(mark) <= T0
        assert len(snapshot(store, "pdd")["orders"]) >= 10
        moved: list[bool] = []

        def move_newest(q: dict[str, str]) -> None:
            # while page 9 is read (after 1, 10), the newest order (page 1) is updated out
            # of the window: every order after it moves one place up
            if q["page"] == "9" and not moved:
                moved.append(True)
                fake.put(pdd_order(46, clock.now + timedelta(minutes=1), refund_status=4))

        fake.before_page = move_newest
        n = len(fake.asked)
        uc.sync(store, settings, "pdd", loyalty=loyalty, clock=clock)
        start = str(int(T0.timestamp()) - 300)  # the resumed window: the mark less the overlap
        window = [q["page"] for q in fake.asked[n:] if q["start_updated_at"] == start]
        assert window[:4] == ["1", "10", "9", "8"]  # page 1 for the total, then back to front
        assert window.count("1") >= 2  # the window whose total moved was asked again
        fake.before_page = None
        clock.now += timedelta(minutes=5)
        uc.sync(store, settings, "pdd", loyalty=loyalty, clock=clock)
        got = snapshot(store, "pdd")
        assert len(got["orders"]) == 47
        assert same(got, reference(ref_store, list(fake.orders.values())))
        assert got["orders"]["261101-482910000000046"][1] == "refunded"


def test_errors_name_no_token_and_window_refusal(store: Store, settings: Settings) -> None:
    with FakePdd() as fake:
        for i in range(3):
            fake.put(pdd_order(i, T0 + timedelta(minutes=i + 1)))
        puller = PinduoduoPuller(
            JsonClient("pinduoduo", fake.url),
            CLIENT_ID,
            CLIENT_SECRET,
            TOKEN,
            now=lambda: T0 + timedelta(hours=1),
            backfill=timedelta(hours=2),
        )
        assert sum(len(p.orders) for p in puller.pages(None)) == 3
        # a window over PDD's limit is refused by the platform (the puller never asks one)
        wide = puller.params(T0, T0 + timedelta(minutes=31), 1)
        got = JsonClient("pinduoduo", fake.url).request("POST", "/api/router", body=wide).body
        assert got["error_response"]["error_code"] == 10000 and len(fake.refused) == 1
        assert puller.window == timedelta(minutes=30)
        bad = PinduoduoPuller(JsonClient("pinduoduo", fake.url), CLIENT_ID, "wrong", TOKEN)
        with pytest.raises(PlatformError, match="20004"):
            list(bad.pages(None))
        add_pdd(store, settings, fake)
        fake.token = "expired"
        with pytest.raises(PlatformError, match="10019") as expired:
            uc.sync(store, settings, "pdd", clock=Clock(NOW))
        assert TOKEN not in expired.value.message
        fake.token = TOKEN
        fake.limited_on = {n: 70031 for n in range(fake.requests + 1, fake.requests + 20)}
        with pytest.raises(PlatformError, match="too frequent"):
            uc.sync(store, settings, "pdd", clock=Clock(NOW), sleep=lambda s: None)
        fake.limited_on = {}
        fake.fail_on = set(range(fake.requests + 1, fake.requests + 50))
        with pytest.raises(PlatformError) as failed:
            uc.sync(store, settings, "pdd", clock=Clock(NOW), sleep=lambda s: None)
        shown = uc.show_connector(store, "pdd")
        text = json.dumps(shown) + failed.value.message + json.dumps(failed.value.details)
        assert shown["last_error"].startswith("connector.") and TOKEN not in text


@hsettings(
    max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_replayed_states_change_nothing(
    tmp_path_factory: pytest.TempPathFactory, data: st.DataObject
) -> None:
    """The current states of a few orders pulled one window at a time, with repeats, then
    pulled again in another order (the platform always answers an order's current state):
    nothing changes; refunds never exceed the order."""
    from huitouke.core.secretbox import new_key

    path = tmp_path_factory.mktemp("pddreplay") / "s.db"
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
        st.sampled_from([(1, 1), (1, 4), (1, 3), (2, 1), (2, 4), (0, 1)]),
        st.sampled_from(["59.90", "0.01", "1000.00"]),
    )
    drawn = data.draw(st.lists(states, min_size=1, max_size=8))
    current = list({i: (i, minute, s, a) for i, minute, s, a in drawn}.values())
    stream = current + data.draw(st.lists(st.sampled_from(current), max_size=4))
    try:
        with FakePdd() as fake:
            puller = PinduoduoPuller(
                JsonClient("pinduoduo", fake.url), CLIENT_ID, CLIENT_SECRET, TOKEN
            )

            def deliver(items: list[Any]) -> None:
                for i, minute, (confirm, refund), amount in items:
                    at = T0 + timedelta(minutes=minute)
                    fake.orders.clear()
                    fake.put(
                        pdd_order(
                            i, at, confirm_status=confirm, refund_status=refund, pay_amount=amount
                        )
                    )
                    puller.now = lambda at=at: at + timedelta(minutes=1)
                    puller.backfill = timedelta(minutes=2)
                    events = []
                    for page in puller.pages(None):
                        for o in page.orders:
                            try:
                                m = pinduoduo.from_order(o)
                            except Skip:
                                continue
                            events.append(order_event(m.event("pdd"), currency="CNY"))
                    with store.begin() as conn:
                        record_order_events(conn, events, loyalty=program_loyalty("CNY")(conn))

            deliver(stream)
            once = snapshot(store, "pdd")
            deliver(data.draw(st.permutations(stream)))
            assert snapshot(store, "pdd") == once
            for o in once["orders"].values():
                assert 0 <= o[3] <= o[2]
    finally:
        store.dispose()


def test_cli_add_and_sync_pinduoduo(store_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
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
        with FakePdd(token="pdd_from_stdin") as fake:
            now = datetime.now(UTC).replace(microsecond=0)
            for i in range(7):
                # ten minutes off the 30-minute window edges the sync counts back from its
                # own now (an order on an edge second is listed by both windows and counted
                # twice): only a sync started ~9 minutes after `now` could meet one
                fake.put(pdd_order(i, now - timedelta(minutes=80, seconds=10 * i)))
            r = runner.invoke(
                app,
                ["connectors", "add", "pinduoduo", "pddcli", "--api-base-url", fake.url,
                 "--consumer-key", CLIENT_ID, "--webhook-secret", CLIENT_SECRET],
                input="pdd_from_stdin\n",
            )  # fmt: skip
            assert r.exit_code == 0, r.output
            shown = runner.invoke(app, ["connectors", "show", "pddcli"]).output
            assert "pdd_from_stdin" not in shown and CLIENT_SECRET not in shown
            r = runner.invoke(app, ["connectors", "sync", "pddcli", "--json"])
            assert r.exit_code == 0, r.output
            assert json.loads(r.stdout)["pulled"] == 7
    finally:
        get_settings.cache_clear()

"""The loyalty page from its snapshot (``loyalty_summary``): the stored numbers are those of
the live summary (liabilities, tier mix, and the redemption rates of any period from the
stored daily flows); the page says whether it shows a snapshot, a stale one (the ledger
changed since) or live numbers (none yet, or another program version); an operator
refreshes it in the background; a loyalty job refreshes it. SQLite and PostgreSQL."""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta

import yaml

from huitouke.app.loyalty_summary import (
    KIND,
    program_version,
    redemption_from_days,
    summary_params,
    summary_payload,
)
from huitouke.app.orders import stored_loyalty
from huitouke.app.scheduler import Registry, run_job_now
from huitouke.app.snapshots import read_snapshot, refresh_snapshots, snapshot_status
from huitouke.loyalty.program import load_program
from huitouke.loyalty.programs_repo import save_program

from . import test_loyalty_pages as lp
from .conftest import Console, csrf_of, sign_in, task_of, wait_task
from .test_loyalty_pages import SHOP, ZONE, Shop, data_values

#: the fixture of the loyalty pages' tests: the example shop program, customers, orders, a
#: top-up, coupons issued and one redeemed, points redeemed
shop = lp.shop


def state(page: str) -> str:
    found = re.search(r'id="loyalty-snapshot" data-state="(\w+)"', page)
    assert found, page
    return found.group(1)


def _instants(lo: date, hi: date) -> tuple[datetime, datetime]:
    return (
        datetime(lo.year, lo.month, lo.day, tzinfo=ZONE),
        datetime(hi.year, hi.month, hi.day, tzinfo=ZONE) + timedelta(days=1),
    )


def test_the_stored_numbers_are_the_live_ones_for_any_period(shop: Shop, console: Console) -> None:
    store, tz = console.store, console.settings.timezone
    as_of = console.clock.now
    with store.connect() as conn:
        svc = stored_loyalty(conn, tz)
        assert svc is not None
        payload = summary_payload(svc, conn, as_of=as_of, timezone=tz)
        for lo, hi in [
            (date(2026, 4, 1), date(2026, 6, 1)),
            (date(2026, 5, 3), date(2026, 5, 3)),
            (date(2020, 1, 1), date(2030, 1, 1)),
            (date(2026, 4, 2), date(2026, 4, 30)),
        ]:
            start, end = _instants(lo, hi)
            live = svc.summary(conn, as_of=as_of, start=start, end=end)
            assert payload["liabilities"] == live["liabilities"]
            assert payload["tiers"] == live["tiers"]
            red = redemption_from_days(payload["days"], lo, hi, start=start, end=end)
            assert red == live["redemption"], (lo, hi)
    assert sum(int(v[0]) for v in payload["days"].values()) >= 3  # coupons were issued


def test_the_page_reads_the_snapshot_says_when_stale_and_refreshes(
    shop: Shop, console: Console
) -> None:
    c = shop.client
    sign_in(c, "otto")
    params = {"start": "2026-04-01", "end": "2026-06-01"}
    page = c.get("/loyalty", params=params).text
    assert state(page) == "live" and 'id="loyalty-snapshot-refresh"' in page
    live_shown = data_values(page, "liability")
    [report] = refresh_snapshots(console.store, console.settings, kinds=[KIND])
    assert report.error is None and report.snapshots == 1
    with console.store.connect() as conn:
        snap = read_snapshot(
            conn, KIND, summary_params(program_version(conn), console.settings.timezone)
        )
    assert snap is not None
    page = c.get("/loyalty", params=params).text
    assert state(page) == "fresh"
    # the numbers shown: those of the REST summary at the snapshot's time
    rest = c.get(
        "/v1/loyalty/summary",
        params={"start": "2026-04-01T00:00:00+08:00", "end": "2026-06-02T00:00:00+08:00",
                "as_of": snap.computed_at.isoformat()},
        headers=shop.h("read"),
    ).json()  # fmt: skip
    shown = data_values(page, "liability")
    assert shown["points"] == rest["liabilities"]["points"]["outstanding"]
    assert shown["stored_owed"] == rest["liabilities"]["stored_value"]["owed"]
    assert shown["coupons"] == str(rest["liabilities"]["coupons"]["outstanding"])
    assert shown["points"] == live_shown["points"]
    rows = dict(re.findall(r'<tr data-kind="(\w+)" data-given="([^"]*)"', page))
    assert rows == {
        "coupons": str(rest["redemption"]["coupons"]["issued"]),
        "points": rest["redemption"]["points"]["earned"],
    }
    frag = c.get("/loyalty/redemption", params=params, headers={"HX-Request": "true"}).text
    assert f'data-given="{rest["redemption"]["coupons"]["issued"]}"' in frag
    # a coupon issued since: stale, on the page and in `snapshots status`
    r = c.post(
        "/v1/coupons",
        json={"template": "fixed20", "customer_id": "c4", "idempotency_key": "later"},
        headers=shop.h(),
    )
    assert r.status_code == 200, r.text
    assert state(c.get("/loyalty", params=params).text) == "stale"
    rows_status, _missing = snapshot_status(console.store)
    assert [s.stale for s in rows_status if s.kind == KIND] == [True]
    # the operator's button: a background refresh of this kind, then fresh again
    r = c.post(
        "/snapshots/refresh",
        data={"csrf_token": csrf_of(c), "kind": KIND, "next": "/loyalty"},
        follow_redirects=False,
    )
    assert r.status_code == 303 and r.headers["location"].endswith("?next=/loyalty")
    assert "succeeded" in wait_task(c, task_of(r.headers["location"]))
    page = c.get("/loyalty", params=params).text
    assert state(page) == "fresh"
    # the later coupon counted (issued on the app clock's day, inside the period; the
    # liabilities are as of the refresh's real time, when the test's coupons have expired)
    after = dict(re.findall(r'<tr data-kind="(\w+)" data-given="([^"]*)"', page))
    assert int(after["coupons"]) == int(rows["coupons"]) + 1
    # a loyalty job refreshes it after its work
    c.post(
        "/v1/coupons",
        json={"template": "fixed20", "customer_id": "c4", "idempotency_key": "later2"},
        headers=shop.h(),
    )
    assert state(c.get("/loyalty", params=params).text) == "stale"
    out = run_job_now(console.store, console.settings, Registry.load(console.settings),
                      "loyalty.expiry")  # fmt: skip
    assert out.status == "succeeded", out
    assert state(c.get("/loyalty", params=params).text) == "fresh"
    # another program version: no snapshot for it, the page computes live
    doc = yaml.safe_load(SHOP.read_text(encoding="utf-8"))
    with console.store.begin() as conn:
        version = save_program(conn, load_program({**doc, "id": "default"}), now=console.clock.now)
    assert version == 2
    assert state(c.get("/loyalty", params=params).text) == "live"

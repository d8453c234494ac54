"""Snapshots: the overview read from its precomputed snapshot equals the live computation
and `huitouke metrics --format json`; orders recorded after a refresh mark it stale (on the
page, in `huitouke snapshots status`); an import refreshes the snapshots a store has; an
operator refreshes from the console; the routes are guarded. SQLite and PostgreSQL."""

from __future__ import annotations

import json
import re
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from huitouke.app.overview import overview, overviews
from huitouke.app.snapshots import (
    OVERVIEW_PERIODS,
    REFRESHERS,
    overview_options,
    overview_params,
    overview_view,
    read_snapshot,
    refresh_after_import,
    refresh_snapshots,
    refresh_stale_snapshots,
    register_refresher,
    snapshot_status,
    stored_currencies,
)
from huitouke.service.apikeys import create_api_key
from huitouke.settings import Settings
from huitouke.store.db import Store

from .conftest import Console, cli, sign_in, task_of, wait_task
from .test_overview import CARD_KEYS, cards


def _post_orders(client: Any, key: str, orders: list[tuple[str, str, str, str]]) -> None:
    for order_id, customer, when, amount in orders:
        r = client.post(
            "/v1/orders",
            json={"order_id": order_id, "customer_id": customer, "ordered_at": when,
                  "amount": amount, "currency": "CNY", "status": "paid"},
            headers={"Authorization": f"Bearer {key}"},
        )  # fmt: skip
        assert r.status_code in (200, 201), r.text


FIRST = [
    ("o1", "c1", "2026-01-05T10:00:00+08:00", "100.00"),
    ("o2", "c1", "2026-02-07T10:00:00+08:00", "60.00"),
    ("o3", "c2", "2026-02-09T10:00:00+08:00", "45.50"),
    ("o4", "c3", "2026-03-02T10:00:00+08:00", "88.00"),
    ("o5", "c2", "2026-04-11T10:00:00+08:00", "20.00"),
]


@pytest.fixture
def key(console: Console) -> str:
    with console.store.begin() as conn:
        _, k = create_api_key(conn, scope="operator", name="pos", now=datetime.now(UTC))
    return k


def state(page: str) -> str:
    found = re.search(r'id="snapshot-status" data-state="([a-z]+)"', page)
    assert found, page[:2000]
    return found.group(1)


def test_the_overview_is_live_until_refreshed_then_reads_its_snapshot(
    console: Console, client: Any, key: str
) -> None:
    _post_orders(client, key, FIRST)
    assert sign_in(client, "otto").status_code == 303
    page = client.get("/").text
    assert state(page) == "live" and 'id="snapshot-live"' in page
    live_cards = cards(page)
    reports = refresh_snapshots(console.store, console.settings)
    assert {r.kind: (r.kind, r.snapshots, r.orders, r.error) for r in reports}["overview"] == (
        "overview",
        len(OVERVIEW_PERIODS),
        5,
        None,
    )
    page = client.get("/").text
    assert state(page) == "fresh" and "Snapshot computed" in page
    assert cards(page) == live_cards
    # each period kind's snapshot is exactly the live computation
    options = overview_options(console.settings)
    for period in OVERVIEW_PERIODS:
        snap = read_snapshot_of(console.store, console.settings, period)
        assert snap == overview(console.store, overview_options(console.settings, period))
    assert overviews(console.store.load_orders(), options, OVERVIEW_PERIODS) == {
        p: read_snapshot_of(console.store, console.settings, p) for p in OVERVIEW_PERIODS
    }
    # an order recorded after the refresh: the page says the snapshot is stale
    _post_orders(client, key, [("o6", "c3", "2026-04-20T10:00:00+08:00", "30.00")])
    page = client.get("/overview/fragment", params={"period": "quarter"}).text
    assert state(page) == "stale" and 'id="snapshot-stale"' in page
    assert overview_view(console.store, console.settings, "month").stale
    rows, missing = snapshot_status(console.store)
    mine = [r.stale for r in rows if r.kind == "overview"]
    assert mine == [True] * len(OVERVIEW_PERIODS) and "overview" not in missing
    # a refund changes an order without adding one: stale again after a refresh
    assert "overview" in [r.kind for r in refresh_stale_snapshots(console.store, console.settings)]
    assert "overview" not in [
        r.kind for r in refresh_stale_snapshots(console.store, console.settings)
    ]
    assert not overview_view(console.store, console.settings, "month").stale
    r = client.post(
        "/v1/orders",
        json={"order_id": "o6", "customer_id": "c3", "ordered_at": "2026-04-20T10:00:00+08:00",
              "amount": "30.00", "currency": "CNY", "status": "refunded",
              "refunded_amount": "30.00"},
        headers={"Authorization": f"Bearer {key}"},
    )  # fmt: skip
    assert r.status_code in (200, 201), r.text
    assert overview_view(console.store, console.settings, "month").stale
    # the operator refreshes from the page
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert csrf
    done = client.post(
        "/snapshots/refresh",
        data={"csrf_token": csrf.group(1), "next": "/?period=quarter"},
        follow_redirects=False,
    )
    # a background task: its progress page, which returns to the overview when done
    assert done.status_code == 303
    assert done.headers["location"].endswith("?next=/%3Fperiod%3Dquarter")
    assert "succeeded" in wait_task(client, task_of(done.headers["location"]))
    page = client.get("/", params={"period": "quarter"}).text
    assert state(page) == "fresh"
    view = overview_view(console.store, console.settings, "quarter")
    assert view.data == overview(console.store, overview_options(console.settings, "quarter"))


def read_snapshot_of(store: Store, settings: Settings, period: str) -> Any:
    with store.connect() as conn:
        snap = read_snapshot(conn, "overview", overview_params(settings, period))
    assert snap is not None
    return snap.payload


def test_another_setting_finds_no_snapshot_rather_than_a_wrong_one(
    console: Console, client: Any, key: str
) -> None:
    _post_orders(client, key, FIRST)
    refresh_snapshots(console.store, console.settings)
    other = console.settings.model_copy(update={"timezone": "America/New_York"})
    view = overview_view(console.store, other, "month")
    assert view.live
    assert view.data == overview(console.store, overview_options(other, "month"))


def test_refresh_routes_are_guarded(console: Console, client: Any, key: str) -> None:
    r = client.post("/snapshots/refresh", data={"csrf_token": "x"}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/login")
    assert sign_in(client, "rita").status_code == 303
    page = client.get("/").text
    assert 'id="snapshot-refresh"' not in page  # a read user sees no refresh button
    csrf = re.search(r'"X-CSRF-Token": "([^"]+)"', page)
    assert csrf
    r = client.post("/snapshots/refresh", data={"csrf_token": csrf.group(1)})
    assert r.status_code == 403
    with console.store.connect() as conn:
        assert read_snapshot(conn, "overview", overview_params(console.settings, "month")) is None
    with console.client() as other:
        assert sign_in(other, "otto").status_code == 303
        r = other.post("/snapshots/refresh", data={"csrf_token": "wrong"})
        assert r.status_code == 403
        r = other.post("/snapshots/refresh", data={})
        assert r.status_code == 403
    with console.store.connect() as conn:
        assert read_snapshot(conn, "overview", overview_params(console.settings, "month")) is None


def test_a_registered_kind_is_refreshed_recorded_and_reported(console: Console) -> None:
    calls: list[int] = []

    def facts(store: Store, settings: Settings, progress: Any) -> None:
        progress("test_facts", 1, 1)
        calls.append(1)

    def broken(store: Store, settings: Settings, progress: Any) -> None:
        from huitouke.errors import InputError

        raise InputError("no", code="input.invalid", message_zh="不")

    register_refresher("test_facts", facts)
    register_refresher("test_broken", broken)
    try:
        steps: list[tuple[str, int, int]] = []
        reports = refresh_snapshots(
            console.store, console.settings, kinds=["test_facts", "test_broken"],
            progress=lambda *a: steps.append(a),
        )  # fmt: skip
        assert [(r.kind, r.snapshots, r.error) for r in reports] == [
            ("test_facts", 1, None), ("test_broken", 0, "input.invalid")
        ]  # fmt: skip
        assert calls == [1] and steps == [("test_facts", 1, 1)]
        rows, missing = snapshot_status(console.store)
        assert [(r.kind, r.params, r.stale) for r in rows] == [("test_facts", {}, False)]
        assert {"overview", "test_broken"} <= set(missing)
        # nothing changed: only stale kinds run, and that is the one never computed
        calls.clear()
        reports = refresh_snapshots(
            console.store, console.settings, kinds=["test_facts", "overview"], only_stale=True
        )
        assert [r.kind for r in reports] == ["overview"] and calls == []
    finally:
        REFRESHERS.pop("test_facts")
        REFRESHERS.pop("test_broken")


def test_an_import_refreshes_the_snapshots_a_store_has(console: Console, tmp_path: Path) -> None:
    from huitouke.app.imports import import_file

    first = tmp_path / "a.csv"
    first.write_text(
        "order_id,customer_id,ordered_at,amount\n"
        "a1,c1,2026-01-05 10:00,100.00\na2,c2,2026-02-05 10:00,50.00\n",
        encoding="utf-8",
    )
    s = import_file(console.store, first, progress=False)
    # a store that never had a snapshot: the import computes none
    assert s.snapshots_refreshed == ()
    assert refresh_after_import(console.store, console.settings) == []
    refresh_snapshots(console.store, console.settings)
    second = tmp_path / "b.csv"
    second.write_text(
        "order_id,customer_id,ordered_at,amount\na3,c1,2026-03-05 10:00,70.00\n",
        encoding="utf-8",
    )
    s = import_file(console.store, second, progress=False)
    assert "overview" in s.snapshots_refreshed
    view = overview_view(console.store, console.settings, "month")
    assert not view.live and not view.stale and view.data["orders"] == 3


def test_cli_refresh_and_status(shop: dict[str, Any], tmp_path: Path) -> None:
    """On a copy of the CDNOW sample shop: `snapshots status` before and after
    `snapshots refresh`, and the overview's cards from the snapshot equal `huitouke metrics
    --format json`."""
    src = Path(shop["url"].removeprefix("sqlite:///"))
    for suffix in ("", "-wal", "-shm"):
        if Path(f"{src}{suffix}").exists():
            shutil.copy(f"{src}{suffix}", tmp_path / f"shop.db{suffix}")
    url = f"sqlite:///{tmp_path / 'shop.db'}"
    out = cli(url, "snapshots", "status", "--json")
    assert out.returncode == 0, out.stderr
    body = json.loads(out.stdout)
    assert body["snapshots"] == [] and "overview" in body["missing"]
    out = cli(url, "snapshots", "refresh")
    assert out.returncode == 0, out.stderr
    assert re.search(r"overview: 3 snapshots recomputed from \d+ orders", out.stdout)
    assert "snapshot overview: step 2/2" in out.stderr
    out = cli(url, "snapshots", "status", "--json")
    body = json.loads(out.stdout)
    got = body["snapshots"]
    assert [
        (r["kind"], r["params"]["period"], r["stale"]) for r in got if r["kind"] == "overview"
    ] == [("overview", p, False) for p in sorted(OVERVIEW_PERIODS)]
    out = cli(url, "snapshots", "refresh", "--stale-only")
    assert out.returncode == 0 and "every snapshot is up to date" in out.stdout
    bad = cli(url, "snapshots", "refresh", "--kind", "nope")
    assert bad.returncode != 0 and "snapshot.unknown_kind" in bad.stderr
    # the page, from the snapshot, shows what `huitouke metrics` prints
    import warnings

    from huitouke.service import create_app

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient

    app = create_app(Settings(database_url=url, lang="en"))
    with TestClient(app, base_url="http://127.0.0.1") as c:
        assert sign_in(c, "rita").status_code == 303
        for period in ("month", "quarter"):
            page = c.get("/", params={"period": period}).text
            assert state(page) == "fresh"
            head = shop["metrics"][period]["headline"]
            shown = cards(page)
            for k in CARD_KEYS:
                assert float(shown[k]["value"]) == head["metrics"][k]["value"], (period, k)


def test_the_stored_currencies_come_from_their_snapshot(console: Console, tmp_path: Path) -> None:
    """The data page's currencies: read live on a store with no snapshot, then from the
    ``currencies`` snapshot (a live DISTINCT reads every order), refreshed by an import."""
    from huitouke.app.imports import import_file

    first = tmp_path / "a.csv"
    first.write_text(
        "order_id,customer_id,ordered_at,amount,currency\n"
        "a1,c1,2026-01-05 10:00,100.00,CNY\na2,c2,2026-02-05 10:00,50.00,CNY\n",
        encoding="utf-8",
    )
    import_file(console.store, first, progress=False)
    assert stored_currencies(console.store) == (["CNY"], None)
    refresh_snapshots(console.store, console.settings, kinds=["currencies"])
    found, at = stored_currencies(console.store)
    assert found == ["CNY"] and at is not None
    second = tmp_path / "b.csv"
    second.write_text(
        "order_id,customer_id,ordered_at,amount,currency\na3,c3,2026-03-05 10:00,70.00,USD\n",
        encoding="utf-8",
    )
    s = import_file(console.store, second, progress=False)
    assert "currencies" in s.snapshots_refreshed
    found, later = stored_currencies(console.store)
    assert found == ["CNY", "USD"] and later is not None and later >= at

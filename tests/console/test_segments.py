"""The customer facts snapshot and the console pages that read it — segments, customer
filters and export, a customer's predictions, messages and consent, predictions — on the
production app with a real store holding the bundled CDNOW sample (imported by `huitouke
import`); the segment numbers equal `huitouke segments --format json`."""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import func, select

from huitouke.app.customer_facts import (
    FactsFilter,
    find_customers,
    refresh_customer_facts,
    segment_summary,
    snapshot_meta,
    stored_segment_summary,
)
from huitouke.data import CDNOW_SAMPLE
from huitouke.errors import InputError
from huitouke.loyalty import tables as lt
from huitouke.loyalty.program import load_program
from huitouke.loyalty.programs_repo import save_program
from huitouke.settings import Settings
from huitouke.store.customer_facts import customer_facts, customer_facts_meta
from huitouke.store.db import Store
from huitouke.store.uow import run_read

from .conftest import Clock, Console, cli, csrf_of, make_users, sign_in, task_of, wait_task

SHOP_YAML = (
    Path(__file__).resolve().parents[2] / "src" / "huitouke" / "loyalty" / "examples" / "shop.yaml"
)
NOW = datetime(2026, 6, 1, 2, 0, tzinfo=UTC)


def _save_program(store: Store) -> None:
    doc = yaml.safe_load(SHOP_YAML.read_text(encoding="utf-8"))
    with store.begin() as conn:
        save_program(conn, load_program({**doc, "id": "default"}), now=NOW)


@pytest.fixture
def facts_console(shop: dict[str, Any], tmp_path: Path) -> Console:
    """A copy of the CDNOW sample shop (no snapshot yet) with the example loyalty program."""
    src = Path(shop["url"].removeprefix("sqlite:///"))
    dst = tmp_path / "facts.db"
    shutil.copy(src, dst)
    url = f"sqlite:///{dst}"
    store = Store(url)
    _save_program(store)
    with store.begin() as conn:  # the shop may hold a snapshot from an earlier test
        conn.execute(customer_facts.delete())
        conn.execute(customer_facts_meta.delete())
    return Console(Settings(database_url=url, lang="en"), store, Clock())


@pytest.fixture
def fclient(facts_console: Console):  # type: ignore[no-untyped-def]
    with facts_console.client() as c:
        yield c


def _refresh(console: Console) -> None:
    refresh_customer_facts(console.store, console.settings, now=NOW)


# -- the snapshot ------------------------------------------------------------------------------------


@pytest.fixture
def imported(store_url: str, store: Store) -> str:
    done = cli(store_url, "import", str(CDNOW_SAMPLE), "--preset", "cdnow")
    assert done.returncode == 0, done.stderr
    return store_url


def test_snapshot_equals_the_segments_cli(imported: str, store: Store) -> None:
    settings = Settings(database_url=imported)
    result = refresh_customer_facts(store, settings, now=NOW)
    out = cli(imported, "segments", "--format", "json")
    assert out.returncode == 0, out.stderr
    body = json.loads(out.stdout)
    assert result.as_of.isoformat() == body["as_of"]
    summary = run_read(store, segment_summary)
    for kind, key, rows in (("rfm", "segment", body["rfm"]), ("layer", "layer", body["layers"])):
        mine = {r["name"]: r for r in summary[kind]}
        assert [r[key] for r in rows] == list(mine)
        for r in rows:
            assert mine[r[key]]["customers"] == r["customers"], r
            assert mine[r[key]]["revenue"] == Decimal(str(r["revenue"])).quantize(Decimal("0.0001"))
            if r["share"] is not None:
                assert mine[r[key]]["share"] == pytest.approx(r["share"])
    assert summary["total"] == result.customers == sum(r["customers"] for r in body["rfm"])
    # what the segments page reads: the summary stored with the snapshot, equal to the rows'
    stored = run_read(store, lambda c: stored_segment_summary(c, snapshot_meta(c)))
    assert stored == summary
    # the customers CLI's per-customer rows: the same segment, layer, lifecycle and P(alive)
    cust = cli(imported, "customers", "--format", "json")
    assert cust.returncode == 0, cust.stderr
    by_id = {r["customer_id"]: r for r in json.loads(cust.stdout)}
    with store.connect() as conn:
        facts = {r.customer_id: r for r in conn.execute(select(customer_facts))}
    assert set(facts) == set(by_id)
    for cid in list(by_id)[:300]:
        f, c = facts[cid], by_id[cid]
        assert (f.rfm_segment, f.layer, f.lifecycle) == (
            c["rfm_segment"],
            c["layer"],
            c["lifecycle"],
        )
        assert f.p_alive == pytest.approx(c["p_alive"])
        assert f.orders == c["orders"]
    meta = run_read(store, snapshot_meta)
    assert meta is not None and meta["model"] == result.model and meta["model"] is not None
    assert meta["details"]["holdout"]["models"]


def test_a_failed_refresh_keeps_the_previous_snapshot(
    imported: str, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    import huitouke.app.customer_facts as cf

    settings = Settings(database_url=imported)
    first = refresh_customer_facts(store, settings, now=NOW, holdout_check=False)
    real_rows = cf._rows

    def broken(*args: Any) -> list[dict[str, Any]]:
        rows = real_rows(*args)
        rows[-1] = {**rows[-1], "orders": 0}  # the CHECK refuses it after most rows went in
        return rows

    monkeypatch.setattr(cf, "_rows", broken)
    later = datetime(2026, 7, 1, tzinfo=UTC)
    with pytest.raises(Exception):  # noqa: B017 - the database's own integrity error
        refresh_customer_facts(store, settings, now=later, holdout_check=False)
    meta = run_read(store, snapshot_meta)
    assert meta is not None and meta["computed_at"] == first.computed_at
    with store.connect() as conn:
        n = conn.execute(select(func.count()).select_from(customer_facts)).scalar_one()
    assert n == first.customers


def test_below_the_threshold_the_snapshot_says_why(
    store_url: str, store: Store, tmp_path: Path
) -> None:
    src = tmp_path / "tiny.txt"  # five customers, one order each: below the policy's threshold
    src.write_text(
        "".join(f" {i:05d} 0001 19970101  1   {10 + i}.00\n" for i in range(1, 6)), "utf-8"
    )
    done = cli(store_url, "import", str(src), "--preset", "cdnow")
    assert done.returncode == 0, done.stderr
    result = refresh_customer_facts(store, Settings(database_url=store_url), now=NOW)
    assert result.model is None and result.customers == 5
    meta = run_read(store, snapshot_meta)
    assert meta is not None and meta["prediction_code"] == "model.too_little_data"


def test_filters_are_checked() -> None:
    with pytest.raises(InputError) as bad:
        FactsFilter.parse({"rfm": "nobody"})
    assert bad.value.code == "input.bad_filter"
    with pytest.raises(InputError):
        FactsFilter.parse({"p_min": "1.5"})
    with pytest.raises(InputError) as rng:
        FactsFilter.parse({"p_min": "0.8", "p_max": "0.2"})
    assert rng.value.code == "input.bad_range"
    with pytest.raises(InputError) as day:
        FactsFilter.parse({"next_from": "2026-13-01"})
    assert day.value.code == "input.bad_date"


# -- pages -------------------------------------------------------------------------------------------


def test_pages_without_a_snapshot_say_so_and_an_operator_computes_it(fclient) -> None:
    sign_in(fclient, "rita")
    page = fclient.get("/segments")
    assert page.status_code == 200 and 'id="no-snapshot"' in page.text
    assert 'id="refresh-snapshot"' not in page.text  # read users cannot
    assert 'id="no-snapshot"' in fclient.get("/predictions").text
    fclient.cookies.clear()
    sign_in(fclient, "otto")
    token = csrf_of(fclient)
    r = fclient.post("/segments/refresh", data={"csrf_token": token}, follow_redirects=False)
    # a background task: the answer is its progress page, which returns to the segments
    assert r.status_code == 303 and r.headers["location"].endswith("?next=/segments")
    task = task_of(r.headers["location"])
    progress = fclient.get(r.headers["location"])
    assert progress.status_code == 200 and 'id="task-status"' in progress.text
    assert 'data-status="succeeded"' in wait_task(fclient, task)
    again = fclient.get(f"/tasks/{task}/status?next=/segments", headers={"HX-Request": "true"})
    assert again.headers["HX-Redirect"] == "/segments"
    page = fclient.get("/segments")
    assert 'id="snapshot-info"' in page.text and "2,357" in page.text


def test_segments_page_shows_the_snapshot_numbers(facts_console: Console, fclient) -> None:
    _refresh(facts_console)
    summary = run_read(facts_console.store, segment_summary)
    sign_in(fclient, "rita")
    page = fclient.get("/segments").text
    found = {
        seg: (int(n), Decimal(rev))
        for seg, n, rev in re.findall(
            r'data-segment="([^"]+)" data-customers="(\d+)" data-revenue="([^"]+)"', page
        )
    }
    for kind in ("rfm", "layer", "lifecycle"):
        for r in summary[kind]:
            assert found[f"{kind}:{r['name']}"] == (r["customers"], r["revenue"])
    assert 'href="/journeys/new?segment=rfm:champions"' in page
    assert "/segments/rfm/champions/callback.csv" in page
    assert "/segments/rfm/champions/coupons" not in page  # read users cannot issue
    zh = fclient.get("/segments", headers={"Accept-Language": "zh-CN"})
    assert zh.status_code == 200


def test_issuing_coupons_to_a_segment_is_idempotent(facts_console: Console, fclient) -> None:
    _refresh(facts_console)
    members = run_read(
        facts_console.store, lambda c: find_customers(c, FactsFilter.parse({"rfm": "cant_lose"}))
    )[1]
    assert members > 0
    sign_in(fclient, "otto")
    confirm = fclient.get("/segments/rfm/cant_lose/coupons")
    assert confirm.status_code == 200
    assert f'data-members="{members}"' in confirm.text
    batch = re.search(r'name="batch" value="([^"]+)"', confirm.text)
    assert batch
    token = csrf_of(fclient)
    form = {"csrf_token": token, "template": "fixed20", "batch": batch.group(1)}
    first = fclient.post("/segments/rfm/cant_lose/coupons", data=form)
    assert first.status_code == 200, first.text
    task = re.search(r'id="task-status" data-task="(\d+)"', first.text)
    assert task, first.text  # issued in the background; the page polls the task
    assert f'data-issued="{members}" data-already="0"' in wait_task(fclient, task.group(1))
    again = fclient.post("/segments/rfm/cant_lose/coupons", data=form)  # a double submit
    task = re.search(r'id="task-status" data-task="(\d+)"', again.text)
    assert task, again.text
    assert f'data-issued="0" data-already="{members}"' in wait_task(fclient, task.group(1))
    with facts_console.store.connect() as conn:
        issued = conn.execute(
            select(func.count())
            .select_from(lt.coupons)
            .where(lt.coupons.c.template_id == "fixed20")
        ).scalar_one()
    assert issued == members
    bad = fclient.post(
        "/segments/rfm/cant_lose/coupons", data={**form, "template": "nope", "batch": "b2"}
    )
    assert bad.status_code == 404 and 'id="issue-error"' in bad.text
    assert fclient.get("/segments/rfm/nobody/coupons").status_code == 404


def test_callback_list_is_masked_for_read_users(facts_console: Console, fclient) -> None:
    _refresh(facts_console)
    from huitouke.service.customers import put_customer

    rows = run_read(
        facts_console.store, lambda c: find_customers(c, FactsFilter.parse({"rfm": "champions"}))
    )[0]
    cid = rows[0]["customer_id"]
    with facts_console.store.begin() as conn:
        put_customer(conn, cid, {"name": "王小明", "phone": "13800138000"}, now=NOW)
    sign_in(fclient, "rita")
    r = fclient.get("/segments/rfm/champions/callback.csv")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    table = list(csv.reader(io.StringIO(r.text.lstrip("\ufeff"))))
    assert table[0] == ["Customer", "Name", "Phone", "Last order", "Segment"]
    line = next(x for x in table if x[0] == cid)
    assert line[2] == "138****8000" and "王小明" not in r.text
    assert len(table) - 1 == len(
        run_read(
            facts_console.store,
            lambda c: find_customers(c, FactsFilter.parse({"rfm": "champions"}), limit=None),
        )[0]
    )
    fclient.cookies.clear()
    sign_in(fclient, "otto")
    assert "13800138000" in fclient.get("/segments/rfm/champions/callback.csv").text


def test_customer_filters_paging_and_export(facts_console: Console, fclient) -> None:
    _refresh(facts_console)
    args = {"layer": "lost", "p_max": "0.5"}
    rows, total = run_read(
        facts_console.store, lambda c: find_customers(c, FactsFilter.parse(args), limit=None)
    )
    assert total > 50 and all(r["layer"] == "lost" and r["p_alive"] <= 0.5 for r in rows)
    sign_in(fclient, "rita")
    page = fclient.get("/customers", params=args)
    assert page.status_code == 200
    assert f'data-total="{total}"' in page.text
    # the search box keeps the filters and does not swap rows in with htmx
    assert '<input type="hidden" name="layer" value="lost">' in page.text
    assert 'hx-get="/customers"' not in page.text
    listed = re.findall(r'<tr data-customer="([^"]+)">', page.text)
    assert listed == [r["customer_id"] for r in rows[:50]]
    page2 = fclient.get("/customers", params={**args, "page": "2"}).text
    assert re.findall(r'<tr data-customer="([^"]+)">', page2) == [
        r["customer_id"] for r in rows[50:100]
    ]
    from huitouke.service.customers import put_customer

    with facts_console.store.begin() as conn:
        put_customer(conn, rows[0]["customer_id"], {"name": "王小明", "phone": "13800138000",
                                                   "email": "ming@example.com"}, now=NOW)  # fmt: skip
    export = fclient.get("/customers.csv", params=args)
    assert export.status_code == 200
    table = list(csv.reader(io.StringIO(export.text.lstrip("\ufeff"))))
    assert [x[0] for x in table[1:]] == [r["customer_id"] for r in rows]
    assert table[1][2] == "138****8000" and "王小明" not in export.text
    assert "ming@example.com" not in export.text
    assert "13800138000" not in fclient.get("/customers", params=args).text
    due = fclient.get("/customers", params={"next_from": "1998-07-01", "next_to": "1998-07-31"})
    assert due.status_code == 200
    bad = fclient.get("/customers", params={"rfm": "nobody"})
    assert bad.status_code == 422
    fclient.cookies.clear()
    sign_in(fclient, "otto")  # operators see the contacts, in the export too
    full = fclient.get("/customers.csv", params=args).text
    assert "13800138000" in full and "ming@example.com" in full
    # the search text narrows the filtered list
    first = rows[0]["customer_id"]
    one = fclient.get("/customers", params={**args, "q": first}).text
    assert first in re.findall(r'<tr data-customer="([^"]+)">', one)


def test_customer_page_shows_predictions_messages_and_consent(
    facts_console: Console, fclient
) -> None:
    from huitouke.messaging.consent import record_consent

    _refresh(facts_console)
    rows = run_read(
        facts_console.store, lambda c: find_customers(c, FactsFilter.parse({"rfm": "champions"}))
    )[0]
    cid = rows[0]["customer_id"]
    with facts_console.store.begin() as conn:
        record_consent(conn, cid, "sms", "unsubscribed", source="test", at=NOW)
    sign_in(fclient, "rita")
    page = fclient.get(f"/customers/{cid}")
    assert page.status_code == 200, page.text
    assert re.search(r'id="next-order">\d{4}-\d{2}-\d{2} \(', page.text)
    assert (
        'id="model">mbgnbd' in page.text
        or 'id="model">bgnbd' in page.text
        or 'id="model">pnbd' in page.text
    )
    assert 'data-consent="unsubscribed"' in page.text
    assert 'id="messages"' in page.text
    other = fclient.get(f"/customers/{rows[1]['customer_id']}")  # no consent events
    assert other.status_code == 200 and "No consent events." in other.text


def test_predictions_page(facts_console: Console, fclient) -> None:
    _refresh(facts_console)
    meta = run_read(facts_console.store, snapshot_meta)
    assert meta is not None
    sign_in(fclient, "rita")
    page = fclient.get("/predictions").text
    assert f'id="model-name">{meta["details"]["prediction"]["model_label"]}<' in page
    assert meta["details"]["prediction"]["selection"]["reason"] in page
    bands = {b["band"]: b["customers"] for b in meta["details"]["bands"]["churn_risk"]}
    for band, n in bands.items():
        assert f'data-band="{band}" data-customers="{n}"' in page
    assert sum(bands.values()) == meta["customers"]
    assert 'id="holdout-models"' in page and 'id="chart-p-alive"' in page


def test_predictions_are_hidden_below_the_threshold(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'tiny.db'}"
    src = tmp_path / "tiny.txt"
    src.write_text(
        "".join(f" {i:05d} 0001 19970101  1   {10 + i}.00\n" for i in range(1, 6)), "utf-8"
    )
    assert cli(url, "import", str(src), "--preset", "cdnow").returncode == 0
    store = Store(url)
    make_users(store, NOW)
    console = Console(Settings(database_url=url, lang="en"), store, Clock())
    refresh_customer_facts(store, console.settings, now=NOW)
    with console.client() as c:
        sign_in(c, "rita")
        page = c.get("/predictions").text
        assert 'id="predictions-hidden"' in page and "model.too_little_data" in page
        assert 'id="chart-p-alive"' not in page
    store.dispose()


# -- security ------------------------------------------------------------------------------------------

GET_ROUTES = [
    "/segments",
    "/predictions",
    "/customers.csv",
    "/segments/rfm/champions/callback.csv",
    "/segments/rfm/champions/coupons",
]


@pytest.mark.parametrize("path", GET_ROUTES)
def test_new_pages_need_a_session(fclient, path: str) -> None:
    r = fclient.get(path, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/login?next=")


@pytest.mark.parametrize("path", ["/segments/refresh", "/segments/rfm/champions/coupons"])
def test_changing_routes_need_a_session_the_role_and_the_token(
    facts_console: Console, fclient, path: str
) -> None:
    r = fclient.post(path, data={"csrf_token": "x", "template": "fixed20", "batch": "b1"},
                     follow_redirects=False)  # fmt: skip
    assert r.status_code == 303 and "/login" in r.headers["location"]
    sign_in(fclient, "rita")
    token = csrf_of(fclient)
    data = {"csrf_token": token, "template": "fixed20", "batch": "b1"}
    assert fclient.post(path, data=data).status_code == 403  # read users
    fclient.cookies.clear()
    sign_in(fclient, "otto")
    assert fclient.post(path, data={**data, "csrf_token": "wrong"}).status_code == 403
    assert (
        fclient.post(path, data={k: v for k, v in data.items() if k != "csrf_token"}).status_code
        == 403
    )
    with facts_console.store.connect() as conn:
        assert conn.execute(select(func.count()).select_from(lt.coupons)).scalar_one() == 0
        assert run_read(facts_console.store, snapshot_meta) is None


def test_read_users_cannot_open_the_coupon_confirm_step(fclient) -> None:
    sign_in(fclient, "rita")
    assert fclient.get("/segments/rfm/champions/coupons").status_code == 403


def test_the_tier_filter_reads_the_loyalty_members(facts_console: Console, fclient) -> None:
    _refresh(facts_console)
    rows = run_read(
        facts_console.store, lambda c: find_customers(c, FactsFilter.parse({"rfm": "loyal"}))
    )[0]
    gold = [r["customer_id"] for r in rows[:3]]
    with facts_console.store.begin() as conn:
        for cid in gold:
            conn.execute(
                lt.members.insert().values(
                    customer_id=cid, tier="gold", preferences={}, paid_orders=0,
                    created_at=NOW, updated_at=NOW,
                )
            )  # fmt: skip
    sign_in(fclient, "rita")
    page = fclient.get("/customers", params={"tier": "gold"}).text
    assert re.findall(r'<tr data-customer="([^"]+)">', page) == sorted(gold)
    assert '<option value="gold" selected>' in page

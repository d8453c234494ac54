"""The console's loyalty section through the production app (``create_app``) on a real
store (SQLite, and PostgreSQL where HUITOUKE_TEST_POSTGRES_URL is set): the liabilities,
redemption rates and tier mix equal ``GET /v1/loyalty/summary`` and ``huitouke loyalty
summary`` for the same store; coupons in batch checked by line, confirmed, issued once
however often the confirmation is sent; corrections recorded in the ledger and the audit
trail, never below zero; the program editor validates before saving, names each bad field,
shows the changes and saves a new version as ``PUT /v1/program`` does; and every route
refuses a request without a session, with too low a role, or without the CSRF token."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml
from sqlalchemy import func, select

from huitouke.loyalty import tables as lt
from huitouke.loyalty.program import load_program
from huitouke.loyalty.programs_repo import save_program
from huitouke.service.apikeys import create_api_key

from .conftest import Console, cli, csrf_of, sign_in

SHOP = (
    Path(__file__).resolve().parents[2] / "src" / "huitouke" / "loyalty" / "examples" / "shop.yaml"
)
ZONE = ZoneInfo("Asia/Shanghai")


class Shop:
    def __init__(self, console: Console, client: Any, keys: dict[str, str]) -> None:
        self.console, self.client, self.keys = console, client, keys

    def h(self, scope: str = "operator") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[scope]}"}

    def count(self, table: Any, *where: Any) -> int:
        with self.console.store.connect() as conn:
            return int(
                conn.execute(select(func.count()).select_from(table).where(*where)).scalar_one()
            )


@pytest.fixture
def shop(console: Console, client: Any) -> Shop:
    """The example shop program, four customers, orders, a top-up, coupons issued and one
    redeemed, points redeemed — all through the REST API of the same app."""
    doc = yaml.safe_load(SHOP.read_text(encoding="utf-8"))
    now = console.clock.now
    keys = {}
    with console.store.begin() as conn:
        save_program(conn, load_program({**doc, "id": "default"}), now=now)
        for scope in ("read", "operator", "admin"):
            _, keys[scope] = create_api_key(conn, scope=scope, name=f"k-{scope}", now=now)
    s = Shop(console, client, keys)
    for cid in ("c1", "c2", "c3", "c4"):
        r = client.put(f"/v1/customers/{cid}", json={"name": cid}, headers=s.h())
        assert r.status_code in (200, 201), r.text
    orders = [
        ("o1", "c1", "2500.00", "05-03"),
        ("o2", "c2", "120.00", "05-10"),
        ("o3", "c3", "60", "04-02"),
    ]
    for oid, cid, amount, day in orders:
        r = client.post(
            "/v1/orders",
            json={"order_id": oid, "customer_id": cid, "ordered_at": f"2026-{day}T10:00:00+08:00",
                  "amount": amount, "currency": "CNY", "status": "paid"},
            headers=s.h(),
        )  # fmt: skip
        assert r.status_code in (200, 201), r.text
    r = client.post(
        "/v1/customers/c1/topups", json={"amount": "300", "idempotency_key": "t1"}, headers=s.h()
    )
    assert r.status_code == 200, r.text
    codes = []
    for i, cid in enumerate(("c2", "c3", "c3")):
        r = client.post(
            "/v1/coupons",
            json={"template": "fixed20", "customer_id": cid, "idempotency_key": f"i{i}"},
            headers=s.h(),
        )
        assert r.status_code == 200, r.text
        codes.append(r.json()["code"])
    r = client.post(
        f"/v1/coupons/{codes[0]}/redeem",
        json={"order_id": "o2", "customer_id": "c2", "order_amount": "120"},
        headers=s.h(),
    )
    assert r.status_code == 200, r.text
    r = client.post(
        "/v1/customers/c1/points/redeem",
        json={"points": "500", "idempotency_key": "r1"},
        headers=s.h(),
    )
    assert r.status_code == 200, r.text
    return s


def data_values(page: str, attr: str) -> dict[str, str]:
    return dict(re.findall(rf'data-{attr}="([^"]+)" data-value="([^"]*)"', page))


def token_of(page: str, name: str) -> str:
    found = re.search(rf'name="{name}" value="([^"]*)"', page)
    assert found, name
    return found.group(1)


# -- the summary ------------------------------------------------------------------------------


def test_summary_equals_rest_and_cli(shop: Shop, console: Console, store_url: str) -> None:
    c = shop.client
    sign_in(c, "rita")
    page = c.get("/loyalty", params={"start": "2026-04-01", "end": "2026-06-01"})
    assert page.status_code == 200, page.text
    start = datetime(2026, 4, 1, tzinfo=ZONE)
    end = datetime(2026, 6, 2, tzinfo=ZONE)
    as_of = console.clock.now
    params = {"start": start.isoformat(), "end": end.isoformat(), "as_of": as_of.isoformat()}
    rest = c.get("/v1/loyalty/summary", params=params, headers=shop.h("read"))
    assert rest.status_code == 200, rest.text
    data = rest.json()
    liab, red = data["liabilities"], data["redemption"]
    # the shop's own numbers, worked out by hand from the fixture
    assert liab["stored_value"] == {
        "paid": "300", "bonus": "20", "held": "0", "owed": "320", "pending_bonus": "180", "holders": 1,
    }  # fmt: skip
    assert liab["coupons"]["outstanding"] >= 2  # two fixed20 + the order coupons
    assert red["coupons"]["issued"] >= 3 and red["coupons"]["redeemed"] == 1
    assert red["points"]["redeemed"] == "500"
    shown = data_values(page.text, "liability")
    assert shown["points"] == liab["points"]["outstanding"]
    assert shown["points_value"] == liab["points"]["value"]
    assert shown["stored_owed"] == liab["stored_value"]["owed"]
    assert shown["stored_paid"] == liab["stored_value"]["paid"]
    assert shown["stored_bonus"] == liab["stored_value"]["bonus"]
    assert shown["pending_bonus"] == liab["stored_value"]["pending_bonus"]
    assert shown["coupons"] == str(liab["coupons"]["outstanding"])
    assert shown["coupons_face"] == liab["coupons"]["face_value"]
    rows = dict(re.findall(r'<tr data-kind="(\w+)" data-given="([^"]*)"', page.text))
    assert rows == {"coupons": str(red["coupons"]["issued"]), "points": red["points"]["earned"]}
    rates = dict(
        re.findall(
            r'data-kind="(\w+)" data-given="[^"]*" data-used="[^"]*" data-rate="([^"]*)"', page.text
        )
    )
    assert float(rates["coupons"]) == red["coupons"]["rate"]
    assert float(rates["points"]) == red["points"]["rate"]
    assert f'data-start="{red["start"]}"' in page.text and f'data-end="{red["end"]}"' in page.text
    tiers = re.findall(r'<tr data-tier="([^"]*)" data-members="(\d+)"', page.text)
    assert tiers == [(t["tier"] or "", str(t["members"])) for t in data["tiers"]]
    assert [t["tier"] for t in data["tiers"]] == ["v1", "v2", "v3", None]
    assert dict((t["tier"], t["members"]) for t in data["tiers"])["v3"] == 0
    assert 'id="chart-tiers"' in page.text and 'id="chart-redemption"' in page.text
    # the htmx fragment: the same period's numbers
    frag = c.get(
        "/loyalty/redemption",
        params={"start": "2026-04-01", "end": "2026-06-01"},
        headers={"HX-Request": "true"},
    )
    assert frag.status_code == 200 and "<html" not in frag.text
    assert f'data-start="{red["start"]}"' in frag.text
    if store_url.startswith("sqlite"):
        out = cli(store_url, "loyalty", "summary", "--start", start.isoformat(), "--end",
                  end.isoformat(), "--as-of", as_of.isoformat())  # fmt: skip
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout) == data


def test_summary_of_an_empty_store_and_bad_dates(console: Console, client: Any) -> None:
    sign_in(client, "rita")
    page = client.get("/loyalty", params={"start": "someday"})
    assert page.status_code == 200
    assert data_values(page.text, "liability")["points"] == "0"
    assert "YYYY-MM-DD" in page.text
    swapped = client.get("/loyalty", params={"start": "2026-05-31", "end": "2026-05-01"})
    assert 'value="2026-05-01" id="period-start"' in swapped.text
    zh = client.get("/loyalty", headers={"Accept-Language": "zh-CN"})
    assert "未使用积分" in zh.text or "Points outstanding" in zh.text


def test_the_pages_speak_chinese(shop: Shop) -> None:
    c = shop.client
    sign_in(c, "ana")
    token = csrf_of(c)
    assert (
        c.post("/lang", data={"lang": "zh", "csrf_token": token, "next": "/loyalty"}).status_code
        == 200
    )
    for path, words in [
        ("/loyalty", ["未使用积分", "储值负债", "待释放赠送金", "核销率", "各等级会员数"]),
        ("/loyalty/coupons", ["批量发放优惠券", "校验名单"]),
        ("/loyalty/corrections", ["调整余额", "审计记录"]),
        ("/loyalty/program", ["方案文档", "保存为新版本"]),
    ]:
        page = c.get(path)
        assert page.status_code == 200, path
        for w in words:
            assert w in page.text, (path, w)


# -- coupons in batch -------------------------------------------------------------------------


def test_batch_is_checked_by_line_and_issued_once(shop: Shop) -> None:
    c = shop.client
    sign_in(c, "otto")
    form = c.get("/loyalty/coupons")
    assert form.status_code == 200
    token = token_of(form.text, "csrf_token")
    before = shop.count(lt.coupons, lt.coupons.c.template_id == "pct10")
    bad = c.post(
        "/loyalty/coupons/check",
        data={"template": "pct10", "customers": "c1\nnobody\n\nc2\nc1\n", "csrf_token": token},
    )
    assert bad.status_code == 422
    problems = re.findall(r'<tr data-line="(\d+)" data-kind="(\w+)">', bad.text)
    assert problems == [("2", "unknown"), ("5", "duplicate")]
    assert "already on line 1" in bad.text
    assert 'id="batch-confirm"' not in bad.text
    assert shop.count(lt.coupons, lt.coupons.c.template_id == "pct10") == before

    ok = c.post(
        "/loyalty/coupons/check",
        data={"template": "pct10", "customers": "c1\nc2\nc3", "csrf_token": token},
    )
    assert ok.status_code == 200
    assert 'data-count="3"' in ok.text and 'id="batch-confirm"' in ok.text
    assert shop.count(lt.coupons, lt.coupons.c.template_id == "pct10") == before  # not yet
    confirm = {
        "template": "pct10",
        "customers": re.search(
            r'<textarea name="customers" hidden>([^<]*)</textarea>', ok.text
        ).group(1),  # type: ignore[union-attr]
        "batch_key": token_of(ok.text, "batch_key"),
        "csrf_token": token,
    }
    done = c.post("/loyalty/coupons/issue", data=confirm)
    assert done.status_code == 200, done.text
    assert 'data-issued="3"' in done.text and 'data-replayed="0"' in done.text
    assert shop.count(lt.coupons, lt.coupons.c.template_id == "pct10") == before + 3
    again = c.post("/loyalty/coupons/issue", data=confirm)  # a double submit
    assert again.status_code == 200
    assert 'data-issued="0"' in again.text and 'data-replayed="3"' in again.text
    assert shop.count(lt.coupons, lt.coupons.c.template_id == "pct10") == before + 3
    # each customer holds one: the same as the REST view of them
    for cid in ("c1", "c2", "c3"):
        held = c.get(f"/v1/customers/{cid}/loyalty", headers=shop.h("read")).json()["coupons"]
        assert sum(1 for cp in held if cp["template"] == "pct10") == 1


def test_batch_from_a_csv_file_and_the_template_limit(shop: Shop) -> None:
    c = shop.client
    sign_in(c, "otto")
    token = token_of(c.get("/loyalty/coupons").text, "csrf_token")
    csv_text = "name,customer_id\n甲,c1\n乙,c4\n丙,c9\n".encode("gb18030")
    r = c.post(
        "/loyalty/coupons/check",
        data={"template": "fixed20", "customers": "", "csrf_token": token},
        files={"file": ("list.csv", csv_text, "text/csv")},
    )
    assert r.status_code == 422
    assert re.findall(r'<tr data-line="(\d+)" data-kind="(\w+)">', r.text) == [("4", "unknown")]
    # man200jian30 allows five per customer: c2 has five, so the sixth is refused by line
    for i in range(5):
        shop.client.post(
            "/v1/coupons",
            json={"template": "man200jian30", "customer_id": "c2", "idempotency_key": f"m{i}"},
            headers=shop.h(),
        )
    r = c.post(
        "/loyalty/coupons/check",
        data={"template": "man200jian30", "customers": "c1\nc2", "csrf_token": token},
    )
    assert re.findall(r'<tr data-line="(\d+)" data-kind="(\w+)">', r.text) == [
        ("2", "limit_reached")
    ]
    unknown = c.post(
        "/loyalty/coupons/check", data={"template": "nope", "customers": "c1", "csrf_token": token}
    )
    assert unknown.status_code == 404 and 'id="batch-error"' in unknown.text
    empty = c.post(
        "/loyalty/coupons/check",
        data={"template": "pct10", "customers": " \n", "csrf_token": token},
    )
    assert empty.status_code == 422


def test_rest_batch_is_the_same_use_case(shop: Shop) -> None:
    c = shop.client
    body = {"template": "pct10", "customer_ids": ["c1", "ghost", "c1"], "idempotency_key": "b1"}
    r = c.post("/v1/coupons/batch", json=body, headers=shop.h())
    assert r.status_code == 422
    problems = r.json()["error"]["details"]["problems"]
    assert [(p["line"], p["kind"]) for p in problems] == [(2, "unknown"), (3, "duplicate")]
    assert shop.count(lt.coupons, lt.coupons.c.template_id == "pct10") == 0
    body = {**body, "customer_ids": ["c1", "c2"], "idempotency_key": "b2"}
    assert c.post("/v1/coupons/batch", json=body, headers=shop.h("read")).status_code == 403
    r = c.post("/v1/coupons/batch", json=body, headers=shop.h())
    assert r.status_code == 200 and r.json()["issued"] == 2
    again = c.post("/v1/coupons/batch", json=body, headers=shop.h())
    assert again.json()["replayed"] == 2 and again.headers["Idempotent-Replayed"] == "true"
    assert shop.count(lt.coupons, lt.coupons.c.template_id == "pct10") == 2


def test_issue_without_a_check_is_refused(shop: Shop) -> None:
    c = shop.client
    sign_in(c, "otto")
    token = token_of(c.get("/loyalty/coupons").text, "csrf_token")
    r = c.post(
        "/loyalty/coupons/issue",
        data={
            "template": "pct10",
            "customers": "c1\nghost",
            "batch_key": "abc123",
            "csrf_token": token,
        },
    )
    assert r.status_code == 422
    assert shop.count(lt.coupons, lt.coupons.c.template_id == "pct10") == 0
    r = c.post(
        "/loyalty/coupons/issue",
        data={"template": "pct10", "customers": "c1", "batch_key": "", "csrf_token": token},
    )
    assert r.status_code == 422


# -- corrections ------------------------------------------------------------------------------


def test_corrections_are_ledger_entries_with_an_audit_row(shop: Shop) -> None:
    c = shop.client
    sign_in(c, "ana")
    page = c.get("/loyalty/corrections")
    assert page.status_code == 200
    token, key = token_of(page.text, "csrf_token"), token_of(page.text, "key")
    before = c.get("/v1/customers/c2/loyalty", headers=shop.h("read")).json()["points_balance"]
    form = {"customer_id": "c2", "target": "points", "delta": "50", "reason": "lost receipt 丢失小票",
            "key": key, "csrf_token": token}  # fmt: skip
    r = c.post("/loyalty/corrections", data=form)
    assert r.status_code == 200, r.text
    assert 'data-replayed="0"' in r.text
    after = c.get("/v1/customers/c2/loyalty", headers=shop.h("read")).json()["points_balance"]
    assert int(after) == int(before) + 50
    with shop.console.store.connect() as conn:
        rows = conn.execute(select(lt.corrections)).all()
        entries = conn.execute(
            select(lt.entries.c.delta, lt.entries.c.kind).where(
                lt.entries.c.idempotency_key == f"adjust:console-{key}"
            )
        ).all()
    assert [(r.customer_id, r.asset, int(r.delta), r.reason, r.actor) for r in rows] == [
        ("c2", "points", 50, "lost receipt 丢失小票", "console:ana")
    ]
    assert rows[0].created_at == shop.console.clock.now
    assert [(e.kind, int(e.delta)) for e in entries] == [("adjust", 50)]
    assert '<tr data-customer="c2" data-asset="points" data-delta="50">' in r.text
    assert "lost receipt 丢失小票" in r.text and "console:ana" in r.text
    # the same form sent again: recorded once
    again = c.post("/loyalty/corrections", data=form)
    assert 'data-replayed="1"' in again.text
    assert shop.count(lt.corrections) == 1
    # the audit trail is the REST one too
    trail = c.get("/v1/loyalty/corrections", headers=shop.h("read")).json()
    assert [(t["customer_id"], t["delta"], t["actor"]) for t in trail] == [
        ("c2", "50", "console:ana")
    ]


def test_corrections_never_make_a_balance_negative(shop: Shop) -> None:
    c = shop.client
    sign_in(c, "ana")
    token = token_of(c.get("/loyalty/corrections").text, "csrf_token")

    def post(**form: str) -> Any:
        key = token_of(c.get("/loyalty/corrections").text, "key")
        return c.post("/loyalty/corrections", data={"key": key, "csrf_token": token, **form})

    r = post(customer_id="c4", target="points", delta="-5", reason="typo")
    assert r.status_code == 409 and 'id="correction-error"' in r.text
    assert "cannot cover" in r.text
    r = post(customer_id="c1", target="paid", delta="-300.01", reason="typo")
    assert r.status_code == 409 and "cannot make a balance negative" in r.text
    r = post(customer_id="c1", target="bonus", delta="-21", reason="typo")
    assert r.status_code == 409
    assert shop.count(lt.corrections) == 0
    r = post(customer_id="c1", target="bonus", delta="-20", reason="bonus given by mistake")
    assert r.status_code == 200, r.text
    sv = c.get("/v1/customers/c1/loyalty", headers=shop.h("read")).json()["stored_value"]
    assert sv == {"paid": "300", "bonus": "0", "pending_bonus": "180"}
    r = post(customer_id="c1", target="paid", delta="12.345", reason="x")
    assert r.status_code == 422
    r = post(customer_id="c1", target="points", delta="5", reason="   ")
    assert r.status_code == 422 and "reason is required" in r.text
    r = post(customer_id="ghost", target="points", delta="5", reason="x")
    assert r.status_code == 404
    r = post(customer_id="c1", target="points", delta="lots", reason="x")
    assert r.status_code == 422
    assert shop.count(lt.corrections) == 1
    with shop.console.store.connect() as conn:
        from huitouke.loyalty.ledger import verify_ledger

        assert verify_ledger(conn) == []


def test_rest_stored_value_adjust_is_admin_and_audited(shop: Shop) -> None:
    c = shop.client
    body = {"balance": "paid", "delta": "-100", "reason": "refund-at-till", "idempotency_key": "a1"}
    r = c.post("/v1/customers/c1/stored-value/adjust", json=body, headers=shop.h("operator"))
    assert r.status_code == 403
    r = c.post("/v1/customers/c1/stored-value/adjust", json=body, headers=shop.h("admin"))
    assert r.status_code == 200, r.text
    assert r.json()["balances"]["paid"] == "200"
    r2 = c.post("/v1/customers/c1/stored-value/adjust", json=body, headers=shop.h("admin"))
    assert r2.headers.get("Idempotent-Replayed") == "true"
    too_much = {**body, "delta": "-201", "idempotency_key": "a2"}
    r = c.post("/v1/customers/c1/stored-value/adjust", json=too_much, headers=shop.h("admin"))
    assert r.status_code == 409 and r.json()["error"]["code"] == "stored_value.insufficient"
    trail = c.get(
        "/v1/loyalty/corrections", params={"customer_id": "c1"}, headers=shop.h("read")
    ).json()
    assert (
        len(trail) == 1
        and trail[0]["actor"].startswith("api-key:")
        and trail[0]["asset"] == "stored_paid"
    )


def test_cli_corrections_share_the_audit_trail(shop: Shop, store_url: str) -> None:
    if not store_url.startswith("sqlite"):
        pytest.skip("the CLI's own store handling is the same on both backends; run once")
    out = cli(store_url, "loyalty", "stored-value", "adjust", "--balance", "paid",
              "--reason", "cash back at the till", "--key", "cli-1", "--", "c1", "-50")  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["balances"]["paid"] == "250"
    refused = cli(store_url, "loyalty", "stored-value", "adjust", "--balance", "paid",
                  "--reason", "x", "--key", "cli-2", "--", "c1", "-251")  # fmt: skip
    assert (
        refused.returncode == 4 and "stored_value.insufficient" in refused.stderr + refused.stdout
    )
    trail = json.loads(cli(store_url, "loyalty", "corrections").stdout)
    assert [(t["asset"], t["delta"], t["reason"]) for t in trail] == [
        ("stored_paid", "-50", "cash back at the till")
    ]
    assert trail[0]["actor"].startswith("cli")
    sign_in(shop.client, "ana")
    page = shop.client.get("/loyalty/corrections")
    assert '<tr data-customer="c1" data-asset="stored_paid" data-delta="-50">' in page.text


# -- the program editor -----------------------------------------------------------------------


def test_program_editor_validates_shows_changes_and_saves(shop: Shop) -> None:
    c = shop.client
    sign_in(c, "ana")
    page = c.get("/loyalty/program")
    assert page.status_code == 200
    assert 'id="program-form"' in page.text and 'data-version="1"' in page.text
    token = token_of(page.text, "csrf_token")
    active = c.get("/v1/program", headers=shop.h("read")).json()
    doc = yaml.safe_load(
        re.search(r'id="program-document">([^<]*)</textarea>', page.text)
        .group(1)
        .replace("&#39;", "'")
        .replace("&quot;", '"')
        .replace("&amp;", "&")
    )  # type: ignore[union-attr]
    assert doc == active

    bad = json.loads(json.dumps(doc))
    bad["tiers"]["levels"][1]["threshold"] = "lots"
    bad["earn"]["points_per_unit"] = "-1"
    bad["coupon_templates"][0]["kindd"] = "fixed"
    r = c.post(
        "/loyalty/program",
        data={
            "document": yaml.safe_dump(bad, allow_unicode=True),
            "base_version": "1",
            "csrf_token": token,
        },
    )
    assert r.status_code == 422
    fields = re.findall(r'<tr data-field="([^"]+)">', r.text)
    assert "tiers.levels.1.threshold" in fields
    assert "earn.points_per_unit" in fields
    assert "coupon_templates.0.kindd" in fields
    assert 'data-version="1"' in r.text
    # the same validation as PUT /v1/program
    rest = c.put("/v1/program", json=bad, headers=shop.h("admin"))
    assert rest.status_code == 422
    assert sorted(e.split(": ")[0] for e in rest.json()["error"]["details"]["errors"]) == sorted(
        fields
    )

    syntax = c.post(
        "/loyalty/program/preview",
        data={"document": "earn: [unclosed", "base_version": "1", "csrf_token": token},
    )
    assert syntax.status_code == 422 and re.search(r'data-field="line \d+"', syntax.text)

    new = json.loads(json.dumps(doc))
    new["earn"]["per_order"] = "25"
    text = yaml.safe_dump(new, allow_unicode=True)
    preview = c.post(
        "/loyalty/program/preview",
        data={"document": text, "base_version": "1", "csrf_token": token},
    )
    assert preview.status_code == 200
    diff = re.search(r'<pre class="diff" id="program-diff">(.*?)</pre>', preview.text, re.S).group(
        1
    )  # type: ignore[union-attr]
    assert re.search(r'<span class="del">-  per_order: &#39;10&#39;</span>', diff), diff
    assert re.search(r'<span class="add">\+  per_order: &#39;25&#39;</span>', diff), diff
    assert c.get("/v1/program", headers=shop.h("read")).json()["earn"]["per_order"] == "10"

    saved = c.post(
        "/loyalty/program", data={"document": text, "base_version": "1", "csrf_token": token}
    )
    assert saved.status_code == 200, saved.text
    assert 'data-version="2"' in saved.text and 'id="program-notice"' in saved.text
    assert c.get("/v1/program", headers=shop.h("read")).json()["earn"]["per_order"] == "25"

    # an editor opened at version 1 cannot overwrite version 2 unseen
    new["earn"]["per_order"] = "30"
    stale = c.post(
        "/loyalty/program",
        data={"document": yaml.safe_dump(new), "base_version": "1", "csrf_token": token},
    )
    assert stale.status_code == 409
    assert c.get("/v1/program", headers=shop.h("read")).json()["earn"]["per_order"] == "25"
    assert token_of(stale.text, "base_version") == "2"
    # a zone other than the store's: refused as PUT /v1/program refuses it
    zoned = c.post(
        "/loyalty/program",
        data={
            "document": yaml.safe_dump({**new, "timezone": "Europe/Paris"}),
            "base_version": "2",
            "csrf_token": token,
        },
    )
    assert zoned.status_code == 422 and '<tr data-field="timezone">' in zoned.text


def test_structured_forms_edit_earn_rules_tiers_and_topups(shop: Shop) -> None:
    c = shop.client
    sign_in(c, "ana")
    page = c.get("/loyalty/program")
    token = token_of(page.text, "csrf_token")
    assert 'id="program-forms"' in page.text
    assert 'name="tier_threshold" value="2000"' in page.text
    form: dict[str, Any] = {
        "csrf_token": token, "base_version": "1",
        "points_per_unit": "2", "unit": "1", "per_order": "10", "min_order_amount": "10",
        "tier_id": ["v1", "v2", "v3", ""], "tier_name": ["V1", "V2", "V3", ""],
        "tier_threshold": ["0", "lots", "8000", ""], "tier_discount": ["0", "3", "8", ""],
        "tier_multiplier": ["1", "1.5", "2", ""],
        "topup_min": ["200", "500", "1000"], "topup_bonus": ["200", "600", "1000"],
        "topup_parts": ["10", "12", "10"], "topup_every": ["month", "month", "month"],
    }  # fmt: skip
    bad = c.post("/loyalty/program/form", data={**form, "action": "save"})
    assert bad.status_code == 422
    assert re.findall(r'<tr data-field="([^"]+)">', bad.text) == ["tiers.levels.1.threshold"]
    assert 'name="tier_threshold" value="lots"' in bad.text  # what was typed is kept
    assert c.get("/v1/program", headers=shop.h("read")).json()["earn"]["points_per_unit"] == "1"

    form["tier_threshold"] = ["0", "2500", "8000", ""]
    preview = c.post("/loyalty/program/form", data={**form, "action": "preview"})
    assert preview.status_code == 200 and 'id="program-diff"' in preview.text
    assert c.get("/v1/program", headers=shop.h("read")).json()["earn"]["points_per_unit"] == "1"
    saved = c.post("/loyalty/program/form", data={**form, "action": "save"})
    assert saved.status_code == 200, saved.text
    assert 'data-version="2"' in saved.text
    program = c.get("/v1/program", headers=shop.h("read")).json()
    assert program["earn"]["points_per_unit"] == "2"
    assert [lv["threshold"] for lv in program["tiers"]["levels"]] == ["0", "2500", "8000"]
    # what the form does not show is kept (v3 remembers preferences in the example)
    assert program["tiers"]["levels"][2]["benefits"]["remember_preferences"] is True
    assert program["tiers"]["metric"] == "spend"
    rules = program["stored_value"]["topup_rules"]
    assert [(r["min_amount"], r["bonus"], r["release_installments"]) for r in rules] == [
        ("200", "200", 10), ("500", "600", 12), ("1000", "1000", 10),
    ]  # fmt: skip
    # the new 充1000送1000 rule runs at once: a top-up of 1000 gets a bonus of 1000
    r = c.post(
        "/v1/customers/c3/topups",
        json={"amount": "1000", "idempotency_key": "t9"},
        headers=shop.h(),
    )
    assert r.json()["bonus"] == "1000"


@pytest.mark.parametrize("name", ["otto", "rita"])
def test_program_is_read_only_below_admin(shop: Shop, name: str) -> None:
    c = shop.client
    sign_in(c, name)
    page = c.get("/loyalty/program")
    assert page.status_code == 200
    assert 'id="program-form"' not in page.text and "readonly" in page.text
    assert 'id="program-forms"' not in page.text and 'id="earn-rule"' in page.text
    token = csrf_of(c)
    r = c.post(
        "/loyalty/program", data={"document": "earn: {}", "base_version": "1", "csrf_token": token}
    )
    assert r.status_code == 403


# -- security of every route ------------------------------------------------------------------

GETS = [
    "/loyalty",
    "/loyalty/redemption",
    "/loyalty/coupons",
    "/loyalty/corrections",
    "/loyalty/program",
]
POSTS = {
    "/loyalty/coupons/check": "operator",
    "/loyalty/coupons/issue": "operator",
    "/loyalty/corrections": "admin",
    "/loyalty/program/preview": "admin",
    "/loyalty/program": "admin",
    "/loyalty/program/form": "admin",
}
GET_ROLES = {
    "/loyalty": "read",
    "/loyalty/redemption": "read",
    "/loyalty/coupons": "operator",
    "/loyalty/corrections": "admin",
    "/loyalty/program": "read",
}


def test_no_page_without_a_session(client: Any) -> None:
    for path in GETS:
        r = client.get(path, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"].startswith("/login?next="), path
        r = client.get(path, headers={"HX-Request": "true"}, follow_redirects=False)
        assert r.status_code == 401 and "HX-Redirect" in r.headers, path
    for path in POSTS:
        r = client.post(path, data={"csrf_token": "x"}, follow_redirects=False)
        assert r.status_code == 303 and "/login" in r.headers["location"], path


@pytest.mark.parametrize("name", ["rita", "otto"])
def test_roles_are_checked_on_every_route(console: Console, client: Any, name: str) -> None:
    from huitouke.service.apikeys import scope_allows

    sign_in(client, name)
    token = csrf_of(client)
    role = {"rita": "read", "otto": "operator"}[name]
    for path, needed in GET_ROLES.items():
        r = client.get(path)
        assert r.status_code == (200 if scope_allows(role, needed) else 403), (name, path)  # type: ignore[arg-type]
    for path, needed in POSTS.items():
        if scope_allows(role, needed):  # type: ignore[arg-type]
            continue
        r = client.post(path, data={"csrf_token": token})
        assert r.status_code == 403, (name, path)


def test_changing_routes_need_the_csrf_token(shop: Shop) -> None:
    c = shop.client
    sign_in(c, "ana")
    before = shop.count(lt.corrections), shop.count(lt.coupons)
    forms = {
        "/loyalty/coupons/check": {"template": "pct10", "customers": "c1"},
        "/loyalty/coupons/issue": {"template": "pct10", "customers": "c1", "batch_key": "k1"},
        "/loyalty/corrections": {
            "customer_id": "c1",
            "target": "points",
            "delta": "5",
            "reason": "x",
            "key": "k2",
        },
        "/loyalty/program/preview": {"document": "earn: {}", "base_version": "1"},
        "/loyalty/program": {"document": "earn: {per_order: 1}", "base_version": "1"},
        "/loyalty/program/form": {"action": "save", "per_order": "1", "base_version": "1"},
    }
    assert set(forms) == set(POSTS)
    for path, form in forms.items():
        assert c.post(path, data=form).status_code == 403, path
        assert c.post(path, data={**form, "csrf_token": "wrong"}).status_code == 403, path
    assert (shop.count(lt.corrections), shop.count(lt.coupons)) == before
    assert c.get("/v1/program", headers=shop.h("read")).json()["earn"]["per_order"] == "10"


def test_the_summary_period_is_cut_in_the_merchants_zone(shop: Shop, console: Console) -> None:
    """Days are the merchant's: the fixture's coupons, issued at 02:00 UTC on 1 June (10:00
    in Shanghai), are in the local day 1 June and not in 31 May."""
    c = shop.client
    sign_in(c, "rita")
    page = c.get("/loyalty", params={"start": "2026-06-01", "end": "2026-06-01"})
    # the fixture's coupons were issued at the clock's 2026-06-01 02:00 UTC = 10:00 local
    assert re.search(r'<tr data-kind="coupons" data-given="([1-9]\d*)"', page.text)
    prev = c.get("/loyalty", params={"start": "2026-05-31", "end": "2026-05-31"})
    assert '<tr data-kind="coupons" data-given="0"' in prev.text
    assert console.clock.now == datetime(2026, 6, 1, 2, 0, tzinfo=UTC)

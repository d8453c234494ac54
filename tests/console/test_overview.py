"""The overview shows the analytics' numbers — the same as `huitouke metrics --format json`
for the same store — and the console's users are managed with the installed CLI."""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from huitouke.i18n import fmt_pct
from huitouke.settings import Settings
from huitouke.store.db import Store

from .conftest import cli, make_users, sign_in

CARD_KEYS = ["in_period_repurchase_rate", "buyback_rate", "returning_buyer_share", "aov"]


@pytest.fixture
def signed_in(shop: dict[str, Any]) -> Iterator[Any]:
    import warnings

    from huitouke.service import create_app

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient

    app = create_app(Settings(database_url=shop["url"], lang="en"))
    with TestClient(app, base_url="http://127.0.0.1") as c:
        assert sign_in(c, "rita").status_code == 303
        yield c


def cards(page: str) -> dict[str, dict[str, str]]:
    out = {}
    for m in re.finditer(
        r'<article class="card" data-metric="([^"]+)" data-value="([^"]*)" '
        r'data-period="([^"]*)">.*?<p class="value">([^<]*)</p>',
        page,
        re.S,
    ):
        out[m.group(1)] = {"value": m.group(2), "period": m.group(3), "shown": m.group(4)}
    return out


def chart_option(page: str, chart: str) -> dict[str, Any]:
    found = re.search(rf'id="chart-{chart}" data-option="([^"]*)"', page)
    assert found, chart
    return json.loads(html.unescape(found.group(1)))


@pytest.mark.parametrize("period", ["month", "quarter"])
def test_overview_numbers_equal_the_metrics_command(shop, signed_in, period: str) -> None:
    expected = shop["metrics"][period]
    head = expected["headline"]
    page = signed_in.get("/", params={"period": period}).text
    shown = cards(page)
    assert list(shown) == CARD_KEYS
    for key in CARD_KEYS:
        entry = head["metrics"][key]
        assert float(shown[key]["value"]) == entry["value"], key
        want_period = head["buyback_period"] if key == "buyback_rate" else head["period"]
        assert shown[key]["period"] == want_period
    for key in ("in_period_repurchase_rate", "buyback_rate", "returning_buyer_share"):
        assert shown[key]["shown"] == fmt_pct(head["metrics"][key]["value"], "en", 1)
    # the trend charts carry every period of the command's output, incomplete ones marked
    rates = chart_option(page, "rates")
    periods = expected["periods"]
    assert rates["xAxis"]["data"] == [
        p["period"] if p["complete"] else f"{p['period']} *" for p in periods
    ]
    by_name = {s["name"]: s["data"] for s in rates["series"]}
    assert by_name["Repurchase rate"] == [
        None if p["in_period_repurchase_rate"] is None
        else round(p["in_period_repurchase_rate"] * 100, 2) for p in periods
    ]  # fmt: skip
    buyers = chart_option(page, "buyers")
    assert buyers["series"][0]["data"] == [p["new_buyers"] for p in periods]
    assert buyers["series"][1]["data"] == [p["returning_buyers"] for p in periods]
    assert buyers["series"][2]["data"] == [p["aov"] for p in periods]


def test_the_period_switch_fragment_matches_too(shop, signed_in) -> None:
    r = signed_in.get("/overview/fragment", params={"period": "quarter"})
    assert r.status_code == 200 and "<html" not in r.text
    head = shop["metrics"]["quarter"]["headline"]
    shown = cards(r.text)
    assert float(shown["aov"]["value"]) == head["metrics"]["aov"]["value"]


def test_the_ladder_and_cohorts_are_the_analytics(shop, signed_in) -> None:
    out = cli(shop["url"], "ladder", "--format", "json")
    assert out.returncode == 0, out.stderr
    body = json.loads(out.stdout)
    ladder = body["ladder"] if isinstance(body, dict) else body
    page = signed_in.get("/").text
    option = chart_option(page, "ladder")
    assert option["series"][0]["data"] == [
        None if r["share"] is None else round(r["share"] * 100, 1) for r in ladder
    ]
    coh = cli(shop["url"], "cohorts", "--format", "json")
    assert coh.returncode == 0, coh.stderr
    cbody = json.loads(coh.stdout)
    rows = cbody["cohorts_share"] if isinstance(cbody, dict) else cbody
    grid = re.search(r'<table class="cohorts" id="cohort-grid">(.*?)</table>', page, re.S)
    assert grid
    # CDNOW covers 18 months: the grid shows k = 0..12
    assert re.findall(r"<th>k=(\d+)</th>", grid.group(1)) == [str(k) for k in range(13)]
    labels = re.findall(r"<tr><th>(\d{4}-\d{2})</th>", grid.group(1))
    assert labels == [r["cohort"] for r in rows][-len(labels) :]
    first = re.search(r"<tr><th>" + labels[0] + r"</th>(.*?)</tr>", grid.group(1), re.S)
    assert first
    cells = re.findall(r'class="num heat"[^>]*>([^<]*)<', first.group(1))
    want = next(r for r in rows if r["cohort"] == labels[0])
    assert cells[0] == fmt_pct(want["k0"], "en", 0)
    assert cells[1] == fmt_pct(want["k1"], "en", 0)


def test_an_empty_store_says_so(tmp_path: Path) -> None:
    import warnings

    from huitouke.service import create_app

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    store = Store(url)
    store.migrate()
    make_users(store, datetime.now(UTC))
    with TestClient(create_app(Settings(database_url=url, lang="zh"), store)) as c:
        sign_in(c, "rita")
        page = c.get("/").text
    assert 'id="no-orders"' in page and "还没有订单" in page
    store.dispose()


# -- the users CLI -----------------------------------------------------------------------------------


def test_users_cli(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'users.db'}"
    made = cli(url, "users", "create", "mei", "--role", "operator", stdin="mei-password-2026\n")
    assert made.returncode == 0, made.stderr
    assert "created console user mei (role operator)" in made.stdout
    again = cli(url, "users", "create", "mei", "--role", "read", stdin="another-password\n")
    assert again.returncode == 4 and "[user.exists]" in again.stderr
    weak = cli(url, "users", "create", "lu", "--role", "read", stdin="short\n")
    assert weak.returncode == 2 and "[user.weak_password]" in weak.stderr
    role = cli(url, "users", "create", "lu", "--role", "owner", stdin="lu-password-2026\n")
    assert role.returncode == 2 and "[user.unknown_role]" in role.stderr
    listed = json.loads(cli(url, "users", "list", "--json").stdout)
    assert [(u["name"], u["role"], u["active"]) for u in listed] == [("mei", "operator", True)]
    assert "password" not in json.dumps(listed)
    assert cli(url, "users", "passwd", "mei", stdin="mei-new-password-1\n").returncode == 0
    assert cli(url, "users", "disable", "mei").returncode == 0
    listed = json.loads(cli(url, "users", "list", "--json").stdout)
    assert listed[0]["active"] is False
    assert cli(url, "users", "enable", "mei").returncode == 0
    missing = cli(url, "users", "delete", "nobody")
    assert missing.returncode == 3 and "[user.not_found]" in missing.stderr
    assert cli(url, "users", "delete", "mei").returncode == 0
    assert json.loads(cli(url, "users", "list", "--json").stdout) == []
    # the new password works, the old one does not (through the sign-in use case)
    from huitouke.service.sessions import SessionPolicy
    from huitouke.service.sessions import sign_in as do_sign_in
    from huitouke.service.users import create_user

    store = Store(url)
    with store.begin() as conn:
        create_user(
            conn, name="mei", role="read", password="first-password-1", now=datetime.now(UTC)
        )
    assert cli(url, "users", "passwd", "mei", stdin="second-password-2\n").returncode == 0
    policy = SessionPolicy.from_settings(Settings(database_url=url))
    now = datetime.now(UTC)
    old = do_sign_in(
        store, name="mei", password="first-password-1", client="t", now=now, policy=policy
    )
    new = do_sign_in(
        store, name="mei", password="second-password-2", client="t", now=now, policy=policy
    )
    assert old.error is not None and old.error.code == "auth.bad_credentials"
    assert new.error is None and new.session is not None
    store.dispose()


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_orders_in_two_currencies_are_explained_on_the_page(console, client) -> None:
    from huitouke.service.apikeys import create_api_key

    with console.store.begin() as conn:
        _, key = create_api_key(conn, scope="operator", name="pos", now=datetime.now(UTC))
    for i, currency in enumerate(["CNY", "USD"]):
        r = client.post(
            "/v1/orders",
            json={"order_id": f"o{i}", "customer_id": f"c{i}", "amount": "10.00",
                  "ordered_at": "2026-05-01T10:00:00+08:00", "currency": currency,
                  "status": "paid"},
            headers={"Authorization": f"Bearer {key}"},
        )  # fmt: skip
        assert r.status_code in (200, 201), r.text
    sign_in(client, "rita")
    page = client.get("/")
    assert page.status_code == 422
    assert page.headers["content-type"].startswith("text/html")
    assert "currenc" in page.text

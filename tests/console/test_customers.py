"""The console's customers: search by id, phone or e-mail prefix, a customer's page with
orders and points — data recorded through the REST API, read through the console, both on
the production app; names, phones and e-mails masked for read users."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from huitouke.loyalty.program import load_program
from huitouke.loyalty.programs_repo import save_program
from huitouke.service.apikeys import create_api_key

from .conftest import Console, sign_in

SHOP = (
    Path(__file__).resolve().parents[2] / "src" / "huitouke" / "loyalty" / "examples" / "shop.yaml"
)


@pytest.fixture
def shop_client(console: Console, client):  # type: ignore[no-untyped-def]
    doc = yaml.safe_load(SHOP.read_text(encoding="utf-8"))
    with console.store.begin() as conn:
        save_program(conn, load_program({**doc, "id": "default"}), now=datetime.now(UTC))
        _, key = create_api_key(conn, scope="operator", name="pos", now=datetime.now(UTC))
    h = {"Authorization": f"Bearer {key}"}
    people = [
        ("c-100", "王小明", "13800138000", "ming@example.com"),
        ("c-101", "Alice Lee", "13900139000", "alice@example.com"),
        ("d_200", "张三", "13800990000", "Zhang@Example.com"),
    ]
    for cid, name, phone, email in people:
        r = client.put(
            f"/v1/customers/{cid}", json={"name": name, "phone": phone, "email": email}, headers=h
        )
        assert r.status_code in (200, 201), r.text
    for i, (cid, amount) in enumerate(
        [("c-100", "120.00"), ("c-100", "80.50"), ("c-101", "45.00")]
    ):
        r = client.post(
            "/v1/orders",
            json={"order_id": f"o{i}", "customer_id": cid, "ordered_at": f"2026-05-0{i + 1}T10:00:00+08:00",
                  "amount": amount, "currency": "CNY", "status": "paid"},
            headers=h,
        )  # fmt: skip
        assert r.status_code in (200, 201), r.text
    return client


def rows(page: str) -> list[str]:
    return re.findall(r'<tr data-customer="([^"]+)">', page)


@pytest.mark.parametrize(
    "q,expected",
    [
        ("", ["c-100", "c-101", "d_200"]),
        ("c-10", ["c-100", "c-101"]),
        ("d_", ["d_200"]),
        ("c_", []),  # "_" is a character here, not a wildcard
        ("%", []),
        ("138", ["c-100", "d_200"]),
        ("13900", ["c-101"]),
        ("zhang@", ["d_200"]),
        ("ALICE@EXAMPLE", ["c-101"]),
        ("nobody", []),
    ],
)
def test_search_by_id_phone_or_email_prefix(shop_client, q: str, expected: list[str]) -> None:
    sign_in(shop_client, "otto")
    page = shop_client.get("/customers", params={"q": q})
    assert page.status_code == 200
    assert rows(page.text) == expected
    if not expected:
        assert 'id="no-customers"' in page.text


def test_htmx_search_answers_the_rows_only(shop_client) -> None:
    sign_in(shop_client, "otto")
    r = shop_client.get("/customers", params={"q": "c-"}, headers={"HX-Request": "true"})
    assert r.status_code == 200 and "<html" not in r.text
    assert rows(r.text) == ["c-100", "c-101"]


def test_read_users_see_masked_contacts(shop_client) -> None:
    sign_in(shop_client, "rita")
    page = shop_client.get("/customers", params={"q": "c-100"}).text
    assert "13800138000" not in page and "ming@example.com" not in page and "王小明" not in page
    assert "138****8000" in page
    detail = shop_client.get("/customers/c-100").text
    assert "13800138000" not in detail and "王小明" not in detail
    shop_client.cookies.clear()
    sign_in(shop_client, "otto")
    assert "13800138000" in shop_client.get("/customers", params={"q": "c-100"}).text


def test_customer_page_has_orders_and_loyalty(shop_client) -> None:
    sign_in(shop_client, "otto")
    page = shop_client.get("/customers/c-100")
    assert page.status_code == 200
    assert re.findall(r'<tr data-order="([^"]+)">', page.text) == ["o1", "o0"]  # newest first
    loyalty = shop_client.get("/v1/customers/c-100/loyalty", headers={}).status_code
    assert loyalty == 401  # the console's session is no API key
    points = re.search(r'<p class="value" id="points">([^<]*)</p>', page.text)
    assert points
    assert points.group(1) != ""
    missing = shop_client.get("/customers/nobody")
    assert missing.status_code == 404 and "nobody" in missing.text


def test_customer_points_are_the_loyalty_view(shop_client, console: Console) -> None:
    from huitouke.service.context import ServiceContext
    from huitouke.service.programs import loyalty_service

    ctx = ServiceContext(settings=console.settings, store=console.store, clock=console.clock)
    with console.store.connect() as conn:
        view = loyalty_service(conn, ctx).customer_loyalty(conn, "c-100")
    sign_in(shop_client, "otto")
    page = shop_client.get("/customers/c-100").text
    points = re.search(r'id="points">([^<]*)<', page)
    assert points and points.group(1) == view["points_balance"]
    assert view["points_balance"] not in ("0", "0.0000")

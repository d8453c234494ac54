"""The console's loyalty section in a real headless Chromium against a real `huitouke
serve` (the browser set-up of test_console_browser.py): the loyalty pages load with no
console error and both charts drawn, the period form reloads the redemption part with htmx
and the chart is drawn again, the pages fit a phone-width screen, and saving an invalid
program shows each error at its field path and saves nothing — in zh and in en.
Screenshots go to tests/artifacts/."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from huitouke.loyalty.program import load_program
from huitouke.loyalty.programs_repo import save_program
from huitouke.service.apikeys import create_api_key
from huitouke.store.db import Store

from .conftest import PASSWORDS, make_users
from .test_console_browser import _CHARTS_JS, ARTIFACTS, CHROMIUM, LAUNCH_ARGS

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason="headless browser test needs Debian's chromium at /usr/bin/chromium",
    ),
]

INVALID_SAVE = (
    "Failed to load resource: the server responded with a status of 422 (Unprocessable Entity)"
)
SHOP = (
    Path(__file__).resolve().parents[2] / "src" / "huitouke" / "loyalty" / "examples" / "shop.yaml"
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A store with the example shop program, members in two tiers, stored value, coupons
    issued and one redeemed — recorded through the REST API of the served app."""
    from service.live import LiveServer

    work = tmp_path_factory.mktemp("loyalty-serve")
    url = f"sqlite:///{work / 'shop.db'}"
    store = Store(url)
    store.migrate()
    now = datetime.now(UTC)
    make_users(store, now)
    doc = yaml.safe_load(SHOP.read_text(encoding="utf-8"))
    with store.begin() as conn:
        save_program(conn, load_program({**doc, "id": "default"}), now=now)
        _, key = create_api_key(conn, scope="operator", name="till", now=now)
    store.dispose()
    live = LiveServer(url, work / "serve.log").start()
    try:
        h = {"Authorization": f"Bearer {key}"}
        with httpx.Client(base_url=live.base_url, headers=h, timeout=30) as api:
            for i, amount in enumerate(["2500", "120", "80", "3000", "60"]):
                cid = f"c{i}"
                assert api.put(f"/v1/customers/{cid}", json={"name": cid}).status_code in (200, 201)
                r = api.post(
                    "/v1/orders",
                    json={"order_id": f"o{i}", "customer_id": cid, "amount": amount,
                          "currency": "CNY", "status": "paid", "ordered_at": now.isoformat()},
                )  # fmt: skip
                assert r.status_code in (200, 201), r.text
            assert (
                api.post(
                    "/v1/customers/c0/topups", json={"amount": "300", "idempotency_key": "t"}
                ).status_code
                == 200
            )
            codes = []
            for i in range(3):
                r = api.post(
                    "/v1/coupons",
                    json={
                        "template": "fixed20",
                        "customer_id": f"c{i}",
                        "idempotency_key": f"k{i}",
                    },
                )
                assert r.status_code == 200, r.text
                codes.append(r.json()["code"])
            r = api.post(
                f"/v1/coupons/{codes[1]}/redeem",
                json={"order_id": "o1", "customer_id": "c1", "order_amount": "120"},
            )
            assert r.status_code == 200, r.text
        yield live.base_url
    finally:
        live.stop()


def _wait_charts(page: Any, ids: list[str]) -> None:
    page.wait_for_function(
        "() => document.querySelectorAll('.chart').length > 0 && "
        "document.querySelectorAll('.chart[data-drawn=\"1\"]').length === "
        "document.querySelectorAll('.chart').length",
        timeout=60_000,
    )
    charts = page.evaluate(_CHARTS_JS)
    assert sorted(c["id"] for c in charts) == sorted(ids)
    for c in charts:
        assert c["instance"] and c["canvas"], c
        assert c["width"] > 150 and c["height"] > 150, c
        assert c["painted"] > 100, f"{c['id']} has nothing painted: {c}"


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_loyalty_pages_in_chromium(server: str, lang: str) -> None:
    from playwright.sync_api import sync_playwright

    console: list[tuple[str, str]] = []
    errors: list[str] = []
    requests: list[str] = []
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    words = {
        "zh": {"title": "会员忠诚度", "points": "未使用积分", "field_error": "会员方案未保存"},
        "en": {
            "title": "Loyalty",
            "points": "Points outstanding",
            "field_error": "The program was not saved",
        },
    }[lang]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
        try:
            context = browser.new_context(
                viewport={"width": 1280, "height": 900}, locale={"zh": "zh-CN", "en": "en-US"}[lang]
            )
            page = context.new_page()
            page.on("console", lambda m: console.append((m.type, m.text)))
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("request", lambda r: requests.append(r.url))

            page.goto(f"{server}/loyalty", wait_until="load")
            assert "/login?next=" in page.url
            page.fill("input[name=name]", "ana")
            page.fill("input[name=password]", PASSWORDS["ana"])
            page.click("#sign-in")
            page.wait_for_url(f"{server}/loyalty", timeout=30_000)
            assert page.title().startswith(words["title"])
            assert words["points"] in page.inner_text("#liabilities")
            _wait_charts(page, ["chart-tiers", "chart-redemption"])
            tiers = page.locator("#tier-mix tbody tr").count()
            assert tiers == 4  # v1, v2, v3, no tier
            page.screenshot(path=str(ARTIFACTS / f"console_loyalty_{lang}.png"), full_page=True)

            # a period with nothing in it: htmx swaps the redemption part, the chart is redrawn
            page.fill("#period-start", "2020-01-01")
            page.fill("#period-end", "2020-01-31")
            page.locator(".period-form button[type=submit]").click()
            page.wait_for_function(
                "() => document.querySelector('#redemption-table tr[data-kind=coupons]')"
                ".dataset.given === '0'",
                timeout=30_000,
            )
            # the form also reloads on each field's change: wait until no request is in
            # flight, so the chart looked at is the one the last answer drew
            page.wait_for_function("() => !document.querySelector('.htmx-request')", timeout=30_000)
            _wait_charts(page, ["chart-tiers", "chart-redemption"])

            for path, marker in [
                ("/loyalty/coupons", "#batch-form"),
                ("/loyalty/corrections", "#correction-form"),
            ]:
                page.goto(f"{server}{path}", wait_until="load")
                assert page.locator(marker).count() == 1, path

            # the program editor: an invalid threshold is shown at its field path, not saved
            page.goto(f"{server}/loyalty/program", wait_until="load")
            version = page.get_attribute("#program-version", "data-version")
            text = page.input_value("#program-document")
            doc = yaml.safe_load(text)
            doc["tiers"]["levels"][1]["threshold"] = "lots"
            doc["earn"]["unit"] = "0"
            page.fill("#program-document", yaml.safe_dump(doc, allow_unicode=True))
            page.click("#program-save")
            page.wait_for_selector("#program-errors", timeout=30_000)
            fields = page.eval_on_selector_all(
                "#program-errors tr[data-field]", "rows => rows.map(r => r.dataset.field)"
            )
            assert "tiers.levels.1.threshold" in fields and "earn.unit" in fields
            assert words["field_error"] in page.inner_text("#program-error")
            assert page.get_attribute("#program-version", "data-version") == version
            page.screenshot(
                path=str(ARTIFACTS / f"console_loyalty_program_{lang}.png"), full_page=True
            )

            # a phone-width screen: nothing scrolls sideways
            page.set_viewport_size({"width": 390, "height": 844})
            for path in (
                "/loyalty",
                "/loyalty/coupons",
                "/loyalty/corrections",
                "/loyalty/program",
            ):
                page.goto(f"{server}{path}", wait_until="load")
                if path == "/loyalty":
                    _wait_charts(page, ["chart-tiers", "chart-redemption"])
                overflow = page.evaluate(
                    "document.documentElement.scrollWidth - document.documentElement.clientWidth"
                )
                assert overflow <= 1, f"{path} scrolls sideways by {overflow}px on a phone"
            page.goto(f"{server}/loyalty", wait_until="load")
            _wait_charts(page, ["chart-tiers", "chart-redemption"])
            page.screenshot(
                path=str(ARTIFACTS / f"console_loyalty_phone_{lang}.png"), full_page=True
            )
        finally:
            browser.close()
    bad = [
        (t, m)
        for t, m in console
        if t in ("error", "warning", "assert")
        # this test's own pixel probe (getImageData, repeated) — not the console's code
        and not m.startswith("Canvas2D: Multiple readback operations using getImageData")
    ]
    # the one expected: Chromium reports the deliberate invalid save's 422 answer
    assert bad == [("error", INVALID_SAVE)], bad
    assert errors == []
    assert all(u.startswith(server) for u in requests), [
        u for u in requests if not u.startswith(server)
    ]

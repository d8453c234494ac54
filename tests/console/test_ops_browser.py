"""The console's operations pages in a real headless Chromium against a real `huitouke
serve`, in zh and en: every new page loads with no console error and nothing from
elsewhere; an admin adds a Shopify connector pointed at the local fake (its secrets never
come back), syncs it with "sync now" (the page follows the background run until it ends),
sees the sync in the history and the orders on a customer's page; merges that customer
with another and unmerges them, each with a reason, and sees the history; runs a scheduler
job by hand and sees it in the run history; a phone-width screen needs no sideways
scrolling. Screenshots go to tests/artifacts/."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from connectors.fakes import FakeShopify, shopify_order
from huitouke.core.secretbox import new_key
from report.test_report_browser import ARTIFACTS, CHROMIUM, LAUNCH_ARGS

from .conftest import PASSWORDS

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason="headless browser test needs Debian's chromium at /usr/bin/chromium",
    ),
]

TOKEN = "shpat_browser_token_never_shown_91"
HOOK_SECRET = "whsec-browser-never-shown-3d"
NEW_PAGES = ["/connectors", "/scheduler", "/identity", "/wecom", "/journeys"]


@pytest.fixture(scope="module")
def shopify() -> Iterator[FakeShopify]:
    fake = FakeShopify(token=TOKEN)
    start = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
    for i in range(25):
        fake.put(shopify_order(i, start + timedelta(minutes=i)))
    with fake:
        yield fake


def _serve(shop: dict[str, Any], work: Path) -> Any:
    """A `huitouke serve` on a copy of the shop (this test adds orders and merges
    customers, which the other browser tests' numbers must not see)."""
    from service.live import LiveServer

    source = Path(shop["url"].removeprefix("sqlite:///"))
    db = work / "ops.db"
    shutil.copy(source, db)
    env = {"HUITOUKE_ENCRYPTION_KEYS": new_key(), "HUITOUKE_SECRET_KEY": "b" * 40}
    return LiveServer(f"sqlite:///{db}", work / "serve.log", env=env).start()


def _no_sideways_scroll(page: Any) -> None:
    overflow = page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 1, f"{page.url} scrolls sideways by {overflow}px on a phone"


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_connectors_scheduler_identity_in_chromium(
    shop: dict[str, Any],
    shopify: FakeShopify,
    tmp_path_factory: pytest.TempPathFactory,
    lang: str,
) -> None:
    from playwright.sync_api import sync_playwright

    live = _serve(shop, tmp_path_factory.mktemp(f"ops-{lang}"))
    server = live.base_url
    name = f"shop{lang}"
    console: list[tuple[str, str]] = []
    errors: list[str] = []
    requests: list[str] = []
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
            try:
                context = browser.new_context(
                    viewport={"width": 1280, "height": 900},
                    locale={"zh": "zh-CN", "en": "en-US"}[lang],
                )
                page = context.new_page()
                page.on("console", lambda m: console.append((m.type, m.text)))
                page.on("pageerror", lambda e: errors.append(str(e)))
                page.on("request", lambda r: requests.append(r.url))

                page.goto(f"{server}/connectors", wait_until="load")
                page.fill("input[name=name]", "ana")
                page.fill("input[name=password]", PASSWORDS["ana"])
                page.click("#sign-in")
                page.wait_for_url(f"{server}/connectors", timeout=30_000)
                assert page.locator("html").get_attribute("lang") == (
                    "zh-CN" if lang == "zh" else "en"
                )

                # every new page opens
                for path in NEW_PAGES:
                    page.goto(f"{server}{path}", wait_until="load")
                    assert page.locator("main h1").count() == 1, path
                page.screenshot(path=str(ARTIFACTS / f"console_wecom_{lang}.png"), full_page=True)

                # add a connector: the kind's fields come with htmx, secrets never come back
                page.goto(f"{server}/connectors", wait_until="load")
                page.select_option("#connector-add select[name=kind]", "woocommerce")
                page.wait_for_selector("#connector-fields [data-field=consumer_secret]")
                page.select_option("#connector-add select[name=kind]", "shopify")
                page.wait_for_selector("#connector-fields [data-field=access_token]")
                page.fill("#connector-add input[name=name]", name)
                page.fill("#connector-add input[name=api_base_url]", shopify.url)
                page.fill("#connector-add input[name=access_token]", TOKEN)
                page.fill("#connector-add input[name=webhook_secret]", HOOK_SECRET)
                page.fill("#connector-add input[name=page_size]", "10")
                page.click("#connector-add button[type=submit]")
                page.wait_for_url(f"{server}/connectors/{name}?message=added", timeout=30_000)
                assert TOKEN not in page.content() and HOOK_SECRET not in page.content()

                # sync now: the page answers at once and follows the run in the background
                page.click("#sync-now")
                page.wait_for_url(f"{server}/connectors/{name}?run=*", timeout=30_000)
                page.wait_for_selector('#sync-run[data-status="succeeded"]', timeout=120_000)
                assert "25" in page.inner_text("#sync-run")
                page.reload(wait_until="load")
                assert page.locator('#syncs tr[data-status="succeeded"]').count() == 1
                assert "25" in page.inner_text('#syncs tr[data-status="succeeded"]')
                page.screenshot(
                    path=str(ARTIFACTS / f"console_connector_{lang}.png"), full_page=True
                )
                page.goto(f"{server}/connectors", wait_until="load")
                row = page.locator(f'#connectors tr[data-connector="{name}"]')
                assert row.count() == 1 and TOKEN not in page.content()
                page.screenshot(
                    path=str(ARTIFACTS / f"console_connectors_{lang}.png"), full_page=True
                )

                # the pulled orders are on the buyer's page, with its identity panel
                page.goto(f"{server}/customers/7001", wait_until="load")
                assert page.locator('#orders tr[data-order="1001"]').count() == 1
                page.wait_for_selector("#identity-panel #person-id", timeout=30_000)

                # merge the Shopify buyer with a CDNOW customer, then unmerge, with reasons
                page.goto(f"{server}/identity", wait_until="load")
                page.fill("#merge textarea[name=customer_ids]", "7001\n00004")
                page.fill("#merge input[name=reason]", "same phone 同一手机号")
                page.click("#merge button[type=submit]")
                page.wait_for_url(f"{server}/identity/7001?done=merge", timeout=30_000)
                accounts = page.locator("#accounts tr[data-account]")
                assert accounts.count() == 2
                assert page.locator(f'#accounts [data-source="{name}"]').count() == 1
                page.screenshot(
                    path=str(ARTIFACTS / f"console_identity_merged_{lang}.png"), full_page=True
                )
                unmerge = page.locator('#accounts tr[data-account="00004"] form.unmerge-form')
                unmerge.locator("input[name=reason]").fill("two people 两个人")
                unmerge.locator("button[type=submit]").click()
                page.wait_for_url(f"{server}/identity/00004?done=unmerge", timeout=30_000)
                assert page.locator("#accounts tr[data-account]").count() == 1
                history = page.locator(".identity-history tbody tr[data-action]")
                assert [history.nth(i).get_attribute("data-action") for i in range(2)] == [
                    "unmerge",
                    "merge",
                ]
                assert "console:ana" in page.inner_text(".identity-history")
                page.screenshot(
                    path=str(ARTIFACTS / f"console_identity_{lang}.png"), full_page=True
                )

                # a scheduler job run by hand, followed in the history
                page.goto(f"{server}/scheduler", wait_until="load")
                assert page.locator('#jobs tr[data-job="connectors"] .next-run').inner_text()
                page.click('button[data-run-job="identity.index"]')
                page.wait_for_url(f"{server}/scheduler?job=identity.index&started=*")
                page.wait_for_selector(
                    '#runs tr[data-job="identity.index"][data-status="succeeded"]',
                    timeout=120_000,
                )
                # the jobs table follows the history (swapped in out of band)
                page.wait_for_selector(
                    '#jobs tr[data-job="identity.index"] .run-succeeded', timeout=60_000
                )
                assert page.locator("#jobs-body").count() == 1
                page.screenshot(
                    path=str(ARTIFACTS / f"console_scheduler_{lang}.png"), full_page=True
                )

                # a phone-width screen
                page.set_viewport_size({"width": 390, "height": 844})
                for path in [*NEW_PAGES, f"/connectors/{name}", "/identity/7001"]:
                    page.goto(f"{server}{path}", wait_until="load")
                    _no_sideways_scroll(page)
                page.screenshot(
                    path=str(ARTIFACTS / f"console_identity_phone_{lang}.png"), full_page=True
                )
            finally:
                browser.close()
    finally:
        live.stop()
    bad = [(t, m) for t, m in console if t in ("error", "warning", "assert")]
    assert bad == []
    assert errors == []
    assert all(u.startswith(server) for u in requests), [
        u for u in requests if not u.startswith(server)
    ]

"""The segments and predictions pages in a real headless Chromium against a real `huitouke
serve` over a copy of the CDNOW sample shop with its customer facts snapshot: no console
error, every chart drawn, a segment's coupons issued through the confirm step, a
phone-width screen without sideways scrolling — in zh and in en."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from huitouke.app.customer_facts import refresh_customer_facts
from huitouke.settings import Settings
from huitouke.store.db import Store
from report.test_report_browser import ARTIFACTS, CHROMIUM, LAUNCH_ARGS

from .conftest import PASSWORDS
from .test_console_browser import _CHARTS_JS
from .test_segments import _save_program

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason="headless browser test needs Debian's chromium at /usr/bin/chromium",
    ),
]


@pytest.fixture(scope="module")
def facts_server(shop: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from service.live import LiveServer

    work = tmp_path_factory.mktemp("facts-serve")
    db = work / "facts.db"
    shutil.copy(Path(shop["url"].removeprefix("sqlite:///")), db)
    url = f"sqlite:///{db}"
    store = Store(url)
    _save_program(store)
    refresh_customer_facts(store, Settings(database_url=url))
    store.dispose()
    live = LiveServer(url, work / "serve.log").start()
    try:
        yield live.base_url
    finally:
        live.stop()


def _charts_drawn(page: Any, ids: list[str]) -> None:
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
        assert c["width"] > 200 and c["height"] > 150, c
        assert c["painted"] > 100, f"{c['id']} has nothing painted: {c}"


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_segments_and_predictions_in_chromium(facts_server: str, lang: str) -> None:
    from playwright.sync_api import sync_playwright

    server = facts_server
    console: list[tuple[str, str]] = []
    errors: list[str] = []
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
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
            page.goto(f"{server}/segments", wait_until="load")
            page.fill("input[name=name]", "otto")
            page.fill("input[name=password]", PASSWORDS["otto"])
            page.click("#sign-in")
            page.wait_for_url(f"{server}/segments", timeout=30_000)
            assert page.title().startswith({"zh": "分群", "en": "Segments"}[lang])
            _charts_drawn(page, ["chart-rfm", "chart-layer", "chart-lifecycle"])
            assert page.locator("#snapshot-info").count() == 1
            page.screenshot(path=str(ARTIFACTS / f"console_segments_{lang}.png"), full_page=True)

            page.goto(f"{server}/predictions", wait_until="load")
            _charts_drawn(page, ["chart-p-alive", "chart-clv"])
            assert page.locator("#holdout-models tbody tr").count() >= 1
            page.screenshot(path=str(ARTIFACTS / f"console_predictions_{lang}.png"), full_page=True)

            # one click from a segment: the confirm step shows the count, then coupons go out
            page.goto(f"{server}/segments", wait_until="load")
            page.click('tr[data-segment="rfm:cant_lose"] a[href$="/coupons"]')
            page.wait_for_url(f"{server}/segments/rfm/cant_lose/coupons", timeout=30_000)
            members = page.locator("#member-count").get_attribute("data-members")
            page.select_option("select[name=template]", "pct10")
            page.click("#confirm-issue")
            # a background task: its progress is polled until the result shows
            page.wait_for_selector("#task-status", timeout=30_000)
            page.wait_for_selector("#issue-result", timeout=120_000)
            issued = int(page.locator("#issue-result").get_attribute("data-issued") or "-1")
            already = int(page.locator("#issue-result").get_attribute("data-already") or "-1")
            assert issued + already == int(members or "0") > 0

            page.set_viewport_size({"width": 390, "height": 844})
            for path in ("/segments", "/predictions", "/customers?layer=lost&p_max=0.5"):
                page.goto(f"{server}{path}", wait_until="load")
                page.wait_for_function(
                    "() => document.querySelectorAll('.chart[data-drawn=\"1\"]').length === "
                    "document.querySelectorAll('.chart').length",
                    timeout=60_000,
                )
                overflow = page.evaluate(
                    "document.documentElement.scrollWidth - document.documentElement.clientWidth"
                )
                assert overflow <= 1, f"{path} scrolls sideways by {overflow}px on a phone"
            page.screenshot(
                path=str(ARTIFACTS / f"console_segments_phone_{lang}.png"), full_page=True
            )
        finally:
            browser.close()
    bad = [(t, m) for t, m in console if t in ("error", "warning", "assert")]
    assert bad == [], bad
    assert errors == []

"""The console in a real headless Chromium against a real `huitouke serve`: sign in, the
overview loads with no console error and every chart drawn, the numbers are those of
`huitouke metrics --format json`, the period switch (htmx) redraws, customer search and a
customer's page, a phone-width screen needs no sideways scrolling, sign out — in zh and in
en. Screenshots go to tests/artifacts/ (ignored by git)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from huitouke.i18n import fmt_pct

# the report's browser tests' Chromium, flags and artefacts directory
from report.test_report_browser import ARTIFACTS, CHROMIUM, LAUNCH_ARGS

from .conftest import PASSWORDS

CHARTS = ["chart-rates", "chart-buyers", "chart-ladder"]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason="headless browser test needs Debian's chromium at /usr/bin/chromium",
    ),
]

#: every chart: an ECharts instance, a canvas with room, and pixels painted on it
_CHARTS_JS = """() => Array.from(document.querySelectorAll('.chart')).map(el => {
    const canvas = el.querySelector('canvas');
    let painted = 0;
    if (canvas && canvas.width && canvas.height) {
        const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
        for (let i = 3; i < data.length; i += 4 * 7) { if (data[i] !== 0) painted++; }
    }
    return {
        id: el.id,
        instance: !!(window.echarts && window.echarts.getInstanceByDom(el)),
        canvas: !!canvas,
        width: canvas ? canvas.getBoundingClientRect().width : 0,
        height: canvas ? canvas.getBoundingClientRect().height : 0,
        painted: painted,
    };
})"""

_CARDS_JS = """() => Object.fromEntries(Array.from(document.querySelectorAll('.card')).map(el =>
    [el.dataset.metric, {value: el.dataset.value, period: el.dataset.period,
                         shown: el.querySelector('.value').textContent.trim()}]))"""


@pytest.fixture(scope="module")
def server(shop: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from service.live import LiveServer

    log = tmp_path_factory.mktemp("console-serve") / "serve.log"
    live = LiveServer(shop["url"], log).start()
    try:
        yield live.base_url
    finally:
        live.stop()


def _check_charts(page: Any) -> None:
    page.wait_for_function(
        "() => document.querySelectorAll('.chart').length > 0 && "
        "document.querySelectorAll('.chart[data-drawn=\"1\"]').length === "
        "document.querySelectorAll('.chart').length",
        timeout=60_000,
    )
    charts = page.evaluate(_CHARTS_JS)
    assert sorted(c["id"] for c in charts) == sorted(CHARTS)
    for c in charts:
        assert c["instance"] and c["canvas"], c
        assert c["width"] > 200 and c["height"] > 150, c
        assert c["painted"] > 100, f"{c['id']} has nothing painted: {c}"


def _check_cards(page: Any, metrics: dict[str, Any], lang: str) -> None:
    head = metrics["headline"]
    shown = page.evaluate(_CARDS_JS)
    assert list(shown) == [
        "in_period_repurchase_rate", "buyback_rate", "returning_buyer_share", "aov",
    ]  # fmt: skip
    for key, card in shown.items():
        assert float(card["value"]) == head["metrics"][key]["value"], key
    for key in ("in_period_repurchase_rate", "buyback_rate", "returning_buyer_share"):
        assert shown[key]["shown"] == fmt_pct(head["metrics"][key]["value"], lang, 1)


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_console_in_chromium(server: str, shop: dict[str, Any], lang: str) -> None:
    from playwright.sync_api import sync_playwright

    console: list[tuple[str, str]] = []
    errors: list[str] = []
    requests: list[str] = []
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
        try:
            # the browser's language picks the console's (Accept-Language)
            context = browser.new_context(
                viewport={"width": 1280, "height": 900},
                locale={"zh": "zh-CN", "en": "en-US"}[lang],
            )
            page = context.new_page()
            page.on("console", lambda m: console.append((m.type, m.text)))
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("request", lambda r: requests.append(r.url))

            page.goto(f"{server}/", wait_until="load")
            assert page.url.startswith(f"{server}/login?next=")
            assert page.evaluate("document.documentElement.lang") == (
                "zh-CN" if lang == "zh" else "en"
            )
            page.fill("input[name=name]", "rita")
            page.fill("input[name=password]", PASSWORDS["rita"])
            page.click("#sign-in")
            page.wait_for_url(f"{server}/", timeout=30_000)
            assert page.title().startswith({"zh": "总览", "en": "Overview"}[lang])
            _check_charts(page)
            _check_cards(page, shop["metrics"]["month"], lang)
            assert page.locator("#cohort-grid tbody tr").count() >= 1
            assert page.locator("#ladder-table tbody tr").count() == 5
            page.screenshot(path=str(ARTIFACTS / f"console_overview_{lang}.png"), full_page=True)

            # the period switch: htmx swaps the body in, the charts are drawn again
            page.select_option("#period", "quarter")
            page.wait_for_function(
                "() => document.querySelector('#chart-rates') && "
                "document.querySelector('#chart-rates').dataset.drawn === '1' && "
                "JSON.parse(document.querySelector('#chart-rates').dataset.option)"
                ".xAxis.data[0].includes('Q')",
                timeout=60_000,
            )
            _check_charts(page)
            _check_cards(page, shop["metrics"]["quarter"], lang)

            # customers: the search narrows the rows as one types (htmx), a row opens the page
            page.goto(f"{server}/customers", wait_until="load")
            assert page.locator("#customer-rows tr[data-customer]").count() == 50
            page.fill("#customer-search", "0001")
            page.wait_for_function(
                "() => document.querySelectorAll('#customer-rows tr[data-customer]').length > 0 && "
                "Array.from(document.querySelectorAll('#customer-rows tr[data-customer]'))"
                ".every(r => r.dataset.customer.startsWith('0001'))",
                timeout=30_000,
            )
            first = page.locator("#customer-rows tr[data-customer] a").first
            wanted = first.inner_text()
            first.click()
            page.wait_for_url(f"{server}/customers/{wanted}", timeout=30_000)
            assert page.locator("#orders tbody tr[data-order]").count() >= 1
            page.screenshot(path=str(ARTIFACTS / f"console_customer_{lang}.png"), full_page=True)

            # a phone-width screen: everything fits its width (tables scroll in their box)
            page.set_viewport_size({"width": 390, "height": 844})
            page.goto(f"{server}/", wait_until="load")
            _check_charts(page)
            overflow = page.evaluate(
                "document.documentElement.scrollWidth - document.documentElement.clientWidth"
            )
            assert overflow <= 1, f"the page scrolls sideways by {overflow}px on a phone"
            page.screenshot(path=str(ARTIFACTS / f"console_phone_{lang}.png"), full_page=True)

            page.click("#logout")
            page.wait_for_url(f"{server}/login", timeout=30_000)
            page.goto(f"{server}/", wait_until="load")
            assert "/login" in page.url
        finally:
            browser.close()
    bad = [(t, m) for t, m in console if t in ("error", "warning", "assert")]
    assert bad == [], bad
    assert errors == []
    # nothing from elsewhere: no CDN, no fonts
    assert all(u.startswith(server) for u in requests), [
        u for u in requests if not u.startswith(server)
    ]

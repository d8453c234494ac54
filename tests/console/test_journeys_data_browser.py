"""A shop's whole task in a real headless Chromium against a real `huitouke serve` on an
empty store: sign in, upload an export on the Data page and see its summary, open the
overview and see the metrics (those of `huitouke metrics`), open a segment and issue coupons
to it, start a journey from it, check and save it, switch it on, preview it, run it, see its outbox and results — in zh and
in en, and on a phone-width screen. Screenshots go to tests/artifacts/ (ignored by git)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from huitouke.store.db import Store

# the report's browser tests' Chromium, flags and artefacts directory
from report.test_report_browser import ARTIFACTS, CHROMIUM, LAUNCH_ARGS

from .conftest import PASSWORDS, cli, make_users
from .test_console_browser import _check_cards, _check_charts
from .test_segments import _save_program

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason="headless browser test needs Debian's chromium at /usr/bin/chromium",
    ),
]

ZONE = "Asia/Shanghai"


def shop_export(prefix: str, n: int = 60) -> str:
    """A generic export of ``n`` customers who each bought 10–29 and 60–79 days ago (a third
    of them also 120 days ago), so all are active repeat buyers today; three in four gave
    SMS consent; one row has a bad amount."""
    today = datetime.now(ZoneInfo(ZONE)).date()
    lines = ["order_id,customer_id,ordered_at,amount,status,name,phone,consent_sms"]
    k = 0
    for i in range(n):
        ago = [10 + i % 20, 60 + i % 20] + ([120] if i % 3 == 0 else [])
        for d in ago:
            k += 1
            day = today - timedelta(days=d)
            lines.append(
                f"{prefix}{k:05d},{prefix}c{i:03d},{day.isoformat()} 11:{i % 60:02d}:00,"
                f"{60 + i}.00,paid,Kunde{i},1390000{i:04d},{'no' if i % 4 == 0 else 'yes'}"
            )
    lines.append(f"{prefix}99999,{prefix}c999,{today.isoformat()} 09:00:00,abc,paid,,,yes")
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    from service.live import LiveServer

    work = tmp_path_factory.mktemp("console-journeys")
    url = f"sqlite:///{work / 'shop.db'}"
    store = Store(url)
    store.migrate()
    make_users(store, datetime.now(UTC))
    _save_program(store)  # the shop's loyalty program: the coupons a segment is given
    store.dispose()
    server = LiveServer(
        url,
        work / "serve.log",
        env={
            "HUITOUKE_TIMEZONE": ZONE,
            "HUITOUKE_SMS_SIGN_NAME": "回头客小店",
            "HUITOUKE_HOLDOUT_SALT": "browser",
        },
    ).start()
    try:
        yield {"base": server.base_url, "url": url, "work": work}
    finally:
        server.stop()


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_upload_overview_journey_preview_run_results(live: dict[str, Any], lang: str) -> None:
    from playwright.sync_api import sync_playwright

    server = live["base"]
    console: list[tuple[str, str]] = []
    errors: list[str] = []
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    export = Path(live["work"]) / f"{lang}-orders.csv"
    export.write_text(shop_export(f"{lang}-"), encoding="utf-8")
    journey_id = f"{lang}-active-reminder"
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

            page.goto(f"{server}/login?next=/data", wait_until="load")
            page.fill("input[name=name]", "otto")
            page.fill("input[name=password]", PASSWORDS["otto"])
            page.click("#sign-in")
            page.wait_for_url(f"{server}/data", timeout=30_000)
            assert page.locator("#shop-zone").inner_text() == ZONE
            assert page.locator("#currency").inner_text() == "CNY"

            # 1. upload an export: the import runs on the server, the page polls its state
            page.set_input_files("#upload-file", str(export))
            page.click("#upload-button")
            page.wait_for_selector('#import-status[data-status="done"]', timeout=120_000)
            assert page.locator("#import-preset").inner_text() == "generic"
            assert page.locator('[data-key="rows_rejected"]').inner_text() == "1"
            assert page.locator("#rejects-by-reason tbody tr").count() == 1
            assert page.locator("#rejects-download").count() == 1
            page.screenshot(path=str(ARTIFACTS / f"console_data_{lang}.png"), full_page=True)
            page.goto(f"{server}/data", wait_until="load")
            assert page.locator("#import-history tbody tr").count() >= 1
            assert export.name in page.locator("#import-history tbody tr").first.inner_text()

            # 2. the overview: the numbers of `huitouke metrics` for the store as it is now
            out = cli(live["url"], "metrics", "--format", "json", "--period", "month")
            assert out.returncode == 0, out.stderr
            page.goto(f"{server}/", wait_until="load")
            _check_charts(page)
            _check_cards(page, json.loads(out.stdout), lang)
            page.screenshot(path=str(ARTIFACTS / f"console_overview_after_upload_{lang}.png"))

            # 3. a segment: its snapshot computed, coupons issued to it through the confirm
            # step, and a journey started from it — one click each
            page.goto(f"{server}/segments", wait_until="load")
            if page.locator("#refresh-snapshot").count():
                page.click("#refresh-snapshot")
                # a background task: its progress page polls it, then returns to the segments
                page.wait_for_selector("#task-status", timeout=30_000)
                page.wait_for_url(f"{server}/segments", timeout=120_000)
            active = 'tr[data-segment="layer:active"]'
            members = int(page.locator(active).get_attribute("data-customers") or "0")
            assert members > 0
            page.click(f'{active} a[href$="/coupons"]')
            page.wait_for_url(f"{server}/segments/layer/active/coupons", timeout=30_000)
            assert page.locator("#member-count").get_attribute("data-members") == str(members)
            page.select_option("select[name=template]", "pct10")
            page.click("#confirm-issue")
            # issued by a background task: the page shows its progress, then the result
            page.wait_for_selector("#task-status", timeout=30_000)
            page.wait_for_selector('#task-status[data-status="succeeded"]', timeout=120_000)
            page.wait_for_selector("#issue-result", timeout=10_000)
            issued = int(page.locator("#issue-result").get_attribute("data-issued") or "-1")
            already = int(page.locator("#issue-result").get_attribute("data-already") or "-1")
            assert issued + already == members
            page.screenshot(path=str(ARTIFACTS / f"console_segment_coupons_{lang}.png"))

            # 4. a journey from that segment: checked, saved (off), switched on
            page.goto(f"{server}/segments", wait_until="load")
            page.click(f'{active} a[href^="/journeys/new"]')
            page.wait_for_url(f"{server}/journeys/new?segment=layer:active", timeout=30_000)
            assert page.locator("#from-segment").count() == 1
            text = page.input_value("#definition")
            assert "- active" in text
            page.fill("#definition", text.replace("layer-active-reminder", journey_id))
            page.click("#check")
            page.wait_for_selector("#journey-errors .ok", timeout=30_000)
            page.click("#save")
            page.wait_for_url(f"{server}/journeys/{journey_id}", timeout=30_000)
            assert page.locator("#journey-state").get_attribute("class") == "badge"
            page.click("#toggle")
            page.wait_for_url(f"{server}/journeys/{journey_id}", timeout=30_000)
            assert page.locator("#journey-state").get_attribute("class") == "badge on"

            # 5. preview: who is in, who is out and why, the messages as they would go out
            # (a background task: its progress shows in place until it turns into the preview)
            page.click("#preview-button")
            page.wait_for_selector("#preview .task-status", timeout=30_000)
            page.wait_for_selector("#preview-body", timeout=120_000)
            planned = page.locator('#preview-rows tr[data-status="planned"]').count()
            assert planned > 0
            reasons = set(
                page.eval_on_selector_all(
                    "#preview-rows tr", "rows => rows.map(r => r.dataset.reason)"
                )
            )
            assert "consent.missing" in reasons
            assert page.locator("#preview-messages li").count() == planned
            assert "回头客小店" in page.locator("#preview-messages").inner_text()
            page.screenshot(
                path=str(ARTIFACTS / f"console_journey_preview_{lang}.png"), full_page=True
            )

            # 6. run it: a background task whose progress page returns to the journey with
            # the run's numbers; the messages are in the outbox, the results count the audience
            page.click("#run-button")
            page.wait_for_url(re.compile(r".*/tasks/\d+\?next="), timeout=30_000)
            page.wait_for_url(
                re.compile(rf".*/journeys/{journey_id}\?as_of=[-0-9]+&run=\d+"), timeout=120_000
            )
            page.wait_for_selector("#run-result", timeout=30_000)
            queued = int(page.locator('#outbox .chip[data-status="queued"] b').inner_text())
            assert queued == planned
            audience = int(page.locator('#results-table [data-key="audience"]').inner_text())
            assert audience >= planned
            page.screenshot(path=str(ARTIFACTS / f"console_journey_run_{lang}.png"), full_page=True)
            page.goto(f"{server}/journeys", wait_until="load")
            row = page.locator(f'tr[data-journey="{journey_id}"]')
            assert row.get_attribute("data-enabled") == "1"
            page.screenshot(path=str(ARTIFACTS / f"console_journeys_{lang}.png"), full_page=True)

            # 7. a phone-width screen: the pages fit its width (tables scroll in their box)
            page.set_viewport_size({"width": 390, "height": 844})
            for path in ("/journeys", f"/journeys/{journey_id}", "/data"):
                page.goto(f"{server}{path}", wait_until="load")
                overflow = page.evaluate(
                    "document.documentElement.scrollWidth - document.documentElement.clientWidth"
                )
                assert overflow <= 1, f"{path} scrolls sideways by {overflow}px on a phone"
            page.screenshot(path=str(ARTIFACTS / f"console_data_phone_{lang}.png"), full_page=True)
        finally:
            browser.close()
    bad = [(t, m) for t, m in console if t in ("error", "warning", "assert")]
    assert bad == [], bad
    assert errors == []

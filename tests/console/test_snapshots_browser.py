"""The overview's snapshot in a real headless Chromium against a real `huitouke serve`: an
operator sees the live badge on a store without a snapshot, presses *Refresh snapshots*,
and gets the page back from the snapshot with its computed time, every chart drawn, the
numbers of `huitouke metrics --format json` and no console error."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from .conftest import PASSWORDS
from .test_console_browser import CHROMIUM, LAUNCH_ARGS, _check_cards, _check_charts

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason="headless browser test needs Debian's chromium at /usr/bin/chromium",
    ),
]


def test_operator_refreshes_the_overview_snapshot(shop: dict[str, Any], tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    from service.live import LiveServer

    src = Path(shop["url"].removeprefix("sqlite:///"))
    for suffix in ("", "-wal", "-shm"):
        if Path(f"{src}{suffix}").exists():
            shutil.copy(f"{src}{suffix}", tmp_path / f"shop.db{suffix}")
    live = LiveServer(f"sqlite:///{tmp_path / 'shop.db'}", tmp_path / "serve.log").start()
    errors: list[str] = []
    try:
        server = live.base_url
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
            try:
                context = browser.new_context(viewport={"width": 1280, "height": 900},
                                              locale="en-US")  # fmt: skip
                page = context.new_page()
                page.on("pageerror", lambda e: errors.append(str(e)))
                page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
                page.goto(f"{server}/login", wait_until="load")
                page.fill("input[name=name]", "otto")
                page.fill("input[name=password]", PASSWORDS["otto"])
                page.click("#sign-in")
                page.wait_for_url(f"{server}/", timeout=30_000)
                assert page.locator("#snapshot-live").count() == 1
                page.click("#snapshot-refresh button")
                page.wait_for_selector('#snapshot-status[data-state="fresh"]', timeout=120_000)
                assert page.url.rstrip("/").startswith(server)
                assert "Snapshot computed" in page.inner_text("#snapshot-status")
                _check_charts(page)
                _check_cards(page, shop["metrics"]["month"], "en")
            finally:
                browser.close()
    finally:
        live.stop()
    assert errors == []

"""The settings, API keys, audit log, tags page and a customer's tags in a real headless
Chromium against a real `huitouke serve`: every page loads with no console error, the forms
work (a stored setting, a secret refused without encryption keys, a key shown once, a tag on
customers, a tag added on the customer's page with htmx), nothing loads from elsewhere.
Screenshots go to tests/artifacts/."""

from __future__ import annotations

import pytest

from report.test_report_browser import ARTIFACTS, CHROMIUM, LAUNCH_ARGS

from .conftest import PASSWORDS
from .test_console_browser import server  # noqa: F401  (the module's live server)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason="headless browser test needs Debian's chromium at /usr/bin/chromium",
    ),
]


def test_settings_and_tags_in_chromium(server: str) -> None:  # noqa: F811
    from playwright.sync_api import sync_playwright

    console: list[tuple[str, str]] = []
    errors: list[str] = []
    requests: list[str] = []
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-US")
            page = context.new_page()
            page.on("console", lambda m: console.append((m.type, m.text)))
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("request", lambda r: requests.append(r.url))

            page.goto(f"{server}/settings", wait_until="load")
            page.fill("input[name=name]", "ana")
            page.fill("input[name=password]", PASSWORDS["ana"])
            page.click("#sign-in")
            page.wait_for_url(f"{server}/settings", timeout=30_000)
            assert page.locator("#no-key-note").is_visible()

            # a contact rule is stored; the page says where the value comes from
            page.fill("#form-rules input[name=quiet_hours_start]", "22:30")
            page.click("#form-rules button[type=submit]")
            page.wait_for_url(f"{server}/settings?saved=rules", timeout=30_000)
            row = page.locator('tr[data-setting="quiet_hours_start"]')
            assert row.locator("input").input_value() == "22:30"
            assert "stored" in row.inner_text()
            # a secret without HUITOUKE_ENCRYPTION_KEYS: refused, explained, not shown back
            page.fill("#form-email input[name=smtp_password]", "browser-secret-123")
            page.click("#form-email button[type=submit]")
            page.wait_for_selector("#settings-error", timeout=30_000)
            assert "HUITOUKE_ENCRYPTION_KEYS" in page.inner_text("#settings-error")
            assert "browser-secret-123" not in page.content()
            page.screenshot(path=str(ARTIFACTS / "console_settings_en.png"), full_page=True)

            page.goto(f"{server}/settings/apikeys", wait_until="load")
            page.fill("input[name=name]", "browser-key")
            page.click("button.primary")
            page.wait_for_selector("#new-key-text", timeout=30_000)
            assert page.inner_text("#new-key-text").startswith("htk_")

            page.goto(f"{server}/audit", wait_until="load")
            assert page.locator('#audit tr[data-action="settings.set"]').count() >= 1
            assert page.locator('#audit tr[data-action="apikey.create"]').count() >= 1

            page.goto(f"{server}/tags", wait_until="load")
            page.fill("#tag-apply input[name=tag]", "browser-vip")
            page.fill("#tag-apply textarea[name=customer_ids]", "00004\n00018")
            page.click("#tag-apply button[type=submit]")
            page.wait_for_selector('#tags tr[data-tag="browser-vip"]', timeout=30_000)
            assert "2" in page.inner_text('#tags tr[data-tag="browser-vip"]')
            page.screenshot(path=str(ARTIFACTS / "console_tags_en.png"), full_page=True)

            # the customer's page loads its tags with htmx and adds one in place
            page.goto(f"{server}/customers/00004", wait_until="load")
            page.wait_for_selector('#customer-tags [data-tag="browser-vip"]', timeout=30_000)
            page.fill("#profile input[name=tag]", "browser-new")
            page.click("#profile button[name=action][value=add]")
            page.wait_for_selector('#customer-tags [data-tag="browser-new"]', timeout=30_000)
            assert page.url == f"{server}/customers/00004"  # swapped in place, no navigation
            page.screenshot(path=str(ARTIFACTS / "console_customer_tags_en.png"), full_page=True)
        finally:
            browser.close()
    # the one refused save (the secret without keys) is answered 422 on purpose, which
    # Chromium logs as a failed resource; anything else is an error of the page
    refused = "the server responded with a status of 422"
    bad = [(t, m) for t, m in console if t in ("error", "warning", "assert")]
    assert [m for _, m in bad if refused in m] == [
        f"Failed to load resource: {refused} (Unprocessable Entity)"
    ]
    assert [b for b in bad if refused not in b[1]] == [], bad
    assert errors == []
    assert all(u.startswith(server) for u in requests), [
        u for u in requests if not u.startswith(server)
    ]

"""The program editor's forms in a real headless Chromium against a real `huitouke serve`,
on a phone-width screen, in zh and in en: each part of the program (coupon templates, stamp
cards, stored value with a 充1000送1000 schedule, paid membership, referral) is edited, a bad
value shows its error next to the field (the htmx check), the corrected form shows the
changes and is saved, and the program `huitouke loyalty program show` prints is what was
entered. Screenshots go to tests/artifacts/."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from huitouke.loyalty.program import load_program
from huitouke.loyalty.programs_repo import save_program
from huitouke.store.db import Store

from .conftest import PASSWORDS, cli, make_users
from .test_console_browser import ARTIFACTS, CHROMIUM, LAUNCH_ARGS

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason="headless browser test needs Debian's chromium at /usr/bin/chromium",
    ),
]

SHOP = (
    Path(__file__).resolve().parents[2] / "src" / "huitouke" / "loyalty" / "examples" / "shop.yaml"
)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """A store with the example shop program (version 1) and the console users, served."""
    from service.live import LiveServer

    url = f"sqlite:///{tmp_path / 'shop.db'}"
    store = Store(url)
    store.migrate()
    now = datetime.now(UTC)
    make_users(store, now)
    doc = yaml.safe_load(SHOP.read_text(encoding="utf-8"))
    with store.begin() as conn:
        save_program(conn, load_program({**doc, "id": "default"}), now=now)
    store.dispose()
    live = LiveServer(url, tmp_path / "serve.log").start()
    try:
        yield live.base_url, url
    finally:
        live.stop()


ERRORS = {
    "zh": {"decimal": "应为数字", "integer": "应为整数", "one": "两项须且只填一项",
           "at_least_1": "应不小于 1", "template": "没有这个优惠券模板:'nosuch'",
           "saved": "已保存为第"},
    "en": {"decimal": "Input should be a valid decimal", "integer": "Input should be a valid integer",
           "one": "give exactly one", "at_least_1": "Input should be greater than or equal to 1",
           "template": "unknown coupon template 'nosuch'", "saved": "Saved as version"},
}  # fmt: skip


def _check(page: Any, part: str, field: str) -> str:
    """Check the part through htmx and return the error shown next to ``field``."""
    page.click(f"#check-{part}")
    sel = f'#part-{part} small.field-error[data-field="{field}"]'
    page.wait_for_selector(sel, timeout=30_000)
    page.wait_for_function("() => !document.querySelector('.htmx-request')", timeout=30_000)
    return str(page.inner_text(sel))


def _preview_and_save(page: Any, part: str, saved: str) -> None:
    page.click(f"#check-{part}")
    page.wait_for_selector(f"#part-{part} #program-diff", timeout=30_000)
    page.wait_for_function("() => !document.querySelector('.htmx-request')", timeout=30_000)
    assert page.locator(f"#part-{part} small.field-error").count() == 0
    with page.expect_navigation(timeout=30_000):
        page.click(f"#save-{part}")
    page.wait_for_selector(f"#part-{part} #program-notice", timeout=30_000)
    assert saved in page.inner_text(f"#part-{part} #program-notice")


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_every_part_edited_in_chromium(served: tuple[str, str], lang: str) -> None:
    from playwright.sync_api import sync_playwright

    server, url = served
    words = ERRORS[lang]
    console: list[tuple[str, str]] = []
    errors: list[str] = []
    requests: list[str] = []
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
        try:
            context = browser.new_context(
                viewport={"width": 390, "height": 844},
                locale={"zh": "zh-CN", "en": "en-US"}[lang],
            )
            page = context.new_page()
            page.on("console", lambda m: console.append((m.type, m.text)))
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("request", lambda r: requests.append(r.url))
            page.goto(f"{server}/loyalty/program", wait_until="load")
            page.fill("input[name=name]", "ana")
            page.fill("input[name=password]", PASSWORDS["ana"])
            page.click("#sign-in")
            page.wait_for_url(f"{server}/loyalty/program", timeout=30_000)
            overflow = page.evaluate(
                "document.documentElement.scrollWidth - document.documentElement.clientWidth"
            )
            assert overflow <= 1, f"the editor scrolls sideways by {overflow}px on a phone"

            # coupon templates: a new 满300减50, first with a value that is not a number
            f = "coupon_templates.5."
            page.fill(f'[name="{f}id"]', "man300jian50")
            page.fill(f'[name="{f}name"]', "满300减50")
            page.select_option(f'[name="{f}kind"]', "threshold")
            page.fill(f'[name="{f}value"]', "fifty")
            page.fill(f'[name="{f}min_order_amount"]', "300")
            page.fill(f'[name="{f}valid_days"]', "14")
            page.check(f'[name="{f}stackable"]')
            page.fill('[name="stacking.max_coupons_per_order"]', "3")
            assert _check(page, "coupons", f"{f}value") == words["decimal"]
            assert page.input_value(f'[name="{f}value"]') == "fifty"  # kept as typed
            page.screenshot(
                path=str(ARTIFACTS / f"console_program_field_error_{lang}.png"), full_page=True
            )
            page.fill(f'[name="{f}value"]', "50")
            _preview_and_save(page, "coupons", words["saved"])

            # a stamp card: a reward of a template that does not exist, then a real one
            f = "stamp_cards.0."
            page.fill(f'[name="{f}id"]', "cafe")
            page.fill(f'[name="{f}name"]', "咖啡集章卡")
            page.select_option(f'[name="{f}per"]', "order")
            page.fill(f'[name="{f}size"]', "8")
            page.fill(f'[name="{f}rewards"]', "1:fixed20, 5:nosuch")
            page.fill(f'[name="{f}expire_days"]', "180")
            assert _check(page, "stamps", f"{f}rewards") == words["template"]
            page.fill(f'[name="{f}rewards"]', "1:fixed20, 5:pct10, 8:man300jian50")
            _preview_and_save(page, "stamps", words["saved"])

            # stored value: 充1000送1000, the bonus released in 10 monthly parts
            f = "stored_value.topup_rules.2."
            page.fill(f'[name="{f}min_amount"]', "1000")
            page.fill(f'[name="{f}bonus"]', "1000")
            page.fill(f'[name="{f}release_installments"]', "ten")
            page.select_option(f'[name="{f}release_every"]', "month")
            page.uncheck(f'[name="{f}release_first_immediately"]')
            assert _check(page, "stored_value", f"{f}release_installments").startswith(
                words["integer"]
            )
            page.fill(f'[name="{f}release_installments"]', "10")
            _preview_and_save(page, "stored_value", words["saved"])

            # paid membership: a term in months and in days is one too many
            f = "membership_plans.2."
            page.fill(f'[name="{f}id"]', "vip")
            page.fill(f'[name="{f}name"]', "VIP 月卡")
            page.fill(f'[name="{f}fee"]', "100")
            page.fill(f'[name="{f}term_months"]', "1")
            page.fill(f'[name="{f}term_days"]', "30")
            page.fill(f'[name="{f}benefits.discount_percent"]', "50")
            page.fill(f'[name="{f}benefits.perks"]', "包邮, 生日礼")
            assert _check(page, "membership", f"{f}term_days") == words["one"]
            page.fill(f'[name="{f}term_days"]', "")
            _preview_and_save(page, "membership", words["saved"])

            # referral: the friend's reward and a milestone (refer 3 → V3)
            page.fill('[name="referral.referred_reward.points"]', "50")
            f = "referral.milestones.1."
            page.fill(f'[name="{f}count"]', "0")
            page.select_option(f'[name="{f}upgrade_tier"]', "v3")
            assert _check(page, "referral", f"{f}count") == words["at_least_1"]
            page.fill(f'[name="{f}count"]', "3")
            _preview_and_save(page, "referral", words["saved"])
            assert page.get_attribute("#program-version", "data-version") == "6"

            overflow = page.evaluate(
                "document.documentElement.scrollWidth - document.documentElement.clientWidth"
            )
            assert overflow <= 1, f"the editor scrolls sideways by {overflow}px on a phone"
            page.screenshot(
                path=str(ARTIFACTS / f"console_program_forms_phone_{lang}.png"), full_page=True
            )
        finally:
            browser.close()
    assert [(t, m) for t, m in console if t in ("error", "warning", "assert")] == []
    assert errors == []
    assert all(u.startswith(server) for u in requests)

    out = cli(url, "loyalty", "program", "show")
    assert out.returncode == 0, out.stderr
    program = json.loads(out.stdout)
    tpl = program["coupon_templates"][5]
    assert (tpl["id"], tpl["name"], tpl["kind"], tpl["value"], tpl["min_order_amount"],
            tpl["valid_days"], tpl["stackable"]) == (
        "man300jian50", "满300减50", "threshold", "50", "300", 14, True)  # fmt: skip
    assert program["stacking"]["max_coupons_per_order"] == 3
    (card,) = program["stamp_cards"]
    assert (card["id"], card["name"], card["per"], card["size"], card["expire_days"]) == (
        "cafe", "咖啡集章卡", "order", 8, 180,
    )  # fmt: skip
    assert card["rewards"] == [{"stamps": 1, "template": "fixed20"},
                               {"stamps": 5, "template": "pct10"},
                               {"stamps": 8, "template": "man300jian50"}]  # fmt: skip
    rule = program["stored_value"]["topup_rules"][2]
    assert rule == {"min_amount": "1000", "bonus": "1000", "bonus_percent": None,
                    "release_installments": 10, "release_every": "month",
                    "release_first_immediately": False}  # fmt: skip
    plan = program["membership_plans"][2]
    assert plan == {"id": "vip", "name": "VIP 月卡", "fee": "100", "term_days": None,
                    "term_months": 1,
                    "benefits": {"discount_percent": "50", "points_multiplier": "1",
                                 "perks": ["包邮", "生日礼"], "remember_preferences": False}}  # fmt: skip
    assert program["referral"]["referred_reward"] == {"points": "50", "template": "fixed20"}
    assert program["referral"]["milestones"][1] == {
        "count": 3, "upgrade_tier": "v3", "reward": {"points": "0", "template": None},
    }  # fmt: skip

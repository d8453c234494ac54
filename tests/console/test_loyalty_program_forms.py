"""The program editor's forms for every part of the loyalty program (coupon templates with
stacking, stamp cards, stored value with its 充200送200 release schedules, paid membership,
referral) through the production app on a real store (SQLite, and PostgreSQL where
HUITOUKE_TEST_POSTGRES_URL is set): each form is filled from the active program, checked by
the program's one validation (the errors of ``PUT /v1/program``) with each error next to
its input in en and zh, shows the changes before saving, refuses to overwrite a version
saved meanwhile, saves a new version with an audit row, and the saved program is what was
entered; every form refuses a request without a session, below admin, or without the CSRF
token."""

from __future__ import annotations

import json
import re
from html import unescape
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import select

from huitouke.loyalty.program import load_program
from huitouke.loyalty.programs_repo import save_program
from huitouke.service.apikeys import create_api_key
from huitouke.service.console.loyalty_program import PARTS, field_errors, merge_part
from huitouke.store.audit import audit_events

from .conftest import Console, cli, csrf_of, sign_in

SHOP = (
    Path(__file__).resolve().parents[2] / "src" / "huitouke" / "loyalty" / "examples" / "shop.yaml"
)


class _Form(HTMLParser):
    """The values a browser would send for one form: inputs (checkboxes when checked) and
    each select's chosen option."""

    def __init__(self, form_id: str) -> None:
        super().__init__(convert_charrefs=True)
        self.form_id, self.inside, self.values = form_id, False, {}
        self.select: str | None = None
        self.first: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.inside = a.get("id") == self.form_id
        if not self.inside:
            return
        if tag == "input" and "name" in a:
            if a.get("type") == "checkbox":
                if "checked" in a:
                    self.values[a["name"]] = a.get("value", "on")
            else:
                self.values[a["name"]] = a.get("value", "")
        elif tag == "select":
            self.select, self.first = a.get("name"), None
        elif tag == "option" and self.select:
            if self.first is None:
                self.first = a.get("value", "")
                self.values.setdefault(self.select, self.first)
            if "selected" in a:
                self.values[self.select] = a.get("value", "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self.inside = False
        if tag == "select":
            self.select = None


def form_values(html: str, form_id: str) -> dict[str, str]:
    parser = _Form(form_id)
    parser.feed(html)
    assert parser.values, f"no form {form_id}"
    return dict(parser.values)


def errors_at(html: str) -> dict[str, str]:
    """The field errors shown next to inputs: field path → message."""
    found = re.findall(r'<small class="field-error" id="[^"]+" data-field="([^"]+)">([^<]*)<', html)
    return {path: unescape(message) for path, message in found}


class Admin:
    def __init__(self, console: Console, client: Any, keys: dict[str, str]) -> None:
        self.console, self.client, self.keys = console, client, keys

    def h(self, scope: str = "admin") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[scope]}"}

    def program(self) -> dict[str, Any]:
        r = self.client.get("/v1/program", headers=self.h("read"))
        assert r.status_code == 200, r.text
        return dict(r.json())

    def post(self, part: str, values: dict[str, str], action: str, **headers: str) -> Any:
        return self.client.post(
            f"/loyalty/program/form/{part}", data={**values, "action": action}, headers=headers
        )

    def audit(self) -> list[Any]:
        with self.console.store.connect() as conn:
            return list(
                conn.execute(
                    select(audit_events).where(audit_events.c.action == "loyalty.program.save")
                ).all()
            )


@pytest.fixture
def admin(console: Console, client: Any) -> Admin:
    """The example shop program (version 1), API keys, and the admin signed in."""
    doc = yaml.safe_load(SHOP.read_text(encoding="utf-8"))
    now = console.clock.now
    keys = {}
    with console.store.begin() as conn:
        save_program(conn, load_program({**doc, "id": "default"}), now=now)
        for scope in ("read", "admin"):
            _, keys[scope] = create_api_key(conn, scope=scope, name=f"k-{scope}", now=now)
    sign_in(client, "ana")
    return Admin(console, client, keys)


def test_every_part_is_filled_from_the_active_program(admin: Admin) -> None:
    page = admin.client.get("/loyalty/program")
    assert page.status_code == 200
    coupons = form_values(page.text, "part-form-coupons")
    assert coupons["coupon_templates.1.id"] == "man200jian30"
    assert coupons["coupon_templates.1.kind"] == "threshold"
    assert coupons["coupon_templates.1.value"] == "30"
    assert coupons["coupon_templates.1.min_order_amount"] == "200"
    assert coupons["coupon_templates.1.max_per_customer"] == "5"
    assert coupons["coupon_templates.0.stackable"] == "true"  # checked
    assert "coupon_templates.3.transferable" not in coupons  # next15 is not transferable
    assert coupons["stacking.max_coupons_per_order"] == "2"
    assert coupons["order_coupons.0.template"] == "spendback10"
    assert coupons["coupon_templates.5.id"] == ""  # the blank row for a new template
    sv = form_values(page.text, "part-form-stored_value")
    assert (sv["stored_value.topup_rules.0.min_amount"], sv["stored_value.topup_rules.0.bonus"],
            sv["stored_value.topup_rules.0.release_installments"],
            sv["stored_value.topup_rules.0.release_every"]) == ("200", "200", "10", "month")  # fmt: skip
    assert sv["stored_value.min_topup"] == "50"
    plans = form_values(page.text, "part-form-membership")
    assert plans["membership_plans.0.term_months"] == "1"
    assert plans["membership_plans.1.term_days"] == "365"
    assert plans["membership_plans.0.benefits.discount_percent"] == "50"
    ref = form_values(page.text, "part-form-referral")
    assert ref["referral.enabled"] == "true"
    assert ref["referral.referrer_reward.points"] == "200"
    assert ref["referral.referrer_reward.template"] == "fixed20"
    assert ref["referral.milestones.0.upgrade_tier"] == "v2"
    stamps = form_values(page.text, "part-form-stamps")
    assert stamps["stamp_cards.0.id"] == "" and stamps["stamp_cards.0.per"] == "visit"


def test_coupons_field_errors_preview_and_save(admin: Admin) -> None:
    c = admin.client
    values = form_values(c.get("/loyalty/program").text, "part-form-coupons")
    before = admin.program()

    bad = {**values, "coupon_templates.0.value": "lots", "coupon_templates.2.share": "1.5",
           "stacking.max_coupons_per_order": "0"}  # fmt: skip
    r = admin.post("coupons", bad, "save")
    assert r.status_code == 422
    shown = errors_at(r.text)
    assert shown["coupon_templates.0.value"] == "Input should be a valid decimal"
    assert shown["coupon_templates.2.share"] == "Input should be less than or equal to 1"
    assert shown["stacking.max_coupons_per_order"].startswith("Input should be greater than")
    assert 'value="lots"' in r.text  # what was typed is kept
    assert admin.program() == before
    # the same errors as PUT /v1/program of the same document
    doc = merge_part(before, PARTS["coupons"], bad)
    rest = c.put("/v1/program", json=doc, headers=admin.h())
    assert rest.status_code == 422
    paths = {e.split(": ")[0] for e in rest.json()["error"]["details"]["errors"]}
    assert paths == {"coupon_templates.0.value", "coupon_templates.2.share",
                     "stacking.max_coupons_per_order"}  # fmt: skip
    # a check of the whole template (a fixed coupon needs a value) lands on its field
    fixed = {**values, "coupon_templates.4.kind": "fixed", "coupon_templates.4.value": ""}
    r = admin.post("coupons", fixed, "preview")
    assert r.status_code == 422
    assert errors_at(r.text) == {"coupon_templates.4.value": "a fixed coupon needs value > 0"}
    # htmx: the same check answered 200, so that htmx swaps the part in
    r = admin.post("coupons", fixed, "preview", **{"HX-Request": "true"})
    assert r.status_code == 200 and "coupon_templates.4.value" in errors_at(r.text)

    new = {**values, "coupon_templates.5.id": "man300jian50", "coupon_templates.5.name": "满300减50",
           "coupon_templates.5.kind": "threshold", "coupon_templates.5.value": "50",
           "coupon_templates.5.min_order_amount": "300", "coupon_templates.5.valid_days": "14",
           "coupon_templates.5.max_per_customer": "2", "coupon_templates.5.stackable": "true",
           "coupon_templates.0.valid_days": "90", "stacking.max_coupons_per_order": "3"}  # fmt: skip
    new.pop("coupon_templates.5.transferable", None)
    new.pop("stacking.member_discount_with_coupons")
    preview = admin.post("coupons", new, "preview")
    assert preview.status_code == 200
    section = re.search(r'<section class="panel program-part" id="part-coupons">(.*?)</section>\s*<section',
                        preview.text, re.S)  # fmt: skip
    assert section and 'id="program-diff"' in section.group(1)  # the changes, in the part
    assert "+- id: man300jian50" in section.group(1)
    assert admin.program() == before and admin.audit() == []

    saved = admin.post("coupons", new, "save")
    assert saved.status_code == 200, saved.text
    assert 'data-version="2"' in saved.text
    program = admin.program()
    tpl = program["coupon_templates"][5]
    assert tpl == {"id": "man300jian50", "name": "满300减50", "kind": "threshold", "value": "50",
                   "percent": None, "max_discount": None, "min_order_amount": "300", "sku": None,
                   "share": None, "min_value": "0", "max_value": None, "valid_days": 14,
                   "delay_days": 0, "max_per_customer": 2, "transferable": False,
                   "max_transfers": 1, "stackable": True}  # fmt: skip
    assert program["coupon_templates"][0]["valid_days"] == 90
    assert program["stacking"] == {
        "max_coupons_per_order": 3,
        "member_discount_with_coupons": False,
    }
    assert {k: v for k, v in program.items() if k not in ("coupon_templates", "stacking")} == {
        k: v for k, v in before.items() if k not in ("coupon_templates", "stacking")
    }
    (row,) = admin.audit()
    assert (row.user_name, row.target) == ("ana", "default")
    assert row.detail == {"version": 2, "parts": ["coupon_templates", "stacking"]}
    # a coupon of the new template is issued at once, as the program now says
    assert c.put("/v1/customers/c1", json={"name": "c1"}, headers=admin.h()).status_code in (
        200, 201,
    )  # fmt: skip
    r = c.post("/v1/coupons", json={"template": "man300jian50", "customer_id": "c1",
                                    "idempotency_key": "n1"}, headers=admin.h())  # fmt: skip
    assert r.status_code == 200, r.text

    # removing a template still referred to elsewhere is named, nothing saved
    gone = {**form_values(saved.text, "part-form-coupons"), "coupon_templates.0.id": ""}
    r = admin.post("coupons", gone, "save")
    assert r.status_code == 422
    assert "unknown coupon template 'fixed20'" in unescape(r.text)
    assert admin.program()["coupon_templates"][0]["id"] == "fixed20"


def test_stamp_cards(admin: Admin) -> None:
    values = form_values(admin.client.get("/loyalty/program").text, "part-form-stamps")
    card = {**values, "stamp_cards.0.id": "cafe", "stamp_cards.0.name": "咖啡集章卡",
            "stamp_cards.0.per": "visit", "stamp_cards.0.size": "0",
            "stamp_cards.0.rewards": "1:fixed20, 5:pct10, 8:nosuch",
            "stamp_cards.0.expire_days": "180"}  # fmt: skip
    r = admin.post("stamps", card, "save")
    assert r.status_code == 422
    assert errors_at(r.text) == {"stamp_cards.0.size": "Input should be greater than or equal to 1"}
    card["stamp_cards.0.size"] = "8"
    r = admin.post("stamps", card, "save")  # the template is checked once the card is whole
    assert r.status_code == 422
    assert errors_at(r.text) == {"stamp_cards.0.rewards": "unknown coupon template 'nosuch'"}
    card["stamp_cards.0.rewards"] = "5:pct10 1:fixed20"
    r = admin.post("stamps", card, "save")
    assert errors_at(r.text) == {"stamp_cards.0.rewards": "stamp counts must strictly increase"}
    card["stamp_cards.0.rewards"] = "1:fixed20，5:pct10、8:man200jian30"
    r = admin.post("stamps", card, "save")
    assert r.status_code == 200, r.text
    (saved,) = admin.program()["stamp_cards"]
    assert saved == {"id": "cafe", "name": "咖啡集章卡", "per": "visit", "amount_step": None,
                     "min_order_amount": "0", "max_per_order": None, "size": 8,
                     "rewards": [{"stamps": 1, "template": "fixed20"},
                                 {"stamps": 5, "template": "pct10"},
                                 {"stamps": 8, "template": "man200jian30"}],
                     "expire_days": 180}  # fmt: skip
    # per amount needs a step
    page = admin.client.get("/loyalty/program").text
    values = form_values(page, "part-form-stamps")
    assert values["stamp_cards.0.rewards"] == "1:fixed20, 5:pct10, 8:man200jian30"
    r = admin.post("stamps", {**values, "stamp_cards.0.per": "amount"}, "preview")
    assert errors_at(r.text) == {
        "stamp_cards.0.amount_step": "a per-amount card needs amount_step > 0"
    }


def test_stored_value_release_schedules(admin: Admin) -> None:
    values = form_values(admin.client.get("/loyalty/program").text, "part-form-stored_value")
    sv = {**values, "stored_value.topup_rules.2.min_amount": "1000",
          "stored_value.topup_rules.2.bonus": "", "stored_value.topup_rules.2.bonus_percent": "x",
          "stored_value.topup_rules.2.release_installments": "4",
          "stored_value.topup_rules.2.release_every": "week",
          "stored_value.spend_order": "bonus_first"}  # fmt: skip
    sv.pop("stored_value.topup_rules.2.release_first_immediately", None)
    r = admin.post("stored_value", sv, "save")
    assert r.status_code == 422
    assert errors_at(r.text) == {
        "stored_value.topup_rules.2.bonus_percent": "Input should be a valid decimal"
    }
    sv["stored_value.topup_rules.2.bonus_percent"] = "50"
    sv["stored_value.topup_rules.1.min_amount"] = ""  # removes 充500送600
    r = admin.post("stored_value", sv, "save")
    assert r.status_code == 200, r.text
    stored = admin.program()["stored_value"]
    assert stored["spend_order"] == "bonus_first" and stored["min_topup"] == "50"
    assert stored["topup_rules"] == [
        {"min_amount": "200", "bonus": "200", "bonus_percent": None, "release_installments": 10,
         "release_every": "month", "release_first_immediately": True},
        {"min_amount": "1000", "bonus": "0", "bonus_percent": "50", "release_installments": 4,
         "release_every": "week", "release_first_immediately": False},
    ]  # fmt: skip
    # the schedule runs at once: 1000 topped up, 500 bonus in 4 weekly parts, none at once
    c = admin.client
    c.put("/v1/customers/c1", json={"name": "c1"}, headers=admin.h())
    r = c.post("/v1/customers/c1/topups", json={"amount": "1000", "idempotency_key": "t"},
               headers=admin.h())  # fmt: skip
    assert r.status_code == 200, r.text
    assert r.json()["bonus"] == "500"


def test_membership_plans(admin: Admin) -> None:
    values = form_values(admin.client.get("/loyalty/program").text, "part-form-membership")
    plan = {**values, "membership_plans.2.id": "vip", "membership_plans.2.name": "VIP",
            "membership_plans.2.fee": "100", "membership_plans.2.term_months": "1",
            "membership_plans.2.term_days": "30",
            "membership_plans.2.benefits.discount_percent": "50",
            "membership_plans.2.benefits.perks": "free shipping, 生日礼",
            "membership_plans.2.benefits.remember_preferences": "true"}  # fmt: skip
    r = admin.post("membership", plan, "save")
    assert r.status_code == 422
    assert errors_at(r.text) == {
        "membership_plans.2.term_days": "give exactly one",
        "membership_plans.2.term_months": "give exactly one",
    }
    plan["membership_plans.2.term_days"] = ""
    plan["membership_plans.0.fee"] = "120"
    r = admin.post("membership", plan, "save")
    assert r.status_code == 200, r.text
    plans = admin.program()["membership_plans"]
    assert plans[0]["fee"] == "120" and plans[1]["term_days"] == 365
    assert plans[2] == {"id": "vip", "name": "VIP", "fee": "100", "term_days": None,
                        "term_months": 1,
                        "benefits": {"discount_percent": "50", "points_multiplier": "1",
                                     "perks": ["free shipping", "生日礼"],
                                     "remember_preferences": True}}  # fmt: skip


def test_referral_and_switching_it_off(admin: Admin) -> None:
    values = form_values(admin.client.get("/loyalty/program").text, "part-form-referral")
    ref = {**values, "referral.referred_reward.points": "100",
           "referral.max_referrals_per_referrer": "", "referral.milestones.1.count": "5",
           "referral.milestones.1.upgrade_tier": "v9",
           "referral.milestones.1.reward.template": "pct10"}  # fmt: skip
    r = admin.post("referral", ref, "save")
    assert r.status_code == 422
    assert errors_at(r.text) == {"referral.milestones.1.upgrade_tier": "unknown tier 'v9'"}
    ref["referral.milestones.1.upgrade_tier"] = "v3"
    r = admin.post("referral", ref, "save")
    assert r.status_code == 200, r.text
    referral = admin.program()["referral"]
    assert referral["referred_reward"] == {"points": "100", "template": "fixed20"}
    assert referral["max_referrals_per_referrer"] is None
    assert referral["milestones"][1] == {"count": 5, "upgrade_tier": "v3",
                                         "reward": {"points": "0", "template": "pct10"}}  # fmt: skip
    off = {k: v for k, v in ref.items() if k != "referral.enabled"}
    off["base_version"] = "2"  # the form as the saved page shows it
    r = admin.post("referral", off, "save")
    assert r.status_code == 200, r.text
    assert admin.program()["referral"] is None
    assert [a.detail["parts"] for a in admin.audit()] == [["referral"], ["referral"]]


def test_the_errors_in_chinese(admin: Admin) -> None:
    c = admin.client
    page = c.get("/loyalty/program", headers={"Accept-Language": "zh-CN"})
    assert "优惠券模板" in page.text and "集章卡" in page.text and "付费会员" in page.text
    values = form_values(page.text, "part-form-membership")
    bad = {**values, "membership_plans.0.fee": "一百", "membership_plans.1.term_months": "12"}
    r = admin.post("membership", bad, "preview", **{"Accept-Language": "zh-CN"})
    assert r.status_code == 422
    assert errors_at(r.text) == {
        "membership_plans.0.fee": "应为数字",
        "membership_plans.1.term_days": "两项须且只填一项",
        "membership_plans.1.term_months": "两项须且只填一项",
    }
    assert "会员方案未保存" in r.text


def test_field_errors_land_on_the_field() -> None:
    got = field_errors(
        [{"path": "coupon_templates.0", "message": "value/percent: a next_order coupon has "
          "exactly one of them"},
         {"path": "(program)", "message": "stamp_cards.0.rewards.1.template: unknown coupon "
          "template 'x'"},
         {"path": "earn.unit", "message": "Input should be greater than 0"}],
        "zh",
    )  # fmt: skip
    assert got == [
        {"path": "coupon_templates.0.value", "message": "下单券的面额与折扣须且只填一项"},
        {"path": "coupon_templates.0.percent", "message": "下单券的面额与折扣须且只填一项"},
        {"path": "stamp_cards.0.rewards.1.template", "message": "没有这个优惠券模板:'x'"},
        {"path": "earn.unit", "message": "应大于 0"},
    ]


def test_merge_keeps_what_the_form_does_not_show_and_removes_emptied_rows() -> None:
    active = {
        "coupon_templates": [{"id": "a", "kind": "fixed", "value": "5", "extra": 1},
                             {"id": "b", "kind": "fixed", "value": "6"}],
        "stacking": {"max_coupons_per_order": 1},
    }  # fmt: skip
    form = {"coupon_templates.0.id": "a", "coupon_templates.0.value": "7",
            "coupon_templates.1.id": "", "coupon_templates.2.id": "",
            "stacking.max_coupons_per_order": "2"}  # fmt: skip
    doc = merge_part(active, PARTS["coupons"], form)
    (only,) = doc["coupon_templates"]
    assert only["extra"] == 1 and only["value"] == "7" and only["stackable"] is False
    assert doc["stacking"]["max_coupons_per_order"] == "2"
    assert active["coupon_templates"][0]["value"] == "5"  # the active document is not changed


def test_a_version_saved_meanwhile_is_not_overwritten(admin: Admin) -> None:
    c = admin.client
    values = form_values(c.get("/loyalty/program").text, "part-form-coupons")
    assert values["base_version"] == "1"
    other = admin.program()
    other["earn"]["per_order"] = "99"
    assert c.put("/v1/program", json=other, headers=admin.h()).status_code == 200
    r = admin.post("coupons", {**values, "coupon_templates.0.value": "25"}, "save")
    assert r.status_code == 409
    assert form_values(r.text, "part-form-coupons")["base_version"] == "2"
    assert re.search(r"\+\s+value: &#39;25&#39;", r.text)  # the changes against version 2
    assert "per_order" not in "".join(re.findall(r'<span class="(?:add|del)">[^<]*', r.text))
    assert admin.program()["coupon_templates"][0]["value"] == "20"
    again = admin.post("coupons", form_values(r.text, "part-form-coupons"), "save")
    assert again.status_code == 200, again.text
    program = admin.program()
    assert program["coupon_templates"][0]["value"] == "25"
    assert program["earn"]["per_order"] == "99"  # the other save is kept
    actors = [a.user_name for a in admin.audit()]
    assert actors[0].startswith("apikey:") and actors[1] == "ana"


def test_the_cli_shows_what_the_forms_saved(admin: Admin, store_url: str) -> None:
    values = form_values(admin.client.get("/loyalty/program").text, "part-form-stored_value")
    r = admin.post("stored_value", {**values, "stored_value.min_topup": "80"}, "save")
    assert r.status_code == 200, r.text
    out = cli(store_url, "loyalty", "program", "show")
    assert out.returncode == 0, out.stderr
    shown = json.loads(out.stdout)
    assert shown["stored_value"]["min_topup"] == "80"
    assert shown == admin.program()


# -- security ----------------------------------------------------------------------------------


def test_no_form_without_a_session(client: Any) -> None:
    for part in PARTS:
        r = client.post(f"/loyalty/program/form/{part}", data={"csrf_token": "x"},
                        follow_redirects=False)  # fmt: skip
        assert r.status_code == 303 and "/login" in r.headers["location"], part


@pytest.mark.parametrize("name", ["rita", "otto"])
def test_below_admin_the_forms_are_read_only_and_refused(
    console: Console, client: Any, name: str
) -> None:
    doc = yaml.safe_load(SHOP.read_text(encoding="utf-8"))
    with console.store.begin() as conn:
        save_program(conn, load_program({**doc, "id": "default"}), now=console.clock.now)
    sign_in(client, name)
    page = client.get("/loyalty/program")
    assert page.status_code == 200
    assert "part-form-" not in page.text  # shown, not editable
    assert re.search(r'name="coupon_templates\.1\.value"[^>]*value="30"[^>]*readonly', page.text)
    token = csrf_of(client)
    for part in PARTS:
        r = client.post(f"/loyalty/program/form/{part}",
                        data={"csrf_token": token, "action": "save"})  # fmt: skip
        assert r.status_code == 403, part
    with console.store.connect() as conn:
        assert (
            conn.execute(select(audit_events.c.action))
            .scalars()
            .all()
            .count("loyalty.program.save")
            == 0
        )


def test_the_forms_need_the_csrf_token(admin: Admin) -> None:
    c = admin.client
    page = c.get("/loyalty/program").text
    before = admin.program()
    for part in PARTS:
        values = form_values(page, f"part-form-{part}")
        values.pop("csrf_token")
        field = {"coupons": "coupon_templates.0.name", "stamps": "stamp_cards.0.id",
                 "stored_value": "stored_value.min_topup", "membership": "membership_plans.0.fee",
                 "referral": "referral.refund_window_days"}[part]  # fmt: skip
        values[field] = "7"
        assert admin.post(part, values, "save").status_code == 403, part
        assert admin.post(part, {**values, "csrf_token": "wrong"}, "save").status_code == 403
    assert admin.program() == before and admin.audit() == []
    token = form_values(page, "part-form-coupons")["csrf_token"]
    r = c.post("/loyalty/program/form/nosuch", data={"csrf_token": token})
    assert r.status_code == 404

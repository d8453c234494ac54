"""A journey that cannot render fails alone, and the dry run says so first; English SMS get
an English opt-out footer; an empty shop name is a warning (SQLite and PostgreSQL)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from huitouke.journeys.model import Journey
from huitouke.journeys.service import run_journeys
from huitouke.journeys.tables import journey_assignments
from huitouke.messaging.sms import count_sms
from huitouke.messaging.tables import outbox
from huitouke.settings import Settings
from huitouke.store.db import Store
from huitouke.store.tables import customers

from .test_service_store import AS_OF, BUILTIN, seed, settings

NO_CAPS = Settings(holdout_salt="store-test", sms_sign_name="回头客小店", contact_caps="")

# c0 has no consent, c1 unsubscribed, c2 reads English, c3 Chinese: day 7 of second_order
GOOD = BUILTIN["second_order"].model_copy(update={"holdout": 0.0})


def broken(body: str = "{{ customer.nickname }},感谢光临") -> Journey:
    data: dict[str, Any] = GOOD.model_dump(mode="json")
    data["id"] = "broken_thanks"
    data["templates"]["thanks"]["zh"]["body"] = body
    data["templates"]["thanks"]["en"]["body"] = body
    return Journey.model_validate(data)


def test_the_dry_run_renders_what_it_plans_and_a_broken_journey_fails_alone(
    store: Store,
) -> None:
    seed(store, n=4)
    dry = run_journeys(store, [broken(), GOOD], AS_OF, settings=NO_CAPS, dry_run=True)
    out = dry.to_json("en")
    assert [(f["journey_id"], f["code"], f["steps_not_written"]) for f in out["failures"]] == [
        ("broken_thanks", "template.missing_field", 2)
    ]
    assert "nickname" in out["failures"][0]["message"]
    status = {(i["journey"], i["customer_id"]): i["status"] for i in out["items"]}
    assert status[("broken_thanks", "c2")] == status[("broken_thanks", "c3")] == "failed"
    assert status[("second_order", "c2")] == status[("second_order", "c3")] == "planned"
    summary = {s["journey_id"]: s for s in out["summary"]}
    assert summary["broken_thanks"]["planned"] == 0
    assert summary["broken_thanks"]["failed"] == {"code": "template.missing_field", "steps": 2}
    assert summary["second_order"]["planned"] == 2

    real = run_journeys(store, [broken(), GOOD], AS_OF, settings=NO_CAPS, dry_run=False)
    # the real run does what the dry run said: the good journey is written, the broken one not
    assert [(f["journey_id"], f["code"]) for f in real.failures] == [
        ("broken_thanks", "template.missing_field")
    ]
    assert real.enqueued == 2
    with store.connect() as conn:
        sent = {r.journey_id for r in conn.execute(select(outbox.c.journey_id))}
        assigned = {r.journey_id for r in conn.execute(select(journey_assignments.c.journey_id))}
    assert sent == assigned == {"second_order"}


@pytest.mark.parametrize(
    ("body", "code"),
    [("{{ 1/0 }}", "template.render_error"), ("{{ range(200000)|list }}", "template.too_long")],
)
def test_a_runaway_template_fails_its_journey_with_a_template_code(
    store: Store, body: str, code: str
) -> None:
    seed(store, n=4)
    res = run_journeys(store, [broken(body), GOOD], AS_OF, settings=NO_CAPS, dry_run=False)
    assert [(f["journey_id"], f["code"]) for f in res.failures] == [("broken_thanks", code)]
    assert res.enqueued == 2


def test_english_sms_get_an_english_footer_and_stay_gsm7(store: Store) -> None:
    seed(store, n=4)
    with store.begin() as conn:  # an English name: nothing but the footer could make it UCS-2
        conn.execute(customers.update().where(customers.c.customer_id == "c2").values(name="Amy"))
    s = Settings(holdout_salt="store-test", sms_sign_name="")
    res = run_journeys(store, [GOOD], AS_OF, settings=s, dry_run=False)
    assert res.enqueued == 2
    with store.connect() as conn:
        texts = {
            r.customer_id: r.rendered["text"]
            for r in conn.execute(select(outbox.c.customer_id, outbox.c.rendered))
        }
    assert texts["c2"].endswith(" Reply STOP to opt out") and "退订" not in texts["c2"]
    assert count_sms(texts["c2"]).encoding == "GSM-7"
    assert texts["c3"].endswith(" 回T退订")


def test_an_empty_shop_name_is_a_warning_in_the_dry_run_and_at_enable(
    store: Store, store_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    seed(store, n=4)
    s = Settings(holdout_salt="store-test", sms_sign_name="")
    dry = run_journeys(store, [GOOD], AS_OF, settings=s, dry_run=True).to_json("zh")
    assert [(w["journey_id"], w["code"]) for w in dry["warnings"]] == [
        ("second_order", "journey.shop_name_missing")
    ]
    assert "HUITOUKE_SMS_SIGN_NAME" in dry["warnings"][0]["message"]
    assert dry["warnings"][0]["details"]["templates"] == ["last_call", "thanks"]
    named = run_journeys(store, [GOOD], AS_OF, settings=settings(), dry_run=True)
    assert named.warnings == []

    from huitouke.cli.main import app
    from huitouke.settings import get_settings

    monkeypatch.setenv("HUITOUKE_DATABASE_URL", store_url)
    monkeypatch.setenv("HUITOUKE_LANG", "en")
    monkeypatch.setenv("HUITOUKE_SMS_SIGN_NAME", "")
    get_settings.cache_clear()
    try:
        r = CliRunner().invoke(app, ["journeys", "enable", "second_order"])
        assert r.exit_code == 0, r.output
        assert "enabled second_order" in r.output
        assert "warning: journey second_order" in r.output and "SMS_SIGN_NAME" in r.output
        monkeypatch.setenv("HUITOUKE_SMS_SIGN_NAME", "回头客小店")
        get_settings.cache_clear()
        r = CliRunner().invoke(app, ["journeys", "enable", "second_order"])
        assert r.exit_code == 0 and "warning" not in r.output
    finally:
        get_settings.cache_clear()

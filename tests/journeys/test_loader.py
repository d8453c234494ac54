"""Journeys from YAML: the built-ins load, and bad input names file, line and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from huitouke.errors import InputError
from huitouke.journeys.loader import builtin_journeys, load_journey_file, load_journeys
from huitouke.journeys.model import SendStep, step_schedule

GOOD = """\
id: demo
name: {zh: 演示, en: Demo}
trigger: {type: date, field: next_expected_date, offset_days: -3}
steps:
  - {type: send, channel: sms, template: hi}
templates:
  hi:
    zh: {body: "你好"}
    en: {body: "Hello"}
"""


def test_builtins_cover_the_seed_methods() -> None:
    journeys = {j.id: j for j in builtin_journeys()}
    assert {
        "replenishment",
        "second_order",
        "winback_high",
        "winback_low",
        "winback_low_promotion",
        "post_purchase_shipped",
        "post_purchase_delivered",
        "post_purchase_completed",
        "birthday",
        "holiday_greetings",
        "promotion_countdown_90",
        "promotion_countdown_180",
        "points_expiring",
        "near_next_tier",
        "one_stamp_from_reward",
    } <= set(journeys)
    for j in journeys.values():
        for tpl in j.templates.values():
            assert tpl.zh.body and tpl.en.body
    # second order: day 7, 14 (coupon + message) and 30
    offsets = [off for _, off, _ in step_schedule(journeys["second_order"])]
    assert offsets == [7, 14, 14, 30]
    # countdown: 7, 3 and 1 days before
    assert [off for _, off, _ in step_schedule(journeys["promotion_countdown_90"])] == [-7, -3, -1]
    shipped = journeys["post_purchase_shipped"].steps[0]
    assert (
        isinstance(shipped, SendStep)
        and shipped.kind == "transactional"
        and shipped.related_products
    )


def test_good_file(tmp_path: Path) -> None:
    f = tmp_path / "demo.yaml"
    f.write_text(GOOD, encoding="utf-8")
    j = load_journey_file(f)
    assert j.id == "demo" and j.holdout == 0.1 and j.step_id(0) == "send1"


@pytest.mark.parametrize(
    ("bad", "line", "field", "words"),
    [
        (GOOD.replace("template: hi}", "template: nope}"), 5, "steps.0.template", "nope"),
        (GOOD.replace("channel: sms", "channel: pigeon"), 5, "steps.0.channel", "sms"),
        (GOOD.replace("offset_days: -3", "offset_days: soon"), 3, "trigger.offset_days", "integer"),
        (
            GOOD.replace("field: next_expected_date", "field: payday"),
            3,
            "trigger.field",
            "next_expected_date",
        ),
        (GOOD.replace("id: demo", "id: Demo Journey"), 1, "id", "a-z"),
        (GOOD + "holdout: 1.5\n", 10, "holdout", "0.9"),
        (GOOD + "colour: red\n", 10, "colour", "not permitted"),
    ],
)
def test_errors_name_file_line_and_field(
    tmp_path: Path, bad: str, line: int, field: str, words: str
) -> None:
    f = tmp_path / "bad.yaml"
    f.write_text(bad, encoding="utf-8")
    with pytest.raises(InputError) as info:
        load_journey_file(f)
    err = info.value
    assert err.code == "journey.invalid"
    assert err.details["file"] == str(f)
    assert err.details["line"] == line, err.details
    assert err.details["field"] == field, err.details
    assert words in str(err)


def test_unknown_holiday_and_schedule_wait(tmp_path: Path) -> None:
    f = tmp_path / "h.yaml"
    f.write_text(
        GOOD.replace(
            "{type: date, field: next_expected_date, offset_days: -3}",
            "{type: holiday, holidays: [pancake_day]}",
        )
    )
    with pytest.raises(InputError, match="pancake_day"):
        load_journey_file(f)
    f.write_text(
        GOOD.replace(
            "{type: date, field: next_expected_date, offset_days: -3}",
            "{type: schedule, every: week}",
        ).replace("steps:\n", "steps:\n  - {type: wait, days: 2}\n")
    )
    with pytest.raises(InputError, match="cannot wait"):
        load_journey_file(f)


def test_not_yaml_and_duplicates(tmp_path: Path) -> None:
    f = tmp_path / "x.yaml"
    f.write_text("id: [unclosed\n")
    with pytest.raises(InputError) as info:
        load_journey_file(f)
    assert info.value.details["line"] == 2
    a, b = tmp_path / "d" / "a.yaml", tmp_path / "d" / "b.yaml"
    a.parent.mkdir()
    a.write_text(GOOD)
    b.write_text(GOOD)
    with pytest.raises(InputError, match="already defined") as info:
        load_journeys([a.parent])
    assert info.value.code == "journey.duplicate_id"

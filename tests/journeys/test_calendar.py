"""Holiday dates against published calendars (lunar dates from the HKO tables)."""

from __future__ import annotations

from datetime import date

import pytest

from huitouke.journeys.calendar import HOLIDAYS, default_promotions, holiday_date, holidays_between


@pytest.mark.parametrize(
    ("key", "year", "expected"),
    [
        ("spring_festival", 2025, date(2025, 1, 29)),
        ("spring_festival", 2026, date(2026, 2, 17)),
        ("spring_festival", 2027, date(2027, 2, 6)),
        ("spring_festival", 2028, date(2028, 1, 26)),
        ("lantern", 2025, date(2025, 2, 12)),
        ("lantern", 2026, date(2026, 3, 3)),
        ("dragon_boat", 2025, date(2025, 5, 31)),
        ("dragon_boat", 2026, date(2026, 6, 19)),
        ("qixi", 2025, date(2025, 8, 29)),
        ("qixi", 2026, date(2026, 8, 19)),
        ("mid_autumn", 2025, date(2025, 10, 6)),
        ("mid_autumn", 2026, date(2026, 9, 25)),
        ("mid_autumn", 2027, date(2027, 9, 15)),
        ("double_ninth", 2025, date(2025, 10, 29)),
        ("mothers_day", 2025, date(2025, 5, 11)),
        ("mothers_day", 2026, date(2026, 5, 10)),
        ("fathers_day", 2025, date(2025, 6, 15)),
        ("fathers_day", 2026, date(2026, 6, 21)),
        ("double_11", 2026, date(2026, 11, 11)),
        ("618", 2027, date(2027, 6, 18)),
        ("womens_day", 2026, date(2026, 3, 8)),
    ],
)
def test_known_dates(key: str, year: int, expected: date) -> None:
    assert holiday_date(key, year) == expected


def test_every_holiday_resolves_for_the_coming_years_in_its_season() -> None:
    for key in HOLIDAYS:
        dates = [holiday_date(key, y) for y in range(2024, 2040)]
        assert all(d.year == y for d, y in zip(dates, range(2024, 2040), strict=True)), key
        # lunar holidays wander by at most ~a month around their solar season
        spread = max(d.timetuple().tm_yday for d in dates) - min(
            d.timetuple().tm_yday for d in dates
        )
        assert spread <= 33, key


def test_holidays_between_is_sorted_and_bounded() -> None:
    got = holidays_between(date(2026, 1, 1), date(2026, 3, 31))
    assert [k for k, _ in got] == [
        "new_year",
        "valentines",
        "spring_festival",
        "lantern",
        "womens_day",
    ]
    assert all(date(2026, 1, 1) <= d <= date(2026, 3, 31) for _, d in got)


def test_default_promotions_are_the_shopping_festivals() -> None:
    promos = default_promotions(date(2026, 6, 1), date(2026, 12, 31))
    assert [(p.id, p.date) for p in promos] == [
        ("618-2026", date(2026, 6, 18)),
        ("double_11-2026", date(2026, 11, 11)),
        ("double_12-2026", date(2026, 12, 12)),
    ]
    assert all(p.big for p in promos)

"""Holidays and shopping festivals, with lunar dates computed for any year 1900–2099.

Chinese holidays on the lunar calendar (春节, 元宵, 端午, 七夕, 中秋, 重阳) are converted with
``lunardate`` (the Hong Kong Observatory tables); the solar ones and the e-commerce
festivals (618, 双11, 双12) are fixed; 母亲节 and 父亲节 are the 2nd Sunday of May and the
3rd Sunday of June.
"""

from __future__ import annotations

import calendar as _cal
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date

from lunardate import LunarDate

from huitouke.journeys.text import LocalizedText

__all__ = [
    "HOLIDAYS",
    "Holiday",
    "Promotion",
    "default_promotions",
    "holiday_date",
    "holidays_between",
]


@dataclass(frozen=True)
class Holiday:
    key: str
    name: LocalizedText
    #: a shopping festival: counts as a big promotion (the seed's "大促")
    shopping: bool
    resolve: Callable[[int], date]


def _solar(month: int, day: int) -> Callable[[int], date]:
    return lambda year: date(year, month, day)


def _lunar(month: int, day: int) -> Callable[[int], date]:
    def resolve(year: int) -> date:
        solar: date = LunarDate(year, month, day).to_solar_date()
        return solar

    return resolve


def _nth_weekday(month: int, weekday: int, n: int) -> Callable[[int], date]:
    def resolve(year: int) -> date:
        days = [
            d
            for d in _cal.Calendar().itermonthdates(year, month)
            if d.month == month and d.weekday() == weekday
        ]
        return days[n - 1]

    return resolve


def _h(
    key: str, zh: str, en: str, resolve: Callable[[int], date], shopping: bool = False
) -> Holiday:
    return Holiday(key, LocalizedText(zh=zh, en=en), shopping, resolve)


HOLIDAYS: dict[str, Holiday] = {
    h.key: h
    for h in (
        _h("new_year", "元旦", "New Year's Day", _solar(1, 1)),
        _h("spring_festival", "春节", "Spring Festival", _lunar(1, 1)),
        _h("lantern", "元宵节", "Lantern Festival", _lunar(1, 15)),
        _h("valentines", "情人节", "Valentine's Day", _solar(2, 14)),
        _h("womens_day", "女神节", "Women's Day", _solar(3, 8)),
        _h("labour_day", "劳动节", "Labour Day", _solar(5, 1)),
        _h("mothers_day", "母亲节", "Mother's Day", _nth_weekday(5, 6, 2)),
        _h("dragon_boat", "端午节", "Dragon Boat Festival", _lunar(5, 5)),
        _h("fathers_day", "父亲节", "Father's Day", _nth_weekday(6, 6, 3)),
        _h("618", "618年中大促", "618 mid-year sale", _solar(6, 18), shopping=True),
        _h("qixi", "七夕", "Qixi Festival", _lunar(7, 7)),
        _h("mid_autumn", "中秋节", "Mid-Autumn Festival", _lunar(8, 15)),
        _h("national_day", "国庆节", "National Day", _solar(10, 1)),
        _h("double_ninth", "重阳节", "Double Ninth Festival", _lunar(9, 9)),
        _h("double_11", "双11", "Singles' Day (11.11)", _solar(11, 11), shopping=True),
        _h("double_12", "双12", "Double 12 (12.12)", _solar(12, 12), shopping=True),
        _h("christmas", "圣诞节", "Christmas", _solar(12, 25)),
    )
}


def holiday_date(key: str, year: int) -> date:
    """The date of holiday ``key`` in (solar) ``year``."""
    return HOLIDAYS[key].resolve(year)


def holidays_between(
    start: date, end: date, keys: Iterable[str] | None = None
) -> list[tuple[str, date]]:
    """``(key, date)`` of every holiday in ``[start, end]``, sorted by date."""
    wanted = list(keys) if keys is not None else list(HOLIDAYS)
    out = []
    for year in range(start.year, end.year + 1):
        for key in wanted:
            d = holiday_date(key, year)
            if start <= d <= end:
                out.append((key, d))
    return sorted(out, key=lambda kd: (kd[1], kd[0]))


@dataclass(frozen=True)
class Promotion:
    """A promotion date of the merchant; ``big`` marks the big ones (大促) that the low
    win-back layer is allowed to hear about."""

    id: str
    name: LocalizedText
    date: date
    big: bool = True


def default_promotions(start: date, end: date) -> list[Promotion]:
    """The shopping festivals (618, 双11, 双12) in ``[start, end]`` as big promotions."""
    shopping = [k for k, h in HOLIDAYS.items() if h.shopping]
    return [
        Promotion(id=f"{key}-{d.year}", name=HOLIDAYS[key].name, date=d, big=True)
        for key, d in holidays_between(start, end, shopping)
    ]

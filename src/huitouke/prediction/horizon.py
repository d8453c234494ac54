"""Forecast horizons written the way merchants say them: ``90d``, ``12w``, ``3m``."""

from __future__ import annotations

import calendar
import re
from datetime import date

from huitouke.errors import InputError

__all__ = ["add_months", "parse_horizon"]

_PATTERN = re.compile(r"^\s*(\d+)\s*([dwm]?)\s*$", re.IGNORECASE)
#: a forecast beyond this many days is extrapolation far past any order history
MAX_DAYS = 3660


def add_months(day: date, months: int) -> date:
    """``day`` plus whole calendar months, the day of month clamped (31 Jan + 1m = 28/29 Feb)."""
    index = day.year * 12 + (day.month - 1) + months
    year, month = divmod(index, 12)
    last = calendar.monthrange(year, month + 1)[1]
    return date(year, month + 1, min(day.day, last))


def parse_horizon(text: str, as_of: date | None = None) -> int:
    """Days in a horizon ``N``/``Nd`` (days), ``Nw`` (weeks) or ``Nm`` (calendar months
    after ``as_of``; without ``as_of``, 30.4375-day months rounded). Between 1 day and
    ten years."""
    match = _PATTERN.match(str(text))
    if match is None:
        raise InputError(
            f"--horizon {text!r}: expected a number of days, weeks or months such as 90d, 12w or 3m",
            code="input.bad_horizon",
            message_zh=f"--horizon {text!r}:应为天数、周数或月数,如 90d、12w、3m",
            details={"option": "--horizon", "value": str(text)},
        )
    n = int(match.group(1))
    unit = match.group(2).lower() or "d"
    if unit == "d":
        days = n
    elif unit == "w":
        days = 7 * n
    elif as_of is not None and n <= 12 * 10:
        days = (add_months(as_of, n) - as_of).days
    else:
        days = round(n * 365.25 / 12)
    if not 1 <= days <= MAX_DAYS:
        raise InputError(
            f"--horizon {text!r} is {days} days; it must be between 1 day and {MAX_DAYS} days",
            code="input.bad_horizon",
            message_zh=f"--horizon {text!r} 为 {days} 天;必须在 1 到 {MAX_DAYS} 天之间",
            details={"option": "--horizon", "value": str(text)},
        )
    return days

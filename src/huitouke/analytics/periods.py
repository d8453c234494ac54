"""Period bucketing rules (pure: no I/O, no engine).

BRIEF: metrics are computed per period P — day, week, month, quarter, year or a custom
range — and every boundary is cut in the merchant's time zone. This module owns the rules;
the engine only asks it for the list of periods and their labels.

Rules:

* ``day``      ``YYYY-MM-DD``; the local calendar day.
* ``week``     ``YYYY-Www``; ISO 8601 weeks, Monday to Sunday, labelled with the ISO year
  (so 2024-12-30 falls in ``2025-W01``).
* ``month``    ``YYYY-MM``.
* ``quarter``  ``YYYY-Qn`` (Q1 = January–March).
* ``year``     ``YYYY``.
* custom range ``YYYY-MM-DD..YYYY-MM-DD`` (both ends inclusive); its *next period* for the
  buy-back rate is the following range of the same length.

``period_end`` is the last day inside the period (inclusive); ``next_start`` the first day
of the next period.

Completeness: the data cover every local day up to a *coverage end* (the day of the last
counted order, or the as-of day the user gives). A period is complete when its last day is
on or before the coverage end; its buy-back rate needs the next period complete too
(:func:`is_complete`).

Same period last year (:func:`year_ago_start`): the day one year earlier (29 February → 28
February), the week 52 weeks earlier (so weekdays line up), the same month, quarter a year
earlier, the previous year.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Literal

from huitouke.errors import InputError

__all__ = [
    "PERIOD_KINDS",
    "Period",
    "PeriodKind",
    "bucket_start",
    "custom_range",
    "is_complete",
    "next_start",
    "period_label",
    "periods_between",
    "previous_start",
    "year_ago_start",
]

PeriodKind = Literal["day", "week", "month", "quarter", "year"]
PERIOD_KINDS: tuple[str, ...] = ("day", "week", "month", "quarter", "year")


@dataclass(frozen=True, slots=True)
class Period:
    """One period: its label, first day, last day (inclusive) and the next period's span."""

    label: str
    start: date
    end: date
    next_start: date
    next_end: date


def check_kind(kind: str) -> PeriodKind:
    if kind not in PERIOD_KINDS:
        raise InputError(
            f"unknown period {kind!r}; use one of {', '.join(PERIOD_KINDS)}",
            code="input.bad_period",
            message_zh=f"未知的周期 {kind!r};可选:{', '.join(PERIOD_KINDS)}",
            details={"period": kind},
        )
    return kind  # type: ignore[return-value]


def bucket_start(d: date, kind: str) -> date:
    """First day of the period of ``kind`` that contains the local date ``d``."""
    kind = check_kind(kind)
    if kind == "day":
        return d
    if kind == "week":
        return d - timedelta(days=d.weekday())
    if kind == "month":
        return d.replace(day=1)
    if kind == "quarter":
        return date(d.year, 3 * ((d.month - 1) // 3) + 1, 1)
    return date(d.year, 1, 1)


def _add_months(d: date, months: int) -> date:
    total = d.year * 12 + (d.month - 1) + months
    return date(total // 12, total % 12 + 1, 1)


def next_start(start: date, kind: str) -> date:
    """First day of the period after the one starting at ``start``."""
    kind = check_kind(kind)
    if kind == "day":
        return start + timedelta(days=1)
    if kind == "week":
        return start + timedelta(days=7)
    if kind == "month":
        return _add_months(start, 1)
    if kind == "quarter":
        return _add_months(start, 3)
    return date(start.year + 1, 1, 1)


def previous_start(start: date, kind: str) -> date:
    """First day of the period before the one starting at ``start``."""
    kind = check_kind(kind)
    if kind == "day":
        return start - timedelta(days=1)
    if kind == "week":
        return start - timedelta(days=7)
    if kind == "month":
        return _add_months(start, -1)
    if kind == "quarter":
        return _add_months(start, -3)
    return date(start.year - 1, 1, 1)


def year_ago_start(start: date, kind: str) -> date:
    """First day of the same period one year before the one starting at ``start``."""
    kind = check_kind(kind)
    if kind == "day":
        try:
            return start.replace(year=start.year - 1)
        except ValueError:  # 29 February
            return date(start.year - 1, 2, 28)
    if kind == "week":
        return start - timedelta(weeks=52)
    if kind in ("month", "quarter"):
        return _add_months(start, -12)
    return date(start.year - 1, 1, 1)


def is_complete(period_last_day: date, coverage_end: date | None) -> bool:
    """Whether the data cover a period whose last local day is ``period_last_day``."""
    return coverage_end is not None and period_last_day <= coverage_end


def period_label(start: date, kind: str) -> str:
    kind = check_kind(kind)
    if kind == "day":
        return start.isoformat()
    if kind == "week":
        iso = start.isocalendar()
        return f"{iso.year:04d}-W{iso.week:02d}"
    if kind == "month":
        return f"{start.year:04d}-{start.month:02d}"
    if kind == "quarter":
        return f"{start.year:04d}-Q{(start.month - 1) // 3 + 1}"
    return f"{start.year:04d}"


def _period(start: date, kind: str) -> Period:
    nxt = next_start(start, kind)
    after = next_start(nxt, kind)
    return Period(
        period_label(start, kind), start, nxt - timedelta(days=1), nxt, after - timedelta(days=1)
    )


def iter_periods(first: date, last: date, kind: str) -> Iterator[Period]:
    start = bucket_start(first, kind)
    while start <= last:
        p = _period(start, kind)
        yield p
        start = p.next_start


def periods_between(first: date, last: date, kind: str) -> list[Period]:
    """Every period of ``kind`` from the one holding ``first`` to the one holding ``last``
    (empty periods included, so gaps in the data show as zeros)."""
    if last < first:
        return []
    return list(iter_periods(first, last, kind))


def custom_range(start: date, end: date) -> Period:
    """A custom range ``[start, end]``; its next period is the following range of equal length."""
    if end < start:
        raise InputError(
            f"the range ends ({end}) before it starts ({start})",
            code="input.bad_range",
            message_zh=f"日期范围的结束日 {end} 早于开始日 {start}",
            details={"start": str(start), "end": str(end)},
        )
    length = (end - start).days + 1
    nxt = end + timedelta(days=1)
    return Period(
        f"{start.isoformat()}..{end.isoformat()}", start, end, nxt, nxt + timedelta(days=length - 1)
    )

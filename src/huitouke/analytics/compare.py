"""Headline figures: the last complete period against the one before it and the same period a
year earlier (pure: works on the per-period records of ``metrics_json``).

A period still running understates every rate (its buyers have not had the whole period to
buy twice), and a buy-back rate whose next period is still running understates who came
back. So the headline is never the last period in the data but the last *complete* one, and
the buy-back headline is the last period whose buy-back rate is known (its next period
complete).

Changes: for rates the difference in rate points (0.071 − 0.050 = +0.021, "+2.1 pp");
for counts and money the relative change (120 / 100 − 1 = +0.2). None when the other
period is not listed or the relative change would divide by zero.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date
from typing import Any

from huitouke.analytics.periods import previous_start, year_ago_start

__all__ = ["HEADLINE_COUNTS", "HEADLINE_RATES", "headline"]

#: rates of the last complete period in the headline (the buy-back rate has its own period)
HEADLINE_RATES: tuple[str, ...] = (
    "in_period_repurchase_rate",
    "customer_repurchase_rate",
    "order_repurchase_rate",
    "returning_buyer_share",
    "returning_revenue_share",
)
HEADLINE_COUNTS: tuple[str, ...] = ("buyers", "orders", "revenue", "aov")


def _change(value: Any, other: Any, kind: str) -> float | None:
    if value is None or other is None:
        return None
    if kind == "points":
        return float(value) - float(other)
    return None if float(other) == 0 else float(value) / float(other) - 1.0


def _entry(
    key: str,
    p: Mapping[str, Any],
    prev: Mapping[str, Any] | None,
    year: Mapping[str, Any] | None,
    kind: str,
) -> dict[str, Any]:
    value = p.get(key)
    before = None if prev is None else prev.get(key)
    year_ago = None if year is None else year.get(key)
    return {
        "value": value,
        "previous": before,
        "year_ago": year_ago,
        "vs_previous": _change(value, before, kind),
        "vs_year_ago": _change(value, year_ago, kind),
        "change_kind": kind,
    }


def headline(periods: Sequence[Mapping[str, Any]], kind: str) -> dict[str, Any]:
    """``{"period", "previous_period", "year_ago_period", "buyback_period",
    "buyback_previous_period", "buyback_year_ago_period", "metrics": {name: {"value",
    "previous", "year_ago", "vs_previous", "vs_year_ago", "change_kind"}}}`` for the period
    records of one period ``kind`` (each with ``period``, ``period_start`` ISO, ``complete``
    and the metric values). Labels are None when that period is not among ``periods``."""
    by_start = {str(p["period_start"]): p for p in periods}

    def around(p: Mapping[str, Any] | None) -> tuple[Any, Any]:
        if p is None:
            return None, None
        start = date.fromisoformat(str(p["period_start"]))
        return (
            by_start.get(previous_start(start, kind).isoformat()),
            by_start.get(year_ago_start(start, kind).isoformat()),
        )

    complete = [p for p in periods if p.get("complete")]
    last = complete[-1] if complete else None
    known = [p for p in periods if p.get("buyback_rate") is not None]
    bb = known[-1] if known else None
    prev, year = around(last)
    bb_prev, bb_year = around(bb)
    metrics: dict[str, Any] = {}
    if last is not None:
        for key in HEADLINE_COUNTS:
            metrics[key] = _entry(key, last, prev, year, "relative")
        for key in HEADLINE_RATES:
            metrics[key] = _entry(key, last, prev, year, "points")
    if bb is not None:
        metrics["buyback_rate"] = _entry("buyback_rate", bb, bb_prev, bb_year, "points")

    def label(p: Mapping[str, Any] | None) -> str | None:
        return None if p is None else str(p["period"])

    return {
        "period": label(last),
        "previous_period": label(prev),
        "year_ago_period": label(year),
        "buyback_period": label(bb),
        "buyback_previous_period": label(bb_prev),
        "buyback_year_ago_period": label(bb_year),
        "metrics": metrics,
    }

"""An independent reference for every analytics metric, written from the BRIEF's definitions
in plain Python and pandas. It imports nothing from huitouke.analytics on purpose: period
keys, first orders, quintile scores and segment names are all re-derived here.

Input: the canonical orders as a pandas frame (``table.to_pandas()``): order_id, customer_id,
ordered_at (aware UTC), amount and refunded_amount (Decimal), status.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from itertools import pairwise
from typing import Any

import pandas as pd

COUNTED = ("paid", "partially_refunded")


@dataclass
class Order:
    order_id: str
    customer_id: str
    ordered_at: datetime  # aware UTC
    local_date: date
    revenue: Decimal


def counted_orders(orders: pd.DataFrame, zone: str, merge_same_day: bool = False) -> list[Order]:
    """BRIEF: only orders that are paid and not fully refunded or cancelled count."""
    kept = orders[orders["status"].isin(COUNTED)]
    instants = pd.to_datetime(kept["ordered_at"], utc=True)
    local_dates = instants.dt.tz_convert(zone).dt.date
    out = [
        Order(str(oid), str(cid), ts.to_pydatetime(), d, Decimal(amt) - Decimal(ref))
        for oid, cid, ts, d, amt, ref in zip(
            kept["order_id"],
            kept["customer_id"],
            instants,
            local_dates,
            kept["amount"],
            kept["refunded_amount"],
            strict=True,
        )
    ]
    if merge_same_day:
        groups: dict[tuple[str, date], list[Order]] = defaultdict(list)
        for o in out:
            groups[(o.customer_id, o.local_date)].append(o)
        out = [
            Order(
                min(o.order_id for o in g),
                c,
                min(o.ordered_at for o in g),
                d,
                sum((o.revenue for o in g), Decimal(0)),
            )
            for (c, d), g in groups.items()
        ]
    return out


def by_customer(orders: list[Order]) -> dict[str, list[Order]]:
    """Each customer's orders in time order (ties by order id)."""
    res: dict[str, list[Order]] = defaultdict(list)
    for o in orders:
        res[o.customer_id].append(o)
    for lst in res.values():
        lst.sort(key=lambda o: (o.ordered_at, o.order_id))
    return res


# --- period keys, written independently ---------------------------------------------------------


def period_key(d: date, kind: str) -> str:
    if kind == "day":
        return d.strftime("%Y-%m-%d")
    if kind == "week":
        y, w, _ = d.isocalendar()
        return f"{y}-W{w:02d}"
    if kind == "month":
        return d.strftime("%Y-%m")
    if kind == "quarter":
        return f"{d.year}-Q{math.ceil(d.month / 3)}"
    if kind == "year":
        return str(d.year)
    raise ValueError(kind)


def all_period_keys(first: date, last: date, kind: str) -> list[str]:
    """Every period key from first to last, found by walking every day."""
    keys: list[str] = []
    d = first
    while d <= last:
        k = period_key(d, kind)
        if not keys or keys[-1] != k:
            keys.append(k)
        d += timedelta(days=1)
    return keys


def last_day_of(key: str, first: date, kind: str) -> date:
    """The last day with period key ``key``, walking day by day from a day ``first`` inside it."""
    d = first
    while period_key(d + timedelta(days=1), kind) == key:
        d += timedelta(days=1)
    return d


def _ratio(n: float, d: float) -> float | None:
    return None if d == 0 else n / d


def period_metrics(
    orders: pd.DataFrame,
    zone: str,
    kind: str,
    merge_same_day: bool = False,
    coverage_end: date | None = None,
) -> list[dict[str, Any]]:
    """Per period, the BRIEF's metrics; ``complete`` when every day of the period is on or
    before ``coverage_end`` (default: the last counted order's local day), and the buy-back
    rate only when the next period is complete."""
    counted = counted_orders(orders, zone, merge_same_day)
    if not counted:
        return []
    first_order_id = {c: lst[0].order_id for c, lst in by_customer(counted).items()}
    last_data = max(o.local_date for o in counted)
    covered = coverage_end if coverage_end is not None else last_data
    keys = all_period_keys(min(o.local_date for o in counted), last_data, kind)
    first_day: dict[str, date] = {}
    d = min(o.local_date for o in counted)
    while period_key(d, kind) == keys[0] and d > date(1, 1, 1):
        d -= timedelta(days=1)
    d += timedelta(days=1)  # the first day of the first period
    while d <= last_data:
        first_day.setdefault(period_key(d, kind), d)
        d += timedelta(days=1)
    last_day = {k: last_day_of(k, first_day[k], kind) for k in keys}
    per: dict[str, list[Order]] = defaultdict(list)
    for o in counted:
        per[period_key(o.local_date, kind)].append(o)
    buyers_of = {k: {o.customer_id for o in per[k]} for k in keys}
    rows = []
    for k in keys:
        os_ = per[k]
        n_c: dict[str, int] = defaultdict(int)
        for o in os_:
            n_c[o.customer_id] += 1
        buyers = len(n_c)
        returning = {o.customer_id for o in os_ if o.order_id != first_order_id[o.customer_id]}
        new = {o.customer_id for o in os_ if o.order_id == first_order_id[o.customer_id]}
        revenue = sum((o.revenue for o in os_), Decimal(0))
        ret_rev = sum(
            (o.revenue for o in os_ if o.order_id != first_order_id[o.customer_id]), Decimal(0)
        )
        multi = sum(1 for n in n_c.values() if n >= 2)
        repeat = sum(max(0, n - 1) for n in n_c.values())
        # the next period's days are the days after this one's last day, up to its last day
        nxt_first = last_day[k] + timedelta(days=1)
        nxt_key = period_key(nxt_first, kind)
        nxt_complete = last_day_of(nxt_key, nxt_first, kind) <= covered
        if nxt_complete:
            bb = len(buyers_of[k] & buyers_of.get(nxt_key, set()))
            buyback = _ratio(bb, buyers)
        else:
            bb, buyback = None, None
        rows.append(
            {
                "period": k,
                "buyers": buyers,
                "orders": len(os_),
                "revenue": revenue,
                "returning_buyers": len(returning),
                "new_buyers": len(new),
                "multi_buyers": multi,
                "repeat_orders": repeat,
                "returning_revenue": ret_rev,
                "buyback_buyers": bb,
                "customer_repurchase_rate": _ratio(len(returning), buyers),
                "in_period_repurchase_rate": _ratio(multi, buyers),
                "order_repurchase_rate": _ratio(repeat, len(os_)),
                "buyback_rate": buyback,
                "returning_revenue_share": None if revenue <= 0 else float(ret_rev / revenue),
                "aov": None if not os_ else revenue / len(os_),
                "complete": last_day[k] <= covered,
                "buyback_null_reason": None
                if buyback is not None
                else ("no_buyers" if buyers == 0 else "next_period_incomplete"),
            }
        )
    return rows


def range_metrics(
    orders: pd.DataFrame, zone: str, start: date, end: date, coverage_end: date | None = None
) -> dict[str, Any]:
    counted = counted_orders(orders, zone)
    first_order_id = {c: lst[0].order_id for c, lst in by_customer(counted).items()}
    length = (end - start).days + 1
    nxt_s, nxt_e = end + timedelta(days=1), end + timedelta(days=length)
    inside = [o for o in counted if start <= o.local_date <= end]
    buyers = {o.customer_id for o in inside}
    nxt = {o.customer_id for o in counted if nxt_s <= o.local_date <= nxt_e}
    covered = coverage_end or max(o.local_date for o in counted)
    returning = {o.customer_id for o in inside if o.order_id != first_order_id[o.customer_id]}
    return {
        "buyers": len(buyers),
        "orders": len(inside),
        "returning_buyers": len(returning),
        "buyback_rate": _ratio(len(buyers & nxt), len(buyers)) if nxt_e <= covered else None,
        "complete": end <= covered,
    }


# --- cohorts and ladder ------------------------------------------------------------------------


def cohorts(orders: pd.DataFrame, zone: str) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(customers, share, revenue) pivots, the tutorial way."""
    counted = counted_orders(orders, zone)
    df = pd.DataFrame(
        {
            "customer_id": [o.customer_id for o in counted],
            "month": [o.local_date.year * 12 + o.local_date.month - 1 for o in counted],
            "revenue": [o.revenue for o in counted],
        }
    )
    df["cohort_m"] = df.groupby("customer_id")["month"].transform("min")
    df["k"] = df["month"] - df["cohort_m"]
    df["cohort"] = df["cohort_m"].map(lambda m: f"{m // 12:04d}-{m % 12 + 1:02d}")
    cust = df.groupby(["cohort", "k"])["customer_id"].nunique().unstack(fill_value=0)
    rev = df.groupby(["cohort", "k"])["revenue"].apply(lambda s: sum(s, Decimal(0))).unstack()
    share = cust.div(cust[0], axis=0)
    return cust, share, rev


def ladder(orders: pd.DataFrame, zone: str, max_k: int = 5) -> list[dict[str, Any]]:
    bc = by_customer(counted_orders(orders, zone))
    rows = []
    for k in range(1, max_k + 1):
        reached = [lst for lst in bc.values() if len(lst) >= k]
        nxt = [lst for lst in bc.values() if len(lst) >= k + 1]
        gaps = [(lst[k].local_date - lst[k - 1].local_date).days for lst in nxt]
        rows.append(
            {
                "k": k,
                "reached_k": len(reached),
                "reached_k_plus_1": len(nxt),
                "share": _ratio(len(nxt), len(reached)),
                "median_days": statistics.median(gaps) if gaps else None,
            }
        )
    return rows


# --- customers -----------------------------------------------------------------------------------

# The RF naming map as the RFM notebooks write it (regex on "RF"), plus "lost" for R=1,F=1.
_RF_MAP = [
    ("11", "lost"),
    ("[1-2][1-2]", "hibernating"),
    ("[1-2][3-4]", "at_risk"),
    ("[1-2]5", "cant_lose"),
    ("3[1-2]", "about_to_sleep"),
    ("33", "need_attention"),
    ("[3-4][4-5]", "loyal"),
    ("41", "promising"),
    ("51", "new"),
    ("[4-5][2-3]", "potential_loyalist"),
    ("5[4-5]", "champions"),
]


def rf_name(r: int, f: int) -> str:
    import re

    for pat, name in _RF_MAP:
        if re.fullmatch(pat, f"{r}{f}"):
            return name
    raise AssertionError((r, f))


def quintile(values: pd.Series) -> pd.Series:
    """1–5 from the min-rank (ties share the lowest rank), higher value = higher score."""
    n = len(values)
    rank = values.rank(method="min").astype(int)
    return rank.map(lambda r: 1 + (5 * (r - 1)) // n)


def _median_or_none(xs: list[int]) -> float | None:
    return float(statistics.median(xs)) if xs else None


def category_cycles(
    orders: pd.DataFrame, lines: pd.DataFrame, zone: str, as_of: date | None = None
) -> dict[str, tuple[float | None, int]]:
    counted = [o for o in counted_orders(orders, zone) if as_of is None or o.local_date <= as_of]
    by_id = {o.order_id: o for o in counted}
    seqs: dict[tuple[str, str], set[str]] = defaultdict(set)
    for r in lines.itertuples(index=False):
        if r.order_id in by_id and isinstance(r.category, str) and r.category:
            seqs[(by_id[r.order_id].customer_id, r.category)].add(r.order_id)
    gaps: dict[str, list[int]] = defaultdict(list)
    cats = set()
    for (_, cat), ids in seqs.items():
        cats.add(cat)
        os_ = sorted((by_id[i] for i in ids), key=lambda o: (o.ordered_at, o.order_id))
        gaps[cat].extend((b.local_date - a.local_date).days for a, b in pairwise(os_))
    return {c: (_median_or_none(gaps[c]), len(gaps[c])) for c in cats}


def customers(
    orders: pd.DataFrame,
    zone: str,
    as_of: date,
    windows: tuple[int, int, int, int] = (45, 90, 180, 360),
    lines: pd.DataFrame | None = None,
    p_alive: dict[str, float] | None = None,
) -> pd.DataFrame:
    new_d, cool_d, high_d, lost_d = windows
    counted = [o for o in counted_orders(orders, zone) if o.local_date <= as_of]
    bc = by_customer(counted)
    all_gaps = [(b.local_date - a.local_date).days for lst in bc.values() for a, b in pairwise(lst)]
    shop_cycle = _median_or_none(all_gaps)
    cat_cycle: dict[str, tuple[float | None, int]] = {}
    main_cat: dict[str, str] = {}
    if lines is not None:
        cat_cycle = category_cycles(orders, lines, zone, as_of)
        ids = {o.order_id: o.customer_id for o in counted}
        counts: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
        for r in lines.itertuples(index=False):
            if r.order_id in ids and isinstance(r.category, str) and r.category:
                counts[ids[r.order_id]][r.category].add(r.order_id)
        for c, cats in counts.items():
            main_cat[c] = sorted(cats.items(), key=lambda kv: (-len(kv[1]), kv[0]))[0][0]
    rows = []
    for c, lst in bc.items():
        last = lst[-1].local_date
        gaps = [(b.local_date - a.local_date).days for a, b in pairwise(lst)]
        own = _median_or_none(gaps)
        cat = cat_cycle.get(main_cat.get(c, ""), (None, 0))[0]
        if own is not None:
            used, source = own, "own"
        elif cat is not None:
            used, source = cat, "category"
        elif shop_cycle is not None:
            used, source = shop_cycle, "shop"
        else:
            used, source = None, "none"
        days = (as_of - last).days
        n = len(lst)
        if days <= new_d:
            layer = "new" if n == 1 else "active"
        elif days <= cool_d:
            layer = "cooling"
        elif days <= high_d:
            layer = "high_winback"
        elif days <= lost_d:
            layer = "low_winback"
        else:
            layer = "lost"
        pa_ = (p_alive or {}).get(c)
        if days > lost_d or (pa_ is not None and pa_ < 0.1):
            stage = "lost"
        elif (
            (used is not None and days > max(2 * used, new_d))
            or (used is None and days > cool_d)
            or (pa_ is not None and pa_ < 0.5)
        ):
            stage = "decline"
        elif n == 1:
            stage = "acquisition"
        elif n < 5:
            stage = "growth"
        else:
            stage = "maturity"
        rows.append(
            {
                "customer_id": c,
                "orders": n,
                "spend": sum((o.revenue for o in lst), Decimal(0)),
                "first_order_at": lst[0].ordered_at,
                "last_order_at": lst[-1].ordered_at,
                "days_since_last": days,
                "cycle_days": own,
                "main_category": main_cat.get(c),
                "next_expected_date": None
                if used is None
                else last + timedelta(days=math.floor(used + 0.5)),
                "next_expected_source": source,
                "layer": layer,
                "lifecycle": stage,
            }
        )
    df = pd.DataFrame(rows).sort_values("customer_id").reset_index(drop=True)
    if df.empty:
        return df
    df["r_score"] = quintile(-df["days_since_last"])
    df["f_score"] = quintile(df["orders"])
    df["m_score"] = quintile(df["spend"].map(float))
    df["rfm_segment"] = [rf_name(r, f) for r, f in zip(df["r_score"], df["f_score"], strict=True)]
    return df

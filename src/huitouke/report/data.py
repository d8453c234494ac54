"""The report's numbers: one language-independent, JSON-serialisable document.

Everything here comes from :class:`huitouke.analytics.Analytics` — the same calls the CLI
makes — so the report and ``huitouke metrics`` / ``customers`` / ``segments`` cannot
disagree. The document is embedded verbatim in the HTML (``<script type="application/json"
id="report-data">``) and both language versions are rendered from it.

Money leaves as JSON numbers rounded half-even to cents (as ``huitouke metrics --format
json`` does); sums are taken over the exact Decimals first.
"""

from __future__ import annotations

import math
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from huitouke.analytics.segments import LIFECYCLE_STAGES, LayerWindows

if TYPE_CHECKING:
    from huitouke.analytics import Analytics

__all__ = ["SCHEMA", "collect", "default_as_of", "histogram_bins", "money", "to_jsonable"]

SCHEMA = "huitouke.report/1"
CENT = Decimal("0.01")
#: at most this many rows of the reminder list are embedded (the CLI gives the full list)
DUE_ROWS = 300


def money(value: Any) -> float | None:
    """A money amount as the CLI's JSON shows it: the exact value rounded half-even to cents."""
    if value is None:
        return None
    d = value if isinstance(value, Decimal) else Decimal(str(value))
    return float(d.quantize(CENT, rounding=ROUND_HALF_EVEN))


def _opt_float(v: Any) -> float | None:
    if v is None:
        return None
    try:
        if pd.isna(v):
            return None
    except (TypeError, ValueError):
        pass
    return float(v)


def _iso(v: Any) -> str | None:
    if v is None:
        return None
    try:
        if pd.isna(v):
            return None
    except (TypeError, ValueError):
        pass
    if isinstance(v, pd.Timestamp):
        v = v.to_pydatetime()
    if isinstance(v, datetime):
        return v.date().isoformat()
    if isinstance(v, date):
        return v.isoformat()
    return str(v)


def to_jsonable(obj: Any) -> Any:
    """Recursively turn numpy scalars, Decimals and dates into JSON-native values."""
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, Decimal):
        return money(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        f = float(obj)
        return None if np.isnan(f) else f
    if isinstance(obj, float) and np.isnan(obj):
        return None
    if isinstance(obj, datetime | date):
        return obj.isoformat()
    return obj


def default_as_of(analytics: Analytics) -> date | None:
    """The local date of the last counted order: the report reads "as of the end of the
    data" unless told otherwise (as ``huitouke customers`` does), so an old export gives a
    meaningful report."""
    span = analytics.date_span
    return None if span is None else span[1]


def collect(
    analytics: Analytics,
    *,
    as_of: date,
    source: dict[str, Any],
    due_days: int = 7,
    version: str = "",
    generated_at: datetime | None = None,
    customers: pd.DataFrame | None = None,
) -> dict[str, Any]:
    """Gather every number of the report (no predictions: see :mod:`.predictions`).
    ``customers`` is the per-customer view at ``as_of`` (default: the analytics' own,
    without a model's P(alive))."""
    metrics = analytics.metrics_json("month")
    pm = analytics.period_metrics("month")
    if customers is None:
        customers = analytics.customers(as_of)
    windows = analytics.windows or LayerWindows.from_settings()
    rules = analytics.lifecycle_rules

    # -- totals -----------------------------------------------------------------------------
    orders_total = int(pm["orders"].sum()) if not pm.empty else 0
    revenue_total = sum(pm["revenue"], Decimal(0)) if not pm.empty else Decimal(0)
    n_customers = len(customers)
    repeat = int((customers["orders"] >= 2).sum()) if n_customers else 0
    totals = {
        "customers": n_customers,
        "orders": orders_total,
        "revenue": money(revenue_total),
        "aov": money(revenue_total / orders_total) if orders_total else None,
        "repeat_customers": repeat,
        "repeat_customer_share": repeat / n_customers if n_customers else None,
        "orders_per_customer": orders_total / n_customers if n_customers else None,
    }

    # -- cohorts ------------------------------------------------------------------------------
    share = analytics.cohorts("share")
    revenue = analytics.cohorts("revenue")
    sizes = analytics.cohorts("customers")
    cohorts: dict[str, Any] = {"cohorts": [], "k": [], "sizes": [], "share": [], "revenue": []}
    if not share.empty:
        cohorts = {
            "cohorts": [str(c) for c in share.index],
            "k": [int(k) for k in share.columns],
            "sizes": [int(v) for v in sizes[sizes.columns[0]]],
            "share": [[_opt_float(v) for v in row] for row in share.itertuples(index=False)],
            "revenue": [[money(v) for v in row] for row in revenue.itertuples(index=False)],
        }

    # -- ladder -------------------------------------------------------------------------------
    ladder = [
        {
            "k": int(r["k"]),
            "reached_k": int(r["reached_k"]),
            "reached_k_plus_1": int(r["reached_k_plus_1"]),
            "share": _opt_float(r["share"]),
            "median_days": _opt_float(r["median_days"]),
        }
        for r in analytics.ladder(max_k=5).to_dict("records")
    ]

    # -- purchase cycle -----------------------------------------------------------------------
    cyc = np.array([float(v) for v in customers["cycle_days"] if v is not None], dtype=np.float64)
    cycle: dict[str, Any] = {"customers_with_cycle": int(cyc.size)}
    if cyc.size:
        q1, med, q3 = (float(x) for x in np.quantile(cyc, [0.25, 0.5, 0.75]))
        cycle.update({"median": med, "q1": q1, "q3": q3, "mean": float(cyc.mean())})
    else:
        cycle.update({"median": None, "q1": None, "q3": None, "mean": None})
    edges, counts, width = histogram_bins(cyc)
    cycle["histogram"] = {"edges": edges, "counts": counts, "width": width}

    # -- segments -----------------------------------------------------------------------------
    seg = analytics.segments(as_of, customers=customers)
    rfm = _segment_rows(seg["rfm"], "segment", revenue_total_of(customers))
    layers = _segment_rows(seg["layers"], "layer", revenue_total_of(customers))
    for row, rec in zip(layers, seg["layers"].to_dict("records"), strict=True):
        row["strategy_zh"] = rec["strategy_zh"]
        row["strategy_en"] = rec["strategy_en"]
        row["from_seed"] = bool(rec["from_seed"])

    # -- lifecycle stages ----------------------------------------------------------------------
    spend_total = revenue_total_of(customers)
    lifecycle = []
    for stage in LIFECYCLE_STAGES:
        part = customers[customers["lifecycle"] == stage]
        spend = sum(part["spend"], Decimal(0))
        lifecycle.append(
            {
                "key": stage,
                "customers": len(part),
                "share": len(part) / n_customers if n_customers else None,
                "revenue": money(spend),
                "revenue_share": float(spend / spend_total) if spend_total else None,
                "avg_spend": money(spend / len(part)) if len(part) else None,
            }
        )

    # -- reminders ----------------------------------------------------------------------------
    due_df = analytics.due_for_reminder(as_of, days=due_days, customers=customers)
    # "the next 7 days" are 7 days: today and the 6 after it
    end = as_of + timedelta(days=due_days - 1)
    by_day = {as_of + timedelta(days=i): 0 for i in range(due_days)}
    for d in due_df["next_expected_date"]:
        by_day[d] = by_day.get(d, 0) + 1
    due = {
        "start": as_of.isoformat(),
        "end": end.isoformat(),
        "days": due_days,
        "count": len(due_df),
        "by_day": [{"date": d.isoformat(), "customers": n} for d, n in sorted(by_day.items())],
        "customers": [
            {
                "customer_id": str(r["customer_id"]),
                "orders": int(r["orders"]),
                "spend": money(r["spend"]),
                "last_order_date": _iso(r["last_order_date"]),
                "cycle_days": _opt_float(r["cycle_days"]),
                "next_expected_date": _iso(r["next_expected_date"]),
                "next_expected_source": r.get("next_expected_source"),
                "layer": r["layer"],
                "rfm_segment": r["rfm_segment"],
            }
            for r in due_df.head(DUE_ROWS).to_dict("records")
        ],
    }

    first_day = pm["period_start"].iloc[0] if not pm.empty else None
    data_span = _data_span(customers)
    return to_jsonable(
        {
            "schema": SCHEMA,
            "version": version,
            "generated_at": (generated_at or datetime.now(analytics.zone)).isoformat(
                timespec="seconds"
            ),
            "source": source,
            "timezone": analytics.timezone,
            "currency": analytics.currency,
            "as_of": as_of.isoformat(),
            "data_start": data_span[0] or _iso(first_day),
            "data_end": data_span[1],
            "windows": {
                "new_days": windows.new_days,
                "cooling_days": windows.cooling_days,
                "high_winback_days": windows.high_winback_days,
                "lost_days": windows.lost_days,
            },
            "totals": totals,
            "metrics": metrics,
            "cohorts": cohorts,
            "ladder": ladder,
            "cycle": cycle,
            "rfm": rfm,
            "layers": layers,
            "lifecycle": lifecycle,
            "lifecycle_rules": {
                "overdue_factor": rules.overdue_factor,
                "maturity_orders": rules.maturity_orders,
            },
            "due": due,
        }
    )


def histogram_bins(
    values: np.ndarray, *, max_bins: int = 40
) -> tuple[list[float], list[int], float]:
    """Counts of ``values`` in bins of a round width (1, 2, 5, 7, 10, 14, 15, 30… days); the
    last bin collects everything above the 98th percentile. Returns (left edges, counts,
    width)."""
    if values.size == 0:
        return [], [], 1.0
    hi = float(np.quantile(values, 0.98))
    hi = max(hi, float(values.min()) + 1.0)
    span = hi - max(0.0, float(values.min()))
    width = 1.0
    for w in (1, 2, 5, 7, 10, 14, 15, 30, 60, 90, 180, 365, 730):
        width = float(w)
        if span / w <= max_bins:
            break
    lo = math.floor(max(0.0, float(values.min())) / width) * width
    nbins = max(1, math.ceil((hi - lo) / width))
    idx = np.clip(((values - lo) // width).astype(np.int64), 0, nbins - 1)
    counts = np.bincount(idx, minlength=nbins)
    return [lo + i * width for i in range(nbins)], [int(c) for c in counts], width


def revenue_total_of(customers: pd.DataFrame) -> Decimal:
    return sum(customers["spend"], Decimal(0)) if len(customers) else Decimal(0)


def _segment_rows(df: pd.DataFrame, key: str, spend_total: Decimal) -> list[dict[str, Any]]:
    rows = []
    for r in df.to_dict("records"):
        rev = r["revenue"] if isinstance(r["revenue"], Decimal) else Decimal(str(r["revenue"]))
        rows.append(
            {
                "key": r[key],
                "customers": int(r["customers"]),
                "share": _opt_float(r["share"]),
                "revenue": money(rev),
                "revenue_share": float(rev / spend_total) if spend_total else None,
                "avg_spend": money(r["avg_spend"]) if r["avg_spend"] is not None else None,
            }
        )
    return rows


def _data_span(customers: pd.DataFrame) -> tuple[str | None, str | None]:
    if not len(customers):
        return None, None
    first = customers["first_order_at"].min()
    last = customers["last_order_at"].max()
    return _iso(first), _iso(last)

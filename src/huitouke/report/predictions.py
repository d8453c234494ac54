"""The report's predictions section: the numbers of ``huitouke predict``, summarised.

Everything comes from :mod:`huitouke.prediction` — :func:`~huitouke.prediction.predict`
(the run behind ``huitouke predict``, with the same defaults: days as the time unit,
same-day orders merged, margin and annual discount rate from the settings) and
:func:`~huitouke.prediction.holdout_tracking` — so the report and the CLI agree customer by
customer. This module only aggregates for the charts:

- ``bands``: customers and value per churn-risk band (:func:`~huitouke.prediction.alive_summary`:
  low ≥ 0.7 "alive", medium 0.3–0.7, high 0.1–0.3 and lost < 0.1 "dormant");
- ``p_alive_histogram``: customers in 20 equal P(alive) bins;
- ``clv_bins``: customers by CLV over the horizon, in round-width bins;
- ``calendar``: customers likely to order again (P(no further order) < 0.5) counted on the
  date of their median next order, for the eight weeks after ``as_of``;
- ``top``: the customers of highest CLV, in the order of ``huitouke predict --top``;
- ``tracking``: weekly repeat purchases, actual vs the model refitted on the first half;
- ``evaluation``: every model fitted without the last 30% of the span, its predicted vs
  actual repeat orders there and its next-order interval coverage
  (:func:`~huitouke.prediction.evaluate_models`, as ``huitouke predict --evaluate``).
"""

from __future__ import annotations

import math
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import numpy as np
import pyarrow as pa

from huitouke.errors import HuitoukeError
from huitouke.prediction.scoring import Prediction
from huitouke.prediction.transactions import (
    MIN_CUSTOMERS,
    MIN_REPEAT_CUSTOMERS,
    require_enough_data,
)

__all__ = [
    "CALENDAR_WEEKS",
    "MIN_CUSTOMERS",
    "MIN_REPEAT_CUSTOMERS",
    "TOP_ROWS",
    "collect_predictions",
]

#: customers listed by value in the report
TOP_ROWS = 20
#: weeks shown in the next-order calendar
CALENDAR_WEEKS = 8


def collect_predictions(
    orders: pa.Table,
    *,
    timezone: str,
    currency: str | None,
    as_of: date,
    horizon_days: int = 90,
    model: str = "auto",
    run: Prediction | HuitoukeError | None = None,
) -> dict[str, Any]:
    """The predictions document, or ``{"status": "failed", "reason": …, "reason_zh": …}``
    when the models cannot be fitted on these data. ``run`` is the caller's
    :func:`~huitouke.prediction.policy_prediction` for the same arguments (or its error)."""
    try:
        if isinstance(run, HuitoukeError):
            raise run
        return _collect(orders, timezone, currency, as_of, horizon_days, model, run)
    except HuitoukeError as exc:
        return {"status": "failed", "reason": exc.message, "reason_zh": exc.message_zh}


def _money(v: Any) -> float:
    return float(v) if isinstance(v, Decimal) else round(float(v), 2)


def _collect(
    orders: pa.Table,
    timezone: str,
    currency: str | None,
    as_of: date,
    horizon_days: int,
    model: str,
    run: Prediction | None,
) -> dict[str, Any]:
    from huitouke.prediction import alive_summary, policy_prediction

    n, n_repeat = require_enough_data(orders, timezone=timezone, currency=currency, until=as_of)

    result = run or policy_prediction(
        orders,
        as_of=as_of,
        timezone=timezone,
        model=model,
        horizon_days=horizon_days,
        currency=currency,
    )
    df = result.customers

    p_alive = df["p_alive"].to_numpy(dtype=np.float64)
    clv = df["clv"].astype(float).to_numpy()
    hist, _ = np.histogram(p_alive, bins=20, range=(0.0, 1.0))

    bands = [
        {
            "band": r["band"],
            "status": r["status"],
            "p_alive_from": float(r["p_alive_from"]),
            "p_alive_to": float(r["p_alive_to"]),
            "customers": int(r["customers"]),
            "share": float(r["share"]),
            "expected_orders": float(r["expected_orders"]),
            "expected_spend": _money(r["expected_spend"]),
            "clv": _money(r["clv"]),
        }
        for r in alive_summary(df).to_dict("records")
    ]

    # next-order calendar: the median next-order date of customers likely to order again
    likely = df[(df["p_no_further_order"] < 0.5) & df["next_order_median"].notna()]
    last = as_of + timedelta(days=CALENDAR_WEEKS * 7)
    per_day: dict[date, int] = {
        as_of + timedelta(days=i): 0 for i in range(1, CALENDAR_WEEKS * 7 + 1)
    }
    for d in likely["next_order_median"]:
        if as_of < d <= last:
            per_day[d] += 1
    calendar = [{"date": d.isoformat(), "customers": c} for d, c in sorted(per_day.items())]

    # the same order as `huitouke predict --top N`
    order = clv.argsort(kind="stable")[::-1][:TOP_ROWS]
    top = [
        {
            "customer_id": str(r["customer_id"]),
            "frequency": int(r["frequency"]),
            "p_alive": float(r["p_alive"]),
            "expected_orders": float(r["expected_orders"]),
            "expected_spend": _money(r["expected_spend"]),
            "clv": _money(r["clv"]),
            "next_order_median": _iso(r["next_order_median"]),
            "next_order_low": _iso(r["next_order_low"]),
            "next_order_high": _iso(r["next_order_high"]),
            "p_no_further_order": float(r["p_no_further_order"]),
            "churn_risk": str(r["churn_risk"]),
        }
        for r in df.iloc[order].to_dict("records")
    ]

    meta = result.meta()
    return {
        "status": "ok",
        **meta,
        "customers": n,
        "repeat_customers": n_repeat,
        "bands": bands,
        "p_alive_histogram": [int(c) for c in hist],
        "expected_orders": float(df["expected_orders"].sum()),
        "expected_spend": _money(sum(df["expected_spend"], Decimal(0))),
        "clv_total": _money(sum(df["clv"], Decimal(0))),
        "clv_bins": value_bins(clv),
        "calendar": calendar,
        "likely_to_order": len(likely),
        "top": top,
        "tracking": _tracking(orders, timezone, currency, as_of, result.model),
        "evaluation": _evaluation(orders, timezone, currency, as_of),
    }


def _evaluation(
    orders: pa.Table, timezone: str, currency: str | None, as_of: date
) -> dict[str, Any]:
    """The holdout check of ``huitouke predict --evaluate`` (last 30% of the span held out)."""
    from huitouke.prediction import evaluate_models

    try:
        check = evaluate_models(orders, timezone=timezone, as_of=as_of, currency=currency)
    except HuitoukeError as exc:
        return {"status": "skipped", "reason": exc.message, "reason_zh": exc.message_zh}
    return {"status": "ok", **check.to_dict()}


def _iso(v: Any) -> str | None:
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else v.isoformat()


def value_bins(values: np.ndarray) -> dict[str, Any]:
    """Round-width bins (1, 2, 2.5, 5 × 10^k) up to the 98th percentile; the last bin
    takes the rest. Every value is counted once."""
    if values.size == 0:
        return {"edges": [], "counts": [], "width": 1.0}
    hi = max(float(np.quantile(values, 0.98)), 1.0)
    raw = hi / 30
    mag = 10 ** math.floor(math.log10(raw))
    width = next(k * mag for k in (1, 2, 2.5, 5, 10) if k * mag >= raw)
    nbins = max(1, math.ceil(hi / width))
    idx = np.clip((np.maximum(values, 0) // width).astype(np.int64), 0, nbins - 1)
    counts = np.bincount(idx, minlength=nbins)
    return {
        "edges": [round(i * width, 6) for i in range(nbins)],
        "counts": [int(c) for c in counts],
        "width": float(width),
    }


def _tracking(
    orders: pa.Table, timezone: str, currency: str | None, as_of: date, model: str
) -> dict[str, Any]:
    """Weekly repeat purchases, actual vs the same model family fitted on the first half."""
    from huitouke.prediction import holdout_tracking

    try:
        tracking = holdout_tracking(
            orders, timezone=timezone, holdout_end=as_of, model=model, currency=currency
        )
    except HuitoukeError as exc:
        return {"status": "skipped", "reason": exc.message, "reason_zh": exc.message_zh}
    body = tracking.to_dict()
    weeks = body.pop("weeks")
    cal_weeks = sum(1 for w in weeks if w["period"] != "holdout")
    return {
        "status": "ok",
        **body,
        "calibration_weeks": cal_weeks,
        "weeks": [w["week_start"] for w in weeks],
        "actual": [w["actual"] for w in weeks],
        "predicted": [w["predicted"] for w in weeks],
        "holdout_weekly_actual": sum(w["actual"] for w in weeks if w["period"] == "holdout"),
        "holdout_weekly_predicted": round(
            sum(w["predicted"] for w in weeks if w["period"] == "holdout"), 3
        ),
    }

"""The report's predictions section, from :mod:`huitouke.models`.

Conventions follow the BTYD literature (and ``huitouke.models.summary``): time in weeks,
a customer's orders on one local day merged into one, observation ending on the report's
``as_of`` date. The model is chosen by BIC among BG/NBD, Pareto/NBD and MBG/NBD
(``model="auto"``) unless one is named.

What it produces (all plain JSON values, embedded in ``report-data``):

- ``bands``: customers by P(alive) — alive (≥ 0.7), uncertain (0.3–0.7), dormant (< 0.3);
- ``expected_orders`` in the horizon (conditional expected purchases) and the expected
  revenue (× Gamma-Gamma expected order value);
- ``clv``: one-year customer lifetime value (revenue, discounted 1% a month) binned;
- ``calendar``: customers likely to order again (P(no further order) < 0.5) counted by the
  date of their median next order, for the next eight weeks;
- ``tracking``: the model fitted on the first half of the data predicts weekly repeat
  purchases of those customers across the whole span (the Fader–Hardie tracking plot);
  the second half is a true holdout.
"""

from __future__ import annotations

import math
from datetime import date, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from huitouke.core.orders import COUNTED_STATUSES
from huitouke.errors import HuitoukeError, ModelFitError

__all__ = ["ALIVE", "DORMANT", "collect_predictions", "counted_transactions"]

ALIVE = 0.7
DORMANT = 0.3
WEEK = 7.0
#: customers listed by value in the report
TOP_ROWS = 20
#: weeks shown in the next-order calendar
CALENDAR_WEEKS = 8
#: below this many customers (or repeat customers) the four model parameters are not
#: identified and the section says so instead of showing noise
MIN_CUSTOMERS = 30
MIN_REPEAT_CUSTOMERS = 5


def counted_transactions(orders: pa.Table, timezone: str, currency: str | None) -> pd.DataFrame:
    """customer_id, day (local date as datetime64), amount (revenue, float) of the counted
    orders (BRIEF: paid and not fully refunded or cancelled; revenue = amount − refunded)."""
    mask = pc.is_in(orders.column("status"), value_set=pa.array(COUNTED_STATUSES))
    if currency is not None:
        mask = pc.and_(mask, pc.equal(orders.column("currency"), currency))
    t = orders.filter(mask)
    # same instants, labelled with the merchant's zone, then read as local wall time
    local = pc.local_timestamp(t.column("ordered_at").cast(pa.timestamp("us", tz=timezone)))
    days = pc.floor_temporal(local, unit="day")
    revenue = pc.subtract(t.column("amount"), t.column("refunded_amount")).cast(pa.float64())
    return pd.DataFrame(
        {
            "customer_id": t.column("customer_id").to_numpy(zero_copy_only=False),
            "day": pd.to_datetime(days.to_numpy(zero_copy_only=False)),
            "amount": revenue.to_numpy(zero_copy_only=False),
        }
    )


def collect_predictions(
    orders: pa.Table,
    *,
    timezone: str,
    currency: str | None,
    as_of: date,
    horizon_days: int = 90,
    model: str = "auto",
) -> dict[str, Any]:
    """The predictions document, or ``{"status": "failed", "reason": …}`` when the models
    cannot be fitted on these data (too few customers, no repeat orders…)."""
    try:
        return _collect(orders, timezone, currency, as_of, horizon_days, model)
    except HuitoukeError as exc:
        return {"status": "failed", "reason": exc.message, "reason_zh": exc.message_zh}


def _collect(
    orders: pa.Table,
    timezone: str,
    currency: str | None,
    as_of: date,
    horizon_days: int,
    model_name: str,
) -> dict[str, Any]:
    from huitouke.models import (
        GammaGamma,
        customer_lifetime_value,
        fit_model,
        select_model,
        summary_from_transactions,
    )

    tx = counted_transactions(orders, timezone, currency)
    end = pd.Timestamp(as_of)
    tx = tx[tx["day"] <= end]
    summary = summary_from_transactions(
        tx, date_col="day", observation_end=end, unit="W", merge_same_day=True, amount_col="amount"
    )
    x = summary["frequency"].to_numpy()
    tx_ = summary["recency"].to_numpy()
    T = summary["T"].to_numpy()
    n_repeat = int((x > 0).sum())
    if x.size < MIN_CUSTOMERS or n_repeat < MIN_REPEAT_CUSTOMERS:
        raise ModelFitError(
            f"too little data for a model: {x.size} customers, {n_repeat} with a repeat order "
            f"(needs at least {MIN_CUSTOMERS} and {MIN_REPEAT_CUSTOMERS})",
            code="model.too_little_data",
            message_zh=f"数据太少,无法建模:{x.size} 位顾客,其中 {n_repeat} 位有复购"
            f"(至少需要 {MIN_CUSTOMERS} 位和 {MIN_REPEAT_CUSTOMERS} 位)",
        )

    if model_name == "auto":
        selection = select_model(x, tx_, T)
        m = selection.model
        chosen = selection.name
        comparison = [
            {
                "model": str(name),
                "log_likelihood": _num(row["log_likelihood"]),
                "bic": _num(row["bic"]),
            }
            for name, row in selection.table.iterrows()
        ]
    else:
        m = fit_model(model_name, x, tx_, T)
        chosen = model_name
        comparison = []

    horizon = horizon_days / WEEK
    p_alive = np.asarray(m.probability_alive(x, tx_, T))
    expected = np.asarray(m.conditional_expected_purchases(horizon, x, tx_, T))

    # expected value per order: Gamma-Gamma on repeat buyers, else the plain mean
    repeat = (x > 0) & (summary["monetary_value"].to_numpy() > 0)
    spend_note = "gamma_gamma"
    mean_order = float(tx["amount"].mean()) if len(tx) else 0.0
    try:
        gg = GammaGamma().fit(x[repeat], summary["monetary_value"].to_numpy()[repeat])
        spend = np.asarray(
            gg.conditional_expected_average_profit(x, summary["monetary_value"].to_numpy())
        )
        gg_params = {k: float(v) for k, v in gg.params_.items()}
    except HuitoukeError:
        spend = np.full(x.shape, mean_order)
        spend_note = "mean_order_value"
        gg_params = {}
    expected_revenue = expected * spend
    clv = np.asarray(
        customer_lifetime_value(
            m, x, tx_, T, spend, horizon=52.0, period=52.0 / 12.0, discount_rate=0.01
        )
    )

    dist = m.next_order_distribution(x, tx_, T, coverage=0.8)
    median_days = dist["median"].to_numpy() * WEEK
    p_none = dist["p_no_further_order"].to_numpy()
    for name, arr in (("P(alive)", p_alive), ("expected orders", expected), ("CLV", clv)):
        if not np.all(np.isfinite(arr)):
            raise ModelFitError(
                f"the fitted {_MODEL_LABELS.get(chosen, chosen)} model gives non-finite "
                f"{name} on these data; its parameters are not identified",
                code="model.not_finite",
                message_zh=f"拟合的 {_MODEL_LABELS.get(chosen, chosen)} 模型在这份数据上给出了"
                f"非有限的 {name};模型参数无法识别",
            )

    n = int(x.size)
    alive_n = int((p_alive >= ALIVE).sum())
    dormant_n = int((p_alive < DORMANT).sum())
    hist_counts, _ = np.histogram(p_alive, bins=20, range=(0.0, 1.0))

    # -- next-order calendar ----------------------------------------------------------------
    likely = (p_none < 0.5) & np.isfinite(median_days)
    offsets = np.floor(median_days[likely]).astype(np.int64) + 1  # day after as_of = +1
    cal_days = CALENDAR_WEEKS * 7
    in_window = offsets[(offsets >= 1) & (offsets <= cal_days)]
    per_day = np.bincount(in_window, minlength=cal_days + 1)[1:]
    calendar = [
        {"date": (as_of + timedelta(days=i + 1)).isoformat(), "customers": int(c)}
        for i, c in enumerate(per_day)
    ]

    # -- value distribution --------------------------------------------------------------------
    top_idx = np.argsort(-clv, kind="stable")[:TOP_ROWS]
    top = [
        {
            "customer_id": str(summary.index[i]),
            "p_alive": float(p_alive[i]),
            "expected_orders": float(expected[i]),
            "expected_revenue": round(float(expected_revenue[i]), 2),
            "clv": round(float(clv[i]), 2),
            "next_order_median": _date_after(as_of, dist["median"].iloc[i] * WEEK),
            "next_order_lower": _date_after(as_of, dist["lower"].iloc[i] * WEEK),
            "next_order_upper": _date_after(as_of, dist["upper"].iloc[i] * WEEK),
            "p_no_further_order": float(p_none[i]),
        }
        for i in top_idx
    ]

    params = {k: float(v) for k, v in m.params_.items()}
    return {
        "status": "ok",
        "model": chosen,
        "model_label": _MODEL_LABELS.get(chosen, chosen),
        "unit": "week",
        "merge_same_day": True,
        "horizon_days": horizon_days,
        "customers": n,
        "params": params,
        "log_likelihood": float(m.log_likelihood_),
        "comparison": comparison,
        "gamma_gamma": gg_params,
        "spend_source": spend_note,
        "bands": {"alive": alive_n, "uncertain": n - alive_n - dormant_n, "dormant": dormant_n},
        "p_alive_histogram": [int(c) for c in hist_counts],
        "p_alive_mean": float(p_alive.mean()) if n else None,
        "expected_orders": float(expected.sum()),
        "expected_revenue": round(float(expected_revenue.sum()), 2),
        "clv_total": round(float(clv.sum()), 2),
        "clv_values_binned": _bins(clv),
        "calendar": calendar,
        "likely_to_order": int(likely.sum()),
        "top": top,
        "tracking": _tracking(tx, as_of, chosen),
    }


_MODEL_LABELS = {"bgnbd": "BG/NBD", "pnbd": "Pareto/NBD", "mbgnbd": "MBG/NBD"}


def _num(v: Any) -> float | None:
    f = float(v)
    return None if math.isnan(f) else f


def _date_after(as_of: date, days: float) -> str | None:
    if not math.isfinite(days):
        return None
    return (as_of + timedelta(days=math.floor(days) + 1)).isoformat()


def _bins(values: np.ndarray) -> dict[str, Any]:
    """Round-width bins up to the 98th percentile; the last bin takes the rest."""
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


def _tracking(tx: pd.DataFrame, as_of: date, model_name: str) -> dict[str, Any]:
    """Weekly repeat purchases, actual vs the model fitted on the first half of the span."""
    from huitouke.models import fit_model, summary_from_transactions

    if tx.empty:
        return {"status": "skipped", "reason": "no orders"}
    start = tx["day"].min()
    end = pd.Timestamp(as_of)
    span_days = int((end - start).days)
    n_weeks = span_days // 7
    if n_weeks < 8:
        return {"status": "skipped", "reason": "fewer than 8 weeks of data"}
    cal_weeks = n_weeks // 2
    cal_end = start + pd.Timedelta(days=cal_weeks * 7 - 1)
    cal_tx = tx[tx["day"] <= cal_end]
    summary = summary_from_transactions(
        cal_tx,
        date_col="day",
        observation_end=cal_end,
        unit="W",
        merge_same_day=True,
        amount_col=None,
    )
    if float(summary["frequency"].sum()) == 0:
        return {"status": "skipped", "reason": "no repeat orders in the calibration half"}
    m = fit_model(
        model_name,
        summary["frequency"].to_numpy(),
        summary["recency"].to_numpy(),
        summary["T"].to_numpy(),
    )
    # actual: repeat purchase days (first day of each customer excluded) of the cal. cohort
    cohort = set(summary.index)
    days = tx[tx["customer_id"].isin(cohort)][["customer_id", "day"]].drop_duplicates()
    first = days.groupby("customer_id")["day"].transform("min")
    repeats = days[days["day"] > first]
    week_idx = ((repeats["day"] - start).dt.days // 7).to_numpy()
    week_idx = week_idx[(week_idx >= 0) & (week_idx < n_weeks)]
    actual = np.bincount(week_idx, minlength=n_weeks)[:n_weeks].astype(float)

    # predicted: Σ over first-purchase days of n · (E[X(t_end)] − E[X(t_start)])
    firsts = days.groupby("customer_id")["day"].min()
    per_day = firsts.value_counts()
    offset_days = ((per_day.index - start).days).to_numpy(dtype=np.float64)
    counts = per_day.to_numpy(dtype=np.float64)
    boundaries = np.arange(n_weeks + 1, dtype=np.float64) * 7.0
    age = np.clip(boundaries[None, :] - offset_days[:, None], 0.0, None) / WEEK
    cum = np.asarray(m.expected_purchases(age.ravel())).reshape(age.shape)
    cum_total = counts @ cum
    predicted = np.diff(cum_total)
    labels = [(start + pd.Timedelta(days=7 * i)).date().isoformat() for i in range(n_weeks)]
    return {
        "status": "ok",
        "calibration_end": cal_end.date().isoformat(),
        "calibration_weeks": cal_weeks,
        "weeks": labels,
        "actual": [int(v) for v in actual],
        "predicted": [round(float(v), 3) for v in predicted],
        "holdout_actual": int(actual[cal_weeks:].sum()),
        "holdout_predicted": round(float(predicted[cal_weeks:].sum()), 1),
        "params": {k: float(v) for k, v in m.params_.items()},
    }

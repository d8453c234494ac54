"""From orders to the (frequency, recency, T, monetary value) summary the models take.

Conventions (Fader & Hardie; the same as ``lifetimes``):

- time is counted in whole days from a customer's first order and expressed in the
  chosen unit (days, weeks or any number of days);
- ``frequency`` = number of *repeat* orders (orders after the first) up to the end of the
  observation; ``recency`` = age at the last order (0 if no repeat order); ``T`` = age at
  the end of the observation, i.e. ``(observation_end − first order date)`` in days over
  the unit. With the CDNOW calibration ending on 1997-09-30, a customer whose first order
  was on 1997-01-01 has ``T = 272/7 = 38.86`` weeks, which is the figure of the
  published BG/NBD and Pareto/NBD results.
- orders on the same calendar day by one customer are merged into one by default
  (``merge_same_day=False`` keeps them as separate orders, as the brief's counting rule
  for data with order ids does);
- ``monetary_value`` = mean value of the repeat orders (0 without one): the first order is
  left out, as the Gamma-Gamma model is fitted on repeat spend.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from huitouke.errors import InputError

__all__ = [
    "calibration_and_holdout_summary",
    "first_holdout_order",
    "summary_from_transactions",
    "unit_days",
]

_UNITS = {"D": 1.0, "day": 1.0, "days": 1.0, "W": 7.0, "week": 7.0, "weeks": 7.0}


def unit_days(unit: str | float) -> float:
    """Days in one time unit: ``"D"``/``"days"``, ``"W"``/``"weeks"`` or a positive number."""
    if isinstance(unit, str):
        if unit not in _UNITS:
            raise InputError(
                f"`unit` must be one of {', '.join(_UNITS)} or a number of days, got {unit!r}",
                code="input.model_argument",
                message_zh=f"`unit` 必须是 {', '.join(_UNITS)} 之一或天数,实际为 {unit!r}",
                details={"argument": "unit"},
            )
        return _UNITS[unit]
    value = float(unit)
    if not (np.isfinite(value) and value > 0):
        raise InputError(
            f"`unit` must be a positive number of days, got {unit!r}",
            code="input.model_argument",
            message_zh=f"`unit` 必须是正的天数,实际为 {unit!r}",
            details={"argument": "unit"},
        )
    return value


def _column_error(name: str, argument: str, columns: list[str]) -> InputError:
    return InputError(
        f"column {name!r} (argument `{argument}`) is not in the data; columns are {columns}",
        code="input.missing_column",
        message_zh=f"数据中没有列 {name!r}(参数 `{argument}`);现有列为 {columns}",
        details={"column": name, "argument": argument},
    )


def _to_day(value: Any, argument: str) -> pd.Timestamp:
    try:
        ts = pd.Timestamp(value)
    except (TypeError, ValueError) as exc:
        raise InputError(
            f"`{argument}` is not a date: {value!r}",
            code="input.model_argument",
            message_zh=f"`{argument}` 不是日期:{value!r}",
            details={"argument": argument},
        ) from exc
    return ts.normalize()


def _prepare(
    transactions: pd.DataFrame,
    customer_col: str,
    date_col: str | None,
    amount_col: str | None,
    merge_same_day: bool,
) -> pd.DataFrame:
    """Rows (customer, day, amount) sorted by customer and day; merged per day if asked."""
    columns = [str(c) for c in transactions.columns]
    if customer_col not in transactions.columns:
        raise _column_error(customer_col, "customer_col", columns)
    if date_col is None:
        date_col = next((c for c in ("ordered_at", "date") if c in transactions.columns), None)
        if date_col is None:
            raise _column_error("ordered_at", "date_col", columns)
    elif date_col not in transactions.columns:
        raise _column_error(date_col, "date_col", columns)
    if amount_col is not None and amount_col not in transactions.columns:
        raise _column_error(amount_col, "amount_col", columns)

    cust = transactions[customer_col]
    if cust.isna().any():
        pos = int(np.flatnonzero(cust.isna().to_numpy())[0])
        raise InputError(
            f"column {customer_col!r} has an empty customer id at row {pos}",
            code="input.missing_value",
            message_zh=f"列 {customer_col!r} 第 {pos} 行缺少客户编号",
            details={"column": customer_col, "row": pos},
        )
    raw_dates = transactions[date_col]
    try:
        dates = pd.to_datetime(raw_dates)
    except (TypeError, ValueError) as exc:
        raise InputError(
            f"column {date_col!r} holds values that are not dates: {exc}",
            code="input.bad_date",
            message_zh=f"列 {date_col!r} 含有非日期值:{exc}",
            details={"column": date_col},
        ) from exc
    if dates.isna().any():
        pos = int(np.flatnonzero(dates.isna().to_numpy())[0])
        raise InputError(
            f"column {date_col!r} has an empty date at row {pos}",
            code="input.missing_value",
            message_zh=f"列 {date_col!r} 第 {pos} 行缺少日期",
            details={"column": date_col, "row": pos},
        )
    frame = pd.DataFrame({"customer": cust.to_numpy(), "day": dates.dt.normalize().to_numpy()})
    if amount_col is not None:
        amounts = pd.to_numeric(transactions[amount_col], errors="coerce").astype("float64")
        bad = amounts.isna() | ~np.isfinite(amounts.to_numpy()) | (amounts < 0)
        if bad.any():
            pos = int(np.flatnonzero(bad.to_numpy())[0])
            raise InputError(
                f"column {amount_col!r} needs non-negative numbers; row {pos} has "
                f"{transactions[amount_col].iloc[pos]!r} (remove refunds before modelling)",
                code="input.bad_amount",
                message_zh=f"列 {amount_col!r} 必须为非负数;第 {pos} 行为 "
                f"{transactions[amount_col].iloc[pos]!r}(建模前请先去除退款)",
                details={"column": amount_col, "row": pos},
            )
        frame["amount"] = amounts.to_numpy()
    else:
        frame["amount"] = 0.0
    if merge_same_day:
        frame = frame.groupby(["customer", "day"], sort=True, as_index=False).agg(
            amount=("amount", "sum")
        )
    else:
        frame = frame.sort_values(["customer", "day"], kind="stable").reset_index(drop=True)
    return frame


def _summarise(orders: pd.DataFrame, end: pd.Timestamp, days_per_unit: float) -> pd.DataFrame:
    grouped = orders.groupby("customer", sort=True)
    first = grouped["day"].min()
    last = grouped["day"].max()
    count = grouped.size()
    total = grouped["amount"].sum()
    first_amount = grouped["amount"].first()
    frequency = (count - 1).astype(np.float64)
    repeat_value = (total - first_amount).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        monetary = np.where(frequency > 0, repeat_value / frequency.where(frequency > 0, 1.0), 0.0)
    out = pd.DataFrame(
        {
            "frequency": frequency,
            "recency": (last - first).dt.days.astype(np.float64) / days_per_unit,
            "T": (end - first).dt.days.astype(np.float64) / days_per_unit,
            "monetary_value": monetary,
        }
    )
    out.index.name = "customer_id"
    return out


def summary_from_transactions(
    transactions: pd.DataFrame,
    *,
    customer_col: str = "customer_id",
    date_col: str | None = None,
    amount_col: str | None = "amount",
    observation_end: Any = None,
    unit: str | float = "D",
    merge_same_day: bool = True,
) -> pd.DataFrame:
    """One row per customer: ``frequency``, ``recency``, ``T``, ``monetary_value``.

    ``date_col`` defaults to ``ordered_at`` or else ``date``; ``amount_col=None`` gives
    ``monetary_value`` 0. Orders after ``observation_end`` (default: the last order date)
    are ignored.
    """
    days = unit_days(unit)
    orders = _prepare(transactions, customer_col, date_col, amount_col, merge_same_day)
    end = (
        orders["day"].max()
        if observation_end is None
        else _to_day(observation_end, "observation_end")
    )
    orders = orders[orders["day"] <= end]
    if orders.empty:
        raise InputError(
            "no orders on or before `observation_end`",
            code="input.empty",
            message_zh="`observation_end` 之前没有订单",
            details={"argument": "observation_end"},
        )
    return _summarise(orders, end, days)


def calibration_and_holdout_summary(
    transactions: pd.DataFrame,
    calibration_end: Any,
    holdout_end: Any = None,
    *,
    customer_col: str = "customer_id",
    date_col: str | None = None,
    amount_col: str | None = "amount",
    unit: str | float = "D",
    merge_same_day: bool = True,
) -> pd.DataFrame:
    """Split orders at ``calibration_end`` (inclusive) for out-of-sample checks.

    Customers whose first order is after ``calibration_end`` are left out. Columns:
    ``frequency_cal``, ``recency_cal``, ``T_cal``, ``monetary_value_cal``,
    ``frequency_holdout`` (orders in (calibration_end, holdout_end]; with same-day
    merging, days with orders), ``monetary_value_holdout`` (their mean value) and
    ``duration_holdout`` (holdout length in the unit).
    """
    days = unit_days(unit)
    orders = _prepare(transactions, customer_col, date_col, amount_col, merge_same_day)
    cal_end = _to_day(calibration_end, "calibration_end")
    end = orders["day"].max() if holdout_end is None else _to_day(holdout_end, "holdout_end")
    if end <= cal_end:
        raise InputError(
            "`holdout_end` must come after `calibration_end`",
            code="input.model_argument",
            message_zh="`holdout_end` 必须晚于 `calibration_end`",
            details={"argument": "holdout_end"},
        )
    cal_orders = orders[orders["day"] <= cal_end]
    if cal_orders.empty:
        raise InputError(
            "no orders on or before `calibration_end`",
            code="input.empty",
            message_zh="`calibration_end` 之前没有订单",
            details={"argument": "calibration_end"},
        )
    cal = _summarise(cal_orders, cal_end, days).add_suffix("_cal")
    hold = orders[(orders["day"] > cal_end) & (orders["day"] <= end)]
    hold_group = hold.groupby("customer", sort=True)
    freq_h = hold_group.size().reindex(cal.index, fill_value=0).astype(np.float64)
    value_h = hold_group["amount"].mean().reindex(cal.index, fill_value=0.0).astype(np.float64)
    cal["frequency_holdout"] = freq_h.to_numpy()
    cal["monetary_value_holdout"] = value_h.to_numpy()
    cal["duration_holdout"] = float((end - cal_end).days) / days
    return cal


def first_holdout_order(
    transactions: pd.DataFrame,
    calibration_end: Any,
    holdout_end: Any = None,
    *,
    customer_col: str = "customer_id",
    date_col: str | None = None,
    unit: str | float = "D",
) -> pd.Series:
    """Time from ``calibration_end`` to each customer's first order in the holdout (NaN
    if none), in the unit — what the next-order forecast is checked against."""
    days = unit_days(unit)
    orders = _prepare(transactions, customer_col, date_col, None, True)
    cal_end = _to_day(calibration_end, "calibration_end")
    end = orders["day"].max() if holdout_end is None else _to_day(holdout_end, "holdout_end")
    customers = orders.loc[orders["day"] <= cal_end, "customer"].unique()
    hold = orders[(orders["day"] > cal_end) & (orders["day"] <= end)]
    first = hold.groupby("customer")["day"].min()
    gap = (first - cal_end).dt.days.astype(np.float64) / days
    out = gap.reindex(pd.Index(np.sort(customers), name="customer_id"))
    out.name = "first_holdout_order"
    return out

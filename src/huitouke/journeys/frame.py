"""The customers frame the journey engine reads, and its conversion to day numbers.

One row per customer. Required columns:

``customer_id`` (str), ``orders`` (int), ``last_order_at`` (UTC timestamp)

Optional columns (missing ones are treated as unknown, and a filter on them matches nobody):

``first_order_at`` (UTC timestamp), ``next_expected_date`` (date), ``layer``, ``rfm_segment``,
``lifecycle`` (str), ``p_alive`` (float), ``birthday`` (date), ``points_expiring_on`` (date),
``next_tier_gap_ratio`` (float: what is missing to the next tier / that tier's threshold),
``stamps_to_reward`` (int), ``tags`` (list of str), ``attributes`` (dict: custom profile
attribute → its value as Decimal, date or str), ``lang`` ('zh'/'en').

These are the columns of ``Analytics.customers(as_of)`` joined with the models' P(alive)
and the loyalty balances (see :func:`huitouke.journeys.integration.customers_frame`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt
import pandas as pd

from huitouke.errors import InputError

__all__ = ["NO_DAY", "CustomerArrays", "day_number", "day_of", "days_from_civil", "prepare"]

#: day number meaning "no date"
NO_DAY = np.int64(-(10**9))
_EPOCH = date(1970, 1, 1)

REQUIRED = ("customer_id", "orders", "last_order_at")


def day_number(d: date) -> int:
    return (d - _EPOCH).days


def day_of(n: int) -> date:
    return date.fromordinal(_EPOCH.toordinal() + int(n))


def days_from_civil(
    y: npt.NDArray[np.int64], m: npt.NDArray[np.int64], d: npt.NDArray[np.int64]
) -> npt.NDArray[np.int64]:
    """Days since 1970-01-01 of proleptic Gregorian dates (H. Hinnant's algorithm), vectorised."""
    y = y - (m <= 2)
    era = np.floor_divide(y, 400)
    yoe = y - era * 400
    mp = (m + 9) % 12
    doy = (153 * mp + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def _instants_to_days(s: pd.Series, zone: ZoneInfo) -> npt.NDArray[np.int64]:
    ts = pd.to_datetime(s, utc=True)
    local = ts.dt.tz_convert(zone).dt.tz_localize(None)
    out = local.to_numpy(dtype="datetime64[ns]").astype("datetime64[D]").astype(np.int64)
    out[ts.isna().to_numpy()] = NO_DAY
    return out


def _dates_to_days(s: pd.Series) -> npt.NDArray[np.int64]:
    ts = pd.to_datetime(s, errors="coerce")
    if getattr(ts.dt, "tz", None) is not None:
        ts = ts.dt.tz_localize(None)
    out = ts.to_numpy(dtype="datetime64[ns]").astype("datetime64[D]").astype(np.int64)
    out[ts.isna().to_numpy()] = NO_DAY
    return out


@dataclass
class CustomerArrays:
    """Column arrays of the customers frame, dates as day numbers in the merchant's zone."""

    frame: pd.DataFrame
    ids: npt.NDArray[np.object_]
    orders: npt.NDArray[np.int64]
    last_order_day: npt.NDArray[np.int64]
    first_order_day: npt.NDArray[np.int64]
    date_days: dict[str, npt.NDArray[np.int64]]
    birthday_month: npt.NDArray[np.int64]
    birthday_day: npt.NDArray[np.int64]

    def __len__(self) -> int:
        return len(self.ids)


def prepare(frame: pd.DataFrame, timezone: str) -> CustomerArrays:
    """Validate the customers frame and turn its dates into day numbers."""
    missing = [c for c in REQUIRED if c not in frame.columns]
    if missing:
        raise InputError(
            f"customers frame lacks column(s) {', '.join(missing)}",
            code="journey.frame_missing_columns",
            message_zh=f"客户表缺少列:{', '.join(missing)}",
            details={"field": missing[0]},
        )
    if frame["customer_id"].duplicated().any():
        dup = frame.loc[frame["customer_id"].duplicated(), "customer_id"].iloc[0]
        raise InputError(
            f"customers frame has customer_id {dup!r} twice",
            code="journey.frame_duplicate",
            message_zh=f"客户表中 customer_id {dup!r} 重复",
            details={"field": "customer_id", "value": str(dup)},
        )
    zone = ZoneInfo(timezone)
    frame = frame.reset_index(drop=True)
    last_day = _instants_to_days(frame["last_order_at"], zone)
    first_day = (
        _instants_to_days(frame["first_order_at"], zone)
        if "first_order_at" in frame.columns
        else np.where(frame["orders"].to_numpy() == 1, last_day, NO_DAY)
    )
    date_days = {"last_order_date": last_day, "first_order_date": first_day}
    for col in ("next_expected_date", "points_expiring_on"):
        if col in frame.columns:
            date_days[col] = _dates_to_days(frame[col])
    if "birthday" in frame.columns:
        bd = pd.to_datetime(frame["birthday"], errors="coerce")
        bm = np.asarray(bd.dt.month.fillna(0).to_numpy(), dtype=np.int64)
        bdd = np.asarray(bd.dt.day.fillna(0).to_numpy(), dtype=np.int64)
    else:
        bm = np.zeros(len(frame), dtype=np.int64)
        bdd = np.zeros(len(frame), dtype=np.int64)
    return CustomerArrays(
        frame=frame,
        ids=frame["customer_id"].astype(str).to_numpy(dtype=object),
        orders=frame["orders"].fillna(0).to_numpy(dtype=np.int64),
        last_order_day=last_day,
        first_order_day=first_day,
        date_days=date_days,
        birthday_month=bm,
        birthday_day=bdd,
    )

"""The calibration/holdout split both holdout checks stand on (:mod:`.evaluate` and
:mod:`.tracking`): the counted transactions up to the holdout end, the calibration end each
check chooses and validates by its own rule, and the per-customer summary of the two
periods (:func:`huitouke.models.calibration_and_holdout_summary`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

import pandas as pd
import pyarrow as pa

from huitouke.errors import InputError
from huitouke.models import calibration_and_holdout_summary
from huitouke.models.summary import unit_days
from huitouke.prediction.transactions import counted_transactions

__all__ = ["CalibrationSplit", "calibration_split"]


@dataclass(frozen=True)
class CalibrationSplit:
    tx: pd.DataFrame  # the counted per-day transactions up to ``holdout_end``
    first_day: date
    calibration_end: date  # included in the calibration period
    holdout_end: date
    summary: pd.DataFrame  # one row per customer first seen by ``calibration_end``
    days_per_unit: float


def calibration_split(
    orders: pa.Table,
    *,
    timezone: str,
    until: date | None,
    calibration_end: Callable[[date, date], date],
    unit: str | float = "D",
    currency: str | None = None,
    merge_same_day: bool = True,
) -> CalibrationSplit:
    """Split the counted orders up to ``until`` (default: the last order day).

    ``calibration_end(first_day, holdout_end)`` returns the calibration end, or raises
    ``input.bad_split`` when the history cannot be split so; without counted orders
    ``input.no_orders``.
    """
    days_per_unit = unit_days(unit)
    tx, _ = counted_transactions(orders, timezone=timezone, currency=currency, until=until)
    if tx.empty:
        raise InputError(
            "there are no counted orders to split into a calibration and a holdout period",
            code="input.no_orders",
            message_zh="没有可统计的订单,无法划分校准期与留出期",
        )
    first_day = tx["day"].min().date()
    end = until if until is not None else tx["day"].max().date()
    cal_end = calibration_end(first_day, end)
    summary = calibration_and_holdout_summary(
        tx,
        pd.Timestamp(cal_end),
        pd.Timestamp(end),
        date_col="day",
        amount_col=None,
        unit=days_per_unit,
        merge_same_day=merge_same_day,
    )
    return CalibrationSplit(tx, first_day, cal_end, end, summary, days_per_unit)
